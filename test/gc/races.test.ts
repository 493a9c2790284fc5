/**
 * Online garbage collection racing with clients, made deterministic: the in-process registry's
 * store proxies run the collector (or a push) exactly between two store calls of a request, which
 * is where a concurrent one would interleave on a busy server.
 *
 * The invariant under test is the client's: a blob that HEAD reported present may be referenced
 * by a manifest pushed within the grace period, whatever the collector does meanwhile; and the
 * collector never removes a manifest that is tagged (or pushed again) by the time it deletes.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { type Harness, manifestOf, sha256, startInProcess } from '../support/in-process-registry.ts';

const HOUR = 3_600_000;

let h: Harness;

afterEach(async () => {
  await h?.close();
});

/** What docker and podman do: HEAD each blob, upload it only when absent, then push the manifest. */
async function pushReusing(repository: string, blobs: Buffer[], reference: string, manifest: Buffer): Promise<{ headPresent: string[]; manifestStatus: number }> {
  const headPresent: string[] = [];
  for (const blob of blobs) {
    const head = await h.request('HEAD', `/v2/${repository}/blobs/${sha256(blob)}`);
    if (head.status === 200) headPresent.push(sha256(blob));
    else {
      assert.equal(head.status, 404);
      await h.pushBlob(repository, blob);
    }
  }
  return { headPresent, manifestStatus: await h.putManifest(repository, reference, manifest) };
}

/** Pushes a config and a layer of an image (not its manifest): orphans until referenced. */
async function pushImageBlobs(repository: string, seed: string): Promise<[config: Buffer, layer: Buffer]> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer ${seed}`);
  await h.pushBlob(repository, config);
  await h.pushBlob(repository, layer);
  return [config, layer];
}

/** Every blob of the manifest is readable with the right bytes. */
async function assertPullable(repository: string, reference: string, blobs: Buffer[]): Promise<void> {
  const res = await h.request('GET', `/v2/${repository}/manifests/${reference}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200, `manifest ${reference}: ${res.body}`);
  for (const blob of blobs) {
    const got = await h.request('GET', `/v2/${repository}/blobs/${sha256(blob)}`);
    assert.equal(got.status, 200, `blob ${sha256(blob)}: ${got.body}`);
    assert.equal(sha256(got.body), sha256(blob));
  }
}

describe('HEAD of a blob versus the collector', () => {
  beforeEach(async () => {
    h = await startInProcess({ blobGraceSeconds: 3600 });
  });

  test('collector runs between the blob lookup and its protection: a blob HEAD reported present can be referenced', async () => {
    const [config, layer] = await pushImageBlobs('race/head', 'reused orphans');
    h.clock.now += 2 * HOUR; // both orphans are past their protection

    // Every blob lookup is followed by a collection, before the request goes on.
    let collections = 0;
    h.metaHooks.after = async (method) => {
      if (method !== 'linkedBlob') return;
      collections++;
      await h.otherCollector.collect({ now: new Date(h.clock.now) });
    };
    const manifest = manifestOf(config, [layer]);
    const { headPresent, manifestStatus } = await pushReusing('race/head', [config, layer], 'v1', manifest);
    h.metaHooks.after = undefined;
    assert.ok(collections >= 2);
    assert.equal(manifestStatus, 201, `the manifest push was refused although HEAD reported ${headPresent.join(', ') || 'nothing'} present`);
    await assertPullable('race/head', 'v1', [config, layer]);
  });

  test('collector runs right after HEAD: the blob stays protected for the grace period', async () => {
    const [config, layer] = await pushImageBlobs('race/head2', 'checked orphans');
    h.clock.now += 2 * HOUR;
    for (const blob of [config, layer]) assert.equal((await h.request('HEAD', `/v2/race/head2/blobs/${sha256(blob)}`)).status, 200);
    h.clock.now += HOUR / 2;
    await h.collect();
    assert.equal(await h.putManifest('race/head2', 'v1', manifestOf(config, [layer])), 201);
    await assertPullable('race/head2', 'v1', [config, layer]);
  });

  test('a referenced blob HEAD reported present survives the deletion of the manifest that referenced it', async () => {
    const [config, layer] = await pushImageBlobs('race/ref', 'image about to be deleted');
    const old = manifestOf(config, [layer], { version: 'old' });
    assert.equal(await h.putManifest('race/ref', 'old', old), 201);
    h.clock.now += 2 * HOUR;

    // A client checks the blobs of the image it is about to push (both present, referenced) ...
    for (const blob of [config, layer]) assert.equal((await h.request('HEAD', `/v2/race/ref/blobs/${sha256(blob)}`)).status, 200);
    // ... meanwhile someone deletes the old image and the collector runs ...
    assert.equal((await h.request('DELETE', `/v2/race/ref/manifests/${sha256(old)}`)).status, 202);
    await h.collect();
    // ... and the client's manifest push must still find the blobs.
    assert.equal(await h.putManifest('race/ref', 'new', manifestOf(config, [layer], { version: 'new' })), 201);
    await assertPullable('race/ref', 'new', [config, layer]);
  });
});

describe('two collectors', () => {
  beforeEach(async () => {
    h = await startInProcess({ blobGraceSeconds: 3600 });
  });

  test("a collector does not finish another live collector's deletion, so an upload of that blob cannot lose its bytes", async () => {
    const blob = Buffer.from('a blob deleted and uploaded again at once');
    await h.pushBlob('race/two', blob);
    h.clock.now += 2 * HOUR;

    let upload: Promise<string> | undefined;
    // The registry's collector has marked the blob and is about to delete its bytes when another
    // collector runs and a client uploads the same content.
    const interleave = async () => {
      await h.otherCollector.collect({ now: new Date(h.clock.now) });
      let refused!: () => void;
      const recordRefused = new Promise<void>((resolve) => (refused = resolve));
      h.metaHooks.after = (method, _args, result) => {
        if (method === 'recordBlob' && result === false) refused();
      };
      upload = h.pushBlob('race/two', blob);
      // Either the upload waits for the marking collector (correct) or it completes right away.
      await Promise.race([recordRefused, upload.then(() => undefined, () => undefined)]);
    };
    let interleaved = false;
    h.blobHooks.before = async (method) => {
      if (method !== 'delete' || interleaved) return;
      interleaved = true;
      await interleave();
    };
    await h.collect();
    h.blobHooks.before = undefined;
    assert.ok(interleaved, 'the collector deleted the blob');
    assert.ok(upload);
    await upload;
    h.metaHooks.after = undefined;
    const got = await h.request('GET', `/v2/race/two/blobs/${sha256(blob)}`);
    assert.equal(got.status, 200, `the re-uploaded blob is readable: ${got.body}`);
    assert.ok(got.body.equals(blob));
  });
});

describe('untagged manifests versus pushes', () => {
  beforeEach(async () => {
    h = await startInProcess({ blobGraceSeconds: 3600, untaggedManifestsAfterSeconds: 60 });
  });

  async function pushUntagged(repository: string, seed: string): Promise<{ manifest: Buffer; blobs: Buffer[] }> {
    const [config, layer] = await pushImageBlobs(repository, seed);
    const manifest = manifestOf(config, [layer]);
    assert.equal(await h.putManifest(repository, sha256(manifest), manifest), 201);
    return { manifest, blobs: [config, layer] };
  }

  for (const how of ['tagged', 'pushed again by digest'] as const) {
    test(`a manifest ${how} between the listing and the deletion is kept`, async () => {
      const { manifest, blobs } = await pushUntagged('race/untagged', how);
      const reference = how === 'tagged' ? 'keep' : sha256(manifest);
      h.clock.now += 10 * 60_000;
      h.metaHooks.after = async (method) => {
        if (method !== 'untaggedManifests') return;
        h.metaHooks.after = undefined;
        assert.equal(await h.putManifest('race/untagged', reference, manifest), 201);
      };
      await h.collect();
      h.metaHooks.after = undefined;
      await assertPullable('race/untagged', reference, blobs);
      await assertPullable('race/untagged', sha256(manifest), blobs);
    });
  }

  test('a re-push restarts the untagged period; an untagged manifest left alone is collected with its blobs', async () => {
    const kept = await pushUntagged('policy/untagged', 'kept');
    const dropped = await pushUntagged('policy/untagged', 'dropped');
    h.clock.now += 10 * 60_000;
    assert.equal(await h.putManifest('policy/untagged', sha256(kept.manifest), kept.manifest), 201, 're-push');
    await h.collect();
    await assertPullable('policy/untagged', sha256(kept.manifest), kept.blobs);
    assert.equal((await h.request('GET', `/v2/policy/untagged/manifests/${sha256(dropped.manifest)}`)).status, 404);
    // Its blobs are unreferenced now; they go once their own protection has run out.
    h.clock.now += 2 * HOUR;
    await h.collect();
    for (const blob of dropped.blobs) assert.equal((await h.request('HEAD', `/v2/policy/untagged/blobs/${sha256(blob)}`)).status, 404);
    h.clock.now += 10 * 60_000;
    await h.collect();
    assert.equal((await h.request('GET', `/v2/policy/untagged/manifests/${sha256(kept.manifest)}`)).status, 404, 'collected once left alone');
  });
});
