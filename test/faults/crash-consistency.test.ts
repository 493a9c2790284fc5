/**
 * Crash consistency: the server is killed with SIGKILL while blob uploads (monolithic bodies and
 * chunked sessions mid-way), manifest pushes and a stream of image pushes are in flight, then
 * started again on the same data. Afterwards:
 *
 * - every acknowledged push is there, and every tag resolves to a manifest whose bytes hash to
 *   its digest and whose blobs are readable with bytes that hash to theirs;
 * - no blob whose upload was not completed is visible, and no blob file is torn;
 * - an upload session interrupted mid-way continues where it was acknowledged, or is reported
 *   BLOB_UPLOAD_UNKNOWN (never stuck on 416, never a 500);
 * - `portcullis gc` then removes the debris (unreferenced blobs, abandoned partial data) and leaves
 *   every image pullable.
 *
 * Runs on SQLite metadata, and on PostgreSQL metadata (a fresh database) when it is reachable;
 * under CI=true an unreachable PostgreSQL fails the run.
 */
import assert from 'node:assert/strict';
import { rm, stat } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertBlobFilesIntact, assertPullable, listAllTags, uploadFiles } from '../support/consistency.ts';
import { Client, type Image, MT, expectError, expectStatus, expectUploadRange, imageManifest, pushBlob, pushImage, randomBytesOf, sha256 } from '../support/http-target.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';
import { type RunningRegistry, runGc, startRegistry } from '../support/registry-process.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const repo = 'crash/app';

/** Sends the headers and `prefix` of a request whose body is longer, then stalls until the server dies. */
function stalledRequest(baseUrl: string, method: string, path: string, headers: Record<string, string | number>, prefix: Buffer): void {
  const url = new URL(baseUrl);
  const req = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: false });
  req.on('error', () => undefined);
  req.on('response', (res) => res.resume());
  req.write(prefix);
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function uploadSize(dataDir: string, id: string): Promise<number> {
  return (await stat(join(dataDir, 'uploads', id)).catch(() => undefined))?.size ?? -1;
}

function withDigest(path: string, digest: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

function uploadId(path: string): string {
  const id = /\/blobs\/uploads\/([^/?]+)/.exec(path)?.[1];
  assert.ok(id, `no upload id in ${path}`);
  return id;
}

/** POST, then PATCH of `content[0, acknowledged)`; returns the session's path after the chunk. */
async function startChunked(client: Client, content: Buffer, acknowledged: number): Promise<string> {
  const start = await client.request('POST', `/v2/${repo}/blobs/uploads/`);
  expectStatus(start, 202);
  const patch = await client.request('PATCH', client.pathOf(start.header('location')!, start.path), {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${acknowledged - 1}` },
    body: content.subarray(0, acknowledged),
  });
  expectStatus(patch, 202);
  return client.pathOf(patch.header('location')!, patch.path);
}

/**
 * Finishes an interrupted session after the restart: sends the bytes the session lacks and
 * commits. 'continued' when the blob is now there, 'unknown' when the session was reported gone.
 */
async function resume(client: Client, path: string, content: Buffer, acknowledged: number): Promise<'continued' | 'unknown'> {
  const status = await client.get(path);
  if (status.status === 404) {
    expectError(status, 404, 'BLOB_UPLOAD_UNKNOWN');
    return 'unknown';
  }
  expectStatus(status, 204);
  expectUploadRange(status, acknowledged);
  let next = path;
  if (acknowledged < content.length) {
    const patch = await client.request('PATCH', path, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${acknowledged}-${content.length - 1}` },
      body: content.subarray(acknowledged),
    });
    expectStatus(patch, 202);
    expectUploadRange(patch, content.length);
    next = client.pathOf(patch.header('location')!, patch.path);
  }
  expectStatus(await client.request('PUT', withDigest(next, sha256(content))), 201);
  return 'continued';
}

async function crashAndRecover(env: Record<string, string>): Promise<Record<string, 'continued' | 'unknown'>> {
  // Blobs go as soon as nothing references them, so `gc` at the end shows what is referenced.
  const settings = { ...env, PORTCULLIS_GC_BLOB_GRACE_SECONDS: '0', PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_LOG_LEVEL: 'error' };
  const first: RunningRegistry = await startRegistry({ env: settings });
  const dataDir = first.dataDir;
  const c1 = new Client(first.url);
  let second: RunningRegistry | undefined;
  let c2: Client | undefined;
  try {
    // Acknowledged before the crash.
    const stable = await pushImage(c1, repo, { tag: 'stable', layers: 2, seed: 'crash-stable' });

    // S1: a chunked session idle after its first chunk.
    const s1 = randomBytesOf(300 * KiB, 'crash-s1');
    const s1Path = await startChunked(c1, s1, 100 * KiB);

    // S2: a chunked session whose second chunk is being received when the server dies.
    const s2 = randomBytesOf(1 * MiB, 'crash-s2');
    const s2Acked = 256 * KiB;
    const s2Path = await startChunked(c1, s2, s2Acked);
    stalledRequest(first.url, 'PATCH', s2Path, { 'Content-Type': 'application/octet-stream', 'Content-Range': `${s2Acked}-${s2.length - 1}`, 'Content-Length': s2.length - s2Acked }, s2.subarray(s2Acked, s2Acked + 128 * KiB));

    // S3: POST then a monolithic PUT whose body is being received.
    const s3 = randomBytesOf(2 * MiB, 'crash-s3');
    const s3Start = await c1.request('POST', `/v2/${repo}/blobs/uploads/`);
    expectStatus(s3Start, 202);
    const s3Path = c1.pathOf(s3Start.header('location')!, s3Start.path);
    stalledRequest(first.url, 'PUT', withDigest(s3Path, sha256(s3)), { 'Content-Type': 'application/octet-stream', 'Content-Length': s3.length }, s3.subarray(0, 512 * KiB));

    // S4: a single-request upload (POST ?digest=) being received; the client never learns its id.
    const s4 = randomBytesOf(4 * MiB, 'crash-s4');
    stalledRequest(first.url, 'POST', withDigest(`/v2/${repo}/blobs/uploads/`, sha256(s4)), { 'Content-Type': 'application/octet-stream', 'Content-Length': s4.length }, s4.subarray(0, 1 * MiB));

    // A manifest push cut in the middle of its body, over blobs that are all there.
    const halfConfig = Buffer.from('{"architecture":"amd64","os":"linux","half":true}');
    await pushBlob(c1, repo, halfConfig);
    const halfManifest = imageManifest(halfConfig, [stable.layers[0]!]);
    stalledRequest(first.url, 'PUT', `/v2/${repo}/manifests/half`, { 'Content-Type': MT.manifest, 'Content-Length': halfManifest.length }, halfManifest.subarray(0, halfManifest.length >> 1));

    // Image pushes going on when the server dies; only those answered 201 were acknowledged.
    const acknowledged: Array<{ repository: string; tag: string; image: Image }> = [];
    let killed = false;
    const pusher = async (w: number) => {
      for (let i = 0; !killed; i++) {
        const repository = `crash/loop${w}`;
        const tag = `t${i}`;
        try {
          acknowledged.push({ repository, tag, image: await pushImage(c1, repository, { tag, layers: 2, seed: `crash-loop-${w}-${i}` }) });
        } catch (error) {
          if (!killed) throw error;
        }
      }
    };
    const pushers = [0, 1, 2].map(pusher);

    const known = [uploadId(s1Path), uploadId(s2Path), uploadId(s3Path)];
    await until(async () => (await uploadSize(dataDir, known[1]!)) >= s2Acked + 128 * KiB, 'the second chunk of S2 to be half written');
    await until(async () => (await uploadSize(dataDir, known[2]!)) >= 512 * KiB, 'the PUT of S3 to be under way');
    await until(async () => {
      for (const id of await uploadFiles(dataDir)) if (!known.includes(id) && (await uploadSize(dataDir, id)) >= 1 * MiB) return true;
      return false;
    }, 'the POST of S4 to be under way');
    await until(async () => acknowledged.length >= 3, 'image pushes to be acknowledged');

    killed = true;
    await first.stop('SIGKILL');
    await Promise.all(pushers);
    c1.close();

    second = await startRegistry({ dataDir, env: settings });
    c2 = new Client(second.url);
    const client = c2;

    // Every tag is consistent; every acknowledged push is there; the cut manifest is not.
    const tags = await listAllTags(client);
    for (const { repository, tag } of tags) await assertPullable(client, repository, tag);
    assert.equal(await assertPullable(client, repo, 'stable'), stable.digest);
    for (const { repository, tag, image } of acknowledged) assert.equal(await assertPullable(client, repository, tag), image.digest);
    expectError(await client.get(`/v2/${repo}/manifests/half`, { headers: { Accept: MT.manifest } }), 404, 'MANIFEST_UNKNOWN');

    // No blob of an unfinished upload is visible, and no blob file is torn.
    for (const content of [s1, s2, s3, s4]) expectStatus(await client.head(`/v2/${repo}/blobs/${sha256(content)}`), 404);
    await assertBlobFilesIntact(dataDir);

    // Interrupted sessions continue from what was acknowledged, or are reported unknown.
    const outcomes = {
      s1: await resume(client, s1Path, s1, 100 * KiB),
      s2: await resume(client, s2Path, s2, s2Acked),
      s3: await resume(client, s3Path, s3, 0),
    };
    for (const [name, content] of [['s1', s1], ['s2', s2], ['s3', s3]] as const) {
      const res = await client.get(`/v2/${repo}/blobs/${sha256(content)}`);
      if (outcomes[name] === 'continued') {
        expectStatus(res, 200);
        assert.ok(res.body.equals(content), `${name}: the continued upload holds exactly the blob`);
      } else {
        expectError(res, 404, 'BLOB_UNKNOWN');
      }
    }
    // A client then pushes the cut manifest again, and S4's blob from scratch.
    expectStatus(await client.request('PUT', `/v2/${repo}/manifests/half`, { headers: { 'Content-Type': MT.manifest }, body: halfManifest }), 201);
    await pushBlob(client, repo, s4);

    // gc removes what nothing references (abandoned sessions' data too) and keeps every image.
    const referenced = new Set<string>();
    const finalTags = await listAllTags(client);
    assert.ok(finalTags.length >= tags.length + 1);
    for (const { repository, tag } of finalTags) {
      const doc = (await client.get(`/v2/${repository}/manifests/${tag}`, { headers: { Accept: MT.manifest } })).json();
      for (const blob of [doc.config, ...doc.layers]) referenced.add(blob.digest);
    }
    const gcEnv = { ...settings, PORTCULLIS_UPLOADS_EXPIRE_AFTER_SECONDS: '1' };
    await until(async () => {
      await runGc(dataDir, { env: gcEnv });
      return (await uploadFiles(dataDir)).length === 0;
    }, 'gc to expire the abandoned uploads');
    for (const { repository, tag } of finalTags) await assertPullable(client, repository, tag);
    assert.equal(await assertBlobFilesIntact(dataDir), referenced.size, 'exactly the referenced blobs are left');
    for (const content of [s1, s2, s3, s4]) expectStatus(await client.head(`/v2/${repo}/blobs/${sha256(content)}`), 404);
    return outcomes;
  } finally {
    c1.close();
    c2?.close();
    await first.stop('SIGKILL');
    await second?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

test('SIGKILL mid-upload and mid-push, restart: the store is consistent (SQLite metadata)', { timeout: 120_000 }, async (t) => {
  t.diagnostic(`interrupted sessions: ${JSON.stringify(await crashAndRecover({}))}`);
});

const unavailable = await postgresUnavailable();
test('SIGKILL mid-upload and mid-push, restart: the store is consistent (PostgreSQL metadata)', { timeout: 120_000, skip: unavailable && !postgresRequired ? unavailable : false }, async (t) => {
  const database = await createTestDatabase();
  try {
    const outcomes = await crashAndRecover({ PORTCULLIS_STORAGE_METADATA_KIND: 'postgres', PORTCULLIS_STORAGE_METADATA_POSTGRES_URL: database.url });
    t.diagnostic(`interrupted sessions: ${JSON.stringify(outcomes)}`);
  } finally {
    await database.drop();
  }
});
