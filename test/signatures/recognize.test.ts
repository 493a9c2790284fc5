/**
 * Recognition of signature artifacts as the tools push them: Notation referrers (real e2e layouts),
 * the cosign `.att` manifest from slsa-github-generator, plain images, and the manifests that must
 * be refused. The target digest always comes from the signed payload.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compilePolicy, verifyImage } from '../../src/registry/signatures/policy.ts';
import { recognize } from '../../src/registry/signatures/recognize.ts';
import { digestOf } from '../../src/registry/signatures/util.ts';
import { MemoryBlobs, OciLayout, read, readJson, readText, requireFixtures } from './fixtures.ts';

const present = requireFixtures();
const SUBJECT = 'sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9';

describe('recognition', { skip: !present && 'fixtures missing' }, () => {
  test('Notation referrer: envelope parsed, target from the payload, thumbprints from the manifest', async () => {
    const layout = new OciLayout('oci-manifests/notation/e2e-valid-signature');
    const refs = layout.referrers(SUBJECT);
    assert.equal(refs.length, 1);
    const art = await recognize(refs[0]!, { fetchBlob: layout.blobs.fetchBlob });
    assert.equal(art.kind, 'notation-signature');
    if (art.kind !== 'notation-signature') return;
    assert.equal(art.envelopeMediaType, 'application/jose+json');
    assert.deepEqual(art.targets, [SUBJECT]);
    assert.equal(art.subject?.digest, SUBJECT);
    assert.deepEqual(art.thumbprints, ['e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9']);
    assert.equal(art.envelope?.signingScheme, 'notary.x509');
  });

  test('a thumbprint annotation that does not match the envelope fails integrity', async () => {
    const layout = new OciLayout('oci-manifests/notation/e2e-valid-signature');
    const m = JSON.parse(layout.referrers(SUBJECT)[0]!.toString()) as Record<string, any>;
    m['annotations']['io.cncf.notary.x509chain.thumbprint#S256'] = JSON.stringify(['0'.repeat(64)]);
    const art = await recognize(Buffer.from(JSON.stringify(m)), { fetchBlob: layout.blobs.fetchBlob });
    const policy = compilePolicy({
      version: 1,
      notation: { trustPolicy: readJson('notation-trust/notation-e2e/trustpolicies/trustpolicy.json'), trustStores: { ca: { e2e: [readText('notation-trust/notation-e2e/localkeys/e2e.crt')] } }, repository: 'localhost:5000/e2e' },
    });
    const v = verifyImage(SUBJECT, [art], policy);
    assert.equal(v.verdict, 'failed');
    assert.match(v.missing.join(), /thumbprints/);
    // the unmodified referrer verifies, and it does not verify for another image
    const good = await recognize(layout.referrers(SUBJECT)[0]!, { fetchBlob: layout.blobs.fetchBlob });
    assert.equal(verifyImage(SUBJECT, [good], policy).verdict, 'verified');
    assert.match(verifyImage(`sha256:${'9'.repeat(64)}`, [good], policy).missing.join(), /signature is for sha256:b8479de3/);
  });

  test('newer Notation manifests: top-level artifactType with the empty config', async () => {
    const layout = new OciLayout('oci-manifests/notation/e2e-valid-signature');
    const m = JSON.parse(layout.referrers(SUBJECT)[0]!.toString()) as Record<string, any>;
    m['artifactType'] = 'application/vnd.cncf.notary.signature';
    m['config'] = { mediaType: 'application/vnd.oci.empty.v1+json', digest: layout.blobs.put(Buffer.from('{}')), size: 2 };
    const art = await recognize(Buffer.from(JSON.stringify(m)), { fetchBlob: layout.blobs.fetchBlob });
    assert.equal(art.kind, 'notation-signature');
    const two = { ...m, layers: [m['layers'][0], m['layers'][0]] };
    await assert.rejects(recognize(Buffer.from(JSON.stringify(two)), { fetchBlob: layout.blobs.fetchBlob }), /exactly one layer/);
  });

  test('plain image manifests and indexes are not signatures', async () => {
    const layout = new OciLayout('oci-manifests/notation/e2e');
    const image = layout.blob(layout.tagged('v1')!);
    assert.equal((await recognize(image, { fetchBlob: layout.blobs.fetchBlob })).kind, 'not-a-signature');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    assert.equal((await recognize(index, { fetchBlob: layout.blobs.fetchBlob })).kind, 'not-a-signature');
  });

  test('cosign .att: the DSSE layer is read, targets come from the in-toto subject, not the tag', async () => {
    const layout = new OciLayout('oci-manifests/cosign-slsa-container');
    const manifest = read('oci-manifests/cosign-slsa-container/blobs/sha256/21454caf3a160dfbe6359f0501aa8401c6c0f2c7a8b71380ea21f8c4b48b64fe');
    const lyingTag = `sha256-${'7'.repeat(64)}.att`;
    const art = await recognize(manifest, { fetchBlob: layout.blobs.fetchBlob, tag: lyingTag });
    assert.equal(art.kind, 'cosign-attestation');
    if (art.kind !== 'cosign-attestation') return;
    assert.equal(art.tagTarget, `sha256:${'7'.repeat(64)}`);
    assert.deepEqual(art.targets, ['sha256:234e2c830c2fb31ac5671789d22adfe44d30c3ee831d01beae5e237841a13122']);
    assert.equal(art.layers[0]?.statement?.predicateType, 'https://slsa.dev/provenance/v0.2');
    assert.ok(art.layers[0]?.certificatePem && art.layers[0]?.rekorBundle);
  });

  test('layer content must match its descriptor', async () => {
    const blobs = new MemoryBlobs();
    const payload = read('cosign-key/containers-image/dir-img-cosign-valid/signature-1.payload.json');
    const d = blobs.put(Buffer.from('something else entirely'));
    const m = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('{}'), size: 2 },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: d, size: payload.length, annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } }],
    }));
    const art = await recognize(m, { fetchBlob: blobs.fetchBlob });
    assert.equal(art.kind, 'cosign-signature');
    if (art.kind === 'cosign-signature') assert.match(art.layers[0]?.problem ?? '', /does not match its descriptor/);
  });
});
