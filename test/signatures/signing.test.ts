/**
 * What Portcullis signs must verify with independent tools: cosign simple-signing signatures with
 * `openssl dgst -verify` against the public key, Notation JWS with openssl over the JWS signing input;
 * and cosign's encrypted key format round-trips. Verification negatives use a throw-away openssl PKI.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNotationEnvelope, parseNotationTrustPolicy, verifyNotation, type NotationTrustPolicy } from '../../src/registry/signatures/notation.ts';
import { compilePolicy, verifyImage } from '../../src/registry/signatures/policy.ts';
import { recognize } from '../../src/registry/signatures/recognize.ts';
import {
  cosignSign,
  cosignSignatureManifest,
  cosignTag,
  encryptCosignPrivateKey,
  generateCosignKeyPair,
  importCosignPrivateKey,
  signNotationJws,
} from '../../src/registry/signatures/signing.ts';
import { parseSimpleSigning } from '../../src/registry/signatures/simplesigning.ts';
import { buildSimpleSigningPayload } from '../../src/registry/signatures/simplesigning.ts';
import { digestOf } from '../../src/registry/signatures/util.ts';
import { parseCertificates } from '../../src/registry/signatures/x509.ts';
import { checkRevocation, parseCrls } from '../../src/registry/signatures/revocation.ts';
import { MemoryBlobs, fixturesPresent, read, readText, requireFixtures } from './fixtures.ts';
import { makeTestPki, opensslVerify, type TestPki } from './pki.ts';

const IMAGE = `sha256:${'ab'.repeat(32)}`;
const OTHER_IMAGE = `sha256:${'cd'.repeat(32)}`;
let tmp: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-sign-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('cosign keys', () => {
  test('generated key pair round-trips through the encrypted PEM, and a wrong password is refused', () => {
    const kp = generateCosignKeyPair('s3cret');
    assert.match(kp.privateKeyPem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    const imported = importCosignPrivateKey(kp.privateKeyPem, 's3cret');
    assert.equal(imported.publicKey.export({ type: 'spki', format: 'pem' }), kp.publicKeyPem);
    assert.throws(() => importCosignPrivateKey(kp.privateKeyPem, 'wrong'), /wrong password/);
    const body = JSON.parse(Buffer.from(kp.privateKeyPem.split('\n').slice(1, -2).join(''), 'base64').toString()) as Record<string, any>;
    assert.deepEqual(body['kdf'].params, { N: 32768, r: 8, p: 1 });
    assert.equal(body['cipher'].name, 'nacl/secretbox');
  });

  test('the old ENCRYPTED COSIGN PRIVATE KEY label is accepted', () => {
    const { privateKey } = generateCosignKeyPair('x');
    const pem = encryptCosignPrivateKey(privateKey, 'pw', 'ENCRYPTED COSIGN PRIVATE KEY');
    assert.ok(importCosignPrivateKey(pem, 'pw'));
  });

  test('malformed encrypted keys are rejected with a reason', () => {
    assert.throws(() => importCosignPrivateKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'x'), /no ENCRYPTED/);
    const bad = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from(JSON.stringify({ kdf: { name: 'pbkdf2', params: {} }, cipher: { name: 'nacl/secretbox' } })).toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
    assert.throws(() => importCosignPrivateKey(bad, 'x'), /scrypt/);
  });
});

describe('cosign simple signing', { skip: !requireFixtures() && 'fixtures missing' }, () => {
  test('payload bytes are exactly what cosign writes', () => {
    // containers/image fixture: real cosign output for this reference and digest
    const real = read('cosign-key/containers-image/dir-img-cosign-valid/signature-1.payload.json');
    const parsed = parseSimpleSigning(real);
    assert.deepEqual(buildSimpleSigningPayload(parsed.dockerReference, parsed.manifestDigest), real);
    const withAnn = buildSimpleSigningPayload('r.example/app', IMAGE, { z: '1', a: '<&>' });
    assert.equal(withAnn.toString(), `{"critical":{"identity":{"docker-reference":"r.example/app"},"image":{"docker-manifest-digest":"${IMAGE}"},"type":"cosign container image signature"},"optional":{"a":"\\u003c\\u0026\\u003e","z":"1"}}`);
  });

  test('a signature made with the fixture key (password hello) verifies with openssl dgst -verify', () => {
    const key = importCosignPrivateKey(readText('cosign-key/cosign/encrypted-sigstore.key'), 'hello');
    const layer = cosignSign(key.privateKey, 'registry.example/app', IMAGE, { build: '42' });
    const pub = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.ok(opensslVerify(tmp, { pubPem: pub, data: layer.payload, signature: Buffer.from(layer.signature, 'base64'), digest: 'sha256' }), 'openssl verifies');
    assert.equal(opensslVerify(tmp, { pubPem: pub, data: Buffer.concat([layer.payload, Buffer.from(' ')]), signature: Buffer.from(layer.signature, 'base64'), digest: 'sha256' }), false, 'tampered payload fails');
    assert.equal(parseSimpleSigning(layer.payload).manifestDigest, IMAGE, "the payload names the image's digest");
    assert.equal(cosignTag(IMAGE, 'sig'), `sha256-${'ab'.repeat(32)}.sig`);
  });
});

describe('cosign .sig round trip through recognition and verifyImage', () => {
  const kp = generateCosignKeyPair('pw');
  const other = generateCosignKeyPair('pw');
  const policy = compilePolicy({ version: 3, keys: [{ name: 'ci', publicKey: kp.publicKeyPem }] });

  async function push(layers: ReturnType<typeof cosignSign>[], tag = cosignTag(IMAGE, 'sig'), tamper?: (payload: Buffer) => Buffer) {
    const blobs = new MemoryBlobs();
    const descriptors = layers.map((l) => {
      const payload = tamper ? tamper(l.payload) : l.payload;
      blobs.put(payload);
      return { ...l.descriptor, digest: digestOf(payload), size: payload.length };
    });
    const { manifest, config } = cosignSignatureManifest(descriptors);
    blobs.put(config);
    return recognize(manifest, { fetchBlob: blobs.fetchBlob, tag });
  }

  test('a good signature verifies, and the verdict names the key and is keyed by digest and policy', async () => {
    const art = await push([cosignSign(kp.privateKey, 'r.example/app', IMAGE)]);
    const v = verifyImage(IMAGE, [art], policy);
    assert.equal(v.verdict, 'verified', JSON.stringify(v));
    assert.equal(v.signatures[0]?.signer?.kind, 'key');
    assert.match(v.signatures[0]?.reason ?? '', /key ci/);
    assert.equal(v.cacheKey, `${IMAGE}|${policy.hash}`);
    const changed = compilePolicy({ version: 4, keys: [{ name: 'ci', publicKey: kp.publicKeyPem }] });
    assert.notEqual(changed.hash, policy.hash, 'a policy change changes the cache key');
    assert.deepEqual(JSON.parse(JSON.stringify(v)), v, 'the verdict is plain JSON');
  });

  test('wrong key, tampered payload, payload for another digest, signature moved to another image', async () => {
    const wrong = verifyImage(IMAGE, [await push([cosignSign(other.privateKey, 'r.example/app', IMAGE)])], policy);
    assert.equal(wrong.verdict, 'failed');
    assert.match(wrong.missing.join(), /does not verify with any trusted key/);

    const tampered = await push([cosignSign(kp.privateKey, 'r.example/app', IMAGE)], undefined, (p) => Buffer.from(p.toString().replace('r.example/app', 'r.example/evil')));
    assert.equal(verifyImage(IMAGE, [tampered], policy).verdict, 'failed');

    const forOther = await push([cosignSign(kp.privateKey, 'r.example/app', OTHER_IMAGE)]);
    assert.equal(forOther.targets[0], OTHER_IMAGE, 'the target comes from the payload, not the tag');
    const v = verifyImage(IMAGE, [forOther], policy);
    assert.equal(v.verdict, 'failed');
    assert.match(v.missing.join(), /belongs to another image/);

    const moved = await push([cosignSign(kp.privateKey, 'r.example/app', IMAGE)], cosignTag(OTHER_IMAGE, 'sig'));
    assert.equal(moved.tagTarget, OTHER_IMAGE);
    assert.equal(verifyImage(OTHER_IMAGE, [moved], policy).verdict, 'failed', 'a .sig copied under another image tag does not sign that image');
  });

  test('unsigned images and the require-signature switch', () => {
    const none = verifyImage(IMAGE, [], policy);
    assert.equal(none.verdict, 'unsigned');
    assert.deepEqual(none.missing, ['no signature']);
    const optional = verifyImage(IMAGE, [], compilePolicy({ version: 1, requireSignature: false }));
    assert.equal(optional.verdict, 'verified');
  });

  test('transparency log required but absent', async () => {
    assert.throws(() => compilePolicy({ version: 1, requireTransparencyLog: true, rekorPublicKeys: [kp.publicKeyPem], keys: [{ name: 'ci', publicKey: kp.publicKeyPem }] }), /trustedRoot/);
    const strict = compilePolicy({ version: 1, requireTransparencyLog: true, keys: [{ name: 'ci', publicKey: kp.publicKeyPem }] });
    const v = verifyImage(IMAGE, [await push([cosignSign(kp.privateKey, 'r.example/app', IMAGE)])], strict);
    assert.equal(v.verdict, 'failed');
    assert.match(v.missing.join(), /transparency log/);
  });

  test('oversized and malformed signature manifests are refused', async () => {
    const blobs = new MemoryBlobs();
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [], pad: 'x'.repeat(300 * 1024) }));
    await assert.rejects(recognize(huge, { fetchBlob: blobs.fetchBlob }), /exceeds the limit/);
    const many = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: IMAGE, size: 2 },
      layers: Array.from({ length: 100 }, () => ({ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: IMAGE, size: 10 })),
    }));
    await assert.rejects(recognize(many, { fetchBlob: blobs.fetchBlob }), /layers/);
    await assert.rejects(recognize(Buffer.from('{"schemaVersion":2,'), { fetchBlob: blobs.fetchBlob }), /JSON/);
    const lying = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: IMAGE, size: 2 },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: digestOf('x'), size: 10 * 1024 * 1024, annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } }],
    }));
    const art = await recognize(lying, { fetchBlob: blobs.fetchBlob });
    assert.equal(art.kind, 'cosign-signature');
    if (art.kind === 'cosign-signature') assert.match(art.layers[0]?.problem ?? '', /exceeds the limit/, 'an oversized payload is never fetched');
  });
});

describe('Notation JWS signing and verification with a test PKI', () => {
  let pki: TestPki;
  let policy: NotationTrustPolicy;
  const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: IMAGE, size: 1234 };
  before(() => {
    pki = makeTestPki({ leafKey: 'rsa:3072' });
    policy = parseNotationTrustPolicy({
      version: '1.0',
      trustPolicies: [{ name: 'p', registryScopes: ['r.example/app'], signatureVerification: { level: 'strict' }, trustStores: ['ca:test'], trustedIdentities: ['x509.subject:C=US,ST=WA,O=Portcullis Test,CN=Signer'] }],
    });
  });
  after(() => pki?.cleanup());

  function sign(extra: Partial<Parameters<typeof signNotationJws>[1]> = {}) {
    const chain = [...parseCertificates(pki.leafPem), ...parseCertificates(pki.intermediatePem), ...parseCertificates(pki.rootPem)];
    return signNotationJws(createPrivateKey(pki.leafKeyPem), { target, certificateChain: chain, signingTime: new Date(), ...extra });
  }
  const stores = () => ({ ca: { test: parseCertificates(pki.rootPem) } });

  test('openssl verifies the JWS signing input (RSASSA-PSS SHA-384)', () => {
    const { envelope, signingInput } = sign();
    const jws = JSON.parse(envelope.toString()) as { signature: string };
    const pub = createPublicKey(pki.leafKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    const ok = opensslVerify(pki.dir, { pubPem: pub, data: signingInput, signature: Buffer.from(jws.signature, 'base64url'), digest: 'sha384', extra: ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48'] });
    assert.ok(ok, 'openssl dgst -verify');
  });

  test('valid under strict; expired, not-yet-valid, untrusted root, identity mismatch, other image are not', () => {
    const env = parseNotationEnvelope('application/jose+json', sign().envelope);
    const base = { policy, trustStores: stores(), repository: 'r.example/app', expectedDigest: IMAGE };
    const ok = verifyNotation(env, base);
    assert.equal(ok.verdict, 'valid', ok.reason);
    const day = 86400_000;
    const expired = verifyNotation(env, { ...base, now: new Date(Date.now() + 60 * day) });
    assert.equal(expired.verdict, 'invalid');
    assert.match(expired.reason, /authenticTimestamp: verification time is after certificate "C=US, ST=WA, O=Portcullis Test, CN=Signer"/);
    const early = verifyNotation(env, { ...base, now: new Date(Date.now() - 2 * day) });
    assert.match(early.reason, /before certificate/);
    const untrusted = verifyNotation(env, { ...base, trustStores: { ca: { test: parseCertificates(pki.otherRootPem) } } });
    assert.match(untrusted.reason, /does not contain any trusted certificate/);
    const wrongId = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], trustedIdentities: ['x509.subject:C=US,ST=WA,O=Someone Else'] }] });
    assert.match(verifyNotation(env, { ...base, policy: wrongId }).reason, /trusted identities/);
    assert.match(verifyNotation(env, { ...base, expectedDigest: OTHER_IMAGE }).reason, /signature is for/);
    assert.match(verifyNotation(env, { ...base, repository: 'r.example/other' }).reason, /no trust policy statement/);
  });

  test('a signature expiry is enforced at strict and only logged at permissive', () => {
    const env = parseNotationEnvelope('application/jose+json', sign({ signingTime: new Date(Date.now() - 3600_000), expiry: new Date(Date.now() - 60_000) }).envelope);
    const base = { trustStores: stores(), repository: 'r.example/app', expectedDigest: IMAGE };
    assert.match(verifyNotation(env, { ...base, policy }).reason, /expiry: digital signature has expired/);
    const permissive = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], signatureVerification: { level: 'permissive' } }] });
    const r = verifyNotation(env, { ...base, policy: permissive });
    assert.equal(r.verdict, 'valid');
    assert.ok(r.checks.some((c) => c.check === 'expiry' && !c.ok && c.action === 'log'), 'the failure is logged');
  });

  test('revocation from provided CRLs: revoked fails at strict, is logged at permissive, a CRL from another CA cannot vouch', () => {
    const env = parseNotationEnvelope('application/jose+json', sign().envelope);
    const base = { policy, trustStores: stores(), repository: 'r.example/app', expectedDigest: IMAGE };
    const good = verifyNotation(env, { ...base, crls: parseCrls(pki.crl(false)) });
    assert.equal(good.verdict, 'valid', good.reason);
    assert.ok(good.checks.some((c) => c.check === 'revocation' && c.ok && c.action === 'enforce'));
    const revokedCrl = parseCrls(pki.crl(true));
    const revoked = verifyNotation(env, { ...base, crls: revokedCrl });
    assert.equal(revoked.verdict, 'invalid');
    assert.match(revoked.reason, /revocation: certificate "C=US, ST=WA, O=Portcullis Test, CN=Signer" was revoked/);
    const permissive = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], signatureVerification: { level: 'permissive' } }] });
    assert.equal(verifyNotation(env, { ...base, policy: permissive, crls: revokedCrl }).verdict, 'valid');
    const skip = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], signatureVerification: { level: 'strict', override: { revocation: 'skip' } } }] });
    assert.equal(verifyNotation(env, { ...base, policy: skip, crls: revokedCrl }).verdict, 'valid');
    const other = makeTestPki();
    try {
      const foreign = verifyNotation(env, { ...base, crls: parseCrls(other.crl(false)) });
      assert.equal(foreign.verdict, 'valid', 'a CRL not signed by the issuer is ignored');
    } finally {
      other.cleanup();
    }
    // a CRL past its nextUpdate (30 days) no longer says anything: the status is unknown
    const chain = env.certificateChain;
    assert.equal(checkRevocation(chain, parseCrls(pki.crl(false)), new Date()).status, 'good');
    assert.equal(checkRevocation(chain, parseCrls(pki.crl(false)), new Date(Date.now() + 31 * 86400_000)).status, 'unknown');
  });

  test('cosign with a private PKI: chain, identity and CRLs', async () => {
    const ecPki = makeTestPki({ leafKey: 'ec', san: 'email:builder@example.com' });
    try {
      const key = createPrivateKey(ecPki.leafKeyPem);
      const layer = cosignSign(key, 'r.example/app', IMAGE);
      const blobs = new MemoryBlobs();
      blobs.put(layer.payload);
      const descriptor = { ...layer.descriptor, annotations: { ...layer.descriptor.annotations, 'dev.sigstore.cosign/certificate': ecPki.leafPem, 'dev.sigstore.cosign/chain': ecPki.intermediatePem + ecPki.rootPem } };
      const { manifest, config } = cosignSignatureManifest([descriptor]);
      blobs.put(config);
      const art = await recognize(manifest, { fetchBlob: blobs.fetchBlob });
      const policyFor = (crls: string[] = [], subject = 'builder@example.com', roots = [ecPki.rootPem]) =>
        compilePolicy({ version: 1, certificates: { roots, crls, identities: [{ subject }] } });
      const ok = verifyImage(IMAGE, [art], policyFor());
      assert.equal(ok.verdict, 'verified', ok.missing.join());
      assert.equal(ok.signatures[0]?.method, 'pki');
      assert.equal(verifyImage(IMAGE, [art], policyFor([ecPki.crl(false)])).verdict, 'verified');
      assert.match(verifyImage(IMAGE, [art], policyFor([ecPki.crl(true)])).missing.join(), /was revoked/);
      assert.match(verifyImage(IMAGE, [art], policyFor([], 'other@example.com')).missing.join(), /match none of/);
      assert.match(verifyImage(IMAGE, [art], policyFor([], 'builder@example.com', [ecPki.otherRootPem])).missing.join(), /does not lead to a trusted root/);
      assert.match(verifyImage(IMAGE, [art], policyFor(), { now: new Date(Date.now() + 40 * 86400_000) }).missing.join(), /not valid at/);
    } finally {
      ecPki.cleanup();
    }
  });

  test('a CA certificate cannot sign; at audit level authenticity failures are only logged', () => {
    const chain = [...parseCertificates(pki.intermediatePem), ...parseCertificates(pki.rootPem)];
    const intKey = createPrivateKey(fs.readFileSync(path.join(pki.dir, 'int.key')));
    const env = parseNotationEnvelope('application/jose+json', signNotationJws(intKey, { target, certificateChain: chain, signingTime: new Date() }).envelope);
    const base = { trustStores: stores(), repository: 'r.example/app', expectedDigest: IMAGE };
    const anyId = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], trustedIdentities: ['*'] }] });
    assert.match(verifyNotation(env, { ...base, policy: anyId }).reason, /is a CA certificate/);
    const audit = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ ...policy.trustPolicies[0], trustedIdentities: ['*'], signatureVerification: { level: 'audit' } }] });
    const r = verifyNotation(env, { ...base, policy: audit });
    assert.equal(r.verdict, 'valid');
    assert.ok(r.checks.some((c) => c.check === 'authenticity' && !c.ok && c.action === 'log'));
  });

  test('malformed trust policies are rejected (Notary Project rules)', () => {
    const good = policy.trustPolicies[0]!;
    const bad = (p: unknown) => assert.throws(() => parseNotationTrustPolicy({ version: '1.0', trustPolicies: [p] }));
    bad({ ...good, registryScopes: [] });
    bad({ ...good, registryScopes: ['*', 'r.example/app'] });
    bad({ ...good, trustStores: ['nope:x'] });
    bad({ ...good, trustedIdentities: ['x509.subject:CN=missing country'] });
    bad({ ...good, trustedIdentities: ['*', 'x509.subject:C=US,ST=WA,O=X'] });
    bad({ ...good, signatureVerification: { level: 'strict', override: { integrity: 'log' } } });
    bad({ ...good, trustedIdentities: ['x509.subject:C=US,ST=WA,O=X', 'x509.subject:C=US,ST=WA,O=X,OU=Y'] });
  });

  test('JWS signed with the notation e2e key verifies under the e2e trust policy', { skip: !fixturesPresent && 'fixtures missing' }, () => {
    const key = createPrivateKey(readText('notation-trust/notation-e2e/localkeys/e2e.key'));
    const cert = parseCertificates(readText('notation-trust/notation-e2e/localkeys/e2e.crt'));
    const { envelope } = signNotationJws(key, { target, certificateChain: cert, signingTime: new Date() });
    const env = parseNotationEnvelope('application/jose+json', envelope);
    const r = verifyNotation(env, {
      policy: parseNotationTrustPolicy(JSON.parse(readText('notation-trust/notation-e2e/trustpolicies/trustpolicy.json'))),
      trustStores: { ca: { e2e: cert } },
      repository: 'localhost:5000/e2e',
      expectedDigest: IMAGE,
    });
    assert.equal(r.verdict, 'valid', r.reason);
  });
});
