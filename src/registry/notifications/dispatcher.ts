/**
 * Webhook deliveries. A bus event that a project's webhooks listen to becomes one delivery row
 * per webhook (written before any attempt: the durable outbox); workers lease due rows, POST the
 * signed CloudEvent, and record each attempt. A 2xx answer delivers; anything else (a refused
 * target, a timeout, a 3xx: redirects are not followed) is retried after
 * min(retryMaxMs, retryInitialMs x 2^(n-1)) x [0.5, 1) ("equal jitter", so that receivers coming
 * back are not hit by every registry at once) until `maxAttempts`, then the delivery is `failed`
 * (redeliver through the API).
 *
 * Semantics: at least once (a crash after the receiver answered and before the row is updated
 * sends it again: receivers deduplicate on the CloudEvent `id`, or the `X-Portcullis-Delivery`
 * header); no ordering, not even per target (deliveries run `concurrency` at a time and a
 * retried one is overtaken by later ones: order by the CloudEvent `time`). What is lost: events
 * published while the process dies before the delivery row is written (the bus is in memory).
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Counter as CounterType, Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { EventBus, RegistryEvent } from '../events/bus.ts';
import type { WebhookSettings } from './config.ts';
import { type Notification, notificationOf, projectOfEvent, webhookTypeOf } from './payload.ts';
import { type SecretBox, signatureHeader } from './secrets.ts';
import type { TargetPolicy } from './ssrf.ts';
import type { DeliveryRecord, WebhookRecord, WebhookStore } from './store.ts';

export interface DispatchLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

interface PostResult {
  responseCode: number | undefined;
  error: string | undefined;
}

const USER_AGENT = 'Portcullis-Webhook/1';
/** Bytes of a receiver's answer read at most (only the status matters). */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** How long a project's webhooks are cached. */
const HOOKS_TTL_MS = 2000;

export class WebhookDispatcher {
  readonly #store: WebhookStore;
  readonly #events: EventBus;
  readonly #box: SecretBox;
  readonly #targets: TargetPolicy;
  readonly #settings: WebhookSettings;
  readonly #logger: DispatchLogger | undefined;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #inFlight = new Map<string, AbortController>();
  readonly #work = new Set<Promise<unknown>>();
  /** Webhooks per project, briefly cached (invalidated by this process's changes; other replicas' within the TTL). */
  readonly #hooks = new Map<string, { at: number; hooks: Promise<WebhookRecord[]>; settled?: WebhookRecord[] }>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pumping = false;
  #again = false;
  #stopped = false;
  #lastPrune = 0;
  readonly #attempts: CounterType<'outcome'> | undefined;
  /** Kept-alive connections per target; each one was checked by the target policy's lookup when opened. */
  readonly #agents = { http: new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 30_000 }), https: new https.Agent({ keepAlive: true, maxSockets: 64, timeout: 30_000 }) };

  constructor(
    deps: { store: WebhookStore; events: EventBus; box: SecretBox; targets: TargetPolicy; logger?: DispatchLogger; metrics?: Registry | undefined; now?: () => number; random?: () => number },
    settings: WebhookSettings,
  ) {
    this.#store = deps.store;
    this.#events = deps.events;
    this.#box = deps.box;
    this.#targets = deps.targets;
    this.#settings = settings;
    this.#logger = deps.logger;
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    if (deps.metrics) {
      const registers = [deps.metrics];
      this.#attempts = new Counter({ name: 'portcullis_webhook_attempts_total', help: 'Webhook delivery attempts by outcome (delivered, retry, failed)', labelNames: ['outcome'], registers });
      const store = this.#store;
      new Gauge({
        name: 'portcullis_webhook_deliveries',
        help: 'Webhook deliveries stored, by status',
        labelNames: ['status'],
        registers,
        async collect() {
          const counts = await store.counts();
          for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
        },
      });
    }
  }

  start(): void {
    this.#unsubscribe = this.#events.subscribe('*', (event) => {
      // Every pull comes here: when the cached webhooks already say no, start no work at all.
      if (!this.#surelyUnwanted(event)) this.#track(this.onEvent(event));
    });
    this.#timer = setInterval(() => this.pump(), this.#settings.pollIntervalMs);
    this.#timer.unref();
    this.pump();
  }

  /** Stops polling, aborts attempts in flight (their rows stay pending) and waits for the workers. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer) clearInterval(this.#timer);
    for (const controller of this.#inFlight.values()) controller.abort();
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  /** Resolves when the work started so far is done (tests). */
  async idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
  }

  forgetProject(project: string): void {
    this.#hooks.delete(project);
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#work.add(work);
    void work.then(
      () => this.#work.delete(work),
      () => this.#work.delete(work),
    );
    return work;
  }

  #projectHooks(project: string): Promise<WebhookRecord[]> {
    const now = this.#now();
    const hit = this.#hooks.get(project);
    if (hit && now - hit.at < HOOKS_TTL_MS) return hit.hooks;
    const hooks = this.#store.list(project);
    const entry: { at: number; hooks: Promise<WebhookRecord[]>; settled?: WebhookRecord[] } = { at: now, hooks };
    this.#hooks.set(project, entry);
    hooks.then((list) => (entry.settled = list)).catch(() => undefined);
    if (this.#hooks.size > 10_000) this.#hooks.delete(this.#hooks.keys().next().value as string);
    hooks.catch(() => this.#hooks.delete(project));
    return hooks;
  }

  /** True when no webhook can want this event: no webhook type, or the project's fresh cached webhooks all decline it. */
  #surelyUnwanted(event: RegistryEvent): boolean {
    const type = webhookTypeOf(event);
    const project = type && projectOfEvent(event);
    if (!type || !project) return true;
    const hit = this.#hooks.get(project);
    if (!hit?.settled || this.#now() - hit.at >= HOOKS_TTL_MS) return false;
    return !hit.settled.some((h) => h.enabled && h.events.includes(type));
  }

  /** Turns a bus event into delivery rows for the project's matching, enabled webhooks. */
  async onEvent(event: RegistryEvent): Promise<void> {
    // cheap checks first: most events (pulls) match no webhook and are never serialised
    const type = webhookTypeOf(event);
    const project = type && projectOfEvent(event);
    if (!type || !project) return;
    const hooks = (await this.#projectHooks(project)).filter((h) => h.enabled && h.events.includes(type));
    if (hooks.length === 0) return;
    const notification = notificationOf(event, this.#settings.source);
    if (notification) await this.enqueue(hooks, notification);
  }

  async enqueue(hooks: WebhookRecord[], notification: Notification, redeliveryOf?: string): Promise<string[]> {
    const rows = hooks.map((h) => ({ id: randomUUID(), webhookId: h.id, project: h.project, eventType: notification.type, eventId: notification.eventId, payload: notification.payload, redeliveryOf }));
    await this.#store.enqueue(rows, this.#now());
    this.pump();
    return rows.map((r) => r.id);
  }

  /** Claims due deliveries up to the concurrency bound and starts them. */
  pump(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void this.#track(
      (async () => {
        try {
          do {
            this.#again = false;
            const free = this.#settings.concurrency - this.#inFlight.size;
            if (free <= 0 || this.#stopped) break;
            const now = this.#now();
            const claimed = await this.#store.claimDue(now, free, now + this.#settings.timeoutMs + 5000);
            for (const delivery of claimed) this.#track(this.#attempt(delivery));
            if (claimed.length === free) this.#again = true;
          } while (this.#again);
          await this.#maybePrune();
        } catch (error) {
          this.#logger?.error({ err: error }, 'webhook queue poll failed');
        } finally {
          this.#pumping = false;
        }
      })(),
    );
  }

  async #maybePrune(): Promise<void> {
    const now = this.#now();
    if (now - this.#lastPrune < 3_600_000) return;
    this.#lastPrune = now;
    const removed = await this.#store.prune(now - this.#settings.retentionDays * 86_400_000);
    if (removed > 0) this.#logger?.info({ removed }, 'old webhook deliveries removed');
  }

  /** Back-off before the next attempt after `attempts` failed ones. */
  backoffMs(attempts: number): number {
    const ceiling = Math.min(this.#settings.retryMaxMs, this.#settings.retryInitialMs * 2 ** Math.min(30, attempts - 1));
    return Math.round(ceiling * (0.5 + this.#random() / 2));
  }

  async #attempt(delivery: DeliveryRecord): Promise<void> {
    const controller = new AbortController();
    this.#inFlight.set(delivery.id, controller);
    try {
      const hook = await this.#store.byId(delivery.webhookId);
      const attempt = delivery.attempts + 1;
      const started = this.#now();
      let result: PostResult;
      if (!hook || !hook.enabled) result = { responseCode: undefined, error: hook ? 'webhook disabled' : 'webhook deleted' };
      else result = await this.#post(hook, delivery, attempt, controller.signal);
      if (controller.signal.aborted && this.#stopped) {
        await this.#store.release(delivery.id);
        return;
      }
      const latencyMs = Math.max(0, this.#now() - started);
      const ok = result.responseCode !== undefined && result.responseCode >= 200 && result.responseCode < 300;
      const final = ok || attempt >= this.#settings.maxAttempts || !hook || !hook.enabled;
      const status = ok ? 'delivered' : final ? 'failed' : 'pending';
      const nextAttemptAt = final ? this.#now() : this.#now() + this.backoffMs(attempt);
      await this.#store.recordAttempt(delivery.id, { attempt, at: this.#now(), responseCode: result.responseCode, latencyMs, error: result.error }, { status, nextAttemptAt });
      this.#attempts?.inc({ outcome: ok ? 'delivered' : final ? 'failed' : 'retry' });
      if (!ok) {
        const log = { delivery: delivery.id, webhook: delivery.webhookId, project: delivery.project, event: delivery.eventType, attempt, responseCode: result.responseCode, error: result.error };
        if (final) this.#logger?.warn(log, 'webhook delivery failed for good');
        else this.#logger?.info({ ...log, retryInMs: nextAttemptAt - this.#now() }, 'webhook delivery failed, will retry');
      }
      if (!final) this.#scheduleWake(nextAttemptAt - this.#now());
    } catch (error) {
      this.#logger?.error({ err: error, delivery: delivery.id }, 'webhook delivery bookkeeping failed');
    } finally {
      this.#inFlight.delete(delivery.id);
      this.pump();
    }
  }

  /** A retry due before the next poll starts on time. */
  #scheduleWake(ms: number): void {
    if (ms >= this.#settings.pollIntervalMs || this.#stopped) return;
    setTimeout(() => this.pump(), Math.max(0, ms)).unref();
  }

  #post(hook: WebhookRecord, delivery: DeliveryRecord, attempt: number, signal: AbortSignal): Promise<PostResult> {
    let url: URL;
    let secret: string;
    try {
      url = this.#targets.parse(hook.url);
      const literal = url.hostname.replace(/^\[|\]$/g, '');
      const refused = /^[\d.]+$|:/.test(literal) ? this.#targets.refusal(literal) : undefined;
      if (refused) return Promise.resolve({ responseCode: undefined, error: `refused: ${refused}` });
      secret = this.#box.open(hook.sealedSecret);
    } catch (error) {
      return Promise.resolve({ responseCode: undefined, error: (error as Error).message });
    }
    const body = delivery.payload;
    const headers = {
      'content-type': 'application/cloudevents+json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': USER_AGENT,
      'x-portcullis-event': delivery.eventType,
      'x-portcullis-delivery': delivery.id,
      'x-portcullis-webhook': hook.id,
      'x-portcullis-attempt': String(attempt),
      'x-portcullis-signature': signatureHeader(secret, body, Math.floor(this.#now() / 1000)),
    };
    const secure = url.protocol === 'https:';
    const client = secure ? https : http;
    return new Promise<PostResult>((resolve) => {
      let settled = false;
      const done = (result: PostResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const request = client.request(url, { method: 'POST', headers, lookup: this.#targets.lookup() as never, signal, agent: secure ? this.#agents.https : this.#agents.http }, (response) => {
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) response.destroy();
        });
        response.on('end', () => done({ responseCode: response.statusCode, error: response.statusCode !== undefined && response.statusCode >= 300 ? `HTTP ${response.statusCode}` : undefined }));
        response.on('error', () => done({ responseCode: response.statusCode, error: response.statusCode !== undefined && response.statusCode >= 300 ? `HTTP ${response.statusCode}` : undefined }));
        response.on('close', () => done({ responseCode: response.statusCode, error: response.statusCode !== undefined && response.statusCode >= 300 ? `HTTP ${response.statusCode}` : undefined }));
      });
      const timer = setTimeout(() => {
        request.destroy(new Error(`timed out after ${this.#settings.timeoutMs} ms`));
      }, this.#settings.timeoutMs);
      request.on('error', (error: NodeJS.ErrnoException) => done({ responseCode: undefined, error: error.name === 'TargetRefused' ? `refused: ${error.message}` : `${error.code ? `${error.code}: ` : ''}${error.message}` }));
      request.end(body);
    });
  }
}
