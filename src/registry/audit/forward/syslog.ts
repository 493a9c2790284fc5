/**
 * Syslog forwarding: RFC 5424 messages over TCP or TLS with octet-counting framing (RFC 6587
 * section 3.4.1, the framing RFC 5425 mandates for TLS): `MSG-LEN SP SYSLOG-MSG`.
 *
 * One message per record:
 * `<PRI>1 TIME HOST portcullis PID ACTION [portcullis@PEN seq=".." hash=".." actor=".." ...] BOM{json}`
 * with facility `facility` (default 13, "log audit") and severity by outcome (success:
 * informational, denied: notice, failure: warning, error: error). The structured data carries
 * the fields a SIEM filters on; the message is the whole record as JSON.
 *
 * Delivery: TCP acknowledges nothing at the application level, so a record counts as delivered
 * once it has sat on a healthy connection for `settleMs`. When the connection fails, the
 * records written within that window are sent again on the next connection (at-least-once: a
 * receiver may see them twice; `seq` and `hash` identify duplicates).
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import type { AuditRecord } from '../record.ts';
import type { SendOutcome, Transport } from './forwarder.ts';

export interface SyslogSink {
  kind: 'syslog';
  name?: string | undefined;
  /** `tcp://host:port` or `tls://host:port`. */
  url: string;
  /** PEM CA bundle to verify the receiver (TLS); default: the system store. */
  caFile?: string | undefined;
  /** Client certificate and key (PEM) for mutual TLS. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** Server name to verify (TLS); default: the host of `url`. */
  serverName?: string | undefined;
  facility: number;
  /** HOSTNAME field; default: this machine's name. */
  hostname?: string | undefined;
  appName: string;
  /** Private Enterprise Number of the structured-data id; 32473 is the one reserved for documentation (RFC 5612). */
  enterpriseId: number;
  settleMs: number;
  connectTimeoutMs: number;
}

const severities: Record<string, number> = { success: 6, denied: 5, failure: 4, error: 3 };

/** RFC 5424 PRINTUSASCII, no spaces, at most `max` characters; `-` when empty. */
function token(value: string | undefined, max: number): string {
  const cleaned = (value ?? '').replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return cleaned === '' ? '-' : cleaned;
}

/** SD-PARAM value escaping (section 6.3.3): `"`, `\` and `]`. */
function paramValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** One RFC 5424 message (without framing). */
export function formatSyslog(record: AuditRecord, options: { facility: number; hostname: string; appName: string; procId: string; enterpriseId: number }): string {
  const pri = options.facility * 8 + (severities[record.outcome] ?? 5);
  const params: Array<[string, string | undefined]> = [
    ['seq', String(record.seq)],
    ['hash', record.hash],
    ['actorKind', record.actor.kind],
    ['actor', record.actor.name],
    ['auth', record.actor.auth],
    ['client', record.client],
    ['action', record.action],
    ['outcome', record.outcome],
    ['repository', record.repository],
    ['digest', record.digest],
    ['tag', record.tag],
    ['reason', record.reason],
  ];
  const sd = `[portcullis@${options.enterpriseId}${params
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${paramValue(v!)}"`)
    .join('')}]`;
  return `<${pri}>1 ${record.time} ${token(options.hostname, 255)} ${token(options.appName, 48)} ${token(options.procId, 128)} ${token(record.action, 32)} ${sd} \ufeff${JSON.stringify(record)}`;
}

/** Octet-counting frame: `MSG-LEN SP MSG`, the length in bytes of the UTF-8 message. */
export function frame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `), body]);
}

export class SyslogTransport implements Transport {
  readonly #sink: SyslogSink;
  readonly #host: string;
  readonly #port: number;
  readonly #tls: boolean;
  readonly #format: Parameters<typeof formatSyslog>[1];
  #socket: Socket | undefined;
  #connecting: Promise<Socket> | undefined;
  /** The socket being connected (destroyed by close()). */
  #pending: Socket | undefined;
  #closed = false;
  /** Records written on the current connection within the settle window. */
  #recent: Array<{ seq: number; at: number }> = [];
  #broken = false;

  constructor(sink: SyslogSink) {
    const url = new URL(sink.url);
    if (url.protocol !== 'tcp:' && url.protocol !== 'tls:') throw new Error(`syslog url must be tcp:// or tls://, not ${sink.url}`);
    this.#sink = sink;
    this.#tls = url.protocol === 'tls:';
    this.#host = url.hostname.replace(/^\[|\]$/g, '');
    this.#port = Number(url.port || (this.#tls ? 6514 : 514));
    this.#format = { facility: sink.facility, hostname: sink.hostname ?? osHostname(), appName: sink.appName, procId: String(process.pid), enterpriseId: sink.enterpriseId };
  }

  #connect(): Promise<Socket> {
    if (this.#socket && !this.#broken) return Promise.resolve(this.#socket);
    this.#connecting ??= new Promise<Socket>((resolve, reject) => {
      const s = this.#sink;
      const socket = this.#tls
        ? tlsConnect({
            host: this.#host,
            port: this.#port,
            servername: s.serverName ?? this.#host,
            ca: s.caFile ? readFileSync(s.caFile) : undefined,
            cert: s.certFile ? readFileSync(s.certFile) : undefined,
            key: s.keyFile ? readFileSync(s.keyFile) : undefined,
          })
        : netConnect({ host: this.#host, port: this.#port });
      this.#pending = socket;
      if (this.#closed) socket.destroy(new Error('syslog transport closed'));
      const timer = setTimeout(() => socket.destroy(new Error(`connect timeout after ${s.connectTimeoutMs} ms`)), s.connectTimeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', fail);
      socket.once(this.#tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setKeepAlive(true, 10_000);
        this.#broken = false;
        const breakConnection = () => {
          if (this.#socket === socket) this.#broken = true;
        };
        socket.on('error', breakConnection);
        socket.on('close', breakConnection);
        // Receivers send nothing; data or end means the peer is going away.
        socket.on('data', () => undefined);
        socket.on('end', () => {
          breakConnection();
          socket.destroy();
        });
        this.#socket = socket;
        resolve(socket);
      });
    }).finally(() => {
      this.#connecting = undefined;
      this.#pending = undefined;
    });
    return this.#connecting;
  }

  async send(records: AuditRecord[]): Promise<SendOutcome> {
    if (this.#broken && this.#recent.length > 0) throw new Error('syslog connection broke with records not yet settled; sending them again');
    if (this.#broken) this.#socket?.destroy();
    const socket = await this.#connect();
    const payload = Buffer.concat(records.map((r) => frame(formatSyslog(r, this.#format))));
    await new Promise<void>((resolve, reject) => {
      const onClose = () => reject(new Error('syslog connection closed while writing'));
      socket.once('close', onClose);
      socket.write(payload, (error) => {
        socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      });
    });
    if (this.#broken) throw new Error('syslog connection broke while writing');
    const now = Date.now();
    for (const r of records) this.#recent.push({ seq: r.seq, at: now });
    return { failed: [] };
  }

  /** Records through `position` are delivered except those still inside the settle window. */
  settledThrough(position: number): number {
    const cutoff = Date.now() - this.#sink.settleMs;
    while (!this.#broken && this.#recent.length > 0 && this.#recent[0]!.at <= cutoff) this.#recent.shift();
    return this.#recent.length > 0 ? this.#recent[0]!.seq - 1 : position;
  }

  /** After a broken connection: where to resend from (the records inside the settle window). */
  rewind(): number | undefined {
    if (!this.#broken || this.#recent.length === 0) return undefined;
    const from = this.#recent[0]!.seq - 1;
    this.#recent = [];
    return from;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pending?.destroy(new Error('syslog transport closed'));
    const socket = this.#socket;
    this.#socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}
