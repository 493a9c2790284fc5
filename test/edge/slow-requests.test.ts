/**
 * Limits against slow or huge requests on the real listener: a client that never finishes its
 * headers is cut off after edge.headersTimeoutSeconds (slowloris), and a header block beyond
 * edge.maxHeaderBytes is refused with 431.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';

const dir = await mkdtemp(join(tmpdir(), 'portcullis-slow-'));
let registry: Registry | undefined;
after(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Sends `text` and collects what the server answers until it closes the connection. */
function exchange(port: number, text: string, timeoutMs = 10_000): Promise<{ answer: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    socket.on('error', () => undefined);
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after ${timeoutMs} ms`));
    }, timeoutMs).unref();
  });
}

test('slow headers are cut off; oversized headers get 431', async () => {
  const config = validateConfig({
    server: { listen: '127.0.0.1:0' },
    storage: { dataDir: dir },
    log: { level: 'silent' },
    gc: { intervalSeconds: 0 },
    audit: { enabled: false },
    scanner: { enabled: false },
    auth: { mode: 'none' },
    edge: { headersTimeoutSeconds: 1, maxHeaderBytes: 8192 },
  });
  registry = await buildRegistry(config);
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (registry.app.server.address() as { port: number }).port;

  const slow = await exchange(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  assert.match(slow.answer, /^HTTP\/1\.1 408/, 'Request Timeout');
  assert.ok(slow.ms < 5000, `cut off after ${slow.ms} ms`);

  const huge = await exchange(port, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
  assert.match(huge.answer, /^HTTP\/1\.1 431/, 'Request Header Fields Too Large');

  const fine = await fetch(`http://127.0.0.1:${port}/v2/`);
  assert.equal(fine.status, 200);
});
