/**
 * The traceability index, in the metadata database (migration 8 of `storage/sql/migrations.ts`,
 * SQLite and PostgreSQL). Everything here is derived from what the registry already holds (pushed
 * manifests and configurations, verified attestations, scan results) and written when it arrives,
 * so that queries are index lookups, never walks:
 *
 * - `trace_images`: traced images per repository with the ChainID of their whole layer stack;
 *   `trace_chains`: the ChainIDs of every strict prefix of that stack;
 * - `trace_sources`: build-source facts (`how`: annotation, label, index, provenance; `verified`);
 * - `trace_bases`: base-image relations (`how`: annotation, or layers when one image's layers are a
 *   strict prefix of another's), both ends named by repository and digest;
 * - `trace_children`: which index lists which manifest;
 * - `trace_signatures`: the last verification verdict per image;
 * - `trace_findings`: one row per vulnerability id (and alias) and package per digest.
 */
import type { SqlDriver, SqlExecutor } from '../storage/sql/driver.ts';
import type { SourceFact } from './facts.ts';

export interface TracedImage {
  repository: string;
  digest: string;
  mediaType: string;
  configDigest: string | undefined;
  layers: number;
  /** ChainID of all layers (undefined without layers). */
  topChain: string | undefined;
  created: string | undefined;
  pushedAt: number;
}

export interface StoredSource extends SourceFact {
  repository: string;
  digest: string;
  recordedAt: number;
}

export interface BaseRelation {
  repository: string;
  digest: string;
  how: 'annotation' | 'layers';
  baseDigest: string;
  /** Empty when the base is only named by an annotation and not stored here. */
  baseRepository: string;
  baseName: string | undefined;
  /** How many layers of the image the base accounts for (layers relation). */
  baseLayers: number | undefined;
}

export interface StoredVerdict {
  repository: string;
  digest: string;
  verdict: string;
  signers: string[];
  attestations: string[];
  policyVersion: number;
  verifiedAt: number;
}

export interface FindingRow {
  digest: string;
  /** Upper case: the OSV id, an alias or a CVE. */
  vulnerability: string;
  package: string;
  installedVersion: string;
  severity: string;
  fixAvailable: boolean;
  /** The id the scanner reported the finding under. */
  findingId: string;
}

export interface ImageWrite {
  image: TracedImage;
  /** ChainIDs of the strict prefixes of the layer stack (depth 1 .. n-1). */
  prefixChains: string[];
  /** Replaces the image's annotation and label facts. */
  sources: SourceFact[];
  /** Base named by the image's annotations. */
  annotatedBase: { digest: string | undefined; name: string | undefined } | undefined;
  /** Manifests an index lists. */
  children: string[];
}

const CHUNK = 400;
const str = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

function placeholders(n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');
}

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

function imageOf(r: Record<string, unknown>): TracedImage {
  return {
    repository: String(r['repository']),
    digest: String(r['digest']),
    mediaType: String(r['media_type']),
    configDigest: str(r['config_digest']),
    layers: Number(r['layers']),
    topChain: str(r['top_chain']),
    created: str(r['created']),
    pushedAt: Number(r['pushed_at']),
  };
}

function sourceOf(r: Record<string, unknown>): StoredSource {
  return {
    repository: String(r['repository']),
    digest: String(r['digest']),
    how: String(r['how']) as SourceFact['how'],
    ref: String(r['ref']),
    sourceRepository: str(r['source_repo']),
    sourceUri: str(r['source_uri']),
    commit: str(r['commit_id']),
    builder: str(r['builder']),
    buildType: str(r['build_type']),
    created: str(r['created']),
    verified: Number(r['verified']) === 1,
    recordedAt: Number(r['recorded_at']),
  };
}

function baseOf(r: Record<string, unknown>): BaseRelation {
  return {
    repository: String(r['repository']),
    digest: String(r['digest']),
    how: String(r['how']) as BaseRelation['how'],
    baseDigest: String(r['base_digest']),
    baseRepository: String(r['base_repository']),
    baseName: str(r['base_name']),
    baseLayers: num(r['base_layers']),
  };
}

function findingOf(r: Record<string, unknown>): FindingRow {
  return {
    digest: String(r['digest']),
    vulnerability: String(r['vulnerability']),
    package: String(r['package']),
    installedVersion: String(r['installed_version']),
    severity: String(r['severity']),
    fixAvailable: Number(r['fix_available']) === 1,
    findingId: String(r['finding_id']),
  };
}

const SOURCE_COLUMNS = 'repository, digest, how, ref, source_repo, source_uri, commit_id, builder, build_type, created, verified, recorded_at';

async function insertSources(tx: SqlExecutor, repository: string, digest: string, sources: SourceFact[], now: number): Promise<void> {
  for (const s of sources) {
    await tx.run(
      `INSERT INTO trace_sources (${SOURCE_COLUMNS}) VALUES (${placeholders(12)})
       ON CONFLICT (repository, digest, how, ref) DO UPDATE SET source_repo = excluded.source_repo, source_uri = excluded.source_uri, commit_id = excluded.commit_id,
         builder = excluded.builder, build_type = excluded.build_type, created = excluded.created, verified = excluded.verified, recorded_at = excluded.recorded_at`,
      [repository, digest, s.how, s.ref, s.sourceRepository ?? null, s.sourceUri ?? null, s.commit ?? null, s.builder ?? null, s.buildType ?? null, s.created ?? null, s.verified ? 1 : 0, now],
    );
  }
}

export class TraceStore {
  readonly #db: SqlDriver;

  /** The tables come with the metadata store's migrations (`SqlMetadataStore.migrate`). */
  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  // --- writes -------------------------------------------------------------------------------------

  /**
   * Records a pushed image (or index) in one transaction: the image, its layer prefixes, its
   * annotation and label facts, the base its annotations name, the base relations its layers give
   * (to stored images below it and from stored images above it), and an index's children. An
   * index's source annotations also become `index` facts of the children it lists.
   */
  async recordImage(w: ImageWrite, now: number): Promise<void> {
    const { image } = w;
    await this.#db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO trace_images (repository, digest, media_type, config_digest, layers, top_chain, created, pushed_at) VALUES (${placeholders(8)})
         ON CONFLICT (repository, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
        [image.repository, image.digest, image.mediaType, image.configDigest ?? null, image.layers, image.topChain ?? null, image.created ?? null, image.pushedAt],
      );
      await tx.run(`DELETE FROM trace_sources WHERE repository = $1 AND digest = $2 AND how IN ('annotation', 'label')`, [image.repository, image.digest]);
      await insertSources(tx, image.repository, image.digest, w.sources, now);
      for (let i = 0; i < w.prefixChains.length; i++) {
        await tx.run('INSERT INTO trace_chains (chain, repository, digest, depth) VALUES ($1, $2, $3, $4) ON CONFLICT (chain, repository, digest) DO NOTHING', [w.prefixChains[i], image.repository, image.digest, i + 1]);
      }
      if (w.annotatedBase) {
        const b = w.annotatedBase;
        await tx.run(
          `INSERT INTO trace_bases (repository, digest, how, base_digest, base_repository, base_name, base_layers) VALUES ($1, $2, 'annotation', $3, '', $4, NULL)
           ON CONFLICT (repository, digest, how, base_digest, base_repository) DO UPDATE SET base_name = excluded.base_name`,
          [image.repository, image.digest, b.digest ?? '', b.name ?? null],
        );
      }
      // images below: their whole stack is a strict prefix of this one's
      for (const part of chunks(w.prefixChains)) {
        const below = await tx.all(`SELECT repository, digest, layers FROM trace_images WHERE top_chain IN (${placeholders(part.length)})`, part);
        for (const b of below) await this.#insertLayerBase(tx, image.repository, image.digest, String(b['repository']), String(b['digest']), Number(b['layers']));
      }
      // images above, pushed before their base
      if (image.topChain) {
        const above = await tx.all('SELECT repository, digest FROM trace_chains WHERE chain = $1', [image.topChain]);
        for (const a of above) await this.#insertLayerBase(tx, String(a['repository']), String(a['digest']), image.repository, image.digest, image.layers);
      }
      for (const child of w.children) {
        await tx.run('INSERT INTO trace_children (repository, parent, child) VALUES ($1, $2, $3) ON CONFLICT (repository, parent, child) DO NOTHING', [image.repository, image.digest, child]);
      }
      const indexFacts = w.sources.filter((s) => s.how === 'annotation').map((s) => ({ ...s, how: 'index' as const, ref: image.digest }));
      if (w.children.length > 0 && indexFacts.length > 0) for (const child of w.children) await insertSources(tx, image.repository, child, indexFacts, now);
    });
  }

  async #insertLayerBase(tx: SqlExecutor, repository: string, digest: string, baseRepository: string, baseDigest: string, baseLayers: number): Promise<void> {
    await tx.run(
      `INSERT INTO trace_bases (repository, digest, how, base_digest, base_repository, base_name, base_layers) VALUES ($1, $2, 'layers', $3, $4, NULL, $5)
       ON CONFLICT (repository, digest, how, base_digest, base_repository) DO NOTHING`,
      [repository, digest, baseDigest, baseRepository, baseLayers],
    );
  }

  /** Replaces the verified provenance facts of an image (what the trust policy verified now). */
  async setProvenance(repository: string, digest: string, sources: SourceFact[], now: number): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.run(`DELETE FROM trace_sources WHERE repository = $1 AND digest = $2 AND how = 'provenance'`, [repository, digest]);
      await insertSources(tx, repository, digest, sources, now);
    });
  }

  async setVerdict(v: StoredVerdict): Promise<void> {
    await this.#db.run(
      `INSERT INTO trace_signatures (repository, digest, verdict, signers, attestations, policy_version, verified_at) VALUES (${placeholders(7)})
       ON CONFLICT (repository, digest) DO UPDATE SET verdict = excluded.verdict, signers = excluded.signers, attestations = excluded.attestations,
         policy_version = excluded.policy_version, verified_at = excluded.verified_at`,
      [v.repository, v.digest, v.verdict, JSON.stringify(v.signers), JSON.stringify(v.attestations), v.policyVersion, v.verifiedAt],
    );
  }

  /** Replaces the findings of a digest. */
  async setFindings(digest: string, rows: Omit<FindingRow, 'digest'>[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.run('DELETE FROM trace_findings WHERE digest = $1', [digest]);
      // several rows per statement: an image can have thousands of findings and aliases
      for (let i = 0; i < rows.length; i += 100) {
        const part = rows.slice(i, i + 100);
        await tx.run(
          `INSERT INTO trace_findings (digest, vulnerability, package, installed_version, severity, fix_available, finding_id) VALUES ${part.map((_, j) => `(${placeholders(7, j * 7 + 1)})`).join(', ')}
           ON CONFLICT (digest, vulnerability, package, installed_version) DO NOTHING`,
          part.flatMap((r) => [digest, r.vulnerability, r.package, r.installedVersion, r.severity, r.fixAvailable ? 1 : 0, r.findingId]),
        );
      }
    });
  }

  /** Forgets an image deleted from a repository (and its findings once no repository holds the digest). */
  async forget(repository: string, digest: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      for (const table of ['trace_images', 'trace_chains', 'trace_sources', 'trace_signatures']) {
        await tx.run(`DELETE FROM ${table} WHERE repository = $1 AND digest = $2`, [repository, digest]);
      }
      await tx.run('DELETE FROM trace_bases WHERE (repository = $1 AND digest = $2) OR (base_repository = $1 AND base_digest = $2)', [repository, digest]);
      await tx.run('DELETE FROM trace_children WHERE repository = $1 AND parent = $2', [repository, digest]);
      await tx.run(`DELETE FROM trace_sources WHERE repository = $1 AND how = 'index' AND ref = $2`, [repository, digest]);
      const left = await tx.all('SELECT 1 AS x FROM trace_images WHERE digest = $1 LIMIT 1', [digest]);
      if (left.length === 0) await tx.run('DELETE FROM trace_findings WHERE digest = $1', [digest]);
    });
  }

  // --- reads --------------------------------------------------------------------------------------

  async images(digest: string): Promise<TracedImage[]> {
    return (await this.#db.all('SELECT * FROM trace_images WHERE digest = $1 ORDER BY repository', [digest])).map(imageOf);
  }

  /** Traced images among `digests` (any repository). */
  async imagesOf(digests: string[]): Promise<TracedImage[]> {
    const out: TracedImage[] = [];
    for (const part of chunks([...new Set(digests)])) out.push(...(await this.#db.all(`SELECT * FROM trace_images WHERE digest IN (${placeholders(part.length)})`, part)).map(imageOf));
    return out;
  }

  async sources(digest: string): Promise<StoredSource[]> {
    return (await this.#db.all(`SELECT ${SOURCE_COLUMNS} FROM trace_sources WHERE digest = $1 ORDER BY repository, verified DESC, how, ref`, [digest])).map(sourceOf);
  }

  /**
   * Source facts naming a commit: the full id, or a prefix of at least 7 hex digits (as `git`
   * abbreviates them). `verifiedOnly` keeps verified provenance.
   */
  async sourcesByCommit(commit: string, options: { verifiedOnly?: boolean; limit: number }): Promise<StoredSource[]> {
    const c = commit.toLowerCase();
    const verified = options.verifiedOnly ? ' AND verified = 1' : '';
    // byte-order range on the indexed column ('~' sorts after every hex digit)
    const rows = await this.#db.all(
      `SELECT ${SOURCE_COLUMNS} FROM trace_sources WHERE commit_id >= $1 AND commit_id < $2${verified} ORDER BY commit_id, repository, digest LIMIT $3`,
      [c, `${c}~`, options.limit],
    );
    return rows.map(sourceOf);
  }

  async sourcesBySourceRepository(sourceRepository: string, options: { verifiedOnly?: boolean; limit: number }): Promise<StoredSource[]> {
    const verified = options.verifiedOnly ? ' AND verified = 1' : '';
    const rows = await this.#db.all(`SELECT ${SOURCE_COLUMNS} FROM trace_sources WHERE source_repo = $1${verified} ORDER BY repository, digest LIMIT $2`, [sourceRepository, options.limit]);
    return rows.map(sourceOf);
  }

  /** Base relations of `digest` (what it is built on). */
  async bases(digest: string): Promise<BaseRelation[]> {
    return (await this.#db.all('SELECT * FROM trace_bases WHERE digest = $1 ORDER BY base_layers DESC, repository, how', [digest])).map(baseOf);
  }

  /** Images built on `digest`. */
  async derived(digest: string, limit: number): Promise<BaseRelation[]> {
    return (await this.#db.all('SELECT * FROM trace_bases WHERE base_digest = $1 ORDER BY repository, digest LIMIT $2', [digest, limit])).map(baseOf);
  }

  async parents(digest: string): Promise<Array<{ repository: string; parent: string }>> {
    return (await this.#db.all('SELECT repository, parent FROM trace_children WHERE child = $1', [digest])).map((r) => ({ repository: String(r['repository']), parent: String(r['parent']) }));
  }

  /** Indexes (any repository) listing any of `digests`. */
  async parentsOf(digests: string[]): Promise<Array<{ repository: string; parent: string; child: string }>> {
    const out: Array<{ repository: string; parent: string; child: string }> = [];
    for (const part of chunks([...new Set(digests)])) {
      const rows = await this.#db.all(`SELECT repository, parent, child FROM trace_children WHERE child IN (${placeholders(part.length)})`, part);
      out.push(...rows.map((r) => ({ repository: String(r['repository']), parent: String(r['parent']), child: String(r['child']) })));
    }
    return out;
  }

  async children(repository: string, digest: string): Promise<string[]> {
    return (await this.#db.all('SELECT child FROM trace_children WHERE repository = $1 AND parent = $2 ORDER BY child', [repository, digest])).map((r) => String(r['child']));
  }

  async verdicts(digest: string): Promise<StoredVerdict[]> {
    const rows = await this.#db.all('SELECT * FROM trace_signatures WHERE digest = $1 ORDER BY repository', [digest]);
    return rows.map((r) => ({
      repository: String(r['repository']),
      digest: String(r['digest']),
      verdict: String(r['verdict']),
      signers: JSON.parse(String(r['signers'])) as string[],
      attestations: JSON.parse(String(r['attestations'])) as string[],
      policyVersion: Number(r['policy_version']),
      verifiedAt: Number(r['verified_at']),
    }));
  }

  async findings(digest: string): Promise<FindingRow[]> {
    return (await this.#db.all('SELECT * FROM trace_findings WHERE digest = $1 ORDER BY vulnerability, package', [digest])).map(findingOf);
  }

  /** Traced images (every repository) with a finding of `vulnerability`, with the findings: one indexed join. */
  async imagesWithVulnerability(vulnerability: string, limit: number): Promise<Array<{ repository: string; finding: FindingRow }>> {
    const rows = await this.#db.all(
      `SELECT i.repository AS repository, f.digest AS digest, f.vulnerability AS vulnerability, f.package AS package, f.installed_version AS installed_version,
              f.severity AS severity, f.fix_available AS fix_available, f.finding_id AS finding_id
       FROM trace_findings f JOIN trace_images i ON i.digest = f.digest
       WHERE f.vulnerability = $1 ORDER BY i.repository, f.digest LIMIT $2`,
      [vulnerability.toUpperCase(), limit],
    );
    return rows.map((r) => ({ repository: String(r['repository']), finding: findingOf(r) }));
  }

  /** Digests with a finding of `vulnerability` (any id or alias, case-insensitive). */
  async findingsByVulnerability(vulnerability: string, limit: number): Promise<FindingRow[]> {
    return (await this.#db.all('SELECT * FROM trace_findings WHERE vulnerability = $1 ORDER BY digest, package LIMIT $2', [vulnerability.toUpperCase(), limit])).map(findingOf);
  }
}
