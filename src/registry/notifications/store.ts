/**
 * The webhook store: webhook definitions, the delivery queue (the durable outbox: a delivery row
 * is written before any attempt and survives restarts) and the attempt log, in portable SQL over
 * a {@link SqlDriver}.
 *
 * Its own migration track (`webhook_schema_migrations`) and, on SQLite, its own database file
 * (`<dataDir>/notifications/webhooks.sqlite`), like the audit log and the scanner: deliveries
 * are written on every push and pull a webhook listens to and updated on every attempt, and those
 * writes must never queue behind the metadata write lock. On PostgreSQL its tables sit in the
 * metadata database.
 *
 * Claims are leases: a worker sets `lease_until` on a due row in one conditional UPDATE, so
 * several replicas (or a restarted process) never deliver one row at once; a lease left by a
 * crashed worker expires and the row is tried again (at least once).
 */
import { applyMigrations } from '../auth/store/migrations.ts';
import type { Row, SqlDriver } from '../storage/sql/driver.ts';
import type { Migration } from '../storage/sql/migrations.ts';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookRecord {
  id: string;
  project: string;
  name: string;
  url: string;
  events: string[];
  /** Sealed by SecretBox; never leaves the module. */
  sealedSecret: string;
  enabled: boolean;
  createdAt: number;
  createdBy: string | undefined;
  updatedAt: number;
}

export interface DeliveryRecord {
  id: string;
  webhookId: string;
  project: string;
  eventType: string;
  eventId: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number;
  responseCode: number | undefined;
  latencyMs: number | undefined;
  error: string | undefined;
  redeliveryOf: string | undefined;
  createdAt: number;
  updatedAt: number;
}

export interface AttemptRecord {
  attempt: number;
  at: number;
  responseCode: number | undefined;
  latencyMs: number;
  error: string | undefined;
}

export function webhookMigrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return [
    {
      version: 1,
      description: 'webhooks, deliveries (durable queue with leases), attempts',
      statements: [
        `CREATE TABLE webhooks (
           id TEXT PRIMARY KEY,
           project ${name} NOT NULL,
           name ${name} NOT NULL,
           url TEXT NOT NULL,
           events TEXT NOT NULL,
           secret TEXT NOT NULL,
           enabled INTEGER NOT NULL,
           created_at BIGINT NOT NULL,
           created_by TEXT,
           updated_at BIGINT NOT NULL,
           UNIQUE (project, name))`,
        `CREATE TABLE webhook_deliveries (
           id TEXT PRIMARY KEY,
           webhook_id TEXT NOT NULL,
           project TEXT NOT NULL,
           event_type TEXT NOT NULL,
           event_id TEXT NOT NULL,
           payload TEXT NOT NULL,
           status TEXT NOT NULL,
           attempts INTEGER NOT NULL,
           next_attempt_at BIGINT NOT NULL,
           lease_until BIGINT NOT NULL,
           response_code INTEGER,
           latency_ms INTEGER,
           error TEXT,
           redelivery_of TEXT,
           created_at BIGINT NOT NULL,
           updated_at BIGINT NOT NULL)`,
        `CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`,
        `CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at)`,
        `CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending'`,
        `CREATE TABLE webhook_attempts (
           delivery_id TEXT NOT NULL,
           attempt INTEGER NOT NULL,
           at BIGINT NOT NULL,
           response_code INTEGER,
           latency_ms INTEGER NOT NULL,
           error TEXT,
           PRIMARY KEY (delivery_id, attempt))`,
      ],
    },
  ];
}

const optionalNumber = (value: unknown) => (value === null || value === undefined ? undefined : Number(value));
const optionalString = (value: unknown) => (value === null || value === undefined ? undefined : String(value));

function webhookFromRow(row: Row): WebhookRecord {
  return {
    id: String(row.id),
    project: String(row.project),
    name: String(row.name),
    url: String(row.url),
    events: JSON.parse(String(row.events)) as string[],
    sealedSecret: String(row.secret),
    enabled: Number(row.enabled) === 1,
    createdAt: Number(row.created_at),
    createdBy: optionalString(row.created_by),
    updatedAt: Number(row.updated_at),
  };
}

function deliveryFromRow(row: Row): DeliveryRecord {
  return {
    id: String(row.id),
    webhookId: String(row.webhook_id),
    project: String(row.project),
    eventType: String(row.event_type),
    eventId: String(row.event_id),
    payload: String(row.payload),
    status: String(row.status) as DeliveryStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    responseCode: optionalNumber(row.response_code),
    latencyMs: optionalNumber(row.latency_ms),
    error: optionalString(row.error),
    redeliveryOf: optionalString(row.redelivery_of),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export interface NewDelivery {
  id: string;
  webhookId: string;
  project: string;
  eventType: string;
  eventId: string;
  payload: string;
  redeliveryOf?: string | undefined;
}

export class WebhookStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  async migrate(now = Date.now()): Promise<void> {
    await applyMigrations(this.#db, 'webhook_schema_migrations', webhookMigrations(this.#db.dialect), now);
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  // --- webhooks ------------------------------------------------------------------------------

  async list(project: string): Promise<WebhookRecord[]> {
    return (await this.#db.all('SELECT * FROM webhooks WHERE project = $1 ORDER BY name', [project])).map(webhookFromRow);
  }

  async get(project: string, id: string): Promise<WebhookRecord | undefined> {
    const [row] = await this.#db.all('SELECT * FROM webhooks WHERE project = $1 AND id = $2', [project, id]);
    return row ? webhookFromRow(row) : undefined;
  }

  async byId(id: string): Promise<WebhookRecord | undefined> {
    const [row] = await this.#db.all('SELECT * FROM webhooks WHERE id = $1', [id]);
    return row ? webhookFromRow(row) : undefined;
  }

  /** Inserts unless the project already has `max` webhooks or one of that name; returns what blocked it. */
  async create(hook: WebhookRecord, max: number): Promise<'created' | 'name-taken' | 'limit'> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.all<{ name: unknown }>('SELECT name FROM webhooks WHERE project = $1', [hook.project]);
      if (rows.some((r) => String(r.name) === hook.name)) return 'name-taken';
      if (rows.length >= max) return 'limit';
      await tx.run(
        'INSERT INTO webhooks (id, project, name, url, events, secret, enabled, created_at, created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
        [hook.id, hook.project, hook.name, hook.url, JSON.stringify(hook.events), hook.sealedSecret, hook.enabled ? 1 : 0, hook.createdAt, hook.createdBy ?? null, hook.updatedAt],
      );
      return 'created';
    });
  }

  async update(hook: WebhookRecord): Promise<'updated' | 'name-taken' | 'missing'> {
    return this.#db.transaction(async (tx) => {
      const clash = await tx.all('SELECT id FROM webhooks WHERE project = $1 AND name = $2 AND id <> $3', [hook.project, hook.name, hook.id]);
      if (clash.length > 0) return 'name-taken';
      const changed = await tx.run('UPDATE webhooks SET name = $1, url = $2, events = $3, secret = $4, enabled = $5, updated_at = $6 WHERE id = $7 AND project = $8', [
        hook.name,
        hook.url,
        JSON.stringify(hook.events),
        hook.sealedSecret,
        hook.enabled ? 1 : 0,
        hook.updatedAt,
        hook.id,
        hook.project,
      ]);
      return changed === 1 ? 'updated' : 'missing';
    });
  }

  /** Deletes a webhook with its deliveries and their attempts. */
  async delete(project: string, id: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const changed = await tx.run('DELETE FROM webhooks WHERE project = $1 AND id = $2', [project, id]);
      if (changed === 0) return false;
      await tx.run('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)', [id]);
      await tx.run('DELETE FROM webhook_deliveries WHERE webhook_id = $1', [id]);
      return true;
    });
  }

  // --- deliveries ----------------------------------------------------------------------------

  async enqueue(deliveries: NewDelivery[], now: number): Promise<void> {
    if (deliveries.length === 0) return;
    await this.#db.transaction(async (tx) => {
      for (const d of deliveries) {
        await tx.run(
          `INSERT INTO webhook_deliveries (id, webhook_id, project, event_type, event_id, payload, status, attempts, next_attempt_at, lease_until, redelivery_of, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, 0, $8, $7, $7)`,
          [d.id, d.webhookId, d.project, d.eventType, d.eventId, d.payload, now, d.redeliveryOf ?? null],
        );
      }
    });
  }

  /** Leases up to `limit` due deliveries until `leaseUntil`; returns the ones this caller won. */
  async claimDue(now: number, limit: number, leaseUntil: number): Promise<DeliveryRecord[]> {
    const candidates = await this.#db.all("SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 AND lease_until <= $1 ORDER BY next_attempt_at LIMIT $2", [now, limit]);
    if (candidates.length === 0) return [];
    // one commit for the batch; the condition makes a row won by one claimer only
    return this.#db.transaction(async (tx) => {
      const won: DeliveryRecord[] = [];
      for (const row of candidates) {
        const changed = await tx.run("UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND lease_until <= $3", [leaseUntil, row.id, now]);
        if (changed === 1) won.push(deliveryFromRow(row));
      }
      return won;
    });
  }

  /** Records an attempt and the delivery's new state in one transaction (nothing when the delivery was deleted meanwhile). */
  async recordAttempt(id: string, attempt: AttemptRecord, next: { status: DeliveryStatus; nextAttemptAt: number }): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const changed = await tx.run('UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = 0, response_code = $4, latency_ms = $5, error = $6, updated_at = $7 WHERE id = $8', [
        next.status,
        attempt.attempt,
        next.nextAttemptAt,
        attempt.responseCode ?? null,
        attempt.latencyMs,
        attempt.error ?? null,
        attempt.at,
        id,
      ]);
      if (changed === 0) return;
      await tx.run('INSERT INTO webhook_attempts (delivery_id, attempt, at, response_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)', [
        id,
        attempt.attempt,
        attempt.at,
        attempt.responseCode ?? null,
        attempt.latencyMs,
        attempt.error ?? null,
      ]);
    });
  }

  /** Gives a lease back without counting an attempt (shutdown). */
  async release(id: string): Promise<void> {
    await this.#db.run('UPDATE webhook_deliveries SET lease_until = 0 WHERE id = $1', [id]);
  }

  async delivery(webhookId: string, id: string): Promise<{ delivery: DeliveryRecord; attempts: AttemptRecord[] } | undefined> {
    const [row] = await this.#db.all('SELECT * FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2', [webhookId, id]);
    if (!row) return undefined;
    const attempts = (await this.#db.all('SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt', [id])).map((r) => ({
      attempt: Number(r.attempt),
      at: Number(r.at),
      responseCode: optionalNumber(r.response_code),
      latencyMs: Number(r.latency_ms),
      error: optionalString(r.error),
    }));
    return { delivery: deliveryFromRow(row), attempts };
  }

  /** Newest first; `before` is the (createdAt, id) of the last row of the previous page. */
  async deliveries(webhookId: string, options: { status?: DeliveryStatus | undefined; limit: number; before?: { createdAt: number; id: string } | undefined }): Promise<DeliveryRecord[]> {
    const params: unknown[] = [webhookId];
    let sql = 'SELECT * FROM webhook_deliveries WHERE webhook_id = $1';
    if (options.status) {
      params.push(options.status);
      sql += ` AND status = $${params.length}`;
    }
    if (options.before) {
      params.push(options.before.createdAt, options.before.id);
      sql += ` AND (created_at < $${params.length - 1} OR (created_at = $${params.length - 1} AND id < $${params.length}))`;
    }
    params.push(options.limit);
    sql += ` ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    return (await this.#db.all(sql, params)).map(deliveryFromRow);
  }

  async counts(): Promise<Record<DeliveryStatus, number>> {
    const rows = await this.#db.all<{ status: unknown; n: unknown }>('SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status');
    const counts = { pending: 0, delivered: 0, failed: 0 };
    for (const r of rows) counts[String(r.status) as DeliveryStatus] = Number(r.n);
    return counts;
  }

  /** Deletes finished deliveries (and their attempts) last updated before `before`. */
  async prune(before: number): Promise<number> {
    return this.#db.transaction(async (tx) => {
      await tx.run("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1)", [before]);
      return tx.run("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1", [before]);
    });
  }
}
