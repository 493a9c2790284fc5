/**
 * Forwarding of audit records to a receiver (syslog or CloudEvents over HTTP), at least once.
 *
 * The outbox is the audit table itself: records are durable and numbered, so each sink only
 * keeps a cursor (`audit_forward_cursors`): the last record the receiver has. The forwarder reads
 * the records after it in batches, sends them, and moves the cursor once they are delivered.
 * Hence:
 * - A receiver that is down stops its cursor; records wait in the database (retention does not
 *   prune past any cursor) and are sent, in order, when it is back. Retries back off
 *   exponentially from `retryInitialMs` to `retryMaxMs`.
 * - Back-pressure never reaches the request path: the forwarder holds one batch in memory and
 *   reads at the receiver's pace; a slow receiver shows as lag, and a growing log as the size
 *   budget alert.
 * - A record the receiver rejects (an HTTP 4xx other than 408/429) is retried `maxAttempts`
 *   times, then moved to the dead-letter table (`audit_dead_letters`, with the message itself, so
 *   it survives pruning) and forwarding continues. Dead letters are offered again every
 *   `redriveMs` while the forwarder is idle, and deleted once delivered.
 * - After a crash the cursor may lag what was sent: those records are sent again. Receivers see
 *   every record at least once, possibly twice; `seq` and `hash` (and the CloudEvents `id`)
 *   identify duplicates.
 */
import type { SqlAuditStore } from '../store.ts';
import { type AuditRecord, presentRecord } from '../record.ts';
import { type CloudEventsSink, CloudEventsTransport } from './cloudevents.ts';
import { type SyslogSink, SyslogTransport } from './syslog.ts';

export interface SendOutcome {
  /** Records not delivered (all others were). */
  failed: Array<{ seq: number; error: string; permanent: boolean }>;
}

export interface Transport {
  /** Sends records in order; throws when the whole batch failed (transiently). */
  send(records: AuditRecord[]): Promise<SendOutcome>;
  /** The cursor that may be persisted once everything through `position` was sent (syslog holds back a settle window). */
  settledThrough?(position: number): number;
  /** After a failure: the position to resend from, when records believed sent may be lost. */
  rewind?(): number | undefined;
  close(): Promise<void>;
}

export type ForwardSink = (SyslogSink | CloudEventsSink) & {
  /** Where a sink seen for the first time starts: new records only, or everything still stored. */
  startAt: 'now' | 'oldest';
};

/** The cursor key of a sink: its `name`, else kind and URL. */
export function sinkName(sink: Pick<ForwardSink, 'name' | 'kind' | 'url'>): string {
  return sink.name ?? `${sink.kind}:${sink.url}`;
}

export interface ForwarderOptions {
  batchSize: number;
  retryInitialMs: number;
  retryMaxMs: number;
  maxAttempts: number;
  /** Poll for new records this often when idle. */
  pollMs?: number;
  /** Offer dead letters again this often (when idle). */
  redriveMs?: number;
}

export interface ForwarderStats {
  sink: string;
  position: number | undefined;
  delivered: number;
  retries: number;
  deadLettered: number;
  redelivered: number;
  lastError: string | undefined;
}

interface Logger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export class Forwarder {
  readonly name: string;
  readonly #store: SqlAuditStore;
  readonly #sink: ForwardSink;
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #options: Required<ForwarderOptions>;
  #running: Promise<void> | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #attempts = new Map<number, number>();
  #lastRedrive = Date.now();
  readonly #stats: ForwarderStats;

  constructor(deps: { store: SqlAuditStore; sink: ForwardSink; logger: Logger; transport?: Transport }, options: ForwarderOptions) {
    this.name = sinkName(deps.sink);
    this.#store = deps.store;
    this.#sink = deps.sink;
    this.#logger = deps.logger;
    this.#transport = deps.transport ?? (deps.sink.kind === 'syslog' ? new SyslogTransport(deps.sink) : new CloudEventsTransport(deps.sink));
    this.#options = { pollMs: 500, redriveMs: 600_000, ...options };
    this.#stats = { sink: this.name, position: undefined, delivered: 0, retries: 0, deadLettered: 0, redelivered: 0, lastError: undefined };
  }

  stats(): ForwarderStats {
    return { ...this.#stats };
  }

  start(): void {
    this.#running ??= this.#loop().catch((error) => this.#logger.error({ err: error, sink: this.name }, 'audit forwarding stopped'));
  }

  /** Stops after the batch in flight (its records are sent again by the next start if unconfirmed). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#transport.close();
    await this.#running;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  #backoff(previous: number): number {
    const next = Math.min(Math.max(previous * 2, this.#options.retryInitialMs), this.#options.retryMaxMs);
    return Math.round(next * (0.75 + Math.random() * 0.5));
  }

  async #persist(position: number): Promise<void> {
    const settled = this.#transport.settledThrough ? this.#transport.settledThrough(position) : position;
    await this.#store.advanceCursor(this.name, Math.min(settled, position), Date.now());
  }

  async #loop(): Promise<void> {
    let position = await this.#store.cursor(this.name);
    if (position === undefined) {
      position = this.#sink.startAt === 'oldest' ? ((await this.#store.firstSeq()) ?? 1) - 1 : (await this.#store.head()).seq;
      await this.#store.advanceCursor(this.name, position, Date.now());
    }
    let pending: AuditRecord[] = [];
    let batchEnd = position;
    let delay = 0;
    while (!this.#stopped) {
      this.#stats.position = position;
      try {
        if (pending.length === 0) {
          const rows = await this.#store.recordsAfter(position, this.#options.batchSize);
          if (rows.length === 0) {
            // A connection that broke while idle may have taken unsettled records with it.
            const rewound = this.#transport.rewind?.();
            if (rewound !== undefined && rewound < position) {
              position = rewound;
              continue;
            }
            await this.#persist(position);
            if (Date.now() - this.#lastRedrive >= this.#options.redriveMs) await this.#redrive();
            await this.#sleep(this.#options.pollMs);
            continue;
          }
          pending = rows.map(presentRecord);
          batchEnd = rows.at(-1)!.seq;
        }
        const outcome = await this.#transport.send(pending);
        const failed = new Map(outcome.failed.map((f) => [f.seq, f]));
        const keep: AuditRecord[] = [];
        const dead: Array<{ record: AuditRecord; error: string; attempts: number }> = [];
        for (const record of pending) {
          const failure = failed.get(record.seq);
          if (!failure) {
            this.#attempts.delete(record.seq);
            continue;
          }
          if (failure.permanent) {
            const attempts = (this.#attempts.get(record.seq) ?? 0) + 1;
            this.#attempts.set(record.seq, attempts);
            if (attempts >= this.#options.maxAttempts) {
              dead.push({ record, error: failure.error, attempts });
              this.#attempts.delete(record.seq);
              continue;
            }
          }
          keep.push(record);
        }
        this.#stats.delivered += pending.length - keep.length - dead.length;
        if (dead.length > 0) {
          await this.#store.addDeadLetters(dead.map((d) => ({ sink: this.name, seq: d.record.seq, payload: JSON.stringify(d.record), attempts: d.attempts, lastError: d.error, at: Date.now() })));
          this.#stats.deadLettered += dead.length;
          this.#logger.warn({ sink: this.name, records: dead.map((d) => d.record.seq), error: dead[0]!.error }, 'audit forwarding: receiver rejected records; kept as dead letters');
        }
        pending = keep;
        position = pending.length > 0 ? pending[0]!.seq - 1 : batchEnd;
        await this.#persist(position);
        if (keep.length > 0) {
          this.#stats.retries++;
          this.#stats.lastError = outcome.failed[0]?.error;
          delay = this.#backoff(delay);
          await this.#sleep(delay);
        } else delay = 0;
      } catch (error) {
        this.#stats.retries++;
        this.#stats.lastError = (error as Error).message;
        const rewound = this.#transport.rewind?.();
        if (rewound !== undefined) {
          position = Math.min(position, rewound);
          pending = [];
        }
        if (delay === 0) this.#logger.warn({ sink: this.name, err: error }, 'audit forwarding: receiver unavailable; retrying with back-off');
        delay = this.#backoff(delay);
        await this.#sleep(delay);
      }
    }
  }

  /** Offers dead letters to the receiver again; deletes those it takes. */
  async #redrive(): Promise<void> {
    this.#lastRedrive = Date.now();
    const letters = await this.#store.deadLetters(this.name, this.#options.batchSize);
    if (letters.length === 0) return;
    const records = letters.map((l) => JSON.parse(l.payload) as AuditRecord);
    const outcome = await this.#transport.send(records);
    const failed = new Set(outcome.failed.map((f) => f.seq));
    const delivered = letters.filter((l) => !failed.has(l.seq));
    await this.#store.deleteDeadLetters(delivered.map((l) => l.id));
    this.#stats.redelivered += delivered.length;
  }
}
