/**
 * Targeted negatives on real fixtures, beyond each case's own verdict: keyless identity and issuer
 * matching (exact and regex), missing Rekor material, SLSA builder/source/ref mismatches the way
 * slsa-verifier reports them, private-PKI time and trust checks, and the explanations given.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkRequirement } from '../../src/registry/signatures/attestation.ts';
import { verifyCosignSignatureLayer, type CosignVerifyContext } from '../../src/registry/signatures/cosign.ts';
import { builderIdMatches, normaliseRepository, pae, parseDsseEnvelope, verifyDsseWithKeys } from '../../src/registry/signatures/intoto.ts';
import { loadPublicKey } from '../../src/registry/signatures/keys.ts';
import { recognize, type CosignSignatureLayer } from '../../src/registry/signatures/recognize.ts';
import { loadSigstoreTrustedRoot, trustRootFromMaterial, verifySigstoreBundle, type SigstoreResult } from '../../src/registry/signatures/sigstore.ts';
import { digestOf } from '../../src/registry/signatures/util.ts';
import { parseCertificates } from '../../src/registry/signatures/x509.ts';
import { MemoryBlobs, cosignSigManifest, read, readJson, requireFixtures } from './fixtures.ts';
import { compilePolicy, verifyImage } from '../../src/registry/signatures/policy.ts';
import { generateKeyPairSync, sign } from 'node:crypto';

const present = requireFixtures();
const CONF = 'cosign-keyless/conformance';
const IDENTITY = 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const ISSUER = 'https://token.actions.githubusercontent.com';

function reasonOf(r: SigstoreResult): string {
  return r.ok ? 'ok' : `${r.code}: ${r.reason}`;
}

describe('keyless identities on a good bundle', { skip: !present && 'fixtures missing' }, () => {
  const trust = present ? loadSigstoreTrustedRoot(read('cosign-keyless/trusted_root.production.json')) : (undefined as never);
  const bundle = () => read(`${CONF}/happy-path-v0.3/bundle.sigstore.json`);
  const artifact = () => read(`${CONF}/a.txt`);

  test('exact and regex subject/issuer match; anything else is an identity mismatch', () => {
    const ok = verifySigstoreBundle(bundle(), { trust, artifact: artifact(), identities: [{ subject: IDENTITY, issuer: ISSUER }] });
    assert.ok(ok.ok, reasonOf(ok));
    if (ok.ok) {
      assert.equal(ok.signer.kind, 'certificate');
      assert.equal(ok.timestamps[0]?.kind, 'transparency-log');
    }
    assert.ok(verifySigstoreBundle(bundle(), { trust, artifact: artifact(), identities: [{ subjectRegExp: '^https://github\\.com/sigstore-conformance/', issuerRegExp: '^https://token\\.actions\\.' }] }).ok);
    const wrongSubject = verifySigstoreBundle(bundle(), { trust, artifact: artifact(), identities: [{ subject: 'https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main', issuer: ISSUER }] });
    assert.equal(wrongSubject.ok, false);
    assert.match(reasonOf(wrongSubject), /IDENTITY_MISMATCH: certificate identity https:\/\/github.com\/sigstore-conformance.* matches none of/);
    const wrongIssuer = verifySigstoreBundle(bundle(), { trust, artifact: artifact(), identities: [{ subject: IDENTITY, issuer: 'https://accounts.google.com' }] });
    assert.match(reasonOf(wrongIssuer), /IDENTITY_MISMATCH/);
    const anchored = verifySigstoreBundle(bundle(), { trust, artifact: artifact(), identities: [{ subjectRegExp: '^https://github\\.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/$' }] });
    assert.equal(anchored.ok, false, 'regexes are not implicitly prefix matches');
    const none = verifySigstoreBundle(bundle(), { trust, artifact: artifact() });
    assert.match(reasonOf(none), /NO_IDENTITY_POLICY/);
  });

  test('wrong artifact, wrong trust root, unsupported media type, oversized bundle', () => {
    assert.match(reasonOf(verifySigstoreBundle(bundle(), { trust, artifact: Buffer.from('other'), identities: [{ subject: IDENTITY }] })), /TLOG_BODY_ERROR|SIGNATURE_ERROR/);
    const staging = loadSigstoreTrustedRoot(read(`${CONF}/rekor2-happy-path/trusted_root.json`));
    assert.equal(verifySigstoreBundle(bundle(), { trust: staging, artifact: artifact(), identities: [{ subject: IDENTITY }] }).ok, false);
    const json = JSON.parse(bundle().toString()) as Record<string, unknown>;
    assert.match(reasonOf(verifySigstoreBundle({ ...json, mediaType: 'application/vnd.dev.sigstore.bundle.v9+json' }, { trust, artifact: artifact() })), /UNSUPPORTED_BUNDLE/);
    assert.match(reasonOf(verifySigstoreBundle(Buffer.alloc(5 * 1024 * 1024, 0x20), { trust, artifact: artifact() })), /TOO_LARGE/);
  });
});

describe('cosign tag-scheme keyless and key+Rekor: upstream negatives', { skip: !present && 'fixtures missing' }, () => {
  async function layerOf(dir: string): Promise<CosignSignatureLayer> {
    const blobs = new MemoryBlobs();
    const descriptor = readJson<Record<string, any>>(`cosign-key/containers-image/${dir}/signature-1.layer-descriptor.json`);
    const manifest = cosignSigManifest(blobs, [{ descriptor, payload: read(`cosign-key/containers-image/${dir}/signature-1.payload.json`) }]);
    const art = await recognize(manifest, { fetchBlob: blobs.fetchBlob });
    assert.equal(art.kind, 'cosign-signature');
    return (art as { layers: CosignSignatureLayer[] }).layers[0]!;
  }
  const rekor = () => loadPublicKey(read('cosign-key/containers-image/keys/rekor.pub'));
  const digest = 'sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a';

  test('Fulcio + Rekor: another e-mail is rejected, a missing SET is rejected, a wrong Rekor key is rejected', async () => {
    const layer = await layerOf('dir-img-cosign-fulcio-rekor-valid');
    const ctx = (rekorKey = rekor()): CosignVerifyContext => ({
      sigstore: trustRootFromMaterial({
        rekorKeys: [rekorKey],
        certificateAuthorities: [parseCertificates(read('cosign-key/containers-image/keys/fulcio_v1.crt.pem'))],
        ctlogsFrom: loadSigstoreTrustedRoot(read('cosign-keyless/trusted_root.production.json')),
      }),
      identities: [{ subject: 'mitr@redhat.com', issuer: 'https://github.com/login/oauth' }],
    });
    assert.ok(verifyCosignSignatureLayer(layer, digest, ctx()).ok);
    const other = verifyCosignSignatureLayer(layer, digest, { ...ctx(), identities: [{ subject: 'this-does-not-match@example.com' }] });
    assert.match(other.reason, /matches none of: this-does-not-match@example.com/);
    const { rekorBundle: _drop, ...withoutSet } = layer;
    assert.match(verifyCosignSignatureLayer(withoutSet, digest, ctx()).reason, /without a Rekor entry/);
    assert.equal(verifyCosignSignatureLayer(layer, digest, ctx(loadPublicKey(read('cosign-key/containers-image/keys/cosign.pub')))).ok, false, 'cosign.pub is not the Rekor key');
  });

  test('key + Rekor SET: modified SET or wrong key fails', async () => {
    const layer = await layerOf('dir-img-cosign-key-rekor-valid');
    const keys = [{ info: loadPublicKey(read('cosign-key/containers-image/keys/cosign2.pub')) }];
    const sigstore = trustRootFromMaterial({ rekorKeys: [rekor()] });
    assert.ok(verifyCosignSignatureLayer(layer, digest, { keys, sigstore }).ok);
    const badSet = { ...layer, rekorBundle: { ...layer.rekorBundle!, integratedTime: layer.rekorBundle!.integratedTime + 1 } };
    assert.match(verifyCosignSignatureLayer(badSet, digest, { keys, sigstore }).reason, /inclusion promise/);
    assert.equal(verifyCosignSignatureLayer(layer, digest, { keys: [{ info: loadPublicKey(read('cosign-key/containers-image/keys/cosign.pub')) }], sigstore }).ok, false);
  });

  test('private PKI: untrusted root and verification outside the validity are refused', async () => {
    const layer = await layerOf('dir-img-cosign-pki-valid');
    const d = 'sha256:253c890b744fe3efa923b68e3a1be07bd007eb44ba29da1e7deb1d4c53b3e212';
    const roots = parseCertificates(read('cosign-key/containers-image/keys/pki_root_crts.pem'));
    const intermediates = parseCertificates(read('cosign-key/containers-image/keys/pki_intermediate_crts.pem'));
    const ctx: CosignVerifyContext = { pkiRoots: roots, pkiIntermediates: intermediates, identities: [{ subject: 'qiwan@redhat.com' }] };
    assert.ok(verifyCosignSignatureLayer(layer, d, ctx).ok);
    assert.match(verifyCosignSignatureLayer(layer, d, { ...ctx, pkiRoots: parseCertificates(read('cosign-key/containers-image/keys/fulcio_v1.crt.pem')) }).reason, /does not lead to a trusted root/);
    assert.match(verifyCosignSignatureLayer(layer, d, { ...ctx, now: new Date('2060-01-01') }).reason, /not valid at 2060/);
    assert.match(verifyCosignSignatureLayer(layer, d, { ...ctx, now: new Date('2020-01-01') }).reason, /not valid at 2020/);
    assert.match(verifyCosignSignatureLayer(layer, d, { ...ctx, identities: [{ subject: 'someone@else' }] }).reason, /match none of/);
  });
});

describe('SLSA provenance requirements (slsa-verifier negatives)', { skip: !present && 'fixtures missing' }, () => {
  const trust = present ? loadSigstoreTrustedRoot(read('cosign-keyless/trusted_root.production.json')) : (undefined as never);
  const generator = { subjectRegExp: '^https://github\\.com/slsa-framework/slsa-github-generator/', issuer: ISSUER };
  function verified(file: string, digest: string) {
    const r = verifySigstoreBundle(read(file), { trust, identities: [generator], artifactDigest: { algorithm: 'sha256', hex: digest } });
    assert.ok(r.ok && r.statement, reasonOf(r));
    return r as Extract<SigstoreResult, { ok: true }>;
  }

  test('source, ref, tag and builder checks', () => {
    const dispatch = verified('dsse-intoto/slsa-verifier/gha_generic/v2.1.0/binary-linux-amd64-workflow_dispatch.intoto.jsonl', '376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa');
    const base = { predicateType: 'slsaprovenance', builderId: 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml', sourceRepository: 'github.com/slsa-framework/example-package' };
    const check = (extra: object) => checkRequirement(dispatch.statement!, dispatch.signer, { ...base, ...extra });
    assert.ok(check({}).ok);
    assert.match(check({ sourceRef: 'refs/heads/master' }).reasons.join(), /source ref refs\/heads\/main is not refs\/heads\/master/);
    assert.match(check({ sourceRepository: 'github.com/slsa-framework/example-packageA' }).reasons.join(), /source github.com\/slsa-framework\/example-package is not/);
    assert.match(check({ sourceRef: 'v1.2.3' }).reasons.join(), /refs\/tags\/v1.2.3/);
    assert.match(check({ builderId: 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/not-trusted.yml' }).reasons.join(), /builder/);
    assert.match(check({ predicateType: 'https://spdx.dev/Document' }).reasons.join(), /predicate type/);
    assert.match(check({ predicateType: 'cyclonedx' }).reasons.join(), /predicate type/);
    assert.ok(check({ predicateType: 'https://slsa.dev/provenance/v0.2' }).ok);
    assert.equal(check({ predicateType: 'slsaprovenance1' }).ok, false, 'v0.2 provenance is not v1');
    assert.match(check({ signerIdentities: [{ subjectRegExp: '^https://github\\.com/evil/' }] }).reasons.join(), /not by a trusted signer/);

    const tag = verified('dsse-intoto/slsa-verifier/gha_generic/v2.1.0/binary-linux-amd64-push-v13.0.30.intoto.jsonl', '376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa');
    assert.ok(checkRequirement(tag.statement!, tag.signer, { ...base, sourceRef: 'v13.0.30' }).ok);
    for (const t of ['v13.0.29', 'v13.0', 'v13']) assert.equal(checkRequirement(tag.statement!, tag.signer, { ...base, sourceRef: t }).ok, false, t);
  });

  test('helpers', () => {
    assert.equal(normaliseRepository('git+https://github.com/org/repo.git@refs/heads/main'), 'github.com/org/repo');
    assert.ok(builderIdMatches('https://x/y.yml', 'https://x/y.yml@refs/tags/v1'));
    assert.equal(builderIdMatches('https://x/y.yml@refs/tags/v2', 'https://x/y.yml@refs/tags/v1'), false);
    assert.equal(builderIdMatches('https://x/y', 'https://x/y.yml@refs/tags/v1'), false);
  });
});

describe('DSSE with keys', () => {
  test('PAE, key id binding, DER and raw ECDSA signatures, wrong key', () => {
    assert.equal(pae('t', Buffer.from('ab')).toString(), 'DSSEv1 1 t 2 ab');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const payload = Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}');
    const data = pae('application/vnd.in-toto+json', payload);
    const info = loadPublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k');
    for (const dsaEncoding of ['der', 'ieee-p1363'] as const) {
      const sig = sign('sha256', data, { key: privateKey, dsaEncoding }).toString('base64');
      const env = parseDsseEnvelope(JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: payload.toString('base64'), signatures: [{ keyid: 'kid', sig }] }));
      assert.ok(verifyDsseWithKeys(env, [info]).ok, dsaEncoding);
      assert.equal(verifyDsseWithKeys(env, [info], { keyId: 'other' }).ok, false);
      assert.equal(verifyDsseWithKeys(env, [loadPublicKey(other.publicKey.export({ type: 'spki', format: 'pem' }).toString())]).ok, false);
    }
    assert.throws(() => parseDsseEnvelope('{"payloadType":"x","payload":"!!","signatures":[{"sig":"AA=="}]}'), /base64/);
    assert.throws(() => parseDsseEnvelope('{"payloadType":"x","payload":"","signatures":[]}'), /no signatures/);
    assert.equal(digestOf(''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('sigstore bundle referrers in verifyImage', { skip: !present && 'fixtures missing' }, () => {
  test('a message-signature bundle over the manifest digest verifies by digest; another image or identity does not', async () => {
    // the conformance artifact stands in for a manifest: its sha256 is the "image" digest
    const image = digestOf(read(`${CONF}/a.txt`));
    const bundle = read(`${CONF}/happy-path-v0.3-new-mediaType/bundle.sigstore.json`);
    const blobs = new MemoryBlobs();
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: blobs.put(Buffer.from('{}')), size: 2 },
      layers: [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: blobs.put(bundle), size: bundle.length }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image, size: 1 },
    }));
    const art = await recognize(manifest, { fetchBlob: blobs.fetchBlob });
    assert.deepEqual(art.targets, [image]);
    const policy = (subject: string) => compilePolicy({ version: 1, keyless: { trustedRoot: readJson('cosign-keyless/trusted_root.production.json'), identities: [{ subject, issuer: ISSUER }] } });
    const ok = verifyImage(image, [art], policy(IDENTITY));
    assert.equal(ok.verdict, 'verified', ok.missing.join());
    assert.equal(ok.signatures[0]?.signer?.kind, 'certificate');
    assert.equal(verifyImage(`sha256:${'3'.repeat(64)}`, [art], policy(IDENTITY)).verdict, 'failed');
    assert.match(verifyImage(image, [art], policy('someone@example.com')).missing.join(), /IDENTITY_MISMATCH|matches none/);
  });
});
