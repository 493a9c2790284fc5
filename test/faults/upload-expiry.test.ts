/**
 * Abandoned upload sessions expire: after uploads.expireAfterSeconds without activity the
 * server's scheduled collection removes the session and its partial data, and the session then
 * answers 404 BLOB_UPLOAD_UNKNOWN to every request. Partial data whose session is gone (left by
 * a crash) is removed too.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { uploadFiles } from '../support/consistency.ts';
import { Client, expectError, expectStatus, pushBlob, randomBytesOf, sha256 } from '../support/http-target.ts';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';

let registry: RunningRegistry;
let client: Client;

before(async () => {
  registry = await startRegistry({ env: { PORTCULLIS_UPLOADS_EXPIRE_AFTER_SECONDS: '1', PORTCULLIS_GC_INTERVAL_SECONDS: '1', PORTCULLIS_LOG_LEVEL: 'error' } });
  client = new Client(registry.url);
});

after(async () => {
  client?.close();
  await registry?.stop();
  if (registry) await rm(registry.dataDir, { recursive: true, force: true });
});

async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('an abandoned upload session expires: its data is removed and it answers BLOB_UPLOAD_UNKNOWN', async () => {
  const repo = 'expiry/app';
  const content = randomBytesOf(64 * 1024, 'expiry');
  const start = await client.request('POST', `/v2/${repo}/blobs/uploads/`);
  expectStatus(start, 202);
  const patch = await client.request('PATCH', client.pathOf(start.header('location')!, start.path), {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${content.length / 2 - 1}` },
    body: content.subarray(0, content.length / 2),
  });
  expectStatus(patch, 202);
  const path = client.pathOf(patch.header('location')!, patch.path);
  const id = /\/blobs\/uploads\/([^/?]+)/.exec(path)![1]!;
  const partial = join(registry.dataDir, 'uploads', id);
  assert.ok(existsSync(partial), 'the partial data is in the blob store');

  // Partial data without a session, as a crash between the two writes of a new session leaves it.
  const stray = '0b6c2a57-7a59-4bd5-9d5e-0ad1c4a2b7d3';
  await writeFile(join(registry.dataDir, 'uploads', stray), 'left by a crash');

  await eventually(async () => (await client.get(path)).status === 404, 'the session to expire');
  expectError(await client.get(path), 404, 'BLOB_UPLOAD_UNKNOWN');
  await eventually(async () => !(await uploadFiles(registry.dataDir)).includes(stray), 'the stray partial data to be removed');
  assert.equal(existsSync(partial), false, 'the partial data is removed');

  expectError(
    await client.request('PATCH', path, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${content.length / 2}-${content.length - 1}` },
      body: content.subarray(content.length / 2),
    }),
    404,
    'BLOB_UPLOAD_UNKNOWN',
  );
  expectError(await client.request('PUT', `${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(sha256(content))}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  expectError(await client.delete(path), 404, 'BLOB_UPLOAD_UNKNOWN');
  expectStatus(await client.head(`/v2/${repo}/blobs/${sha256(content)}`), 404);

  // The repository works as before: a new upload of the same content succeeds.
  await pushBlob(client, repo, content);
  expectStatus(await client.head(`/v2/${repo}/blobs/${sha256(content)}`), 200);
});
