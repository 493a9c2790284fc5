/**
 * `portcullis gc` run by an operator next to a running server: `--dry-run` reports and removes
 * nothing; a real run removes unreferenced blobs whose protection has run out and keeps referenced
 * and recently uploaded ones; untagged manifests go only by policy
 * (gc.untaggedManifestsAfterSeconds).
 *
 * Blob protection is set by the server that received the blob: orphans pushed through a server
 * with a grace of 0 are collectable at once, those pushed through one with an hour are not.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertBlobFilesIntact, assertPullable } from '../support/consistency.ts';
import { Client, MT, expectStatus, imageManifest, pushBlob, pushImage, putManifest, randomBytesOf, sha256 } from '../support/http-target.ts';
import { type RunningRegistry, runGc, startRegistry } from '../support/registry-process.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function start(options: { dataDir?: string; graceSeconds: number }): Promise<{ registry: RunningRegistry; client: Client }> {
  const registry = await startRegistry({
    dataDir: options.dataDir,
    env: { PORTCULLIS_GC_BLOB_GRACE_SECONDS: String(options.graceSeconds), PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_LOG_LEVEL: 'error' },
  });
  const client = new Client(registry.url);
  cleanups.push(async () => {
    client.close();
    await registry.stop();
  });
  if (!options.dataDir) cleanups.unshift(() => rm(registry.dataDir, { recursive: true, force: true }));
  return { registry, client };
}

function blobFile(dataDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** A chunked upload (POST, PATCH, PUT) of `content`. */
async function pushChunked(client: Client, repository: string, content: Buffer): Promise<string> {
  const start = await client.request('POST', `/v2/${repository}/blobs/uploads/`);
  expectStatus(start, 202);
  const patch = await client.request('PATCH', client.pathOf(start.header('location')!, start.path), {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${content.length - 1}` },
    body: content,
  });
  expectStatus(patch, 202);
  const location = client.pathOf(patch.header('location')!, patch.path);
  const digest = sha256(content);
  expectStatus(await client.request('PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`), 201);
  return digest;
}

test('gc --dry-run reports and removes nothing; gc removes expired orphans only, and pullable images stay', async () => {
  // Phase 1, through a server with no blob grace: an image, an untagged image, three orphans.
  const first = await start({ graceSeconds: 0 });
  const dataDir = first.registry.dataDir;
  const image = await pushImage(first.client, 'gc/app', { tag: 'v1', layers: 2, seed: 'gc-app' });
  const untagged = await pushImage(first.client, 'gc/app', { layers: 1, seed: 'gc-untagged' });
  const orphans = [randomBytesOf(1000, 'orphan-1'), randomBytesOf(2000, 'orphan-2')];
  for (const orphan of orphans) await pushBlob(first.client, 'gc/app', orphan);
  const chunkedOrphan = randomBytesOf(3000, 'orphan-3');
  await pushChunked(first.client, 'gc/other', chunkedOrphan);
  orphans.push(chunkedOrphan);
  // A blob of the image pushed again into another repository and left there unreferenced: the
  // blob is referenced (by gc/app), so it stays.
  await pushBlob(first.client, 'gc/other', image.layers[0]!);
  await first.registry.stop();

  // Phase 2, the same data through a server with an hour of grace: a young orphan.
  const second = await start({ dataDir, graceSeconds: 3600 });
  const client = second.client;
  const young = randomBytesOf(500, 'young');
  await pushBlob(client, 'gc/app', young);
  const orphanBytes = orphans.reduce((sum, o) => sum + o.length, 0);

  const dry = await runGc(dataDir, { dryRun: true });
  assert.deepEqual({ ...dry, durationMs: 0 }, { dryRun: true, manifestsDeleted: 0, blobsDeleted: orphans.length, bytesFreed: orphanBytes, uploadsExpired: 0, durationMs: 0 });
  // Checked on disk: a HEAD would protect the orphans and change what the real run does.
  for (const orphan of orphans) assert.ok(existsSync(blobFile(dataDir, sha256(orphan))), 'a dry run deletes nothing');

  const real = await runGc(dataDir);
  assert.deepEqual({ ...real, durationMs: 0 }, { dryRun: false, manifestsDeleted: 0, blobsDeleted: orphans.length, bytesFreed: orphanBytes, uploadsExpired: 0, durationMs: 0 });
  for (const orphan of orphans) {
    assert.equal(existsSync(blobFile(dataDir, sha256(orphan))), false, 'orphan bytes are gone');
    expectStatus(await client.head(`/v2/gc/app/blobs/${sha256(orphan)}`), 404);
    expectStatus(await client.head(`/v2/gc/other/blobs/${sha256(orphan)}`), 404);
  }
  await assertPullable(client, 'gc/app', 'v1');
  await assertPullable(client, 'gc/app', untagged.digest);
  expectStatus(await client.head(`/v2/gc/other/blobs/${sha256(image.layers[0]!)}`), 200);
  expectStatus(await client.head(`/v2/gc/app/blobs/${sha256(young)}`), 200);

  await assertBlobFilesIntact(dataDir);
});

test('untagged manifests are collected by policy; tagged ones, index children and referrers of a live subject stay', async () => {
  const { registry, client } = await start({ graceSeconds: 0 });
  const policy = { PORTCULLIS_GC_UNTAGGED_MANIFESTS_AFTER_SECONDS: '1' };
  const repo = 'gc/policy';
  const shared = randomBytesOf(700, 'shared-layer');
  const tagged = await pushImage(client, repo, { tag: 'latest', seed: 'tagged' });
  // An untagged image sharing a layer with a tagged one.
  const config = Buffer.from('{"architecture":"amd64","os":"linux","seed":"untagged"}');
  const own = randomBytesOf(600, 'untagged-own');
  for (const blob of [config, own, shared]) await pushBlob(client, repo, blob);
  const untagged = imageManifest(config, [own, shared]);
  expectStatus(await putManifest(client, repo, sha256(untagged), untagged), 201);
  const sharing = imageManifest(config, [shared], { annotations: { tagged: 'yes' } });
  expectStatus(await putManifest(client, repo, 'sharing', sharing), 201);
  // An untagged index over an untagged child, and a signature of the tagged image.
  const child = await pushImage(client, repo, { seed: 'child' });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [child.descriptor] }));
  expectStatus(await putManifest(client, repo, sha256(index), index, MT.index), 201);
  const signature = await pushImage(client, repo, { seed: 'sig', subject: tagged.descriptor, artifactType: 'application/vnd.example.signature' });

  // Without the policy nothing goes.
  assert.equal((await runGc(registry.dataDir)).manifestsDeleted, 0);
  await assertPullable(client, repo, sha256(untagged));

  // Let the untagged ones age past the policy (1 s).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const dry = await runGc(registry.dataDir, { dryRun: true, env: policy });
  assert.equal(dry.manifestsDeleted, 2, 'the untagged image and the untagged index');
  await assertPullable(client, repo, sha256(untagged));

  const real = await runGc(registry.dataDir, { env: policy });
  assert.equal(real.manifestsDeleted, 2);
  expectStatus(await client.get(`/v2/${repo}/manifests/${sha256(untagged)}`, { headers: { Accept: MT.manifest } }), 404);
  expectStatus(await client.get(`/v2/${repo}/manifests/${sha256(index)}`, { headers: { Accept: MT.index } }), 404);
  expectStatus(await client.head(`/v2/${repo}/blobs/${sha256(own)}`), 404);
  await assertPullable(client, repo, 'latest');
  await assertPullable(client, repo, 'sharing');
  await assertPullable(client, repo, signature.digest);
  // The child was listed by the index when this run looked; the next run takes it.
  await assertPullable(client, repo, child.digest);
  assert.equal((await runGc(registry.dataDir, { env: policy })).manifestsDeleted, 1);
  expectStatus(await client.get(`/v2/${repo}/manifests/${child.digest}`, { headers: { Accept: MT.manifest } }), 404);
  await assertPullable(client, repo, 'latest');
  await assertPullable(client, repo, signature.digest);
});
