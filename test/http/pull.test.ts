/**
 * OCI Distribution Spec v1.1, "Determining Support" (end-1) and "Workflow Categories › Pull"
 * (end-2, end-3), over real sockets.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  MT,
  deviation,
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
  type Image,
  type Target,
} from '../support/http-target.ts';

let target: Target;
const repo = uniqueRepo('pull');
let image: Image;
const tag = 'v1.0';
const zeroDigest = `sha256:${'0'.repeat(64)}`;

before(async () => {
  target = await startTarget();
  image = await pushImage(target.client, repo, { tag, layers: 2, seed: 'pull' });
});

after(async () => {
  await target?.stop();
});

describe('API › Determining Support (end-1)', () => {
  test('spec §Determining Support: GET /v2/ answers 200 with Docker-Distribution-API-Version: registry/2.0', async () => {
    const res = await target.client.get('/v2/');
    expectStatus(res, 200);
    assert.equal(res.header('docker-distribution-api-version'), 'registry/2.0', res.describe());
  });

  test('spec §Determining Support: GET /v2 (no trailing slash) is also the API root or redirects to it', async () => {
    const res = await target.client.get('/v2');
    expectStatus(res, [200, 301, 307, 308]);
    if (res.status !== 200) assert.match(res.header('location') ?? '', /\/v2\/$/, res.describe());
  });

  test('spec §Determining Support: HEAD /v2/ answers 200 with no body', async () => {
    const res = await target.client.head('/v2/');
    expectStatus(res, 200);
    assert.equal(res.body.length, 0);
  });
});

describe('Pull › Pulling manifests (end-3)', () => {
  test('spec §Pulling manifests: GET by tag answers 200 with the exact pushed bytes, Content-Type, Docker-Content-Digest, Content-Length', async () => {
    const res = await target.client.get(`/v2/${repo}/manifests/${tag}`, { headers: { Accept: MT.manifest } });
    expectStatus(res, 200);
    assert.ok(res.body.equals(image.manifest), 'body must be byte-for-byte the pushed manifest');
    assert.equal(res.header('content-type'), MT.manifest, 'Content-Type = manifest mediaType (without parameters)');
    assert.equal(res.header('docker-content-digest'), image.digest);
    assert.equal(res.header('content-length'), String(image.manifest.length));
  });

  test('spec §Pulling manifests: GET by digest answers 200 with the exact bytes and matching Docker-Content-Digest', async () => {
    const res = await target.client.get(`/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: MT.manifest } });
    expectStatus(res, 200);
    assert.ok(res.body.equals(image.manifest));
    assert.equal(sha256(res.body), image.digest, 'body must hash to the requested digest');
    assert.equal(res.header('docker-content-digest'), image.digest);
    assert.equal(res.header('content-type'), MT.manifest);
    assert.equal(res.header('content-length'), String(image.manifest.length));
  });

  test('spec §Checking if content exists: HEAD manifest by tag answers 200, Docker-Content-Digest, Content-Length, Content-Type, no body', async () => {
    const res = await target.client.head(`/v2/${repo}/manifests/${tag}`, { headers: { Accept: MT.manifest } });
    expectStatus(res, 200);
    assert.equal(res.header('docker-content-digest'), image.digest);
    assert.equal(res.header('content-length'), String(image.manifest.length));
    assert.equal(res.header('content-type'), MT.manifest);
    assert.equal(res.body.length, 0, 'HEAD must not carry a body');
  });

  test('spec §Checking if content exists: HEAD manifest by digest answers 200 with Docker-Content-Digest and Content-Length', async () => {
    const res = await target.client.head(`/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: MT.manifest } });
    expectStatus(res, 200);
    assert.equal(res.header('docker-content-digest'), image.digest);
    assert.equal(res.header('content-length'), String(image.manifest.length));
    assert.equal(res.body.length, 0);
  });

  test('spec §Pulling manifests: an image index is served with Content-Type application/vnd.oci.image.index.v1+json', async () => {
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [{ ...image.descriptor, platform: { architecture: 'amd64', os: 'linux' } }] }, null, 2),
    );
    const put = await putManifest(target.client, repo, 'multi', index, MT.index);
    expectStatus(put, 201);
    for (const ref of ['multi', sha256(index)]) {
      const res = await target.client.get(`/v2/${repo}/manifests/${ref}`, { headers: { Accept: `${MT.index}, ${MT.manifest}` } });
      expectStatus(res, 200);
      assert.equal(res.header('content-type'), MT.index);
      assert.equal(res.header('docker-content-digest'), sha256(index));
      assert.ok(res.body.equals(index));
    }
  });

  test('spec §Pulling manifests: a Docker schema2 manifest is served with its own media type', async () => {
    const config = Buffer.from('{"architecture":"arm64","os":"linux","docker":true}');
    await pushBlob(target.client, repo, config);
    const layer = randomBytesOf(300, 'docker-layer');
    await pushBlob(target.client, repo, layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha256(layer), size: layer.length }],
      }),
    );
    expectStatus(await putManifest(target.client, repo, 'docker', manifest, MT.dockerManifest), 201);
    const res = await target.client.get(`/v2/${repo}/manifests/docker`, { headers: { Accept: `${MT.dockerManifest}, ${MT.manifest}` } });
    expectStatus(res, 200);
    assert.equal(res.header('content-type'), MT.dockerManifest);
    assert.ok(res.body.equals(manifest));
  });

  test('spec §Pulling manifests: unknown tag answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await target.client.get(`/v2/${repo}/manifests/does-not-exist`, { headers: { Accept: MT.manifest } });
    expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  test('spec §Pulling manifests: unknown digest answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await target.client.get(`/v2/${repo}/manifests/${zeroDigest}`, { headers: { Accept: MT.manifest } });
    expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  test('spec §Checking if content exists: HEAD of an unknown manifest answers 404 without a body', async () => {
    const byTag = await target.client.head(`/v2/${repo}/manifests/does-not-exist`);
    expectStatus(byTag, 404);
    assert.equal(byTag.body.length, 0);
    const byDigest = await target.client.head(`/v2/${repo}/manifests/${zeroDigest}`);
    expectStatus(byDigest, 404);
    assert.equal(byDigest.body.length, 0);
  });

  test('spec §Pulling manifests: a manifest of an unknown repository answers 404 NAME_UNKNOWN or MANIFEST_UNKNOWN', async () => {
    const res = await target.client.get(`/v2/${uniqueRepo('nowhere')}/manifests/latest`);
    expectError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });

  test('spec §Pulling manifests: a manifest is scoped to its repository (404 from another repository)', async () => {
    const other = uniqueRepo('pull-other');
    await pushImage(target.client, other, { tag: 'x', seed: 'other-scope' });
    const res = await target.client.get(`/v2/${other}/manifests/${image.digest}`);
    expectError(res, 404, ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);
  });

  test('spec §Pulling manifests: a reference that is neither a tag nor a digest is refused (4xx), never served', async () => {
    const res = await target.client.get(`/v2/${repo}/manifests/-not-a-tag`);
    expectStatus(res, [400, 404]);
    if ((res.header('content-type') ?? '').startsWith('application/json')) expectError(res, [400, 404], ['MANIFEST_UNKNOWN', 'MANIFEST_INVALID', 'TAG_INVALID', 'NAME_INVALID']);
  });

  test(
    'spec §Pulling manifests: a malformed digest reference answers 400 DIGEST_INVALID (or 404 MANIFEST_UNKNOWN) in the error envelope',
    { todo: deviation('distribution', 'its router answers a plain-text 404 page for references matching neither grammar') },
    async () => {
      const res = await target.client.get(`/v2/${repo}/manifests/sha256:abc`);
      expectError(res, [400, 404], ['DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_INVALID']);
    },
  );
});

describe('Pull › Pulling blobs (end-2)', () => {
  test('spec §Pulling blobs: GET blob answers 200 with the exact bytes, Docker-Content-Digest and Content-Length', async () => {
    const layer = image.layers[0]!;
    const res = await target.client.get(`/v2/${repo}/blobs/${sha256(layer)}`);
    expectStatus(res, 200);
    assert.ok(res.body.equals(layer));
    assert.equal(res.header('docker-content-digest'), sha256(layer), 'Docker-Content-Digest MUST match the body');
    assert.equal(res.header('content-length'), String(layer.length));
  });

  test('spec §Checking if content exists: HEAD blob answers 200 with Docker-Content-Digest, Content-Length and no body', async () => {
    const res = await target.client.head(`/v2/${repo}/blobs/${sha256(image.config)}`);
    expectStatus(res, 200);
    assert.equal(res.header('docker-content-digest'), sha256(image.config));
    assert.equal(res.header('content-length'), String(image.config.length));
    assert.equal(res.body.length, 0);
  });

  test('spec §Pulling blobs: unknown blob answers 404 BLOB_UNKNOWN; HEAD answers 404 without body', async () => {
    expectError(await target.client.get(`/v2/${repo}/blobs/${zeroDigest}`), 404, 'BLOB_UNKNOWN');
    const head = await target.client.head(`/v2/${repo}/blobs/${zeroDigest}`);
    expectStatus(head, 404);
    assert.equal(head.body.length, 0);
  });

  test('spec §Pulling blobs: a blob is scoped to the repository it was pushed to (404 BLOB_UNKNOWN elsewhere)', async () => {
    const other = uniqueRepo('pull-blob-scope');
    await pushBlob(target.client, other, Buffer.from('something else entirely'));
    expectError(await target.client.get(`/v2/${other}/blobs/${sha256(image.layers[1]!)}`), 404, 'BLOB_UNKNOWN');
    expectStatus(await target.client.head(`/v2/${other}/blobs/${sha256(image.layers[1]!)}`), 404);
  });

  test('spec §Pulling blobs: a blob of an unknown repository answers 404 (BLOB_UNKNOWN or NAME_UNKNOWN)', async () => {
    expectError(await target.client.get(`/v2/${uniqueRepo('nowhere')}/blobs/${sha256(image.config)}`), 404, ['BLOB_UNKNOWN', 'NAME_UNKNOWN']);
  });

  test(
    'spec §Pulling blobs: a malformed digest answers 400 DIGEST_INVALID (or 404 BLOB_UNKNOWN) in the error envelope',
    { todo: deviation('distribution', 'its router answers a plain-text 404 page for malformed digests') },
    async () => {
      expectError(await target.client.get(`/v2/${repo}/blobs/sha256:xyz`), [400, 404], ['DIGEST_INVALID', 'BLOB_UNKNOWN']);
      expectError(await target.client.get(`/v2/${repo}/blobs/not-a-digest`), [400, 404], ['DIGEST_INVALID', 'BLOB_UNKNOWN']);
    },
  );
});

describe('Pull › blobs of several read chunks (the server reads 1 MiB at a time into reused buffers)', () => {
  const MiB = 1024 * 1024;
  const blobs = [3 * MiB + 123, 2 * MiB, MiB + 1, MiB - 1, 5 * MiB + 7].map((size, i) => randomBytesOf(size, `multi-chunk-${i}`));

  before(async () => {
    for (const blob of blobs) await pushBlob(target.client, repo, blob);
  });

  test('spec §Pulling blobs: concurrent GETs of different multi-chunk blobs each answer exactly their own bytes', async () => {
    // 3 rounds of every blob at once: a buffer reused before its socket write finished would mix contents.
    for (let round = 0; round < 3; round++) {
      const responses = await Promise.all(blobs.map((blob) => target.client.get(`/v2/${repo}/blobs/${sha256(blob)}`, { timeoutMs: 60_000 })));
      responses.forEach((res, i) => {
        expectStatus(res, 200);
        assert.equal(res.header('content-length'), String(blobs[i]!.length));
        assert.ok(res.body.equals(blobs[i]!), `blob ${i} (${blobs[i]!.length} bytes), round ${round}: body differs`);
      });
    }
  });

  test('RFC 9110 §14.2: a range crossing chunk boundaries answers exactly those bytes', async () => {
    const blob = blobs[0]!;
    const res = await target.client.get(`/v2/${repo}/blobs/${sha256(blob)}`, { headers: { Range: `bytes=${MiB - 10}-${2 * MiB + 9}` } });
    expectStatus(res, 206);
    assert.equal(res.header('content-range'), `bytes ${MiB - 10}-${2 * MiB + 9}/${blob.length}`);
    assert.ok(res.body.equals(blob.subarray(MiB - 10, 2 * MiB + 10)));
  });

  test('a client that disconnects in the middle of a pull does not disturb the next pulls', async () => {
    const blob = blobs[4]!;
    const path = `/v2/${repo}/blobs/${sha256(blob)}`;
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: target.client.origin.hostname, port: target.client.origin.port, path, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(error)));
    });
    const responses = await Promise.all([blob, blobs[0]!].map((b) => target.client.get(`/v2/${repo}/blobs/${sha256(b)}`, { timeoutMs: 60_000 })));
    assert.ok(responses[0]!.body.equals(blob));
    assert.ok(responses[1]!.body.equals(blobs[0]!));
  });
});

describe('Pull › Range requests (RFC 9110 §14, spec §Pulling blobs: "A registry SHOULD support the Range request header")', () => {
  const content = randomBytesOf(1000, 'range-blob');
  const digest = sha256(content);

  before(async () => {
    await pushBlob(target.client, repo, content);
  });

  test('spec §Pulling blobs + RFC 9110 §14.2: bytes=10-19 answers 206 with Content-Range bytes 10-19/1000 and the 10 bytes', async () => {
    const res = await target.client.get(`/v2/${repo}/blobs/${digest}`, { headers: { Range: 'bytes=10-19' } });
    expectStatus(res, 206);
    assert.equal(res.header('content-range'), 'bytes 10-19/1000');
    assert.equal(res.header('content-length'), '10');
    assert.ok(res.body.equals(content.subarray(10, 20)));
  });

  test('RFC 9110 §14.1.2: open-ended bytes=990- answers 206 with the last 10 bytes', async () => {
    const res = await target.client.get(`/v2/${repo}/blobs/${digest}`, { headers: { Range: 'bytes=990-' } });
    expectStatus(res, 206);
    assert.equal(res.header('content-range'), 'bytes 990-999/1000');
    assert.ok(res.body.equals(content.subarray(990)));
  });

  test('RFC 9110 §14.1.2: suffix bytes=-5 answers 206 with the last 5 bytes', async () => {
    const res = await target.client.get(`/v2/${repo}/blobs/${digest}`, { headers: { Range: 'bytes=-5' } });
    expectStatus(res, 206);
    assert.equal(res.header('content-range'), 'bytes 995-999/1000');
    assert.ok(res.body.equals(content.subarray(995)));
  });

  test('RFC 9110 §14.1.1: a range running past the end is truncated to the blob (bytes=900-5000 -> 900-999)', async () => {
    const res = await target.client.get(`/v2/${repo}/blobs/${digest}`, { headers: { Range: 'bytes=900-5000' } });
    expectStatus(res, 206);
    assert.equal(res.header('content-range'), 'bytes 900-999/1000');
    assert.ok(res.body.equals(content.subarray(900)));
  });

  test(
    'RFC 9110 §15.5.17: an unsatisfiable range (bytes=1000-) answers 416 with Content-Range bytes */1000',
    { todo: deviation('distribution', 'its 416 declares Content-Length: <blob size> but sends no body, so the connection is reset') },
    async () => {
      const res = await target.client.get(`/v2/${repo}/blobs/${digest}`, { headers: { Range: 'bytes=1000-' } });
      expectStatus(res, 416);
      assert.equal(res.header('content-range'), 'bytes */1000');
    },
  );

  test('RFC 9110 §14.3: a blob GET advertises Accept-Ranges: bytes', async () => {
    const res = await target.client.head(`/v2/${repo}/blobs/${digest}`);
    expectStatus(res, 200);
    assert.equal(res.header('accept-ranges'), 'bytes');
  });
});

describe('Pull › manifests and tags of the same content', () => {
  test('spec §Pushing Manifests: re-tagging points the tag at the new manifest; the old one stays pullable by digest', async () => {
    const r = uniqueRepo('retag');
    const first = await pushImage(target.client, r, { tag: 'latest', seed: 'retag-1' });
    const second = await pushImage(target.client, r, { tag: 'latest', seed: 'retag-2' });
    const byTag = await target.client.get(`/v2/${r}/manifests/latest`, { headers: { Accept: MT.manifest } });
    expectStatus(byTag, 200);
    assert.equal(byTag.header('docker-content-digest'), second.digest);
    assert.ok(byTag.body.equals(second.manifest));
    const old = await target.client.get(`/v2/${r}/manifests/${first.digest}`, { headers: { Accept: MT.manifest } });
    expectStatus(old, 200);
    assert.ok(old.body.equals(first.manifest));
  });

  test('spec §Pushing Manifests: the registry stores the exact byte representation (whitespace and key order preserved)', async () => {
    const r = uniqueRepo('bytes');
    const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
    await pushBlob(target.client, r, config);
    const compact = imageManifest(config, [], { indent: false });
    // Same JSON document, different bytes: key order and spacing changed.
    const doc = JSON.parse(compact.toString());
    const odd = Buffer.from(`{ "layers" : [ ],\r\n  "config":${JSON.stringify(doc.config)} , "mediaType":"${MT.manifest}", "schemaVersion" : 2 }   `);
    for (const body of [compact, odd]) {
      expectStatus(await putManifest(target.client, r, sha256(body), body), 201);
      const res = await target.client.get(`/v2/${r}/manifests/${sha256(body)}`, { headers: { Accept: MT.manifest } });
      expectStatus(res, 200);
      assert.ok(res.body.equals(body), `stored bytes differ for ${body.toString()}`);
      assert.equal(res.header('docker-content-digest'), sha256(body));
    }
  });
});
