/**
 * The scanner's durable state, in portable SQL over a {@link SqlDriver} (SQLite or PostgreSQL):
 *
 * - `scan_jobs`: the work queue (scans of one image in one repository, database re-evaluations),
 *   claimed with a lease (see jobs.ts);
 * - `scan_images`: where each scanned digest lives (repository, media type, attached SBOMs);
 * - `scan_results`: per digest (content-addressed, so shared by every repository holding it): the
 *   status of its latest scan, the inventory (packages, OS, layers), the compact match input that
 *   re-evaluation reads instead of layers, secrets, image-configuration findings, the findings with
 *   their fingerprint and counts, and the vulnerability database (content hash, import time) they
 *   were computed with;
 * - `scan_finding_templates`: the package-independent part of findings, stored once and named by a
 *   hash of their content; results hold (package index, template key) references (evaluation.ts);
 * - `scan_exemptions`: accepted risks (exemptions.ts);
 * - `scan_vex`: OpenVEX documents (vex.ts).
 *
 * Migrations have their own track, `scanner_schema_migrations` (as the access and audit stores):
 * on SQLite the scanner uses a database file of its own (`<dataDir>/scanner/scanner.sqlite`), so a
 * re-evaluation writing thousands of rows never holds the metadata write lock a push needs; on
 * PostgreSQL its tables sit beside the metadata tables.
 *
 * Timestamps are BIGINT milliseconds; JSON documents are TEXT (both engines).
 */
import { applyMigrations } from '../auth/store/migrations.ts';
import type { Row, SqlDriver, SqlExecutor } from '../storage/sql/driver.ts';
import type { Migration } from '../storage/sql/migrations.ts';
import { type Evaluation, type FindingPackage, type FindingTemplate, materializeFindings, parseRefs, templateKey } from './evaluation.ts';
import type { OperatingSystem, VulnerabilityFinding } from './model.ts';

export type { Evaluation } from './evaluation.ts';

export function scannerMigrations(): Migration[] {
  return [
    {
      version: 1,
      description: 'scan jobs, images, results, exemptions',
      statements: [
        `CREATE TABLE scan_jobs (
           id TEXT PRIMARY KEY,
           kind TEXT NOT NULL,
           repository TEXT,
           digest TEXT,
           payload TEXT,
           priority INTEGER NOT NULL DEFAULT 1,
           state TEXT NOT NULL,
           requeue INTEGER NOT NULL DEFAULT 0,
           attempts INTEGER NOT NULL DEFAULT 0,
           run_after BIGINT NOT NULL,
           lease_token TEXT,
           lease_until BIGINT,
           last_error TEXT,
           created_at BIGINT NOT NULL,
           updated_at BIGINT NOT NULL)`,
        `CREATE INDEX scan_jobs_ready ON scan_jobs (state, run_after)`,
        `CREATE TABLE scan_images (
           repository TEXT NOT NULL,
           digest TEXT NOT NULL,
           media_type TEXT NOT NULL,
           pushed_at BIGINT NOT NULL,
           referrers TEXT,
           PRIMARY KEY (repository, digest))`,
        `CREATE INDEX scan_images_digest ON scan_images (digest)`,
        `CREATE TABLE scan_results (
           digest TEXT PRIMARY KEY,
           status TEXT NOT NULL,
           reason TEXT,
           queued_at BIGINT NOT NULL,
           started_at BIGINT,
           completed_at BIGINT,
           scanner_version TEXT,
           revision BIGINT NOT NULL DEFAULT 0,
           os TEXT,
           inventory TEXT,
           match_input TEXT,
           secrets TEXT,
           config_findings TEXT,
           findings TEXT,
           fingerprint TEXT,
           summary TEXT,
           critical INTEGER NOT NULL DEFAULT 0,
           high INTEGER NOT NULL DEFAULT 0,
           fixable INTEGER NOT NULL DEFAULT 0,
           db_hash TEXT,
           db_updated_at BIGINT,
           evaluated_at BIGINT)`,
        `CREATE INDEX scan_results_status ON scan_results (status, digest)`,
        `CREATE TABLE scan_exemptions (
           id TEXT PRIMARY KEY,
           vulnerability TEXT NOT NULL,
           scope TEXT NOT NULL,
           project TEXT NOT NULL,
           repository TEXT,
           digest TEXT,
           package TEXT,
           owner TEXT NOT NULL,
           reason TEXT NOT NULL,
           ticket TEXT,
           expires_at BIGINT NOT NULL,
           created_at BIGINT NOT NULL,
           created_by TEXT,
           revoked_at BIGINT,
           revoked_by TEXT,
           warned_at BIGINT)`,
        `CREATE INDEX scan_exemptions_project ON scan_exemptions (project, vulnerability)`,
      ],
    },
    {
      version: 2,
      description: 'findings as references to shared finding templates',
      statements: [
        `CREATE TABLE scan_finding_templates (key TEXT PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)`,
        `ALTER TABLE scan_results ADD COLUMN finding_refs TEXT`,
      ],
    },
    {
      version: 3,
      description: 'OpenVEX documents (uploaded, or attached to an image as a referrer)',
      statements: [
        `CREATE TABLE scan_vex (
           id TEXT PRIMARY KEY,
           project TEXT NOT NULL,
           repository TEXT,
           subject TEXT,
           source TEXT NOT NULL,
           document TEXT NOT NULL,
           created_at BIGINT NOT NULL,
           created_by TEXT)`,
        `CREATE INDEX scan_vex_project ON scan_vex (project, subject)`,
      ],
    },
    {
      version: 4,
      description: 'SBOMs attached by image builders (compared with the inventory, matched too)',
      statements: [
        `CREATE TABLE scan_builder_sboms (
           id TEXT NOT NULL,
           repository TEXT NOT NULL,
           subject TEXT NOT NULL,
           format TEXT NOT NULL,
           tool TEXT,
           packages TEXT NOT NULL,
           created_at BIGINT NOT NULL,
           PRIMARY KEY (id, repository))`,
        `CREATE INDEX scan_builder_sboms_subject ON scan_builder_sboms (subject)`,
      ],
    },
  ];
}

export type ScanStatus = 'queued' | 'running' | 'complete' | 'failed';

/** What re-evaluation needs of a package, positionally: kind, name, version, source name, source version, epoch, layer index. */
export type MatchTuple = [string, string, string, string | null, string | null, number | null, number | null];

/** The compact, layer-free form of an inventory that re-evaluation reads. */
export interface MatchInput {
  os?: OperatingSystem;
  /** [digest, diffId] per layer, in manifest order. */
  layers: [string, string][];
  packages: MatchTuple[];
}

export interface SeverityCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  none: number;
  unknown: number;
}

export interface FindingSummary {
  total: number;
  bySeverity: SeverityCounts;
  fixable: number;
  fixableBySeverity: SeverityCounts;
  malicious: number;
}

/** Everything a completed scan stores. */
export interface ScanRecord {
  scannerVersion: string;
  os: OperatingSystem | undefined;
  /** The full inventory document (packages, layers, warnings); see service.ts for its shape. */
  inventory: unknown;
  matchInput: MatchInput;
  secrets: unknown[];
  configFindings: unknown[];
  evaluation: Evaluation;
}

export interface ScanResultRow {
  digest: string;
  status: ScanStatus;
  reason: string | undefined;
  queuedAt: number;
  startedAt: number | undefined;
  completedAt: number | undefined;
  scannerVersion: string | undefined;
  revision: number;
  os: OperatingSystem | undefined;
  inventory: unknown;
  secrets: unknown[];
  configFindings: unknown[];
  findings: VulnerabilityFinding[];
  summary: FindingSummary | undefined;
  dbHash: string | undefined;
  dbUpdatedAt: number | undefined;
  evaluatedAt: number | undefined;
}

export interface RematchRow {
  digest: string;
  revision: number;
  fingerprint: string | undefined;
  matchInput: MatchInput;
}

export interface ImageRow {
  repository: string;
  digest: string;
  mediaType: string;
  pushedAt: number;
  referrers: Record<string, string> | undefined;
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const str = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const json = <T>(v: unknown, fallback: T): T => (typeof v === 'string' && v.length > 0 ? (JSON.parse(v) as T) : fallback);

/** Scan results and images; jobs are in jobs.ts, exemptions in exemptions.ts (same driver). */
export class ScanStore {
  readonly db: SqlDriver;
  /** Template keys known to be stored (bounded; a miss only costs an INSERT ... DO NOTHING). */
  readonly #storedTemplates = new Set<string>();
  /** The matcher's shared template lists whose templates are all stored. */
  #storedGroups = new WeakSet<readonly FindingTemplate[]>();

  constructor(db: SqlDriver) {
    this.db = db;
  }

  migrate(now = Date.now()): Promise<void> {
    return applyMigrations(this.db, 'scanner_schema_migrations', scannerMigrations(), now);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // --- images

  /** Records that `digest` lives in `repository` (idempotent). */
  async recordImage(repository: string, digest: string, mediaType: string, now: number, db: SqlExecutor = this.db): Promise<void> {
    await db.run(
      `INSERT INTO scan_images (repository, digest, media_type, pushed_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (repository, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
      [repository, digest, mediaType, now],
    );
  }

  async image(repository: string, digest: string): Promise<ImageRow | undefined> {
    const rows = await this.db.all('SELECT * FROM scan_images WHERE repository = $1 AND digest = $2', [repository, digest]);
    return rows[0] ? imageRow(rows[0]) : undefined;
  }

  async repositoriesOf(digest: string, db: SqlExecutor = this.db): Promise<string[]> {
    return (await db.all<{ repository: string }>('SELECT repository FROM scan_images WHERE digest = $1 ORDER BY repository', [digest])).map((r) => r.repository);
  }

  /** {@link repositoriesOf} for many digests in one query per 500 (digests without a repository are absent). */
  async repositoriesOfMany(digests: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < digests.length; i += 500) {
      const chunk = digests.slice(i, i + 500);
      for (const r of await this.db.all<{ repository: string; digest: string }>(`SELECT digest, repository FROM scan_images WHERE digest IN (${placeholders(chunk.length)}) ORDER BY digest, repository`, chunk)) {
        const list = out.get(r.digest);
        if (list) list.push(r.repository);
        else out.set(r.digest, [r.repository]);
      }
    }
    return out;
  }

  async setReferrers(repository: string, digest: string, referrers: Record<string, string>, db: SqlExecutor = this.db): Promise<void> {
    await db.run('UPDATE scan_images SET referrers = $3 WHERE repository = $1 AND digest = $2', [repository, digest, JSON.stringify(referrers)]);
  }

  /**
   * Forgets `digest` in `repository` (its manifest was deleted), with its pending jobs there;
   * once no repository holds the digest, its result goes too. Returns whether the result was removed.
   */
  async forgetImage(repository: string, digest: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.run('DELETE FROM scan_images WHERE repository = $1 AND digest = $2', [repository, digest]);
      await tx.run(`DELETE FROM scan_jobs WHERE kind = 'scan' AND repository = $1 AND digest = $2 AND state <> 'running'`, [repository, digest]);
      const left = await tx.all('SELECT 1 FROM scan_images WHERE digest = $1 LIMIT 1', [digest]);
      if (left.length > 0) return false;
      return (await tx.run('DELETE FROM scan_results WHERE digest = $1', [digest])) > 0;
    });
  }

  // --- results

  /**
   * Marks a digest queued (creating its row); an existing result stays readable until replaced.
   * `onlyFailed`: an existing row is marked only when its scan failed (a pending or complete one stays).
   */
  async markQueued(digest: string, now: number, options: { onlyFailed?: boolean } = {}, db: SqlExecutor = this.db): Promise<void> {
    await db.run(
      `INSERT INTO scan_results (digest, status, queued_at) VALUES ($1, 'queued', $2)
       ON CONFLICT (digest) DO UPDATE SET status = 'queued', queued_at = excluded.queued_at, reason = NULL
       WHERE $3 = 0 OR scan_results.status = 'failed'`,
      [digest, now, options.onlyFailed ? 1 : 0],
    );
  }

  /**
   * Marks an existing result running unless it is complete with `scannerVersion` (and not
   * `force`d): true when marked (the image needs scanning), false when current or absent.
   */
  async startScan(digest: string, scannerVersion: string, force: boolean, now: number, db: SqlExecutor = this.db): Promise<boolean> {
    const rows = await db.all(
      `UPDATE scan_results SET status = 'running', started_at = $2, reason = NULL
       WHERE digest = $1 AND ($4 = 1 OR status <> 'complete' OR scanner_version IS NULL OR scanner_version <> $3) RETURNING digest`,
      [digest, now, scannerVersion, force ? 1 : 0],
    );
    return rows.length > 0;
  }

  /** Status and scanner version only. */
  async scanState(digest: string): Promise<{ status: ScanStatus; scannerVersion: string | undefined } | undefined> {
    const r = (await this.db.all('SELECT status, scanner_version FROM scan_results WHERE digest = $1', [digest]))[0];
    return r ? { status: String(r.status) as ScanStatus, scannerVersion: str(r.scanner_version) } : undefined;
  }

  async markRunning(digest: string, now: number): Promise<void> {
    await this.db.run(
      `INSERT INTO scan_results (digest, status, queued_at, started_at) VALUES ($1, 'running', $2, $2)
       ON CONFLICT (digest) DO UPDATE SET status = 'running', started_at = excluded.started_at, reason = NULL`,
      [digest, now],
    );
  }

  /** Records a failed scan with its reason; a previous inventory (if any) stays. */
  async markFailed(digest: string, reason: string, now: number, db: SqlExecutor = this.db): Promise<void> {
    await db.run(
      `INSERT INTO scan_results (digest, status, reason, queued_at, completed_at) VALUES ($1, 'failed', $2, $3, $3)
       ON CONFLICT (digest) DO UPDATE SET status = 'failed', reason = excluded.reason, completed_at = excluded.completed_at`,
      [digest, reason.slice(0, 2000), now],
    );
  }

  /** Stores a completed scan (a new revision of the digest's inventory). */
  async saveScan(digest: string, record: ScanRecord, now: number): Promise<void> {
    const saved = await this.db.transaction((tx) => this.saveScanIn(tx, digest, record, now));
    saved();
  }

  /** {@link saveScan} in a transaction of the caller's; call what it returns once that transaction committed. */
  async saveScanIn(tx: SqlExecutor, digest: string, record: ScanRecord, now: number): Promise<() => void> {
    const e = record.evaluation;
    const keys = await this.#storeTemplates(tx, [e], now);
    await tx.run(
        `INSERT INTO scan_results (digest, status, queued_at, started_at, completed_at, scanner_version, revision, os, inventory, match_input, secrets,
                                   config_findings, finding_refs, fingerprint, summary, critical, high, fixable, db_hash, db_updated_at, evaluated_at)
         VALUES ($1, 'complete', $2, $2, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $2)
         ON CONFLICT (digest) DO UPDATE SET status = 'complete', reason = NULL, completed_at = excluded.completed_at, scanner_version = excluded.scanner_version,
           revision = scan_results.revision + 1, os = excluded.os, inventory = excluded.inventory, match_input = excluded.match_input, secrets = excluded.secrets,
           config_findings = excluded.config_findings, findings = NULL, finding_refs = excluded.finding_refs, fingerprint = excluded.fingerprint, summary = excluded.summary,
           critical = excluded.critical, high = excluded.high, fixable = excluded.fixable, db_hash = excluded.db_hash, db_updated_at = excluded.db_updated_at,
           evaluated_at = excluded.evaluated_at`,
        [
          digest,
          now,
          record.scannerVersion,
          record.os ? JSON.stringify(record.os) : null,
          JSON.stringify(record.inventory),
          JSON.stringify(record.matchInput),
          JSON.stringify(record.secrets),
          JSON.stringify(record.configFindings),
          e.refs,
          e.fingerprint,
          JSON.stringify(e.summary),
          e.summary.bySeverity.critical,
          e.summary.bySeverity.high,
          e.summary.fixable,
          e.dbHash,
          e.dbUpdatedAt,
        ],
      );
    return () => this.#remember(keys);
  }

  /**
   * Replaces a complete result's inventory and findings (a builder SBOM came or went) without
   * touching its scan time or the rest of the scan; false when the result is not complete.
   */
  async replaceInventory(digest: string, inventory: unknown, matchInput: MatchInput, e: Evaluation, now: number): Promise<boolean> {
    let changed = false;
    const inserted = await this.db.transaction(async (tx) => {
      const keys = await this.#storeTemplates(tx, [e], now);
      changed =
        (await tx.run(
          `UPDATE scan_results SET revision = revision + 1, inventory = $2, match_input = $3, findings = NULL, finding_refs = $4, fingerprint = $5, summary = $6,
             critical = $7, high = $8, fixable = $9, db_hash = $10, db_updated_at = $11, evaluated_at = $12
           WHERE digest = $1 AND status = 'complete'`,
          [digest, JSON.stringify(inventory), JSON.stringify(matchInput), e.refs, e.fingerprint, JSON.stringify(e.summary), e.summary.bySeverity.critical, e.summary.bySeverity.high, e.summary.fixable, e.dbHash, e.dbUpdatedAt, now],
        )) > 0;
      return keys;
    });
    this.#remember(inserted);
    return changed;
  }

  /** Inserts the templates of `evaluations` not known to be stored; returns what to remember once committed. */
  async #storeTemplates(tx: SqlExecutor, evaluations: Evaluation[], now: number): Promise<Stored> {
    const missing = new Map<string, FindingTemplate>();
    const groups: Array<readonly FindingTemplate[]> = [];
    for (const e of evaluations) {
      for (const g of e.groups) {
        if (this.#storedGroups.has(g.findings)) continue;
        groups.push(g.findings);
        for (const t of g.findings) {
          const key = templateKey(t);
          if (!this.#storedTemplates.has(key)) missing.set(key, t);
        }
      }
    }
    const entries = [...missing];
    for (let i = 0; i < entries.length; i += 200) {
      const chunk = entries.slice(i, i + 200);
      const values = chunk.map((_, j) => `($${j * 3 + 1}, $${j * 3 + 2}, $${j * 3 + 3})`).join(', ');
      await tx.run(`INSERT INTO scan_finding_templates (key, body, created_at) VALUES ${values} ON CONFLICT (key) DO NOTHING`, chunk.flatMap(([key, t]) => [key, JSON.stringify(t), now]));
    }
    return { keys: [...missing.keys()], groups };
  }

  #remember(stored: Stored): void {
    if (this.#storedTemplates.size + stored.keys.length > 1_000_000) {
      this.#storedTemplates.clear();
      this.#storedGroups = new WeakSet();
    }
    for (const k of stored.keys) this.#storedTemplates.add(k);
    for (const g of stored.groups) this.#storedGroups.add(g);
  }

  /** Finding templates by key. */
  async templates(keys: Iterable<string>): Promise<Map<string, FindingTemplate>> {
    const list = [...new Set(keys)];
    const out = new Map<string, FindingTemplate>();
    for (let i = 0; i < list.length; i += 500) {
      const chunk = list.slice(i, i + 500);
      for (const r of await this.db.all(`SELECT key, body FROM scan_finding_templates WHERE key IN (${placeholders(chunk.length)})`, chunk)) {
        out.set(String(r.key), JSON.parse(String(r.body)) as FindingTemplate);
      }
    }
    return out;
  }

  async result(digest: string): Promise<ScanResultRow | undefined> {
    const rows = await this.db.all('SELECT * FROM scan_results WHERE digest = $1', [digest]);
    const r = rows[0];
    if (!r) return undefined;
    const inventory = json<{ packages?: FindingPackage[] } | undefined>(r.inventory, undefined);
    let findings = json<VulnerabilityFinding[]>(r.findings, []);
    if (typeof r.finding_refs === 'string') {
      const refs = parseRefs(r.finding_refs);
      findings = materializeFindings(refs, await this.templates(refs.map(([, key]) => key)), inventory?.packages ?? []);
    }
    return {
      digest: String(r.digest),
      status: String(r.status) as ScanStatus,
      reason: str(r.reason),
      queuedAt: Number(r.queued_at),
      startedAt: num(r.started_at),
      completedAt: num(r.completed_at),
      scannerVersion: str(r.scanner_version),
      revision: Number(r.revision),
      os: json<OperatingSystem | undefined>(r.os, undefined),
      inventory,
      secrets: json<unknown[]>(r.secrets, []),
      configFindings: json<unknown[]>(r.config_findings, []),
      findings,
      summary: json<FindingSummary | undefined>(r.summary, undefined),
      dbHash: str(r.db_hash),
      dbUpdatedAt: num(r.db_updated_at),
      evaluatedAt: num(r.evaluated_at),
    };
  }

  /** What changes whenever the stored result does (status, revision, evaluation): for caches. */
  async stamp(digest: string): Promise<string | undefined> {
    const r = (await this.db.all('SELECT status, revision, evaluated_at, completed_at, reason FROM scan_results WHERE digest = $1', [digest]))[0];
    return r ? `${String(r.status)}|${Number(r.revision)}|${String(r.evaluated_at)}|${String(r.completed_at)}|${String(r.reason)}` : undefined;
  }

  /** Status only (cheap: no documents). */
  async status(digest: string): Promise<{ status: ScanStatus; reason: string | undefined; completedAt: number | undefined } | undefined> {
    const r = (await this.db.all('SELECT status, reason, completed_at FROM scan_results WHERE digest = $1', [digest]))[0];
    return r ? { status: String(r.status) as ScanStatus, reason: str(r.reason), completedAt: num(r.completed_at) } : undefined;
  }

  /**
   * One page (by digest) of stored inventories not yet evaluated against database `dbHash`.
   * Only the compact match input is read.
   */
  async rematchPage(after: string, limit: number, dbHash: string): Promise<RematchRow[]> {
    const rows = await this.db.all(
      `SELECT digest, revision, fingerprint, match_input FROM scan_results
       WHERE digest > $1 AND match_input IS NOT NULL AND (db_hash IS NULL OR db_hash <> $2)
       ORDER BY digest LIMIT $3`,
      [after, dbHash, limit],
    );
    return rows.map((r) => ({ digest: String(r.digest), revision: Number(r.revision), fingerprint: str(r.fingerprint), matchInput: JSON.parse(String(r.match_input)) as MatchInput }));
  }

  /** The stored finding references of some digests, encoded (evaluation.ts), to tell what changed. */
  async refsOf(digests: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (digests.length === 0) return out;
    const rows = await this.db.all(`SELECT digest, finding_refs FROM scan_results WHERE digest IN (${placeholders(digests.length)})`, digests);
    for (const r of rows) out.set(String(r.digest), typeof r.finding_refs === 'string' ? r.finding_refs : '');
    return out;
  }

  /**
   * Writes the outcome of re-evaluating one page in one transaction: new findings for `changed`
   * (only where the inventory is still the revision that was evaluated), and the database used for
   * `unchanged`. Returns the digests whose findings were written.
   */
  async applyEvaluations(changed: Array<{ digest: string; revision: number; evaluation: Evaluation }>, unchanged: string[], db: { hash: string; updatedAt: number }, now: number): Promise<Set<string>> {
    const { written, keys } = await this.db.transaction(async (tx) => {
      const keys = await this.#storeTemplates(tx, changed.map((c) => c.evaluation), now);
      const written = new Set<string>();
      for (const c of changed) {
        const e = c.evaluation;
        const n = await tx.run(
          `UPDATE scan_results SET findings = NULL, finding_refs = $3, fingerprint = $4, summary = $5, critical = $6, high = $7, fixable = $8, db_hash = $9, db_updated_at = $10, evaluated_at = $11
           WHERE digest = $1 AND revision = $2`,
          [c.digest, c.revision, e.refs, e.fingerprint, JSON.stringify(e.summary), e.summary.bySeverity.critical, e.summary.bySeverity.high, e.summary.fixable, e.dbHash, e.dbUpdatedAt, now],
        );
        if (n > 0) written.add(c.digest);
      }
      await markEvaluated(tx, unchanged, db, now);
      return { written, keys };
    });
    this.#remember(keys);
    return written;
  }

  /** Digests with a result of an older scanner version (for re-scans when the scanner improves). */
  async outdated(scannerVersion: string, after: string, limit: number): Promise<string[]> {
    const rows = await this.db.all(
      `SELECT digest FROM scan_results WHERE digest > $1 AND status IN ('complete', 'failed') AND (scanner_version IS NULL OR scanner_version <> $2) ORDER BY digest LIMIT $3`,
      [after, scannerVersion, limit],
    );
    return rows.map((r) => String(r.digest));
  }

  /** True when some stored inventory was evaluated against another database than `dbHash`. */
  async needsRematch(dbHash: string): Promise<boolean> {
    return (await this.db.all('SELECT 1 FROM scan_results WHERE match_input IS NOT NULL AND (db_hash IS NULL OR db_hash <> $1) LIMIT 1', [dbHash])).length > 0;
  }

  /** Counts by status (for status pages and tests). */
  async counts(): Promise<Record<ScanStatus, number>> {
    const out: Record<ScanStatus, number> = { queued: 0, running: 0, complete: 0, failed: 0 };
    for (const r of await this.db.all('SELECT status, COUNT(*) AS n FROM scan_results GROUP BY status')) out[String(r.status) as ScanStatus] = Number(r.n);
    return out;
  }
}

async function markEvaluated(tx: SqlExecutor, digests: string[], db: { hash: string; updatedAt: number }, now: number): Promise<void> {
  for (let i = 0; i < digests.length; i += 500) {
    const chunk = digests.slice(i, i + 500);
    await tx.run(`UPDATE scan_results SET db_hash = $1, db_updated_at = $2, evaluated_at = $3 WHERE digest IN (${placeholders(chunk.length, 4)})`, [db.hash, db.updatedAt, now, ...chunk]);
  }
}

interface Stored {
  keys: string[];
  groups: Array<readonly FindingTemplate[]>;
}

function placeholders(n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');
}

function imageRow(r: Row): ImageRow {
  return {
    repository: String(r.repository),
    digest: String(r.digest),
    mediaType: String(r.media_type),
    pushedAt: Number(r.pushed_at),
    referrers: json<Record<string, string> | undefined>(r.referrers, undefined),
  };
}
