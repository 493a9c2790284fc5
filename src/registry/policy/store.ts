/**
 * Stored policies (the API's), versioned per project: every write adds a version, a delete adds a
 * tombstone (so versions never repeat), and history is kept. Two implementations: SQL (the
 * metadata database, SQLite or PostgreSQL) and memory.
 */
import { createHash } from 'node:crypto';
import type { SqlDriver } from '../storage/sql/driver.ts';
import { parsePolicy } from './document.ts';
import { CompiledPolicy } from './evaluate.ts';
import type { PolicySource } from './enforcer.ts';
import { GLOBAL_PROJECT } from './source.ts';

export interface StoredPolicy {
  project: string;
  version: number;
  /** The YAML as written; undefined for a deletion. */
  document: string | undefined;
  hash: string | undefined;
  createdAt: Date;
  createdBy: string | undefined;
}

export interface PolicyStore {
  /** The newest version (a deletion has `document` undefined); undefined when never written. */
  latest(project: string): Promise<StoredPolicy | undefined>;
  history(project: string, limit: number): Promise<StoredPolicy[]>;
  /** Appends a version; `document` undefined deletes. Returns the new version number. */
  append(project: string, document: string | undefined, createdBy: string | undefined): Promise<number>;
}

export function policyHash(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

export class SqlPolicyStore implements PolicyStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;
  constructor(db: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  async latest(project: string): Promise<StoredPolicy | undefined> {
    return (await this.history(project, 1))[0];
  }

  async history(project: string, limit: number): Promise<StoredPolicy[]> {
    const rows = await this.#db.all('SELECT project, version, document, hash, created_at, created_by FROM policy_documents WHERE project = $1 ORDER BY version DESC LIMIT $2', [project, limit]);
    return rows.map((r) => ({
      project: String(r['project']),
      version: Number(r['version']),
      document: r['document'] === null || r['document'] === undefined ? undefined : String(r['document']),
      hash: r['hash'] === null || r['hash'] === undefined ? undefined : String(r['hash']),
      createdAt: new Date(Number(r['created_at'])),
      createdBy: r['created_by'] === null || r['created_by'] === undefined ? undefined : String(r['created_by']),
    }));
  }

  async append(project: string, document: string | undefined, createdBy: string | undefined): Promise<number> {
    // The primary key (project, version) makes a concurrent writer of the same version fail.
    return this.#db.transaction(async (tx) => {
      const rows = await tx.all('SELECT MAX(version) AS v FROM policy_documents WHERE project = $1', [project]);
      const next = Number(rows[0]?.['v'] ?? 0) + 1;
      await tx.run('INSERT INTO policy_documents (project, version, document, hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)', [
        project,
        next,
        document ?? null,
        document === undefined ? null : policyHash(document),
        this.#now(),
        createdBy ?? null,
      ]);
      return next;
    });
  }
}

export class MemoryPolicyStore implements PolicyStore {
  readonly #rows: StoredPolicy[] = [];
  async latest(project: string): Promise<StoredPolicy | undefined> {
    return (await this.history(project, 1))[0];
  }
  async history(project: string, limit: number): Promise<StoredPolicy[]> {
    return this.#rows.filter((r) => r.project === project).sort((a, b) => b.version - a.version).slice(0, limit);
  }
  async append(project: string, document: string | undefined, createdBy: string | undefined): Promise<number> {
    const version = ((await this.latest(project))?.version ?? 0) + 1;
    this.#rows.push({ project, version, document, hash: document === undefined ? undefined : policyHash(document), createdAt: new Date(), createdBy });
    return version;
  }
}

/**
 * Keeps each project's newest version in memory for `ttlSeconds`, so enforcement does not read
 * the database on every pull. A write through this store is seen at once in this process; another
 * replica's write within `ttlSeconds` (policy.cacheSeconds). 0 reads the store every time.
 */
export class CachedPolicyStore implements PolicyStore {
  readonly #store: PolicyStore;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #latest = new Map<string, { at: number; value: Promise<StoredPolicy | undefined> }>();
  constructor(store: PolicyStore, ttlSeconds: number, now: () => number = Date.now) {
    this.#store = store;
    this.#ttlMs = ttlSeconds * 1000;
    this.#now = now;
  }
  latest(project: string): Promise<StoredPolicy | undefined> {
    if (this.#ttlMs === 0) return this.#store.latest(project);
    const now = this.#now();
    const hit = this.#latest.get(project);
    if (hit && now - hit.at < this.#ttlMs) return hit.value;
    const value = this.#store.latest(project);
    // A failed read is not remembered: the next request asks the store again (and is denied meanwhile).
    value.catch(() => this.#latest.get(project)?.value === value && this.#latest.delete(project));
    if (this.#latest.size >= 10_000) this.#latest.clear();
    this.#latest.set(project, { at: now, value });
    return value;
  }
  history(project: string, limit: number): Promise<StoredPolicy[]> {
    return this.#store.history(project, limit);
  }
  async append(project: string, document: string | undefined, createdBy: string | undefined): Promise<number> {
    try {
      return await this.#store.append(project, document, createdBy);
    } finally {
      this.#latest.delete(project);
    }
  }
}

/**
 * Compiles a stored document as the policy of `project` at the stored version (the store is the
 * authority on both, whatever the document's metadata says).
 */
export function compileStored(stored: StoredPolicy & { document: string }): CompiledPolicy {
  const doc = parsePolicy(stored.document);
  return new CompiledPolicy({ ...doc, metadata: { ...doc.metadata, project: stored.project, version: stored.version } });
}

/** Stored policies as a source (project, else global), compiled once per version. */
export class StoredPolicySource implements PolicySource {
  readonly #store: PolicyStore;
  readonly #compiled = new Map<string, CompiledPolicy>();
  constructor(store: PolicyStore) {
    this.#store = store;
  }
  async policyFor(project: string): Promise<CompiledPolicy | undefined> {
    return (await this.#own(project)) ?? (project === GLOBAL_PROJECT ? undefined : this.#own(GLOBAL_PROJECT));
  }
  async #own(project: string): Promise<CompiledPolicy | undefined> {
    const latest = await this.#store.latest(project);
    if (!latest?.document) return undefined;
    const key = `${project}\n${latest.version}`;
    let compiled = this.#compiled.get(key);
    if (!compiled) {
      compiled = compileStored(latest as StoredPolicy & { document: string });
      if (this.#compiled.size > 10_000) this.#compiled.clear();
      this.#compiled.set(key, compiled);
    }
    return compiled;
  }
}
