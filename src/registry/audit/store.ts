/**
 * The audit store: records, checkpoints, forwarding cursors and dead letters, in portable SQL
 * over a {@link SqlDriver} (SQLite or PostgreSQL).
 *
 * Migrations have their own track, `audit_schema_migrations`, rather than new versions in
 * `storage/sql/migrations.ts`: on SQLite the audit log lives in a database file of its own
 * (`<dataDir>/audit/audit.sqlite`) so that its batched writes never hold the metadata write lock
 * and its size is measured and bounded on its own; on PostgreSQL its tables sit beside the
 * metadata tables. One track per store keeps both layouts the same code.
 *
 * Appends serialise on the chain head: on SQLite `BEGIN IMMEDIATE` is the lock, on PostgreSQL an
 * advisory transaction lock, so several replicas writing to one database still form one chain.
 */
import { open } from 'node:fs/promises';
import type { Row, SqlDriver, SqlExecutor } from '../storage/sql/driver.ts';
import type { Migration } from '../storage/sql/migrations.ts';
import { applyMigrations } from '../auth/store/migrations.ts';
import { type AuditSigner, checkpointPayload } from './keys.ts';
import { GENESIS_HASH, type RecordFields, type StoredRecord, chainHash } from './record.ts';

/** A signed statement that the chain had `hash` at record `seq`. */
export interface Checkpoint {
  /** 1, 2, 3, ... */
  id: number;
  seq: number;
  hash: Buffer;
  at: number;
  keyId: string;
  signature: Buffer;
}

export interface AuditFilter {
  /** Inclusive, milliseconds since the epoch. */
  from?: number;
  /** Exclusive. */
  to?: number;
  /** Actor name (exact). */
  actor?: string;
  /** Repository, exact, or a prefix ending in `/*` (`project/*`). */
  repository?: string;
  /** Action, exact, or a prefix ending in `.*` (`manifest.*`). */
  action?: string;
  outcome?: string;
  /** Records after (asc) or before (desc) this seq. */
  cursor?: number;
  order?: 'asc' | 'desc';
  limit: number;
}

export interface DeadLetter {
  id: number;
  sink: string;
  seq: number;
  payload: string;
  attempts: number;
  lastError: string;
  at: number;
}

export interface AppendResult {
  firstSeq: number;
  lastSeq: number;
  checkpoint: Checkpoint | undefined;
}

export interface CheckpointPolicy {
  signer: AuditSigner;
  /** Sign when this many records have been appended since the last checkpoint. */
  everyRecords: number;
  /** Sign when the last checkpoint is older than this and records were appended since. */
  everyMs: number;
  now: number;
}

const ADVISORY_LOCK = 0x61756474; // 'audt'

export function auditMigrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  const bytes = dialect === 'sqlite' ? 'BLOB' : 'BYTEA';
  // INTEGER PRIMARY KEY is SQLite's rowid: no second index for the sequence.
  const seqKey = dialect === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGINT PRIMARY KEY';
  const serial = dialect === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY';
  return [
    {
      version: 1,
      description: 'audit records, checkpoints, forwarding cursors, dead letters',
      statements: [
        `CREATE TABLE audit_records (
           seq ${seqKey},
           at BIGINT NOT NULL,
           actor_kind TEXT NOT NULL,
           actor_name TEXT,
           actor_auth TEXT,
           client TEXT,
           user_agent TEXT,
           request_id TEXT,
           action TEXT NOT NULL,
           repository TEXT,
           digest TEXT,
           tag TEXT,
           outcome TEXT NOT NULL,
           reason TEXT,
           details TEXT,
           prev_hash ${bytes} NOT NULL,
           hash ${bytes} NOT NULL)`,
        `CREATE INDEX audit_records_at ON audit_records (at)`,
        `CREATE INDEX audit_records_repository ON audit_records (repository, seq) WHERE repository IS NOT NULL`,
        `CREATE INDEX audit_records_actor ON audit_records (actor_name, seq) WHERE actor_name IS NOT NULL`,
        // Few rows (the archive marker is looked up by action when verifying).
        `CREATE INDEX audit_records_archived ON audit_records (seq) WHERE action = 'audit.archived'`,
        `CREATE TABLE audit_checkpoints (
           id BIGINT PRIMARY KEY,
           seq BIGINT NOT NULL,
           hash ${bytes} NOT NULL,
           at BIGINT NOT NULL,
           key_id TEXT NOT NULL,
           signature ${bytes} NOT NULL)`,
        `CREATE TABLE audit_forward_cursors (sink TEXT PRIMARY KEY, seq BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
        `CREATE TABLE audit_dead_letters (
           id ${serial},
           sink TEXT NOT NULL,
           seq BIGINT NOT NULL,
           payload TEXT NOT NULL,
           attempts BIGINT NOT NULL,
           last_error TEXT NOT NULL,
           at BIGINT NOT NULL)`,
        `CREATE INDEX audit_dead_letters_sink ON audit_dead_letters (sink, id)`,
      ],
    },
  ];
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`expected bytes, got ${typeof value}`);
}

function nullableString(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

export function recordFromRow(row: Row): StoredRecord {
  return {
    seq: Number(row.seq),
    at: Number(row.at),
    actorKind: String(row.actor_kind),
    actorName: nullableString(row.actor_name),
    actorAuth: nullableString(row.actor_auth),
    client: nullableString(row.client),
    userAgent: nullableString(row.user_agent),
    requestId: nullableString(row.request_id),
    action: String(row.action),
    repository: nullableString(row.repository),
    digest: nullableString(row.digest),
    tag: nullableString(row.tag),
    outcome: String(row.outcome),
    reason: nullableString(row.reason),
    details: nullableString(row.details),
    prevHash: toBuffer(row.prev_hash),
    hash: toBuffer(row.hash),
  };
}

function checkpointFromRow(row: Row): Checkpoint {
  return { id: Number(row.id), seq: Number(row.seq), hash: toBuffer(row.hash), at: Number(row.at), keyId: String(row.key_id), signature: toBuffer(row.signature) };
}

const COLUMNS = 'seq, at, actor_kind, actor_name, actor_auth, client, user_agent, request_id, action, repository, digest, tag, outcome, reason, details, prev_hash, hash';
const COLUMN_COUNT = 17;

/**
 * A multi-row INSERT. PostgreSQL gets `$N` placeholders; SQLite plain `?` ones (bound in order):
 * node:sqlite binds numbered parameters (`?N`, what the SQLite driver makes of `$N`) more slowly
 * the more a statement has, about twice the cost of a whole row insert at 17 columns.
 */
function insertStatement(rows: number, dialect: 'sqlite' | 'postgres'): string {
  const placeholder = dialect === 'postgres' ? (n: number) => `$${n}` : () => '?';
  const values = Array.from({ length: rows }, (_, row) => `(${Array.from({ length: COLUMN_COUNT }, (_, col) => placeholder(row * COLUMN_COUNT + col + 1)).join(', ')})`);
  return `INSERT INTO audit_records (${COLUMNS}) VALUES ${values.join(', ')}`;
}

/** Rows per INSERT, largest first: few statements per batch, and only three shapes to prepare. */
const CHUNKS = [50, 10, 1];
const INSERTS = {
  sqlite: new Map(CHUNKS.map((rows) => [rows, insertStatement(rows, 'sqlite')])),
  postgres: new Map(CHUNKS.map((rows) => [rows, insertStatement(rows, 'postgres')])),
};

export class SqlAuditStore {
  readonly #db: SqlDriver;
  /** SQLite: the write-ahead log fsync'd after each write (see migrate). */
  #wal: string | undefined;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  get dialect(): 'sqlite' | 'postgres' {
    return this.#db.dialect;
  }

  async migrate(now = Date.now()): Promise<void> {
    // A committed batch must survive a power loss too. SQLite's synchronous = FULL would fsync
    // the log inside COMMIT, on the event loop (2-3% of a busy server's main thread); instead the
    // log is fsync'd after the commit on libuv's thread pool, before the write resolves: the same
    // guarantee, since the commit's frames are in that file.
    if (this.#db.dialect === 'sqlite') {
      const file = this.#db.file;
      this.#wal = file && file !== ':memory:' ? `${file}-wal` : undefined;
      await this.#db.run(`PRAGMA synchronous = ${this.#wal ? 'NORMAL' : 'FULL'}`);
    }
    await applyMigrations(this.#db, 'audit_schema_migrations', auditMigrations(this.#db.dialect), now);
  }

  /** A write transaction, durable when it resolves. */
  async #write<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const result = await this.#db.transaction(fn);
    await this.#syncWal();
    return result;
  }

  async #syncWal(): Promise<void> {
    if (!this.#wal) return;
    // No log file (another connection's checkpoint on close removed it): the database file holds the commit.
    const handle = await open(this.#wal, 'r+').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? open(this.#wal!.slice(0, -4), 'r+') : Promise.reject(error)));
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  async #lock(tx: SqlExecutor): Promise<void> {
    if (this.#db.dialect === 'postgres') await tx.all('SELECT pg_advisory_xact_lock($1)', [ADVISORY_LOCK]);
  }

  async #head(tx: SqlExecutor): Promise<{ seq: number; hash: Buffer }> {
    const rows = await tx.all('SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1');
    if (rows[0]) return { seq: Number(rows[0].seq), hash: toBuffer(rows[0].hash) };
    // Everything pruned (or nothing yet): the newest checkpoint (pruning always ends at one).
    const checkpoint = await this.#lastCheckpoint(tx);
    return checkpoint ? { seq: checkpoint.seq, hash: checkpoint.hash } : { seq: 0, hash: GENESIS_HASH };
  }

  async #lastCheckpoint(tx: SqlExecutor): Promise<Checkpoint | undefined> {
    const rows = await tx.all('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1');
    return rows[0] ? checkpointFromRow(rows[0]) : undefined;
  }

  async #signCheckpoint(tx: SqlExecutor, head: { seq: number; hash: Buffer }, last: Checkpoint | undefined, signer: AuditSigner, now: number): Promise<Checkpoint> {
    const id = (last?.id ?? 0) + 1;
    const at = Math.max(now, last?.at ?? 0);
    const signature = signer.sign(checkpointPayload({ id, seq: head.seq, hash: head.hash, at }));
    await tx.run('INSERT INTO audit_checkpoints (id, seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)', [id, head.seq, head.hash, at, signer.keyId, signature]);
    return { id, seq: head.seq, hash: head.hash, at, keyId: signer.keyId, signature };
  }

  /**
   * Appends records in one transaction, chaining them to the current head, and signs a
   * checkpoint when one is due. Returns the assigned sequence numbers.
   */
  async append(batch: RecordFields[], policy: CheckpointPolicy): Promise<AppendResult> {
    return this.#write(async (tx) => {
      await this.#lock(tx);
      const head = await this.#head(tx);
      // Hash and bind in one pass, straight into each statement's parameter list (no record
      // objects, no flatMap): this runs once per audited request.
      let prev = head.hash;
      const inserts = INSERTS[this.#db.dialect];
      for (let i = 0; i < batch.length; ) {
        const rows = CHUNKS.find((n) => n <= batch.length - i)!;
        const params: unknown[] = [];
        for (let row = 0; row < rows; row++) {
          const f = batch[i + row]!;
          const hash = chainHash(prev, f);
          // COLUMNS order.
          params.push(head.seq + i + row + 1, f.at, f.actorKind, f.actorName, f.actorAuth, f.client, f.userAgent, f.requestId, f.action, f.repository, f.digest, f.tag, f.outcome, f.reason, f.details, prev, hash);
          prev = hash;
        }
        await tx.run(inserts.get(rows)!, params);
        i += rows;
      }
      const newHead = batch.length > 0 ? { seq: head.seq + batch.length, hash: prev } : head;
      const last = await this.#lastCheckpoint(tx);
      const since = newHead.seq - (last?.seq ?? 0);
      const due = since > 0 && (since >= policy.everyRecords || (last !== undefined && policy.now - last.at >= policy.everyMs));
      const checkpoint = due ? await this.#signCheckpoint(tx, newHead, last, policy.signer, policy.now) : undefined;
      return { firstSeq: head.seq + 1, lastSeq: newHead.seq, checkpoint };
    });
  }

  /** Signs a checkpoint over the head when records were appended since the last one (or `force`). */
  async checkpoint(signer: AuditSigner, now: number, options: { olderThanMs?: number } = {}): Promise<Checkpoint | undefined> {
    return this.#write(async (tx) => {
      await this.#lock(tx);
      const head = await this.#head(tx);
      const last = await this.#lastCheckpoint(tx);
      if (head.seq === (last?.seq ?? 0)) return undefined;
      if (options.olderThanMs !== undefined && last && now - last.at < options.olderThanMs) return undefined;
      return this.#signCheckpoint(tx, head, last, signer, now);
    });
  }

  async head(): Promise<{ seq: number; hash: Buffer }> {
    return this.#head(this.#db);
  }

  async bounds(): Promise<{ first: number | undefined; last: number | undefined; count: number }> {
    const rows = await this.#db.all('SELECT MIN(seq) AS first, MAX(seq) AS last, COUNT(*) AS count FROM audit_records');
    const row = rows[0]!;
    return { first: row.first === null ? undefined : Number(row.first), last: row.last === null ? undefined : Number(row.last), count: Number(row.count) };
  }

  async firstSeq(): Promise<number | undefined> {
    const rows = await this.#db.all('SELECT MIN(seq) AS first FROM audit_records');
    return rows[0]?.first === null || rows[0]?.first === undefined ? undefined : Number(rows[0].first);
  }

  /** The newest record older than `at` (retention by age). */
  async lastSeqBefore(at: number): Promise<number | undefined> {
    const rows = await this.#db.all('SELECT MAX(seq) AS seq FROM audit_records WHERE at < $1', [at]);
    return rows[0]?.seq === null || rows[0]?.seq === undefined ? undefined : Number(rows[0].seq);
  }

  /** Records with seq > `after`, ascending. */
  async recordsAfter(after: number, limit: number): Promise<StoredRecord[]> {
    return (await this.#db.all(`SELECT ${COLUMNS} FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, limit])).map(recordFromRow);
  }

  async record(seq: number): Promise<StoredRecord | undefined> {
    const rows = await this.#db.all(`SELECT ${COLUMNS} FROM audit_records WHERE seq = $1`, [seq]);
    return rows[0] ? recordFromRow(rows[0]) : undefined;
  }

  async query(filter: AuditFilter): Promise<StoredRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: (p: string) => string, value: unknown) => {
      params.push(value);
      where.push(clause(`$${params.length}`));
    };
    const prefixOrExact = (column: string, value: string, wildcard: string) => {
      if (value.endsWith(wildcard)) {
        const prefix = value.slice(0, -1);
        add((p) => `substr(${column}, 1, ${prefix.length}) = ${p}`, prefix);
      } else add((p) => `${column} = ${p}`, value);
    };
    const order = filter.order ?? 'desc';
    if (filter.from !== undefined) add((p) => `at >= ${p}`, filter.from);
    if (filter.to !== undefined) add((p) => `at < ${p}`, filter.to);
    if (filter.actor !== undefined) add((p) => `actor_name = ${p}`, filter.actor);
    if (filter.repository !== undefined) prefixOrExact('repository', filter.repository, '/*');
    if (filter.action !== undefined) prefixOrExact('action', filter.action, '.*');
    if (filter.outcome !== undefined) add((p) => `outcome = ${p}`, filter.outcome);
    if (filter.cursor !== undefined) add((p) => (order === 'asc' ? `seq > ${p}` : `seq < ${p}`), filter.cursor);
    params.push(filter.limit);
    const sql = `SELECT ${COLUMNS} FROM audit_records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length}`;
    return (await this.#db.all(sql, params)).map(recordFromRow);
  }

  async checkpoints(): Promise<Checkpoint[]> {
    return (await this.#db.all('SELECT * FROM audit_checkpoints ORDER BY id')).map(checkpointFromRow);
  }

  async lastCheckpoint(): Promise<Checkpoint | undefined> {
    return this.#lastCheckpoint(this.#db);
  }

  /** The newest `audit.archived` marker record: where the stored chain now begins. */
  async lastArchiveMarker(): Promise<StoredRecord | undefined> {
    const rows = await this.#db.all(`SELECT ${COLUMNS} FROM audit_records WHERE action = 'audit.archived' ORDER BY seq DESC LIMIT 1`);
    return rows[0] ? recordFromRow(rows[0]) : undefined;
  }

  /** Deletes records with seq <= `through` (after they were archived). */
  async deleteThrough(through: number): Promise<number> {
    return this.#db.run('DELETE FROM audit_records WHERE seq <= $1', [through]);
  }

  /** Bytes the audit log occupies (SQLite: used pages of its file; PostgreSQL: its tables and indexes). */
  async usedBytes(): Promise<number> {
    if (this.#db.dialect === 'sqlite') {
      const pages = Number((await this.#db.all('PRAGMA page_count'))[0]?.page_count ?? 0);
      const free = Number((await this.#db.all('PRAGMA freelist_count'))[0]?.freelist_count ?? 0);
      const size = Number((await this.#db.all('PRAGMA page_size'))[0]?.page_size ?? 4096);
      return (pages - free) * size;
    }
    const rows = await this.#db.all(
      `SELECT pg_total_relation_size('audit_records') + pg_total_relation_size('audit_checkpoints') + pg_total_relation_size('audit_dead_letters') AS bytes`,
    );
    return Number(rows[0]?.bytes ?? 0);
  }

  // --- forwarding

  async cursor(sink: string): Promise<number | undefined> {
    const rows = await this.#db.all('SELECT seq FROM audit_forward_cursors WHERE sink = $1', [sink]);
    return rows[0] ? Number(rows[0].seq) : undefined;
  }

  /** Moves a sink's cursor forward (never back: a slower replica cannot rewind another). */
  async advanceCursor(sink: string, seq: number, now: number): Promise<void> {
    await this.#db.run(
      `INSERT INTO audit_forward_cursors (sink, seq, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at WHERE audit_forward_cursors.seq < excluded.seq`,
      [sink, seq, now],
    );
  }

  async minimumCursor(sinks: string[]): Promise<number | undefined> {
    let min: number | undefined;
    for (const sink of sinks) {
      const seq = (await this.cursor(sink)) ?? 0;
      min = min === undefined ? seq : Math.min(min, seq);
    }
    return min;
  }

  async addDeadLetters(letters: Array<Omit<DeadLetter, 'id'>>): Promise<void> {
    if (letters.length === 0) return;
    await this.#write(async (tx) => {
      for (const l of letters) {
        await tx.run('INSERT INTO audit_dead_letters (sink, seq, payload, attempts, last_error, at) VALUES ($1, $2, $3, $4, $5, $6)', [
          l.sink,
          l.seq,
          l.payload,
          l.attempts,
          l.lastError.slice(0, 1000),
          l.at,
        ]);
      }
    });
  }

  async deadLetters(sink: string, limit: number): Promise<DeadLetter[]> {
    const rows = await this.#db.all('SELECT * FROM audit_dead_letters WHERE sink = $1 ORDER BY id LIMIT $2', [sink, limit]);
    return rows.map((r) => ({ id: Number(r.id), sink: String(r.sink), seq: Number(r.seq), payload: String(r.payload), attempts: Number(r.attempts), lastError: String(r.last_error), at: Number(r.at) }));
  }

  async deadLetterCount(sink?: string): Promise<number> {
    const rows = sink === undefined ? await this.#db.all('SELECT COUNT(*) AS n FROM audit_dead_letters') : await this.#db.all('SELECT COUNT(*) AS n FROM audit_dead_letters WHERE sink = $1', [sink]);
    return Number(rows[0]?.n ?? 0);
  }

  async deleteDeadLetters(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.run(`DELETE FROM audit_dead_letters WHERE id IN (${ids.map((_, i) => `$${i + 1}`).join(', ')})`, ids);
  }

  /** Direct SQL for tests and the tamper suite (not for production code). */
  get driver(): SqlDriver {
    return this.#db;
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
