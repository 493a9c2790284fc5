/**
 * The audit module assembled from its parts: the writer subscribed to the event bus, the
 * checkpoint signer, retention with archives and the budget alert, forwarders, and the query
 * service behind the API and CLI. `build-app.ts` hands it a store and its slice of the config.
 */
import { join, resolve } from 'node:path';
import type { EventBus } from '../events/bus.ts';
import { type ForwardSink, Forwarder, sinkName } from './forward/forwarder.ts';
import { type AuditSigner, loadOrCreateSigningKey } from './keys.ts';
import { AuditLog } from './log.ts';
import { type AuditRecord, presentRecord } from './record.ts';
import { AuditRetention, type BudgetAlert } from './retention.ts';
import type { AuditFilter, SqlAuditStore } from './store.ts';

/** The `audit` section of the configuration (see config/schema.ts). */
export interface AuditSettings {
  enabled: boolean;
  sqlitePath?: string | undefined;
  keyFile?: string | undefined;
  queue: { maxRecords: number; batchSize: number; flushIntervalMs: number };
  pulls: { coalesceMs: number; maxOpen: number };
  checkpoint: { everyRecords: number; everySeconds: number };
  retention: { enabled: boolean; maxAgeDays: number; maxBytes: number; alertAtPercent: number; intervalSeconds: number; archiveDir?: string | undefined };
  api: { enabled: boolean; maxPageSize: number };
  forward: { sinks: ForwardSink[]; batchSize: number; retryInitialMs: number; retryMaxMs: number; maxAttempts: number };
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Where the audit files live by default: `<dataDir>/audit/`. */
export function auditPaths(settings: Pick<AuditSettings, 'keyFile' | 'retention'>, dataDir: string): { keyFile: string; archiveDir: string } {
  const base = join(resolve(dataDir), 'audit');
  return { keyFile: resolve(settings.keyFile ?? join(base, 'signing-key.pem')), archiveDir: resolve(settings.retention.archiveDir ?? join(base, 'archive')) };
}

export interface AuditPage {
  records: AuditRecord[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  nextCursor: string | undefined;
}

/** Opaque cursors: the base64url of the last sequence number seen. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number | undefined {
  const match = /^s(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return match ? Number(match[1]) : undefined;
}

/** Query with cursor pagination (shared by the HTTP route and the CLI). */
export async function queryAudit(store: SqlAuditStore, filter: Omit<AuditFilter, 'cursor'> & { cursor?: string }): Promise<AuditPage> {
  const cursor = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor);
  if (filter.cursor !== undefined && cursor === undefined) throw new RangeError('invalid cursor');
  const rows = await store.query({ ...filter, cursor, limit: filter.limit + 1 });
  const page = rows.slice(0, filter.limit);
  return { records: page.map(presentRecord), nextCursor: rows.length > filter.limit ? encodeCursor(page.at(-1)!.seq) : undefined };
}

export class Audit {
  readonly store: SqlAuditStore;
  readonly log: AuditLog;
  readonly signer: AuditSigner;
  readonly retention: AuditRetention | undefined;
  readonly forwarders: Forwarder[];
  readonly settings: AuditSettings;
  readonly #unsubscribe: () => void;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #running = new Set<Promise<unknown>>();
  readonly #logger: Logger;

  private constructor(parts: { store: SqlAuditStore; log: AuditLog; signer: AuditSigner; retention: AuditRetention | undefined; forwarders: Forwarder[]; settings: AuditSettings; unsubscribe: () => void; logger: Logger }) {
    this.store = parts.store;
    this.log = parts.log;
    this.signer = parts.signer;
    this.retention = parts.retention;
    this.forwarders = parts.forwarders;
    this.settings = parts.settings;
    this.#unsubscribe = parts.unsubscribe;
    this.#logger = parts.logger;
  }

  /** Loads (or creates) the signing key, subscribes to the bus, starts retention and forwarding. */
  static async start(deps: { store: SqlAuditStore; events: EventBus; logger: Logger }, settings: AuditSettings, dataDir: string): Promise<Audit> {
    const { keyFile, archiveDir } = auditPaths(settings, dataDir);
    const signer = await loadOrCreateSigningKey(keyFile);
    if (signer.created) deps.logger.info({ keyId: signer.keyId, publicKey: signer.publicKeyFile }, 'audit: created the checkpoint signing key; keep a copy of its public key off this host');
    const log = new AuditLog(
      { store: deps.store, signer, onError: (error) => deps.logger.error({ err: error }, 'audit: writing records failed') },
      {
        maxQueue: settings.queue.maxRecords,
        batchSize: settings.queue.batchSize,
        flushIntervalMs: settings.queue.flushIntervalMs,
        coalescePullsMs: settings.pulls.coalesceMs,
        maxOpenPulls: settings.pulls.maxOpen,
        checkpointEveryRecords: settings.checkpoint.everyRecords,
        checkpointEveryMs: settings.checkpoint.everySeconds * 1000,
      },
    );
    const unsubscribe = log.subscribe(deps.events);
    const forwarders = settings.forward.sinks.map(
      (sink) =>
        new Forwarder(
          { store: deps.store, sink, logger: deps.logger },
          { batchSize: settings.forward.batchSize, retryInitialMs: settings.forward.retryInitialMs, retryMaxMs: settings.forward.retryMaxMs, maxAttempts: settings.forward.maxAttempts },
        ),
    );
    const alert = (a: BudgetAlert) => {
      deps.logger.warn({ usedBytes: a.usedBytes, budgetBytes: a.budgetBytes }, a.level === 'exceeded' ? 'audit: the audit log exceeds its size budget; archiving the oldest records' : 'audit: the audit log is nearing its size budget');
      deps.events.publish({ type: 'audit.budget', at: new Date(), origin: undefined, level: a.level, usedBytes: a.usedBytes, budgetBytes: a.budgetBytes });
    };
    const retention = settings.retention.enabled
      ? new AuditRetention(
          { store: deps.store, log, signer, sinks: () => settings.forward.sinks.map(sinkName), alert },
          { maxAgeDays: settings.retention.maxAgeDays, maxBytes: settings.retention.maxBytes, alertAtPercent: settings.retention.alertAtPercent, archiveDir },
        )
      : undefined;
    const audit = new Audit({ store: deps.store, log, signer, retention, forwarders, settings, unsubscribe, logger: deps.logger });
    for (const forwarder of forwarders) forwarder.start();
    if (retention && settings.retention.intervalSeconds > 0) audit.#every(settings.retention.intervalSeconds * 1000, () => audit.runRetention());
    return audit;
  }

  #every(ms: number, fn: () => Promise<unknown>): void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      const run = fn()
        .catch((error) => this.#logger.error({ err: error }, 'audit: maintenance failed'))
        .finally(() => {
          running = false;
          this.#running.delete(run);
        });
      this.#running.add(run);
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  async runRetention(): Promise<void> {
    if (!this.retention) return;
    const report = await this.retention.run();
    if (report.archived > 0) this.#logger.info({ archived: report.archived, file: report.file }, 'audit: archived old records');
    if (report.heldBy) this.#logger.warn({ heldBy: report.heldBy }, 'audit: retention could not archive all it wanted');
  }

  query(filter: Omit<AuditFilter, 'cursor'> & { cursor?: string }): Promise<AuditPage> {
    return queryAudit(this.store, filter);
  }

  /** Stops forwarding and maintenance, writes what is queued and signs a final checkpoint. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.all(this.#running);
    this.#unsubscribe();
    await Promise.all(this.forwarders.map((f) => f.stop()));
    try {
      await this.log.close();
    } finally {
      await this.store.close();
    }
  }
}
