/**
 * The audit log writer: an in-memory queue flushed in batches, each batch one transaction.
 *
 * Two ways in:
 * - {@link AuditLog.record}: fire and forget, for the high-volume observations (pulls, pushes,
 *   everything from the event bus). Never waits: when the queue is full the record is dropped
 *   and counted, and the next batch carries an `audit.dropped` record with the count, so the
 *   loss itself is in the chain. Such records reach the database within `flushIntervalMs`; a
 *   crash in that window loses them.
 * - {@link AuditLog.append}: for security-critical decisions (a failed login, a policy denial,
 *   a configuration change). Resolves once the record is committed (group commit: appends
 *   arriving together share a transaction) and rejects when it could not be written, so the
 *   caller can deny. It never drops: past the queue bound it waits for room (back-pressure on
 *   the caller, not loss).
 *
 * Identical successful pulls within `coalescePullsMs` are one record carrying `count` and
 * `lastAt` (the first pull's time, request id and fields otherwise): a cluster pulling one image
 * from every node would otherwise write a row per request. The window closes on a timer, and on
 * `flush`/`close`.
 */
import type { EventBus } from '../events/bus.ts';
import { entriesFromEvent } from './from-event.ts';
import type { AuditSigner } from './keys.ts';
import { type AuditEntry, type RecordFields, fieldsOf } from './record.ts';
import type { SqlAuditStore } from './store.ts';

/** What other modules get: append their own records. */
export interface AuditAppender {
  /** Queues a record; returns false when it was dropped because the queue is full. */
  record(entry: AuditEntry): boolean;
  /** Writes a record durably; resolves with its sequence number once committed. */
  append(entry: AuditEntry): Promise<{ seq: number }>;
}

export interface AuditLogOptions {
  /** Records held in memory at most (fire-and-forget ones beyond are dropped and counted). */
  maxQueue: number;
  /** Records per transaction at most. */
  batchSize: number;
  /** A queued record is written within this time. */
  flushIntervalMs: number;
  checkpointEveryRecords: number;
  checkpointEveryMs: number;
  /** Window in which identical successful pulls become one record; 0 or absent: one per pull. */
  coalescePullsMs?: number;
  /** Distinct pulls held open at once (default 10,000); past it, pulls are queued one by one. */
  maxOpenPulls?: number;
}

interface OpenPull {
  entry: AuditEntry;
  count: number;
  lastAt: number;
}

/** What makes two pulls the same for coalescing: everything recorded but the time and request id. */
function pullKey(e: AuditEntry): string {
  return `${e.action}\n${e.actor.kind}\n${e.actor.name ?? ''}\n${e.actor.auth ?? ''}\n${e.client ?? ''}\n${e.userAgent ?? ''}\n${e.repository ?? ''}\n${e.digest ?? ''}\n${e.tag ?? ''}\n${e.reason ?? ''}\n${e.details ? JSON.stringify(e.details) : ''}`;
}

export interface AuditLogStats {
  queued: number;
  /** Records dropped because the queue was full (since start). */
  dropped: number;
  /** Records committed by this process (since start). */
  written: number;
  /** Durable appends that failed (since start). */
  failed: number;
  batches: number;
  lastError: string | undefined;
}

const CRITICAL = /^(auth|access|config|audit)\./;

interface Pending {
  fields: RecordFields;
  resolve?: (value: { seq: number }) => void;
  reject?: (error: Error) => void;
}

export class AuditLog implements AuditAppender {
  readonly #store: SqlAuditStore;
  readonly #signer: AuditSigner;
  readonly #options: AuditLogOptions;
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  #queue: Pending[] = [];
  #critical = 0;
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #retryDelay = 0;
  #roomWaiters: Array<() => void> = [];
  #droppedUnreported = 0;
  #failures = 0;
  #closed = false;
  readonly #pulls = new Map<string, OpenPull>();
  #pullTimer: NodeJS.Timeout | undefined;
  readonly #stats: AuditLogStats = { queued: 0, dropped: 0, written: 0, failed: 0, batches: 0, lastError: undefined };

  constructor(deps: { store: SqlAuditStore; signer: AuditSigner; now?: () => number; onError?: (error: unknown) => void }, options: AuditLogOptions) {
    this.#store = deps.store;
    this.#signer = deps.signer;
    this.#now = deps.now ?? Date.now;
    this.#onError = deps.onError ?? (() => undefined);
    this.#options = options;
    if (options.checkpointEveryMs > 0) {
      this.#checkpointTimer = setInterval(() => {
        this.#store.checkpoint(this.#signer, this.#now(), { olderThanMs: options.checkpointEveryMs }).catch((error) => this.#onError(error));
      }, Math.max(1000, Math.floor(options.checkpointEveryMs / 2)));
      this.#checkpointTimer.unref();
    }
  }

  /**
   * Records every bus event (after commit, off the request path). Authentication, administration
   * and the audit log's own events (`auth.*`, `access.*`, `config.*`, `audit.*`) and every
   * outcome other than success (a policy denial, a failed check) are written at once and never
   * dropped; the rest (pulls, pushes, allowed policy decisions: the hot path) is batched and may
   * be dropped when the queue is full. Returns the unsubscribe function.
   */
  subscribe(events: EventBus): () => void {
    return events.subscribe('*', (event) => {
      for (const entry of entriesFromEvent(event)) {
        if (CRITICAL.test(entry.action) || entry.outcome !== 'success') this.append(entry).catch((error) => this.#onError(error));
        else this.record(entry);
      }
    });
  }

  record(entry: AuditEntry): boolean {
    if (this.#options.coalescePullsMs && entry.outcome === 'success' && entry.action.endsWith('.pulled') && !this.#closed) {
      const key = pullKey(entry);
      const open = this.#pulls.get(key);
      const now = entry.at ? entry.at.getTime() : this.#now();
      if (open) {
        open.count++;
        open.lastAt = now;
        return true;
      }
      if (this.#pulls.size < (this.#options.maxOpenPulls ?? 10_000)) {
        this.#pulls.set(key, { entry, count: 1, lastAt: now });
        if (!this.#pullTimer) {
          this.#pullTimer = setTimeout(() => this.#closePulls(), this.#options.coalescePullsMs);
          this.#pullTimer.unref();
        }
        return true;
      }
    }
    return this.#enqueue(entry);
  }

  /** Queues the pulls of the window that ends now, one record per distinct pull. */
  #closePulls(): void {
    if (this.#pullTimer) clearTimeout(this.#pullTimer);
    this.#pullTimer = undefined;
    for (const { entry, count, lastAt } of this.#pulls.values()) {
      const queued = this.#enqueue(count === 1 ? entry : { ...entry, details: { ...entry.details, count, lastAt: new Date(lastAt).toISOString() } });
      // A dropped record stands for all the pulls it counted.
      if (!queued) {
        this.#stats.dropped += count - 1;
        this.#droppedUnreported += count - 1;
      }
    }
    this.#pulls.clear();
  }

  #enqueue(entry: AuditEntry): boolean {
    if (this.#closed || this.#queue.length >= this.#options.maxQueue) {
      this.#stats.dropped++;
      this.#droppedUnreported++;
      return false;
    }
    this.#queue.push({ fields: fieldsOf(entry, this.#now()) });
    this.#schedule(false);
    return true;
  }

  async append(entry: AuditEntry): Promise<{ seq: number }> {
    const fields = fieldsOf(entry, this.#now());
    // Critical records may use the queue and as much again; beyond that, wait for a batch to commit.
    while (this.#queue.length >= this.#options.maxQueue * 2 && !this.#closed) await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    if (this.#closed) throw new Error('audit log is closed');
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields, resolve, reject });
      this.#critical++;
      this.#schedule(true);
    });
  }

  stats(): AuditLogStats {
    return { ...this.#stats, queued: this.#queue.length };
  }

  /** Writes everything queued so far (and waits for it); rejects when a batch cannot be written. */
  async flush(): Promise<void> {
    this.#closePulls();
    while (this.#queue.length > 0 || this.#flushing) {
      if (this.#flushing) {
        await this.#flushing;
        continue;
      }
      const failures = this.#failures;
      await this.#run();
      if (this.#failures !== failures) throw new Error(`audit log: cannot write: ${this.#stats.lastError}`);
    }
  }

  /** Flushes, signs a final checkpoint, stops the timers. Later records are dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#retryDelay = 0;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      this.#clearTimers();
      if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
      for (const wake of this.#roomWaiters.splice(0)) wake();
    }
    await this.#store.checkpoint(this.#signer, this.#now());
  }

  #clearTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  #schedule(urgent: boolean): void {
    if (this.#flushing || this.#immediate) return;
    if (this.#retryDelay > 0) {
      if (!this.#timer) {
        this.#timer = setTimeout(() => this.#kick(), this.#retryDelay);
        this.#timer.unref();
      }
      return;
    }
    if (urgent || this.#critical > 0 || this.#queue.length >= this.#options.batchSize) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#immediate = setImmediate(() => this.#kick());
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => this.#kick(), this.#options.flushIntervalMs);
      this.#timer.unref();
    }
  }

  #kick(): void {
    this.#clearTimers();
    if (this.#flushing || this.#queue.length === 0) return;
    this.#run().catch((error) => this.#onError(error));
  }

  #run(): Promise<void> {
    const run = this.#flushOnce().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0 && !this.#closed) this.#schedule(false);
    });
    this.#flushing = run;
    return run;
  }

  async #flushOnce(): Promise<void> {
    const batch = this.#queue.splice(0, this.#options.batchSize);
    if (batch.length === 0) return;
    const dropped = this.#droppedUnreported;
    const fields = batch.map((p) => p.fields);
    if (dropped > 0) {
      fields.unshift(fieldsOf({ actor: { kind: 'system', name: 'portcullis' }, action: 'audit.dropped', outcome: 'error', reason: 'audit queue full', details: { count: dropped } }, this.#now()));
    }
    const critical = batch.filter((p) => p.resolve).length;
    try {
      const result = await this.#store.append(fields, {
        signer: this.#signer,
        everyRecords: this.#options.checkpointEveryRecords,
        everyMs: this.#options.checkpointEveryMs,
        now: this.#now(),
      });
      this.#droppedUnreported -= dropped;
      this.#retryDelay = 0;
      this.#stats.batches++;
      this.#stats.written += fields.length;
      this.#critical -= critical;
      const offset = result.firstSeq + (dropped > 0 ? 1 : 0);
      batch.forEach((p, index) => p.resolve?.({ seq: offset + index }));
    } catch (error) {
      this.#failures++;
      this.#stats.lastError = (error as Error)?.message ?? String(error);
      this.#onError(error);
      // Durable appends fail now (their callers deny); observations go back and are retried.
      this.#critical -= critical;
      for (const p of batch) if (p.reject) p.reject(error as Error);
      this.#stats.failed += critical;
      const retry = batch.filter((p) => !p.reject);
      const room = Math.max(0, this.#options.maxQueue - this.#queue.length);
      this.#queue.unshift(...retry.slice(0, room));
      const lost = retry.length - Math.min(room, retry.length);
      this.#stats.dropped += lost;
      this.#droppedUnreported += lost;
      this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 100), 5000);
    } finally {
      for (const wake of this.#roomWaiters.splice(0)) wake();
    }
  }
}
