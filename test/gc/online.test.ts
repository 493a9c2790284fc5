/**
 * Online garbage collection while clients keep pushing: the server collects every second (with a
 * blob grace of 2 s) and `portcullis gc` runs again and again beside it, while workers push
 * images the way docker and podman do (HEAD each blob, upload only the absent ones, then the
 * manifest), reusing orphaned blobs and the layers of images deleted a moment before. Not one push
 * may fail, and every image not deleted on purpose must be pullable afterwards.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { assertBlobFilesIntact, assertPullable } from '../support/consistency.ts';
import { Client, expectStatus, imageManifest, pushBlob, putManifest, randomBytesOf, sha256 } from '../support/http-target.ts';
import { type GcReport, runGc, startRegistry } from '../support/registry-process.ts';

const graceSeconds = 2;
const registry = await startRegistry({
  env: { PORTCULLIS_GC_BLOB_GRACE_SECONDS: String(graceSeconds), PORTCULLIS_GC_INTERVAL_SECONDS: '1', PORTCULLIS_LOG_LEVEL: 'info' },
});
const client = new Client(registry.url);
after(async () => {
  client.close();
  await registry.stop();
  await rm(registry.dataDir, { recursive: true, force: true });
});

const repository = 'online/app';

interface Pushed {
  tag: string;
  digest: string;
  blobs: Buffer[];
}

/** HEAD each blob, upload the absent ones, push the manifest: any refusal fails the test. */
async function pushReusing(tag: string, config: Buffer, layers: Buffer[]): Promise<Pushed> {
  for (const blob of [config, ...layers]) {
    const head = await client.head(`/v2/${repository}/blobs/${sha256(blob)}`);
    expectStatus(head, [200, 404]);
    if (head.status === 404) await pushBlob(client, repository, blob);
  }
  const manifest = imageManifest(config, layers);
  const res = await putManifest(client, repository, tag, manifest);
  expectStatus(res, 201);
  return { tag, digest: sha256(manifest), blobs: [config, ...layers] };
}

test('pushes sharing blobs with collected ones never fail while the collector runs repeatedly', { timeout: 120_000 }, async () => {
  // Orphans the pushes will reuse, past their grace once the pushes start.
  const orphans = Array.from({ length: 30 }, (_, i) => randomBytesOf(256, `online-orphan-${i}`));
  for (const orphan of orphans) await pushBlob(client, repository, orphan);
  const base = randomBytesOf(4096, 'online-base');
  await new Promise((resolve) => setTimeout(resolve, graceSeconds * 1000 + 200));

  let pushing = true;
  const reports: GcReport[] = [];
  const collector = (async () => {
    while (pushing) reports.push(await runGc(registry.dataDir, { env: { PORTCULLIS_GC_BLOB_GRACE_SECONDS: String(graceSeconds) } }));
  })();

  const kept: Pushed[] = [];
  const deleted: Pushed[] = [];
  /** Layers of images deleted a moment ago: unreferenced, about to be collected, reused. */
  const released: Buffer[] = [];
  const worker = async (w: number) => {
    // At least 8 images each, and on until the CLI collector has run a few times meanwhile.
    for (let i = 0; i < 8 || (reports.length < 3 && i < 200); i++) {
      const layers = [base, orphans[(w * 7 + i * 3) % orphans.length]!, randomBytesOf(300 + i, `online-${w}-${i}`)];
      const reused = released.shift();
      if (reused) layers.push(reused);
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', worker: w, i }));
      const pushed = await pushReusing(`w${w}-${i}`, config, layers);
      if (i % 3 === 1) {
        // Deleted right away: its own layer is orphaned, and the next push of a worker reuses it.
        expectStatus(await client.delete(`/v2/${repository}/manifests/${pushed.digest}`), 202);
        released.push(layers[2]!);
        deleted.push(pushed);
      } else {
        kept.push(pushed);
      }
    }
  };
  try {
    await Promise.all([0, 1, 2].map(worker));
  } finally {
    pushing = false;
    await collector;
  }

  // The server logs each of its collections; together with the CLI's, blobs went while pushing.
  const serverReports = [...registry.output().matchAll(/"gc":(\{[^}]*\})/g)].map((m) => JSON.parse(m[1]!) as GcReport);
  assert.ok(reports.length >= 3, `the CLI collector ran ${reports.length} times during the pushes`);
  const collectedDuringPushes = [...reports, ...serverReports].reduce((sum, r) => sum + r.blobsDeleted, 0);
  assert.ok(collectedDuringPushes > 0, 'blobs were collected while the pushes went on');
  for (const image of kept) {
    assert.equal(await assertPullable(client, repository, image.tag), image.digest);
    for (const blob of image.blobs) expectStatus(await client.head(`/v2/${repository}/blobs/${sha256(blob)}`), 200);
  }
  for (const image of deleted) expectStatus(await client.get(`/v2/${repository}/manifests/${image.digest}`), 404);

  // Once everything unreferenced is past its grace, a run collects it and keeps every image.
  await new Promise((resolve) => setTimeout(resolve, graceSeconds * 1000 + 200));
  await runGc(registry.dataDir);
  for (const image of kept) await assertPullable(client, repository, image.tag);
  const unreused = orphans.filter((o) => !kept.some((image) => image.blobs.includes(o)));
  for (const orphan of unreused) expectStatus(await client.head(`/v2/${repository}/blobs/${sha256(orphan)}`), 404);
  await assertBlobFilesIntact(registry.dataDir);
});
