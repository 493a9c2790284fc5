/**
 * Limits against slow and huge request bodies on the real listener (the header-side limits are in
 * slow-requests.test.ts): a body that does not arrive within edge.requestTimeoutSeconds is cut off
 * with 408; the token endpoint's form (64 KiB) and the management API's JSON (1 MiB) are bounded
 * (413 SIZE_INVALID in the registry's error format); a blob beyond limits.blobMaxBytes is refused (SIZE_INVALID)
 * and not stored.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';

const password = `Limits-${randomBytes(12).toString('base64url')}`;
const authorization = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
let dir: string;
let registry: Registry;
let base: string;
let port: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-body-limits-'));
  const config = validateConfig({
    server: { listen: '127.0.0.1:0' },
    storage: { dataDir: dir },
    log: { level: 'silent' },
    gc: { intervalSeconds: 0 },
    audit: { enabled: false },
    scanner: { enabled: false },
    auth: { mode: 'token', basicAuth: true },
    limits: { blobMaxBytes: 4096 },
    edge: { headersTimeoutSeconds: 1, requestTimeoutSeconds: 2, trustedNetworks: ['127.0.0.0/8'] },
  });
  registry = await buildRegistry(config, { adminPassword: password });
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  port = (registry.app.server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a body that does not arrive within edge.requestTimeoutSeconds is cut off with 408', async () => {
  const started = Date.now();
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`PATCH /api/v1/users/admin HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":`);
      // A trickle that keeps the socket busy (not idle) but never completes the body.
      const trickle = setInterval(() => socket.write(' '), 200);
      socket.on('close', () => clearInterval(trickle));
    });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the slow body was not cut off within 10 s'));
    }, 10_000).unref();
  });
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.ok(Date.now() - started < 6000, `cut off after ${Date.now() - started} ms`);
  assert.equal((await fetch(`${base}/v2/`, { headers: { authorization } })).status, 200, 'the server still answers');
});

test('the token endpoint form and the management API JSON are bounded (413 SIZE_INVALID)', async () => {
  const form = new URLSearchParams({ grant_type: 'password', username: 'admin', password, service: 'portcullis', scope: `repository:a/b:pull ${'x'.repeat(70 * 1024)}` });
  const token = await fetch(`${base}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
  // Refused by the body parser before the handler, so in the registry's envelope, not RFC 6749's.
  assert.equal(token.status, 413);
  assert.equal(((await token.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'SIZE_INVALID');
  const small = await fetch(`${base}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'password', username: 'admin', password, service: 'portcullis' }).toString() });
  assert.equal(small.status, 200);

  const api = await fetch(`${base}/api/v1/projects`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'big', padding: 'x'.repeat(1024 * 1024 + 1) }) });
  assert.equal(api.status, 413);
  assert.equal(((await api.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'SIZE_INVALID');
  assert.equal((await fetch(`${base}/api/v1/projects/big`, { headers: { authorization } })).status === 200, false, 'nothing was created');
});

test('a blob beyond limits.blobMaxBytes is refused and not stored; one within the limit is accepted', async () => {
  await fetch(`${base}/api/v1/projects`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'limits' }) });
  const put = async (size: number) => {
    const blob = randomBytes(size);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const res = await fetch(`${base}/v2/limits/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { authorization, 'content-type': 'application/octet-stream' }, body: blob });
    const text = await res.text();
    const head = await fetch(`${base}/v2/limits/app/blobs/${digest}`, { method: 'HEAD', headers: { authorization } });
    return { status: res.status, text, stored: head.status === 200 };
  };
  const within = await put(4096);
  assert.equal(within.status, 201, within.text);
  assert.ok(within.stored);
  const beyond = await put(4097);
  assert.ok([400, 413].includes(beyond.status), `${beyond.status} ${beyond.text}`);
  assert.equal(JSON.parse(beyond.text).errors[0].code, 'SIZE_INVALID');
  assert.equal(beyond.stored, false);
});
