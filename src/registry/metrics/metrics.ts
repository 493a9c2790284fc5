/**
 * Prometheus metrics (`prom-client`) at `metrics.path` (default `/metrics`), mounted only when
 * `metrics.enabled`.
 *
 * - `portcullis_http_requests_total{method,route,status}` and
 *   `portcullis_http_request_duration_seconds{method,route}` (histogram). `route` is the endpoint
 *   kind (`manifest`, `blob`, `upload`, `uploads`, `tags`, `catalog`, `referrers`, `base`), or
 *   the route pattern outside /v2/, never the raw path (repository names would explode the
 *   label cardinality).
 * - `portcullis_http_received_bytes_total{route}` / `portcullis_http_sent_bytes_total{route}`:
 *   bytes on the wire (headers included), from the socket counters around each request, so that
 *   streamed bodies are counted without touching the streams.
 * - `portcullis_uploads_in_progress`: upload requests transferring data right now.
 * - `portcullis_events_total{type}`: registry events (pushes, pulls, deletes, ...), and
 *   `portcullis_auth_failures_total{method}`.
 * - Audit: records written, dropped, queued; per forwarding sink delivered, retries, dead letters.
 * - Node process metrics (CPU, memory, event-loop lag) with the `portcullis_` prefix.
 *
 * Access: with `bearerTokenFile` set, a scrape must send `Authorization: Bearer <token>`;
 * without it only loopback clients are answered (403 otherwise). One registry per server (no
 * prom-client global), so tests and several servers in one process do not share counters.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Audit } from '../audit/service.ts';
import type { EventBus } from '../events/bus.ts';

export interface MetricsSettings {
  enabled: boolean;
  path: string;
  bearerTokenFile?: string | undefined;
}

const distributionKinds: Array<[RegExp, string]> = [
  [/\/blobs\/uploads\/?$/, 'uploads'],
  [/\/blobs\/uploads\/[^/]+$/, 'upload'],
  [/\/blobs\/[^/]+$/, 'blob'],
  [/\/manifests\/[^/]+$/, 'manifest'],
  [/\/tags\/list$/, 'tags'],
  [/\/referrers\/[^/]+$/, 'referrers'],
];

/** A bounded route label for a request. */
export function routeLabel(request: FastifyRequest): string {
  const url = request.url;
  const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
  if (path.startsWith('/v2/')) {
    if (path === '/v2/') return 'base';
    if (path === '/v2/_catalog') return 'catalog';
    for (const [pattern, kind] of distributionKinds) if (pattern.test(path)) return kind;
    return 'other';
  }
  return request.routeOptions.url ?? 'unmatched';
}

interface Timing {
  start: bigint;
  upload: boolean;
}

const timings = new WeakMap<FastifyRequest, Timing>();
/**
 * Socket byte counters at the end of the previous response on that connection: requests on a
 * keep-alive connection follow each other, so what was read and written since belongs to this
 * request (a small request is read whole before any hook runs, so a start-of-request reading
 * would miss it).
 */
const counted = new WeakMap<Socket, { read: number; written: number }>();

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export class RegistryMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #duration: Histogram<'method' | 'route'>;
  readonly #received: Counter<'route'>;
  readonly #sent: Counter<'route'>;
  readonly #uploads: Gauge;

  constructor(deps: { events: EventBus; audit?: Audit | undefined }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
    this.#requests = new Counter({ name: 'portcullis_http_requests_total', help: 'HTTP requests by method, route and status', labelNames: ['method', 'route', 'status'], registers });
    this.#duration = new Histogram({
      name: 'portcullis_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.#received = new Counter({ name: 'portcullis_http_received_bytes_total', help: 'Bytes received (request line, headers and body) by route', labelNames: ['route'], registers });
    this.#sent = new Counter({ name: 'portcullis_http_sent_bytes_total', help: 'Bytes sent (status line, headers and body) by route', labelNames: ['route'], registers });
    this.#uploads = new Gauge({ name: 'portcullis_uploads_in_progress', help: 'Upload requests transferring data now', registers });
    const events = new Counter({ name: 'portcullis_events_total', help: 'Registry events (pushes, pulls, deletes, ...) by type', labelNames: ['type'], registers });
    const authFailures = new Counter({ name: 'portcullis_auth_failures_total', help: 'Failed credential checks by method', labelNames: ['method'], registers });
    deps.events.subscribe('*', (event) => {
      events.inc({ type: event.type });
      if (event.type === 'auth.failed') authFailures.inc({ method: event.method });
    });
    const audit = deps.audit;
    if (audit) {
      const stat = (name: string, help: string, type: 'counter' | 'gauge', value: () => number) =>
        type === 'counter'
          ? new Counter({ name, help, registers, collect() { this.reset(); this.inc(value()); } })
          : new Gauge({ name, help, registers, collect() { this.set(value()); } });
      stat('portcullis_audit_records_written_total', 'Audit records committed by this process', 'counter', () => audit.log.stats().written);
      stat('portcullis_audit_records_dropped_total', 'Audit observations dropped because the queue was full', 'counter', () => audit.log.stats().dropped);
      stat('portcullis_audit_queue_depth', 'Audit records waiting to be written', 'gauge', () => audit.log.stats().queued);
      const sinkStat = (name: string, help: string, pick: (s: ReturnType<Audit['forwarders'][number]['stats']>) => number) =>
        new Counter({
          name,
          help,
          labelNames: ['sink'],
          registers,
          collect() {
            this.reset();
            for (const f of audit.forwarders) this.inc({ sink: f.name }, pick(f.stats()));
          },
        });
      sinkStat('portcullis_audit_forwarded_total', 'Audit records delivered to a receiver', (s) => s.delivered + s.redelivered);
      sinkStat('portcullis_audit_forward_retries_total', 'Failed delivery attempts', (s) => s.retries);
      sinkStat('portcullis_audit_dead_letters_total', 'Audit records a receiver rejected, kept as dead letters', (s) => s.deadLettered);
    }
  }

  /** Adds the request hooks; call before the routes are registered. */
  instrument(app: FastifyInstance): void {
    app.addHook('onRequest', async (request) => {
      const upload = (request.method === 'PATCH' || request.method === 'PUT' || request.method === 'POST') && request.url.includes('/blobs/uploads');
      if (upload) this.#uploads.inc();
      timings.set(request, { start: process.hrtime.bigint(), upload });
    });
    const finish = (request: FastifyRequest, reply: FastifyReply | undefined) => {
      const timing = timings.get(request);
      if (!timing) return;
      timings.delete(request);
      if (timing.upload) this.#uploads.dec();
      const route = routeLabel(request);
      const socket = request.raw.socket as Socket | undefined;
      if (socket && typeof socket.bytesRead === 'number') {
        const before = counted.get(socket) ?? { read: 0, written: 0 };
        const now = { read: socket.bytesRead, written: socket.bytesWritten ?? 0 };
        counted.set(socket, now);
        if (now.read > before.read) this.#received.inc({ route }, now.read - before.read);
        if (now.written > before.written) this.#sent.inc({ route }, now.written - before.written);
      }
      this.#requests.inc({ method: request.method, route, status: reply ? String(reply.statusCode) : 'aborted' });
      this.#duration.observe({ method: request.method, route }, Number(process.hrtime.bigint() - timing.start) / 1e9);
    };
    app.addHook('onResponse', async (request, reply) => finish(request, reply));
    app.addHook('onRequestAbort', async (request) => finish(request, undefined));
  }

  /** Mounts the scrape endpoint. */
  async register(app: FastifyInstance, settings: MetricsSettings): Promise<void> {
    const token = settings.bearerTokenFile ? Buffer.from((await readFile(settings.bearerTokenFile, 'utf8')).trim()) : undefined;
    app.get(settings.path, async (request, reply) => {
      if (token) {
        const presented = Buffer.from(/^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '');
        if (presented.length !== token.length || !timingSafeEqual(presented, token)) {
          return reply.code(401).header('WWW-Authenticate', 'Bearer realm="metrics"').send({ errors: [{ code: 'UNAUTHORIZED', message: 'metrics need a bearer token' }] });
        }
      } else if (!isLoopback(request.ip)) {
        return reply.code(403).send({ errors: [{ code: 'DENIED', message: 'metrics are served to loopback clients only (set metrics.bearerTokenFile)' }] });
      }
      reply.header('Content-Type', this.registry.contentType).header('Cache-Control', 'no-store');
      return this.registry.metrics();
    });
  }
}
