/**
 * Deployment records and grace windows (metadata database, migration 5; SQLite or PostgreSQL).
 *
 * A deployment record says that a digest was admitted to run in a cluster/namespace as a
 * container of a workload, when first and when last. It is the basis of grace-aware enforcement
 * (a restart is a workload that already ran the digest) and of traceability.
 *
 * A grace window opens when an enforced rule with `graceDays` first fails for a digest that is
 * already deployed (a newly published finding, a revoked signature, a tightened policy); until it
 * closes, restarts of workloads admitted before it opened are allowed with a warning.
 */
import type { SqlDriver } from '../storage/sql/driver.ts';

export interface DeploymentKey {
  cluster: string;
  namespace: string;
  workloadKind: string;
  workloadName: string;
}

export interface DeploymentRecord extends DeploymentKey {
  container: string;
  digest: string;
  repository: string;
  /** The reference as written in the pod spec. */
  image: string;
  firstSeen: Date;
  lastSeen: Date;
}

export interface DeploymentQuery {
  digest?: string | undefined;
  /** Records of any of these digests (a vulnerability can touch thousands: read in batches). */
  digests?: string[] | undefined;
  repository?: string | undefined;
  namespace?: string | undefined;
  cluster?: string | undefined;
  /** Records of these projects only (the caller may read them); undefined: all. */
  projects?: string[] | undefined;
  limit: number;
}

export interface GraceWindow {
  digest: string;
  project: string;
  rule: string;
  openedAt: Date;
  reason: string;
}

export interface DeploymentStore {
  /** Inserts or refreshes (last seen) the records of one admission, in one transaction. */
  record(records: Array<Omit<DeploymentRecord, 'firstSeen' | 'lastSeen'>>, at: Date): Promise<void>;
  /** When each digest was first admitted for this workload (any container). */
  firstAdmitted(key: DeploymentKey, digests: string[]): Promise<Map<string, Date>>;
  /** True when the digest is deployed anywhere. */
  isDeployed(digest: string): Promise<boolean>;
  list(query: DeploymentQuery): Promise<DeploymentRecord[]>;
  /** Opens the window unless one is open already; returns the (existing or new) window. */
  openGrace(window: GraceWindow): Promise<{ window: GraceWindow; opened: boolean }>;
  grace(digest: string, project: string, rule: string): Promise<GraceWindow | undefined>;
  /** Forgets the window once the rule passes again, so a later failure opens a new one. */
  closeGrace(digest: string, project: string, rules: string[]): Promise<void>;
}

/** Digests per `digest IN (...)` query. */
const DIGEST_BATCH = 400;

/** The columns of `admission_deployments`, in the order `deploymentFromRow` reads. */
const DEPLOYMENT_COLUMNS = 'cluster, namespace, workload_kind, workload_name, container, digest, repository, image, first_seen, last_seen';

function deploymentFromRow(r: Record<string, unknown>): DeploymentRecord {
  return {
    cluster: String(r['cluster']),
    namespace: String(r['namespace']),
    workloadKind: String(r['workload_kind']),
    workloadName: String(r['workload_name']),
    container: String(r['container']),
    digest: String(r['digest']),
    repository: String(r['repository']),
    image: String(r['image']),
    firstSeen: new Date(Number(r['first_seen'])),
    lastSeen: new Date(Number(r['last_seen'])),
  };
}

export class SqlDeploymentStore implements DeploymentStore {
  readonly #db: SqlDriver;
  constructor(db: SqlDriver) {
    this.#db = db;
  }

  async record(records: Array<Omit<DeploymentRecord, 'firstSeen' | 'lastSeen'>>, at: Date): Promise<void> {
    if (records.length === 0) return;
    await this.#db.transaction(async (tx) => {
      for (const r of records) {
        await tx.run(
          `INSERT INTO admission_deployments (${DEPLOYMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
           ON CONFLICT (cluster, namespace, workload_kind, workload_name, container, digest)
           DO UPDATE SET last_seen = excluded.last_seen, image = excluded.image`,
          [r.cluster, r.namespace, r.workloadKind, r.workloadName, r.container, r.digest, r.repository, r.image, at.getTime()],
        );
      }
    });
  }

  async firstAdmitted(key: DeploymentKey, digests: string[]): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    if (digests.length === 0) return out;
    const rows = await this.#db.all(
      'SELECT digest, MIN(first_seen) AS first_seen FROM admission_deployments WHERE cluster = $1 AND namespace = $2 AND workload_kind = $3 AND workload_name = $4 GROUP BY digest',
      [key.cluster, key.namespace, key.workloadKind, key.workloadName],
    );
    const wanted = new Set(digests);
    for (const r of rows) if (wanted.has(String(r['digest']))) out.set(String(r['digest']), new Date(Number(r['first_seen'])));
    return out;
  }

  async isDeployed(digest: string): Promise<boolean> {
    return (await this.#db.all('SELECT 1 AS x FROM admission_deployments WHERE digest = $1 LIMIT 1', [digest])).length > 0;
  }

  async list(query: DeploymentQuery): Promise<DeploymentRecord[]> {
    if (!query.digests) return this.#list(query, undefined);
    // one indexed `digest IN (...)` query per batch, newest first within each, until the limit
    const unique = [...new Set(query.digests)];
    const out: DeploymentRecord[] = [];
    for (let i = 0; i < unique.length && out.length < query.limit; i += DIGEST_BATCH) {
      out.push(...(await this.#list({ ...query, limit: query.limit - out.length }, unique.slice(i, i + DIGEST_BATCH))));
    }
    return out;
  }

  async #list(query: DeploymentQuery, digests: string[] | undefined): Promise<DeploymentRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (query.digest) add('digest = ?', query.digest);
    if (digests) {
      params.push(...digests);
      where.push(`digest IN (${digests.map((_, j) => `$${params.length - digests.length + j + 1}`).join(', ')})`);
    }
    if (query.repository) add('repository = ?', query.repository);
    if (query.namespace) add('namespace = ?', query.namespace);
    if (query.cluster) add('cluster = ?', query.cluster);
    if (query.projects) {
      if (query.projects.length === 0) return [];
      const ors = query.projects.map((p) => {
        // substr, not LIKE: `_` in a project name is a LIKE wildcard
        params.push(p, `${p}/`, p.length + 1);
        return `(repository = $${params.length - 2} OR substr(repository, 1, $${params.length}) = $${params.length - 1})`;
      });
      where.push(`(${ors.join(' OR ')})`);
    }
    params.push(query.limit);
    const rows = await this.#db.all(
      `SELECT ${DEPLOYMENT_COLUMNS} FROM admission_deployments ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, cluster, namespace, workload_kind, workload_name, container LIMIT $${params.length}`,
      params,
    );
    return rows.map(deploymentFromRow);
  }

  async openGrace(window: GraceWindow): Promise<{ window: GraceWindow; opened: boolean }> {
    const changed = await this.#db.run(
      'INSERT INTO admission_grace (digest, project, rule, opened_at, reason) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest, project, rule) DO NOTHING',
      [window.digest, window.project, window.rule, window.openedAt.getTime(), window.reason.slice(0, 2000)],
    );
    if (changed > 0) return { window, opened: true };
    return { window: (await this.grace(window.digest, window.project, window.rule)) ?? window, opened: false };
  }

  async grace(digest: string, project: string, rule: string): Promise<GraceWindow | undefined> {
    const rows = await this.#db.all('SELECT digest, project, rule, opened_at, reason FROM admission_grace WHERE digest = $1 AND project = $2 AND rule = $3', [digest, project, rule]);
    const r = rows[0];
    return r ? { digest: String(r['digest']), project: String(r['project']), rule: String(r['rule']), openedAt: new Date(Number(r['opened_at'])), reason: String(r['reason']) } : undefined;
  }

  async closeGrace(digest: string, project: string, rules: string[]): Promise<void> {
    for (const rule of rules) await this.#db.run('DELETE FROM admission_grace WHERE digest = $1 AND project = $2 AND rule = $3', [digest, project, rule]);
  }
}

/** In memory (tests, and registries built without a metadata database of their own). */
export class MemoryDeploymentStore implements DeploymentStore {
  readonly #records = new Map<string, DeploymentRecord>();
  readonly #grace = new Map<string, GraceWindow>();

  async record(records: Array<Omit<DeploymentRecord, 'firstSeen' | 'lastSeen'>>, at: Date): Promise<void> {
    for (const r of records) {
      const key = [r.cluster, r.namespace, r.workloadKind, r.workloadName, r.container, r.digest].join('\n');
      const existing = this.#records.get(key);
      this.#records.set(key, { ...r, firstSeen: existing?.firstSeen ?? at, lastSeen: at });
    }
  }
  async firstAdmitted(key: DeploymentKey, digests: string[]): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    for (const r of this.#records.values()) {
      if (r.cluster !== key.cluster || r.namespace !== key.namespace || r.workloadKind !== key.workloadKind || r.workloadName !== key.workloadName || !digests.includes(r.digest)) continue;
      const seen = out.get(r.digest);
      if (!seen || r.firstSeen < seen) out.set(r.digest, r.firstSeen);
    }
    return out;
  }
  async isDeployed(digest: string): Promise<boolean> {
    return [...this.#records.values()].some((r) => r.digest === digest);
  }
  async list(query: DeploymentQuery): Promise<DeploymentRecord[]> {
    const digests = query.digests && new Set(query.digests);
    return [...this.#records.values()]
      .filter((r) => !digests || digests.has(r.digest))
      .filter((r) => (!query.digest || r.digest === query.digest) && (!query.repository || r.repository === query.repository) && (!query.namespace || r.namespace === query.namespace) && (!query.cluster || r.cluster === query.cluster))
      .filter((r) => !query.projects || query.projects.some((p) => r.repository === p || r.repository.startsWith(`${p}/`)))
      .sort((a, b) => b.lastSeen.getTime() - a.lastSeen.getTime())
      .slice(0, query.limit);
  }
  async openGrace(window: GraceWindow): Promise<{ window: GraceWindow; opened: boolean }> {
    const key = `${window.digest}\n${window.project}\n${window.rule}`;
    const existing = this.#grace.get(key);
    if (existing) return { window: existing, opened: false };
    this.#grace.set(key, window);
    return { window, opened: true };
  }
  async grace(digest: string, project: string, rule: string): Promise<GraceWindow | undefined> {
    return this.#grace.get(`${digest}\n${project}\n${rule}`);
  }
  async closeGrace(digest: string, project: string, rules: string[]): Promise<void> {
    for (const rule of rules) this.#grace.delete(`${digest}\n${project}\n${rule}`);
  }
}
