/**
 * What the signature module keeps: each project's trust policy (versioned: every change bumps the
 * version, which is part of the policy hash, so cached verdicts are recomputed), the last verdict
 * per repository and digest, and which indexes list which manifests (a platform manifest pulled by
 * digest is covered by a verified index that lists it).
 *
 * Two implementations pass the same contract (`store.contract.ts`): SQL (the metadata database,
 * migration 3 of `storage/sql/migrations.ts`, SQLite and PostgreSQL) and memory (tests, and
 * registries built with injected stores).
 */
import type { SqlDriver } from '../storage/sql/driver.ts';
import type { TrustPolicy } from './policy.ts';

/** A trust policy as stored: everything but `version`, which the store assigns. */
export type TrustPolicyDocument = Omit<TrustPolicy, 'version'>;

export interface TrustPolicyRecord {
  project: string;
  /** 1 for the first policy of a project, +1 on every change (deletions included, never reused). */
  version: number;
  policy: TrustPolicyDocument;
  /** Pulls of unverified images are denied (Harbor's "content trust"). */
  requireSignatureToPull: boolean;
  updatedAt: Date;
  updatedBy: string | undefined;
}

export interface TrustPolicyWrite {
  policy: TrustPolicyDocument;
  requireSignatureToPull: boolean;
  updatedBy: string | undefined;
}

export interface StoredVerdict {
  repository: string;
  digest: string;
  policyHash: string;
  policyVersion: number;
  verdict: string;
  /** The full verification result (JSON). */
  result: string;
  verifiedAt: Date;
}

/** `expectedVersion` did not match: someone else changed the policy meanwhile. */
export class PolicyVersionConflict extends Error {
  override name = 'PolicyVersionConflict';
  readonly current: number | undefined;
  constructor(current: number | undefined) {
    super(`the trust policy is at version ${current ?? 'none'}`);
    this.current = current;
  }
}

export interface SignatureStore {
  getPolicy(project: string): Promise<TrustPolicyRecord | undefined>;
  /**
   * Writes the next version of a project's policy. With `expectedVersion` (0: no policy yet), the
   * write happens only if the current version is that one (else {@link PolicyVersionConflict}).
   */
  putPolicy(project: string, write: TrustPolicyWrite, expectedVersion?: number): Promise<TrustPolicyRecord>;
  /** Removes the policy (the version counter stays). Returns the new version, or undefined when there was none. */
  deletePolicy(project: string, updatedBy: string | undefined, expectedVersion?: number): Promise<number | undefined>;

  getVerdict(repository: string, digest: string): Promise<StoredVerdict | undefined>;
  putVerdict(verdict: StoredVerdict): Promise<void>;
  /** Forgets verdicts of a repository (all of them, or of one digest). */
  deleteVerdicts(repository: string, digest?: string): Promise<void>;

  /** Records that index `parent` lists `children` (idempotent). */
  addIndexChildren(repository: string, parent: string, children: string[]): Promise<void>;
  /** Indexes of `repository` known to list `child`. */
  parentsOf(repository: string, child: string): Promise<string[]>;
  /** Forgets an index's children (the index was deleted). */
  deleteIndex(repository: string, parent: string): Promise<void>;
}

export class SqlSignatureStore implements SignatureStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  /** The tables come with the metadata store's migrations (`SqlMetadataStore.migrate`). */
  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  async getPolicy(project: string): Promise<TrustPolicyRecord | undefined> {
    const rows = await this.#db.all('SELECT project, version, policy, require_signature_to_pull, updated_at, updated_by FROM trust_policies WHERE project = $1', [project]);
    const row = rows[0];
    if (!row || row['policy'] === null || row['policy'] === undefined) return undefined;
    return {
      project: String(row['project']),
      version: Number(row['version']),
      policy: JSON.parse(String(row['policy'])) as TrustPolicyDocument,
      requireSignatureToPull: Number(row['require_signature_to_pull']) === 1,
      updatedAt: new Date(Number(row['updated_at'])),
      updatedBy: row['updated_by'] === null ? undefined : (row['updated_by'] as string | undefined),
    };
  }

  async putPolicy(project: string, write: TrustPolicyWrite, expectedVersion?: number): Promise<TrustPolicyRecord> {
    const now = this.#now();
    const version = await this.#db.transaction(async (tx) => {
      const rows = await tx.all('SELECT version, policy FROM trust_policies WHERE project = $1', [project]);
      const row = rows[0];
      const stored = row ? Number(row['version']) : 0;
      const live = row && row['policy'] !== null ? stored : 0;
      if (expectedVersion !== undefined && expectedVersion !== live) throw new PolicyVersionConflict(live || undefined);
      const next = stored + 1;
      const args = [project, next, JSON.stringify(write.policy), write.requireSignatureToPull ? 1 : 0, now, write.updatedBy ?? null];
      if (!row) {
        await tx.run('INSERT INTO trust_policies (project, version, policy, require_signature_to_pull, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6)', args);
      } else {
        // conditional on the version read, so two concurrent writers cannot both win
        const changed = await tx.run(
          'UPDATE trust_policies SET version = $2, policy = $3, require_signature_to_pull = $4, updated_at = $5, updated_by = $6 WHERE project = $1 AND version = $7',
          [...args, stored],
        );
        if (changed !== 1) throw new PolicyVersionConflict(undefined);
      }
      return next;
    });
    return { project, version, policy: write.policy, requireSignatureToPull: write.requireSignatureToPull, updatedAt: new Date(now), updatedBy: write.updatedBy };
  }

  async deletePolicy(project: string, updatedBy: string | undefined, expectedVersion?: number): Promise<number | undefined> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.all('SELECT version, policy FROM trust_policies WHERE project = $1', [project]);
      const row = rows[0];
      if (!row || row['policy'] === null) return undefined;
      const stored = Number(row['version']);
      if (expectedVersion !== undefined && expectedVersion !== stored) throw new PolicyVersionConflict(stored);
      const changed = await tx.run('UPDATE trust_policies SET version = $2, policy = NULL, require_signature_to_pull = 0, updated_at = $3, updated_by = $4 WHERE project = $1 AND version = $5', [
        project,
        stored + 1,
        this.#now(),
        updatedBy ?? null,
        stored,
      ]);
      if (changed !== 1) throw new PolicyVersionConflict(undefined);
      return stored + 1;
    });
  }

  async getVerdict(repository: string, digest: string): Promise<StoredVerdict | undefined> {
    const rows = await this.#db.all('SELECT policy_hash, policy_version, verdict, result, verified_at FROM signature_verdicts WHERE repository = $1 AND digest = $2', [repository, digest]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      repository,
      digest,
      policyHash: String(row['policy_hash']),
      policyVersion: Number(row['policy_version']),
      verdict: String(row['verdict']),
      result: String(row['result']),
      verifiedAt: new Date(Number(row['verified_at'])),
    };
  }

  async putVerdict(v: StoredVerdict): Promise<void> {
    await this.#db.run(
      `INSERT INTO signature_verdicts (repository, digest, policy_hash, policy_version, verdict, result, verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (repository, digest) DO UPDATE SET policy_hash = excluded.policy_hash, policy_version = excluded.policy_version, verdict = excluded.verdict, result = excluded.result, verified_at = excluded.verified_at`,
      [v.repository, v.digest, v.policyHash, v.policyVersion, v.verdict, v.result, v.verifiedAt.getTime()],
    );
  }

  async deleteVerdicts(repository: string, digest?: string): Promise<void> {
    if (digest === undefined) await this.#db.run('DELETE FROM signature_verdicts WHERE repository = $1', [repository]);
    else await this.#db.run('DELETE FROM signature_verdicts WHERE repository = $1 AND digest = $2', [repository, digest]);
  }

  async addIndexChildren(repository: string, parent: string, children: string[]): Promise<void> {
    if (children.length === 0) return;
    await this.#db.transaction(async (tx) => {
      for (const child of new Set(children)) {
        await tx.run('INSERT INTO signature_index_children (repository, child, parent) VALUES ($1, $2, $3) ON CONFLICT (repository, child, parent) DO NOTHING', [repository, child, parent]);
      }
    });
  }

  async parentsOf(repository: string, child: string): Promise<string[]> {
    const rows = await this.#db.all('SELECT parent FROM signature_index_children WHERE repository = $1 AND child = $2 ORDER BY parent', [repository, child]);
    return rows.map((r) => String(r['parent']));
  }

  async deleteIndex(repository: string, parent: string): Promise<void> {
    await this.#db.run('DELETE FROM signature_index_children WHERE repository = $1 AND parent = $2', [repository, parent]);
  }
}

/** The same contract in memory (one process). */
export class MemorySignatureStore implements SignatureStore {
  readonly #policies = new Map<string, { version: number; record: TrustPolicyRecord | undefined }>();
  readonly #verdicts = new Map<string, StoredVerdict>();
  readonly #children = new Map<string, Set<string>>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async getPolicy(project: string): Promise<TrustPolicyRecord | undefined> {
    const r = this.#policies.get(project)?.record;
    return r && structuredClone(r);
  }

  async putPolicy(project: string, write: TrustPolicyWrite, expectedVersion?: number): Promise<TrustPolicyRecord> {
    const current = this.#policies.get(project);
    const live = current?.record ? current.version : 0;
    if (expectedVersion !== undefined && expectedVersion !== live) throw new PolicyVersionConflict(live || undefined);
    const version = (current?.version ?? 0) + 1;
    const record: TrustPolicyRecord = { project, version, policy: structuredClone(write.policy), requireSignatureToPull: write.requireSignatureToPull, updatedAt: new Date(this.#now()), updatedBy: write.updatedBy };
    this.#policies.set(project, { version, record });
    return structuredClone(record);
  }

  async deletePolicy(project: string, _updatedBy: string | undefined, expectedVersion?: number): Promise<number | undefined> {
    const current = this.#policies.get(project);
    if (!current?.record) return undefined;
    if (expectedVersion !== undefined && expectedVersion !== current.version) throw new PolicyVersionConflict(current.version);
    this.#policies.set(project, { version: current.version + 1, record: undefined });
    return current.version + 1;
  }

  async getVerdict(repository: string, digest: string): Promise<StoredVerdict | undefined> {
    const v = this.#verdicts.get(`${repository}@${digest}`);
    return v && { ...v };
  }

  async putVerdict(v: StoredVerdict): Promise<void> {
    this.#verdicts.set(`${v.repository}@${v.digest}`, { ...v });
  }

  async deleteVerdicts(repository: string, digest?: string): Promise<void> {
    if (digest !== undefined) this.#verdicts.delete(`${repository}@${digest}`);
    else for (const k of [...this.#verdicts.keys()]) if (k.startsWith(`${repository}@`)) this.#verdicts.delete(k);
  }

  async addIndexChildren(repository: string, parent: string, children: string[]): Promise<void> {
    for (const child of children) {
      const key = `${repository}@${child}`;
      let set = this.#children.get(key);
      if (!set) this.#children.set(key, (set = new Set()));
      set.add(parent);
    }
  }

  async parentsOf(repository: string, child: string): Promise<string[]> {
    return [...(this.#children.get(`${repository}@${child}`) ?? [])].sort();
  }

  async deleteIndex(repository: string, parent: string): Promise<void> {
    for (const [k, set] of this.#children) if (k.startsWith(`${repository}@`)) set.delete(parent);
  }
}
