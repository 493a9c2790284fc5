/**
 * Forwarding against real receivers: a TCP and a TLS listener that parse octet-counted RFC 5424
 * messages (including a receiver restart), and an HTTP CloudEvents receiver that fails, then
 * recovers, and rejects one record for good. Nothing is lost; duplicates are possible (at least
 * once) and are identified by seq.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { Forwarder, type ForwardSink } from '../../src/registry/audit/forward/forwarder.ts';
import type { AuditRecord } from '../../src/registry/audit/record.ts';
import { entry, fill } from './chain.suite.ts';
import { type AuditFixture, sqliteFixture } from './support.ts';

const quiet = { warn: () => undefined, error: (o: object) => console.error(o) };
const options = { batchSize: 50, retryInitialMs: 20, retryMaxMs: 200, maxAttempts: 3, pollMs: 20 };

interface Syslog {
  pri: number;
  version: string;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sdId: string;
  params: Record<string, string>;
  message: AuditRecord;
}

/** Parses one RFC 5424 message as this forwarder writes it (one SD element, BOM + JSON message). */
export function parseRfc5424(text: string): Syslog {
  const header = /^<(\d{1,3})>(1) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(text);
  assert.ok(header, `not an RFC 5424 header: ${text.slice(0, 80)}`);
  let rest = text.slice(header[0].length);
  assert.equal(rest[0], '[', 'structured data');
  const sdId = /^\[([^ \]=" ]{1,32})/.exec(rest)![1]!;
  rest = rest.slice(sdId.length + 1);
  const params: Record<string, string> = {};
  for (;;) {
    const param = /^ ([^ \]=" ]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"/.exec(rest);
    if (!param) break;
    params[param[1]!] = param[2]!.replace(/\\(["\\\]])/g, '$1');
    rest = rest.slice(param[0].length);
  }
  assert.equal(rest.slice(0, 3), '] \ufeff', 'end of SD, then a BOM');
  assert.match(header[3]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$/);
  return {
    pri: Number(header[1]),
    version: header[2]!,
    timestamp: header[3]!,
    hostname: header[4]!,
    appName: header[5]!,
    procId: header[6]!,
    msgId: header[7]!,
    sdId,
    params,
    message: JSON.parse(rest.slice(3)) as AuditRecord,
  };
}

/** A syslog receiver: octet-counting frames over TCP or TLS, every message parsed. */
class SyslogReceiver {
  readonly messages: Syslog[] = [];
  readonly #sockets = new Set<Socket>();
  server: Server | undefined;
  port = 0;

  readonly tls: { key: Buffer; cert: Buffer } | undefined;

  constructor(tls?: { key: Buffer; cert: Buffer }) {
    this.tls = tls;
  }

  async listen(port = 0): Promise<void> {
    const onConnection = (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => undefined);
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        for (;;) {
          const space = buffer.indexOf(0x20);
          if (space < 0) break;
          const length = Number(buffer.subarray(0, space).toString());
          assert.ok(Number.isInteger(length) && length > 0, 'MSG-LEN');
          if (buffer.length < space + 1 + length) break;
          this.messages.push(parseRfc5424(buffer.subarray(space + 1, space + 1 + length).toString('utf8')));
          buffer = buffer.subarray(space + 1 + length);
        }
      });
    };
    this.server = this.tls ? createTlsServer({ key: this.tls.key, cert: this.tls.cert }, onConnection) : createTcpServer(onConnection);
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Stops reading (bytes pile up in the socket buffers). */
  stall(): void {
    for (const socket of this.#sockets) socket.pause();
  }

  /** Stops like a crashed receiver: connections reset, nothing more read. */
  async crash(): Promise<void> {
    for (const socket of this.#sockets) socket.resetAndDestroy();
    await new Promise((resolve) => this.server!.close(resolve));
  }

  seqs(): Set<number> {
    return new Set(this.messages.map((m) => Number(m.params.seq)));
  }
}

async function until(what: string, condition: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function syslogSink(url: string, extra: Partial<ForwardSink> = {}): ForwardSink {
  return { kind: 'syslog', url, facility: 13, appName: 'portcullis', enterpriseId: 32473, settleMs: 300, connectTimeoutMs: 2000, startAt: 'oldest', hostname: 'registry.example', ...extra } as ForwardSink;
}

async function withFixture(fn: (f: AuditFixture) => Promise<void>): Promise<void> {
  const f = await sqliteFixture();
  try {
    await fn(f);
  } finally {
    await f.cleanup();
  }
}

test('syslog over TCP: RFC 5424 with octet counting; a receiver crash loses nothing', () =>
  withFixture(async (f) => {
    const receiver = new SyslogReceiver();
    await receiver.listen();
    const log = f.log();
    await fill(log, 120);
    await log.append(entry(120, { action: 'auth.failed', outcome: 'failure', reason: 'bad "password"] \\ here', actor: { kind: 'user', name: 'mallory', auth: 'password' } }));
    const forwarder = new Forwarder({ store: f.store, sink: syslogSink(`tcp://127.0.0.1:${receiver.port}`), logger: quiet }, options);
    forwarder.start();
    try {
      await until('121 messages', () => receiver.seqs().size === 121);
      const failed = receiver.messages.find((m) => m.params.seq === '121')!;
      assert.equal(failed.pri, 13 * 8 + 4, 'facility log audit, severity warning');
      assert.equal(failed.version, '1');
      assert.equal(failed.hostname, 'registry.example');
      assert.equal(failed.appName, 'portcullis');
      assert.equal(failed.procId, String(process.pid));
      assert.equal(failed.msgId, 'auth.failed');
      assert.equal(failed.sdId, 'portcullis@32473');
      assert.equal(failed.params.actor, 'mallory');
      assert.equal(failed.params.reason, 'bad "password"] \\ here');
      assert.equal(failed.params.outcome, 'failure');
      assert.equal(failed.message.seq, 121);
      assert.equal(failed.params.hash, failed.message.hash);
      assert.equal(receiver.messages.find((m) => m.params.seq === '1')!.pri, 13 * 8 + 6);

      // The receiver stalls, records are written into its socket (accepted by the kernel, never
      // read), then it crashes: those bytes are lost, so the forwarder must send them again.
      await until('the cursor to settle', async () => (await f.store.cursor(forwarder.name)) === 121);
      receiver.stall();
      await fill(log, 80, 200);
      await until('the records to be written', () => forwarder.stats().delivered >= 201);
      assert.ok((await f.store.cursor(forwarder.name))! < 201, 'not acknowledged within the settle time');
      await receiver.crash();
      assert.equal(receiver.seqs().has(122), false, 'the stalled receiver never read record 122');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const restarted = new SyslogReceiver();
      await restarted.listen(receiver.port);
      await until('the records lost in the crash, sent again', () => {
        const seen = new Set([...receiver.seqs(), ...restarted.seqs()]);
        return Array.from({ length: 201 }, (_, i) => i + 1).every((seq) => seen.has(seq));
      });
      await fill(log, 40, 400);
      await until('the records after', () => restarted.seqs().has(241));
      await until('the cursor to catch up', async () => (await f.store.cursor(forwarder.name)) === 241);
      await restarted.crash();
    } finally {
      await forwarder.stop();
      await log.close();
      await receiver.crash().catch(() => undefined);
    }
  }));

test('syslog over TLS verifies the receiver and delivers every record', () =>
  withFixture(async (f) => {
    const keyFile = join(f.dir, 'tls.key');
    const certFile = join(f.dir, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
    const receiver = new SyslogReceiver({ key: await readFile(keyFile), cert: await readFile(certFile) });
    await receiver.listen();
    const log = f.log();
    await fill(log, 60);
    // Without the CA the receiver is not trusted: nothing is sent, the cursor stays.
    const untrusted = new Forwarder({ store: f.store, sink: syslogSink(`tls://localhost:${receiver.port}`, { name: 'untrusted' }), logger: quiet }, options);
    untrusted.start();
    await until('a TLS failure', () => untrusted.stats().retries > 0);
    await untrusted.stop();
    assert.equal(receiver.messages.length, 0);
    assert.equal(await f.store.cursor('untrusted'), 0);
    const forwarder = new Forwarder({ store: f.store, sink: syslogSink(`tls://localhost:${receiver.port}`, { caFile: certFile }), logger: quiet }, options);
    forwarder.start();
    try {
      await until('60 messages over TLS', () => receiver.seqs().size === 60);
      assert.equal(receiver.messages[0]!.message.action, entry(0).action);
    } finally {
      await forwarder.stop();
      await log.close();
      await receiver.crash();
    }
  }));

test('CloudEvents over HTTP: a receiver that fails then recovers gets everything; a rejected record is dead-lettered, then redriven', () =>
  withFixture(async (f) => {
    const received: Array<Record<string, unknown>> = [];
    let mode: 'down' | 'up' = 'down';
    let poisonAccepted = false;
    const requests = { total: 0, failed: 0 };
    const server = createHttpServer(async (request: IncomingMessage, response) => {
      requests.total++;
      let body = '';
      for await (const chunk of request) body += chunk;
      const event = JSON.parse(body) as Record<string, unknown>;
      assert.equal(request.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
      assert.equal(request.headers.authorization, 'Bearer s3cret');
      if (mode === 'down') {
        requests.failed++;
        response.writeHead(503).end();
        return;
      }
      if ((event.data as AuditRecord).seq === 77 && !poisonAccepted) {
        response.writeHead(422).end('unprocessable');
        return;
      }
      received.push(event);
      response.writeHead(202).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await writeFile(join(f.dir, 'token'), 's3cret\n');
    const sink = { kind: 'cloudevents', url: `http://127.0.0.1:${port}/events`, source: '/portcullis/test', bearerTokenFile: join(f.dir, 'token'), headers: {}, timeoutMs: 2000, concurrency: 4, startAt: 'oldest' } as ForwardSink;
    const log = f.log();
    await fill(log, 150);
    const forwarder = new Forwarder({ store: f.store, sink, logger: quiet }, { ...options, redriveMs: 200 });
    forwarder.start();
    try {
      await until('failed deliveries', () => requests.failed >= 20);
      assert.equal(await f.store.cursor(forwarder.name), 0, 'nothing is acknowledged while the receiver is down');
      mode = 'up';
      await fill(log, 50, 150);
      const seqs = () => new Set(received.map((e) => (e.data as AuditRecord).seq));
      await until('all but the rejected record', () => seqs().size === 199);
      assert.equal(seqs().has(77), false);
      await until('the dead letter', async () => (await f.store.deadLetterCount(forwarder.name)) === 1);
      const [letter] = await f.store.deadLetters(forwarder.name, 10);
      assert.equal(letter!.seq, 77);
      assert.equal(letter!.attempts, 3);
      assert.match(letter!.lastError, /HTTP 422/);
      // The receiver is fixed: the idle forwarder offers the dead letter again.
      poisonAccepted = true;
      await until('the redriven record', () => seqs().has(77));
      await until('the dead letter to go', async () => (await f.store.deadLetterCount(forwarder.name)) === 0);
      const event = received.find((e) => (e.data as AuditRecord).seq === 1)!;
      assert.equal(event.specversion, '1.0');
      assert.equal(event.source, '/portcullis/test');
      assert.equal(event.type, `io.portcullis.audit.${entry(0).action}`);
      assert.equal(event.datacontenttype, 'application/json');
      assert.equal(event.subject, entry(0).repository);
      assert.match(String(event.id), /^1-[0-9a-f]{16}$/);
      assert.equal(event.time, (event.data as AuditRecord).time);
      assert.equal(await f.store.cursor(forwarder.name), 200);
    } finally {
      await forwarder.stop();
      await log.close();
      await new Promise((resolve) => server.close(resolve));
    }
  }));

test('a restarted forwarder resumes from its cursor; a new sink starts at the head by default', () =>
  withFixture(async (f) => {
    const receiver = new SyslogReceiver();
    await receiver.listen();
    const log = f.log();
    await fill(log, 30);
    const fresh = new Forwarder({ store: f.store, sink: syslogSink(`tcp://127.0.0.1:${receiver.port}`, { name: 'fresh', startAt: 'now', settleMs: 0 }), logger: quiet }, options);
    fresh.start();
    await until('the new sink to start', async () => (await f.store.cursor('fresh')) === 30);
    await fill(log, 10, 30);
    await until('only new records', () => receiver.seqs().size === 10);
    assert.equal(Math.min(...receiver.seqs()), 31);
    await fresh.stop();
    await fill(log, 10, 40);
    const again = new Forwarder({ store: f.store, sink: syslogSink(`tcp://127.0.0.1:${receiver.port}`, { name: 'fresh', startAt: 'now', settleMs: 0 }), logger: quiet }, options);
    again.start();
    await until('the records written while stopped', () => receiver.seqs().size === 20);
    await again.stop();
    await log.close();
    await receiver.crash();
  }));
