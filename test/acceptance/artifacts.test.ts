import assert from 'node:assert/strict';
import { createSign, createVerify, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { describeResponse, getBlob, getManifest, pushBlob, pushImage, putManifest } from './helpers/http.ts';
import { buildImage, hexOf, MEDIA, randomFile, sha256, type Descriptor } from './helpers/oci.ts';
import { startTarget, type Target } from './helpers/target.ts';
import { createClientEnvironment, requireTools, run, type ClientEnvironment } from './helpers/tools.ts';

const SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const SBOM_TYPE = 'application/vnd.example.sbom.v1+json';
const SIGNATURE_TYPE = 'application/vnd.example.signature.v1+json';
const EMPTY_JSON = Buffer.from('{}');

interface ReferrersIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

/** Builds what `cosign sign` pushes: a simple-signing payload layer carrying the signature annotation. */
function cosignSignature(dockerReference: string, imageDigest: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const payload = Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': imageDigest }, type: 'cosign container image signature' },
      optional: null,
    }),
  );
  const signature = createSign('sha256').update(payload).sign(privateKey).toString('base64');
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: [sha256(payload)] },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: SIMPLESIGNING, size: payload.length, digest: sha256(payload), annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature } }],
    }),
  );
  return { payload, signature, config, manifest, publicKey };
}

describe('signatures and OCI 1.1 artifacts', () => {
  let target: Target;
  let clients: ClientEnvironment;

  before(async () => {
    target = await startTarget();
    clients = await createClientEnvironment(target.host);
  });

  after(async () => {
    await target?.stop();
    await clients?.cleanup();
  });

  async function pushSubject(repo: string) {
    const image = buildImage({ layers: [[randomFile('subject.bin', 8 * 1024)]] });
    await pushImage(target.url, repo, 'v1', image);
    return image;
  }

  test('cosign-style signature tagged sha256-<hex>.sig round-trips byte-identical and verifies', async () => {
    const repo = 'artifacts/signed';
    const image = await pushSubject(repo);
    const sig = cosignSignature(`${target.host}/${repo}`, image.manifest.descriptor.digest);
    const tag = `sha256-${hexOf(image.manifest.descriptor.digest)}.sig`;

    await pushBlob(target.url, repo, sig.config);
    await pushBlob(target.url, repo, sig.payload);
    const put = await putManifest(target.url, repo, tag, sig.manifest, MEDIA.ociManifest);
    const putBody = await put.text();
    assert.equal(put.status, 201, `PUT signature manifest:\n${await describeResponse(put, putBody)}`);
    assert.equal(put.headers.get('docker-content-digest'), sha256(sig.manifest));

    const { response, bytes } = await getManifest(target.url, repo, tag, MEDIA.ociManifest);
    assert.equal(response.status, 200, await describeResponse(response, bytes.toString()));
    assert.ok(bytes.equals(sig.manifest), 'signature manifest is byte-identical');
    assert.equal(response.headers.get('content-type'), MEDIA.ociManifest);
    assert.equal(response.headers.get('docker-content-digest'), sha256(sig.manifest));

    // What `cosign verify` does: read the layer, check the annotation's signature over the payload.
    const fetched = JSON.parse(bytes.toString()) as { layers: Descriptor[] };
    const layer = fetched.layers[0]!;
    assert.equal(layer.mediaType, SIMPLESIGNING);
    const payload = await getBlob(target.url, repo, layer.digest);
    assert.equal(payload.response.status, 200);
    assert.ok(payload.bytes.equals(sig.payload), 'simple-signing payload is byte-identical');
    const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    assert.equal(signature, sig.signature);
    assert.ok(createVerify('sha256').update(payload.bytes).verify(sig.publicKey, Buffer.from(signature!, 'base64')), 'signature verifies');
    const claims = JSON.parse(payload.bytes.toString()) as { critical: { image: { 'docker-manifest-digest': string } } };
    assert.equal(claims.critical.image['docker-manifest-digest'], image.manifest.descriptor.digest);

    const tags = await fetch(`${target.url}/v2/${repo}/tags/list`);
    const list = (await tags.json()) as { name: string; tags: string[] };
    assert.equal(list.name, repo);
    assert.deepEqual([...list.tags].sort(), [tag, 'v1'].sort());
  });

  test('skopeo reads and copies the cosign signature unchanged', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const repo = 'artifacts/signed-copy';
    const image = await pushSubject(repo);
    const sig = cosignSignature(`${target.host}/${repo}`, image.manifest.descriptor.digest);
    const tag = `sha256-${hexOf(image.manifest.descriptor.digest)}.sig`;
    await pushBlob(target.url, repo, sig.config);
    await pushBlob(target.url, repo, sig.payload);
    const put = await putManifest(target.url, repo, tag, sig.manifest, MEDIA.ociManifest);
    await put.arrayBuffer();
    assert.equal(put.status, 201);

    const skopeo = (...args: string[]) => run('skopeo', [...clients.skopeo, ...args], { env: clients.env });
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${target.host}/${repo}:${tag}`);
    assert.equal(raw.stdout, sig.manifest.toString(), 'skopeo inspect --raw of the .sig tag');
    await skopeo('copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${target.host}/${repo}:${tag}`, `docker://${target.host}/artifacts/mirror:${tag}`);
    const copied = await getManifest(target.url, 'artifacts/mirror', tag, MEDIA.ociManifest);
    assert.ok(copied.bytes.equals(sig.manifest), 'signature copied to another repository is byte-identical (same digest)');
    const payload = await getBlob(target.url, 'artifacts/mirror', sha256(sig.payload));
    assert.ok(payload.bytes.equals(sig.payload));
  });

  test('OCI 1.1 artifacts with a subject: OCI-Subject header and the referrers API (with artifactType filter)', async (t) => {
    const repo = 'artifacts/referred';
    const image = await pushSubject(repo);
    const subject: Descriptor = image.manifest.descriptor;

    // Artifact A: artifactType field, empty config (the OCI 1.1 "artifact" guidance).
    await pushBlob(target.url, repo, EMPTY_JSON);
    const sbom = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'acceptance' }));
    await pushBlob(target.url, repo, sbom);
    const artifactA = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        artifactType: SBOM_TYPE,
        config: { mediaType: MEDIA.ociEmpty, digest: sha256(EMPTY_JSON), size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: sha256(sbom), size: sbom.length }],
        subject,
        annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.kind': 'sbom' },
      }),
    );
    // Artifact B: no artifactType field: the config media type is the artifact type.
    const sigConfig = Buffer.from(JSON.stringify({ signer: 'acceptance' }));
    await pushBlob(target.url, repo, sigConfig);
    const artifactB = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config: { mediaType: SIGNATURE_TYPE, digest: sha256(sigConfig), size: sigConfig.length },
        layers: [{ mediaType: 'application/octet-stream', digest: sha256(sbom), size: sbom.length }],
        subject,
      }),
    );

    const putResponses = [];
    for (const artifact of [artifactA, artifactB]) {
      const response = await putManifest(target.url, repo, sha256(artifact), artifact, MEDIA.ociManifest);
      const body = await response.text();
      assert.equal(response.status, 201, `PUT artifact by digest:\n${await describeResponse(response, body)}`);
      assert.equal(response.headers.get('docker-content-digest'), sha256(artifact));
      const fetched = await getManifest(target.url, repo, sha256(artifact), MEDIA.ociManifest);
      assert.ok(fetched.bytes.equals(artifact), 'artifact manifest reads back byte-identical');
      putResponses.push(response);
    }

    if (target.name === 'distribution') {
      t.skip('distribution 2.8 predates OCI 1.1: no OCI-Subject header, no referrers API');
      return;
    }

    for (const response of putResponses) {
      assert.equal(response.headers.get('oci-subject'), subject.digest, 'PUT of a manifest with a subject answers OCI-Subject: <subject digest>');
    }

    const referrers = await fetch(`${target.url}/v2/${repo}/referrers/${subject.digest}`);
    const referrersText = await referrers.text();
    assert.equal(referrers.status, 200, `GET referrers:\n${await describeResponse(referrers, referrersText)}`);
    assert.match(referrers.headers.get('content-type') ?? '', /^application\/vnd\.oci\.image\.index\.v1\+json/);
    const index = JSON.parse(referrersText) as ReferrersIndex;
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MEDIA.ociIndex);
    const byDigest = new Map(index.manifests.map((entry) => [entry.digest, entry]));
    assert.equal(index.manifests.length, 2, `exactly the two referrers: ${referrersText}`);
    const a = byDigest.get(sha256(artifactA));
    const b = byDigest.get(sha256(artifactB));
    assert.ok(a && b, `both artifacts listed: ${referrersText}`);
    assert.deepEqual(
      { mediaType: a.mediaType, size: a.size, artifactType: a.artifactType, annotations: a.annotations },
      {
        mediaType: MEDIA.ociManifest,
        size: artifactA.length,
        artifactType: SBOM_TYPE,
        annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.kind': 'sbom' },
      },
      'descriptor of artifact A',
    );
    assert.equal(b.size, artifactB.length);
    assert.equal(b.artifactType, SIGNATURE_TYPE, 'without artifactType the config media type is used');

    const filtered = await fetch(`${target.url}/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent(SBOM_TYPE)}`);
    const filteredText = await filtered.text();
    assert.equal(filtered.status, 200, await describeResponse(filtered, filteredText));
    assert.match(filtered.headers.get('oci-filters-applied') ?? '', /artifactType/, 'OCI-Filters-Applied: artifactType');
    assert.deepEqual(
      (JSON.parse(filteredText) as ReferrersIndex).manifests.map((entry) => entry.digest),
      [sha256(artifactA)],
      '?artifactType= keeps only the matching referrer',
    );

    // A digest nobody refers to: 200 with an empty index.
    const none = await fetch(`${target.url}/v2/${repo}/referrers/${sha256('no such subject')}`);
    const noneText = await none.text();
    assert.equal(none.status, 200, `referrers of an unknown digest:\n${await describeResponse(none, noneText)}`);
    assert.deepEqual((JSON.parse(noneText) as ReferrersIndex).manifests, []);

    // Deleting a referrer removes it from the list.
    const del = await fetch(`${target.url}/v2/${repo}/manifests/${sha256(artifactA)}`, { method: 'DELETE' });
    await del.arrayBuffer();
    assert.equal(del.status, 202, 'DELETE artifact manifest');
    const after = (await (await fetch(`${target.url}/v2/${repo}/referrers/${subject.digest}`)).json()) as ReferrersIndex;
    assert.deepEqual(after.manifests.map((entry) => entry.digest), [sha256(artifactB)], 'deleted referrer is no longer listed');
  });
});
