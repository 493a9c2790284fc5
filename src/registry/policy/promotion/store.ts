/**
 * Promotion records: who promoted which digest from where to where, when, under which policy
 * version and hash, with what decision (refusals are recorded too). Table `promotions`
 * (metadata migration 6), SQLite or PostgreSQL; a memory store for registries without one.
 * Listing is newest first, paged by an opaque cursor (created_at, id).
 */
import type { SqlDriver } from '../../storage/sql/driver.ts';

export interface PromotionRecord {
  id: string;
  createdAt: Date;
  actor: { kind: string; name: string | undefined };
  source: { repository: string; reference: string };
  digest: string;
  destination: { repository: string; tag: string | undefined };
  decision: 'allowed' | 'denied';
  /** Undefined when no policy applies to the destination. */
  policy: { name: string; project: string; version: number; hash: string } | undefined;
  denials: string[];
  /** The attestation referrer's manifest digest (allowed promotions). */
  attestation: string | undefined;
  /** Manifests written at the destination (image, children, referrers, cosign tags). */
  copied: string[];
}

export interface PromotionQuery {
  /** Promotions whose source or destination is in this project. */
  project?: string;
  /** Promotions whose source or destination is this repository. */
  repository?: string;
  digest?: string;
  decision?: 'allowed' | 'denied';
  limit: number;
  cursor?: string;
}

export interface PromotionStore {
  add(record: PromotionRecord): Promise<void>;
  list(query: PromotionQuery): Promise<{ items: PromotionRecord[]; next: string | undefined }>;
}

function encodeCursor(r: PromotionRecord): string {
  return Buffer.from(`${r.createdAt.getTime()}|${r.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { at: number; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!at || !id || !/^\d+$/.test(at)) throw new RangeError('invalid cursor');
  return { at: Number(at), id };
}

export class SqlPromotionStore implements PromotionStore {
  readonly #db: SqlDriver;
  constructor(db: SqlDriver) {
    this.#db = db;
  }

  async add(r: PromotionRecord): Promise<void> {
    await this.#db.run(
      `INSERT INTO promotions (id, created_at, actor_kind, actor_name, source_repository, source_reference, digest, destination_repository, destination_tag, decision, policy, denials, attestation, copied)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [
        r.id,
        r.createdAt.getTime(),
        r.actor.kind,
        r.actor.name ?? null,
        r.source.repository,
        r.source.reference,
        r.digest,
        r.destination.repository,
        r.destination.tag ?? null,
        r.decision,
        r.policy ? JSON.stringify(r.policy) : null,
        JSON.stringify(r.denials),
        r.attestation ?? null,
        JSON.stringify(r.copied),
      ],
    );
  }

  async list(q: PromotionQuery): Promise<{ items: PromotionRecord[]; next: string | undefined }> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (q.repository !== undefined) {
      const p = param(q.repository);
      where.push(`(source_repository = ${p} OR destination_repository = ${p})`);
    }
    if (q.project !== undefined) {
      // the project itself or `project/...` ('/' sorts right before '0')
      const [exact, low, high] = [param(q.project), param(`${q.project}/`), param(`${q.project}0`)];
      where.push(`((destination_repository = ${exact} OR (destination_repository > ${low} AND destination_repository < ${high})) OR (source_repository = ${exact} OR (source_repository > ${low} AND source_repository < ${high})))`);
    }
    if (q.digest !== undefined) where.push(`digest = ${param(q.digest)}`);
    if (q.decision !== undefined) where.push(`decision = ${param(q.decision)}`);
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor);
      const at = param(c.at);
      where.push(`(created_at < ${at} OR (created_at = ${at} AND id < ${param(c.id)}))`);
    }
    const rows = await this.#db.all(
      `SELECT * FROM promotions${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ${param(q.limit + 1)}`,
      params,
    );
    const items = rows.slice(0, q.limit).map((r) => ({
      id: String(r['id']),
      createdAt: new Date(Number(r['created_at'])),
      actor: { kind: String(r['actor_kind']), name: r['actor_name'] == null ? undefined : String(r['actor_name']) },
      source: { repository: String(r['source_repository']), reference: String(r['source_reference']) },
      digest: String(r['digest']),
      destination: { repository: String(r['destination_repository']), tag: r['destination_tag'] == null ? undefined : String(r['destination_tag']) },
      decision: String(r['decision']) as PromotionRecord['decision'],
      policy: r['policy'] == null ? undefined : (JSON.parse(String(r['policy'])) as PromotionRecord['policy']),
      denials: JSON.parse(String(r['denials'])) as string[],
      attestation: r['attestation'] == null ? undefined : String(r['attestation']),
      copied: JSON.parse(String(r['copied'])) as string[],
    }));
    return { items, next: rows.length > q.limit ? encodeCursor(items.at(-1)!) : undefined };
  }
}

export class MemoryPromotionStore implements PromotionStore {
  readonly #rows: PromotionRecord[] = [];
  async add(record: PromotionRecord): Promise<void> {
    this.#rows.push(record);
  }
  async list(q: PromotionQuery): Promise<{ items: PromotionRecord[]; next: string | undefined }> {
    const inProject = (repo: string) => q.project !== undefined && (repo === q.project || repo.startsWith(`${q.project}/`));
    const c = q.cursor !== undefined ? decodeCursor(q.cursor) : undefined;
    const matching = this.#rows
      .filter((r) => q.repository === undefined || r.source.repository === q.repository || r.destination.repository === q.repository)
      .filter((r) => q.project === undefined || inProject(r.source.repository) || inProject(r.destination.repository))
      .filter((r) => (q.digest === undefined || r.digest === q.digest) && (q.decision === undefined || r.decision === q.decision))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
      .filter((r) => !c || r.createdAt.getTime() < c.at || (r.createdAt.getTime() === c.at && r.id < c.id));
    const items = matching.slice(0, q.limit);
    return { items, next: matching.length > q.limit ? encodeCursor(items.at(-1)!) : undefined };
  }
}
