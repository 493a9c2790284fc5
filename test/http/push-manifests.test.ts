/**
 * OCI Distribution Spec v1.1, "Workflow Categories › Push › Pushing Manifests" (end-7),
 * including "Pushing Manifests with Subject", and the manifest validation rules that lead
 * to MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN, DIGEST_INVALID and 413.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  MT,
  deviation,
  emptyJson,
  expectError,
  expectStatus,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  randomBytesOf,
  sha256,
  startTarget,
  uniqueRepo,
  type Client,
  type Target,
} from '../support/http-target.ts';

let target: Target;
let client: Client;

before(async () => {
  target = await startTarget();
  client = target.client;
});

after(async () => {
  await target?.stop();
});

async function expectNoManifest(repo: string, reference: string): Promise<void> {
  expectStatus(await client.head(`/v2/${repo}/manifests/${reference}`, { headers: { Accept: `${MT.manifest}, ${MT.index}` } }), 404);
}

/** Config + one layer pushed to `repo`; returns an image manifest over them (not pushed). */
async function preparedManifest(repo: string, seed: string, extra: Parameters<typeof imageManifest>[2] = {}): Promise<{ manifest: Buffer; config: Buffer; layer: Buffer }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = randomBytesOf(256, seed);
  await pushBlob(client, repo, config);
  await pushBlob(client, repo, layer);
  return { manifest: imageManifest(config, [layer], extra), config, layer };
}

describe('Push › Pushing Manifests (end-7)', () => {
  test('spec §Pushing Manifests: PUT by tag answers 201 with a pullable Location and Docker-Content-Digest equal to the digest of the body', async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'put-tag');
    const res = await putManifest(client, repo, 'latest', manifest);
    expectStatus(res, 201);
    assert.equal(res.header('docker-content-digest'), sha256(manifest));
    const location = res.header('location');
    assert.ok(location, `no Location: ${res.describe()}`);
    const pulled = await client.get(client.pathOf(location, res.path), { headers: { Accept: MT.manifest } });
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(manifest), '<location> is a pullable manifest URL');
  });

  test('spec §Pushing Manifests: PUT by digest answers 201 with Location and Docker-Content-Digest; pullable by that digest', async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'put-digest');
    const digest = sha256(manifest);
    const res = await putManifest(client, repo, digest, manifest);
    expectStatus(res, 201);
    assert.equal(res.header('docker-content-digest'), digest, 'Docker-Content-Digest MUST be equal to the client provided digest');
    assert.ok(res.header('location'));
    const pulled = await client.get(`/v2/${repo}/manifests/${digest}`, { headers: { Accept: MT.manifest } });
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(manifest));
  });

  test('spec §Pushing Manifests + error code-4: PUT by digest with a body of another digest answers 400 DIGEST_INVALID; nothing stored', async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'digest-mismatch');
    const wrong = sha256(Buffer.concat([manifest, Buffer.from(' ')]));
    expectError(await putManifest(client, repo, wrong, manifest), 400, 'DIGEST_INVALID');
    await expectNoManifest(repo, wrong);
    await expectNoManifest(repo, sha256(manifest));
  });

  test('spec §Pushing Manifests: the same manifest may be tagged several times; every tag resolves to it', async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'multi-tag');
    for (const tag of ['a', 'b', 'c']) expectStatus(await putManifest(client, repo, tag, manifest), 201);
    for (const tag of ['a', 'b', 'c']) {
      const res = await client.get(`/v2/${repo}/manifests/${tag}`, { headers: { Accept: MT.manifest } });
      expectStatus(res, 200);
      assert.equal(res.header('docker-content-digest'), sha256(manifest));
    }
  });

  test('conformance "manifest upload with no layers": an image manifest with an empty layers list is accepted', async () => {
    const repo = uniqueRepo('manifest');
    const config = Buffer.from('{"os":"linux","architecture":"amd64","layers":"none"}');
    await pushBlob(client, repo, config);
    const manifest = imageManifest(config, []);
    expectStatus(await putManifest(client, repo, 'nolayers', manifest), 201);
  });

  test('image-spec v1.1 artifacts: a manifest with artifactType and the empty config descriptor is accepted', async () => {
    const repo = uniqueRepo('manifest');
    await pushBlob(client, repo, emptyJson);
    const layer = randomBytesOf(64, 'artifact-layer');
    await pushBlob(client, repo, layer);
    const manifest = imageManifest(emptyJson, [layer], { artifactType: 'application/vnd.example.thing.v1', configMediaType: MT.empty });
    expectStatus(await putManifest(client, repo, sha256(manifest), manifest), 201);
  });

  test('spec §Pushing Manifests: an image index over pushed manifests is accepted and pullable by tag', async () => {
    const repo = uniqueRepo('manifest');
    const a = await pushImage(client, repo, { seed: 'idx-a' });
    const b = await pushImage(client, repo, { seed: 'idx-b' });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.index,
        manifests: [
          { ...a.descriptor, platform: { architecture: 'amd64', os: 'linux' } },
          { ...b.descriptor, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
    const res = await putManifest(client, repo, 'index', index, MT.index);
    expectStatus(res, 201);
    assert.equal(res.header('docker-content-digest'), sha256(index));
    const pulled = await client.get(`/v2/${repo}/manifests/index`, { headers: { Accept: MT.index } });
    expectStatus(pulled, 200);
    assert.equal(pulled.header('content-type'), MT.index);
    assert.ok(pulled.body.equals(index));
  });

  test('spec §Pushing Manifests: "The registry SHOULD ignore parameters on the Content-Type header"; GET answers it without parameters', async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'ct-params');
    expectStatus(await putManifest(client, repo, 'params', manifest, `${MT.manifest}; charset=utf-8`), 201);
    const res = await client.get(`/v2/${repo}/manifests/params`, { headers: { Accept: MT.manifest } });
    expectStatus(res, 200);
    assert.equal(res.header('content-type'), MT.manifest, 'the registry SHOULD NOT include parameters on Content-Type');
  });

  test('spec §Pushing Manifests: PUT to an invalid repository name answers 400 NAME_INVALID', {
    todo: deviation('distribution', 'its router answers a plain-text 404 page for names outside the grammar'),
  }, async () => {
    const repo = uniqueRepo('manifest');
    const { manifest } = await preparedManifest(repo, 'bad-name');
    expectError(await putManifest(client, 'Bad_Name', 'latest', manifest), 400, 'NAME_INVALID');
  });

  test(
    'spec §Pulling manifests (tag grammar [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}): PUT to a tag outside the grammar is refused with 400 and not stored',
    { todo: deviation('distribution', 'its router answers a plain-text 404 page for references outside the grammar') },
    async () => {
      const repo = uniqueRepo('manifest');
      const { manifest } = await preparedManifest(repo, 'bad-tag');
      for (const tag of ['-leading-dash', '.leading-dot', 'a'.repeat(129)]) {
        expectError(await putManifest(client, repo, tag, manifest), 400, ['TAG_INVALID', 'MANIFEST_INVALID', 'NAME_INVALID']);
      }
      const okTag = `_${'a'.repeat(127)}`;
      expectStatus(await putManifest(client, repo, okTag, manifest), 201);
      const tags = await client.get(`/v2/${repo}/tags/list`);
      expectStatus(tags, 200);
      assert.deepEqual(tags.json().tags, [okTag]);
    },
  );
});

describe('Push › manifest validation (MANIFEST_BLOB_UNKNOWN, MANIFEST_INVALID, size limits)', () => {
  test('spec §Push + error code-5: a manifest whose layer is not in the repository is refused with MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('validate');
    const config = Buffer.from('{"os":"linux","architecture":"amd64","v":"missing-layer"}');
    await pushBlob(client, repo, config);
    const missing = randomBytesOf(100, 'never-pushed');
    const manifest = imageManifest(config, [missing]);
    expectError(await putManifest(client, repo, 'broken', manifest), [400, 404], 'MANIFEST_BLOB_UNKNOWN');
    await expectNoManifest(repo, 'broken');
    await expectNoManifest(repo, sha256(manifest));
  });

  test('spec §Push + error code-5: a manifest whose config blob is missing is refused with MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('validate');
    const layer = randomBytesOf(100, 'layer-present');
    await pushBlob(client, repo, layer);
    const manifest = imageManifest(Buffer.from('{"config":"missing"}'), [layer]);
    expectError(await putManifest(client, repo, 'noconfig', manifest), [400, 404], 'MANIFEST_BLOB_UNKNOWN');
    await expectNoManifest(repo, 'noconfig');
  });

  test('spec §Push + error code-5: a blob present only in another repository does not satisfy a manifest (MANIFEST_BLOB_UNKNOWN)', async () => {
    const repo = uniqueRepo('validate');
    const other = uniqueRepo('validate-other');
    const config = Buffer.from('{"os":"linux","architecture":"amd64","v":"cross-repo"}');
    const layer = randomBytesOf(100, 'other-repo-layer');
    await pushBlob(client, repo, config);
    await pushBlob(client, other, layer);
    expectError(await putManifest(client, repo, 'cross', imageManifest(config, [layer])), [400, 404], 'MANIFEST_BLOB_UNKNOWN');
  });

  test('spec §Push + error code-5: an index whose child manifest is not in the repository is refused with MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('validate');
    const ghost = Buffer.from('{"schemaVersion":2,"ghost":true}');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [{ mediaType: MT.manifest, digest: sha256(ghost), size: ghost.length }] }));
    expectError(await putManifest(client, repo, 'ghost-index', index, MT.index), [400, 404], 'MANIFEST_BLOB_UNKNOWN');
    await expectNoManifest(repo, 'ghost-index');
  });

  test('image spec (unknown mediaType MUST NOT error): an index listing a layer blob, as BuildKit\'s registry cache does, is stored when the blob is in the repository and refused with MANIFEST_BLOB_UNKNOWN when it is not', {
    todo: deviation('distribution', 'distribution 2.8 looks index entries up as manifests'),
  }, async () => {
    const repo = uniqueRepo('cache-index');
    const image = await pushImage(client, repo, { seed: 'cache-index' });
    const cacheLayer = randomBytesOf(300, 'cache-layer');
    const entries = (layer: Buffer) => [image.descriptor, { mediaType: MT.layer, digest: sha256(layer), size: layer.length }];
    const missing = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: entries(cacheLayer) }));
    expectError(await putManifest(client, repo, 'cache', missing, MT.index), [400, 404], 'MANIFEST_BLOB_UNKNOWN');
    await expectNoManifest(repo, 'cache');
    await pushBlob(client, repo, cacheLayer);
    expectStatus(await putManifest(client, repo, 'cache', missing, MT.index), 201);
    const got = await client.get(`/v2/${repo}/manifests/cache`, { headers: { Accept: MT.index } });
    expectStatus(got, 200);
    assert.ok(got.body.equals(missing));
    // The blob is now referenced: deleting it is refused until the index goes.
    expectStatus(await client.delete(`/v2/${repo}/blobs/${sha256(cacheLayer)}`), [405, 409]);
  });

  test('spec error code-6: a body that is not JSON is refused with 400 MANIFEST_INVALID', async () => {
    const repo = uniqueRepo('validate');
    expectError(await putManifest(client, repo, 'garbage', Buffer.from('{"schemaVersion": 2, this is not json')), 400, 'MANIFEST_INVALID');
    await expectNoManifest(repo, 'garbage');
  });

  test('spec error code-6: an image manifest without config is refused with 400 MANIFEST_INVALID', { todo: deviation('distribution', 'it answers 400 DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN for the empty config descriptor') }, async () => {
    const repo = uniqueRepo('validate');
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, layers: [] }));
    expectError(await putManifest(client, repo, 'noconfig', body), 400, 'MANIFEST_INVALID');
  });

  test('spec error code-6: schemaVersion other than 2 is refused with 400 MANIFEST_INVALID', { todo: deviation('distribution', 'it answers 500 UNKNOWN') }, async () => {
    const repo = uniqueRepo('validate');
    const { manifest } = await preparedManifest(repo, 'schema-version');
    const doc = JSON.parse(manifest.toString());
    doc.schemaVersion = 3;
    expectError(await putManifest(client, repo, 'v3', Buffer.from(JSON.stringify(doc))), 400, 'MANIFEST_INVALID');
  });

  test(
    'spec §Pushing Manifests: a mediaType field that contradicts Content-Type is refused with 400 MANIFEST_INVALID',
    async () => {
      const repo = uniqueRepo('validate');
      const { manifest } = await preparedManifest(repo, 'mismatch-type');
      // Body says image manifest, header says index.
      expectError(await putManifest(client, repo, 'mismatch', manifest, MT.index), 400, 'MANIFEST_INVALID');
      await expectNoManifest(repo, 'mismatch');
    },
  );

  test('spec §Pushing Manifests: a descriptor with a malformed digest is refused with 400 (MANIFEST_INVALID or DIGEST_INVALID)', { todo: deviation('distribution', 'it answers 500 UNKNOWN') }, async () => {
    const repo = uniqueRepo('validate');
    const { manifest } = await preparedManifest(repo, 'bad-descriptor');
    const doc = JSON.parse(manifest.toString());
    doc.layers[0].digest = 'sha256:nothex';
    expectError(await putManifest(client, repo, 'baddesc', Buffer.from(JSON.stringify(doc))), 400, ['MANIFEST_INVALID', 'DIGEST_INVALID']);
  });

  test('spec §Legacy Docker support: a Docker schema 1 (signed) manifest is refused (400 MANIFEST_INVALID) and not stored', async () => {
    const repo = uniqueRepo('validate');
    const layer = randomBytesOf(64, 'schema1');
    await pushBlob(client, repo, layer);
    const schema1 = Buffer.from(
      JSON.stringify({
        schemaVersion: 1,
        name: repo,
        tag: 'old',
        architecture: 'amd64',
        fsLayers: [{ blobSum: sha256(layer) }],
        history: [{ v1Compatibility: '{"id":"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5"}' }],
        signatures: [{ header: { jwk: { crv: 'P-256', kty: 'EC', x: 'x', y: 'y' }, alg: 'ES256' }, signature: 'c2ln', protected: 'e30' }],
      }),
    );
    for (const type of [MT.dockerSchema1Signed, MT.dockerSchema1]) {
      const res = await putManifest(client, repo, 'old', schema1, type);
      expectError(res, 400, ['MANIFEST_INVALID', 'MANIFEST_UNVERIFIED']);
    }
    await expectNoManifest(repo, 'old');
  });

  test('spec §Pushing Manifests: "registries SHOULD expect to be able to support manifest pushes of at least 4 megabytes" (4,000,000 bytes accepted)', async () => {
    const repo = uniqueRepo('size');
    const config = Buffer.from('{"os":"linux","architecture":"amd64","big":true}');
    await pushBlob(client, repo, config);
    const manifest = padManifest(config, 4_000_000);
    assert.equal(manifest.length, 4_000_000);
    const res = await putManifest(client, repo, 'big', manifest);
    expectStatus(res, 201);
    const pulled = await client.get(`/v2/${repo}/manifests/big`, { headers: { Accept: MT.manifest } });
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(manifest));
  });

  test(
    'spec §Pushing Manifests: a manifest over the limit (4 MiB + 1 byte) answers 413 Payload Too Large and is not stored',
    { todo: deviation('distribution', 'distribution 2.8 refuses bodies over 4 MiB with 400 MANIFEST_INVALID "http: request body too large" instead of 413') },
    async () => {
      const repo = uniqueRepo('size');
      const config = Buffer.from('{"os":"linux","architecture":"amd64","huge":true}');
      await pushBlob(client, repo, config);
      const manifest = padManifest(config, 4 * 1024 * 1024 + 1);
      const res = await putManifest(client, repo, 'huge', manifest);
      expectStatus(res, 413);
      if ((res.header('content-type') ?? '').startsWith('application/json')) expectError(res, 413, ['MANIFEST_TOO_LARGE', 'SIZE_INVALID', 'MANIFEST_INVALID']);
      await expectNoManifest(repo, 'huge');
      await expectNoManifest(repo, sha256(manifest));
    },
  );
});

/** A valid image manifest over `config` with an annotation padded so the body is exactly `size` bytes. */
function padManifest(config: Buffer, size: number): Buffer {
  const base = imageManifest(config, [], { annotations: { pad: '' }, indent: false });
  const pad = size - base.length;
  assert.ok(pad >= 0);
  return imageManifest(config, [], { annotations: { pad: 'x'.repeat(pad) }, indent: false });
}

describe('Push › Pushing Manifests with Subject', () => {
  test(
    'spec §Pushing Manifests with Subject: a manifest with subject answers 201 with OCI-Subject: <subject digest>',
    { todo: deviation('distribution', 'distribution 2.8 predates the referrers API and never sends OCI-Subject') },
    async () => {
      const repo = uniqueRepo('subject');
      const subject = await pushImage(client, repo, { tag: 'base', seed: 'subject-base' });
      await pushBlob(client, repo, emptyJson);
      const sig = randomBytesOf(32, 'signature');
      await pushBlob(client, repo, sig);
      const referrer = imageManifest(emptyJson, [sig], { artifactType: 'application/vnd.example.signature.v1', configMediaType: MT.empty, subject: subject.descriptor });
      const res = await putManifest(client, repo, sha256(referrer), referrer);
      expectStatus(res, 201);
      assert.equal(res.header('oci-subject'), subject.digest);
    },
  );

  test('spec §Push: "A registry MUST initially accept an otherwise valid manifest with a subject field that references a manifest that does not exist"', async () => {
    const repo = uniqueRepo('subject');
    await pushBlob(client, repo, emptyJson);
    const missingSubject = { mediaType: MT.manifest, digest: sha256('a manifest nobody pushed'), size: 24 };
    const referrer = imageManifest(emptyJson, [], { artifactType: 'application/vnd.example.sbom.v1', configMediaType: MT.empty, subject: missingSubject });
    const res = await putManifest(client, repo, sha256(referrer), referrer);
    expectStatus(res, 201);
    const pulled = await client.get(`/v2/${repo}/manifests/${sha256(referrer)}`, { headers: { Accept: MT.manifest } });
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(referrer));
  });

  test(
    'spec §Pushing Manifests with Subject: a dangling subject still gets OCI-Subject (conformance "Dangling subject")',
    { todo: deviation('distribution', 'distribution 2.8 never sends OCI-Subject') },
    async () => {
      const repo = uniqueRepo('subject');
      await pushBlob(client, repo, emptyJson);
      const subject = { mediaType: MT.manifest, digest: sha256('dangling'), size: 8 };
      const referrer = imageManifest(emptyJson, [], { artifactType: 'application/vnd.example.x', configMediaType: MT.empty, subject });
      const res = await putManifest(client, repo, sha256(referrer), referrer);
      expectStatus(res, 201);
      assert.match(res.header('oci-subject') ?? '', /^[a-z0-9]+:[a-f0-9]+$/);
      assert.equal(res.header('oci-subject'), subject.digest);
    },
  );

  test('spec §Pushing Manifests: a manifest without subject carries no OCI-Subject header', async () => {
    const repo = uniqueRepo('subject');
    const { manifest } = await preparedManifest(repo, 'no-subject');
    const res = await putManifest(client, repo, 'plain', manifest);
    expectStatus(res, 201);
    assert.equal(res.header('oci-subject'), undefined);
  });
});
