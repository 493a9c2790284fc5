/**
 * The signature capability through the registry (in process, real stores): trust-policy CRUD and
 * versioning, verification on push with verdicts cached per digest and policy version, the
 * signatures API and its explanations, and the negative cases with their reasons.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { cosignSignatureManifest, cosignTag } from '../../src/registry/signatures/signing.ts';
import { OCI_MANIFEST, keyPolicy, pem, pushCosignSignature, sha256, startTestRegistry, type TestRegistry } from './registry-helpers.ts';

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('trust policy API', () => {
  let t: TestRegistry;
  before(async () => {
    t = await startTestRegistry();
  });
  after(() => t.close());

  test('create, read, replace with versions and ETags, lost-update guard, delete', async () => {
    const k = ec();
    assert.equal((await t.request('GET', '/api/v1/projects/team/trust-policy')).status, 404);
    const created = await t.request('PUT', '/api/v1/projects/team/trust-policy', { body: { policy: keyPolicy({ ci: pem(k.publicKey) }) }, headers: { 'if-none-match': '*' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.version, 1);
    assert.equal(created.headers['etag'], '"1"');
    assert.equal(created.body.requireSignatureToPull, false);
    assert.match(created.body.policyHash, /^[a-f0-9]{64}$/);
    assert.equal(created.body.policy.keys[0].name, 'ci');
    assert.equal(created.body.policy.requireSignature, true, 'defaults are filled in');

    const read = await t.request('GET', '/api/v1/projects/team/trust-policy');
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, created.body);

    const again = await t.request('PUT', '/api/v1/projects/team/trust-policy', { body: { policy: keyPolicy({ ci: pem(k.publicKey) }) }, headers: { 'if-none-match': '*' } });
    assert.equal(again.status, 409, 'If-None-Match: * refuses to replace');

    const replaced = await t.request('PUT', '/api/v1/projects/team/trust-policy', { body: { policy: keyPolicy({ ci: pem(k.publicKey) }), requireSignatureToPull: true }, headers: { 'if-match': '"1"' } });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.version, 2);
    assert.notEqual(replaced.body.policyHash, created.body.policyHash, 'the version is part of the hash: verdicts are recomputed');

    const stale = await t.request('PUT', '/api/v1/projects/team/trust-policy', { body: { policy: keyPolicy({}) }, headers: { 'if-match': '"1"' } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.errors[0].code, 'CONFLICT');
    assert.match(stale.body.errors[0].message, /version 2/);

    assert.equal((await t.request('DELETE', '/api/v1/projects/team/trust-policy', { headers: { 'if-match': '"1"' } })).status, 409);
    assert.equal((await t.request('DELETE', '/api/v1/projects/team/trust-policy')).status, 204);
    assert.equal((await t.request('GET', '/api/v1/projects/team/trust-policy')).status, 404);
    assert.equal((await t.request('DELETE', '/api/v1/projects/team/trust-policy')).status, 404);
    const recreated = await t.putPolicy('team', keyPolicy({ ci: pem(k.publicKey) }));
    assert.equal(recreated.body.version, 4, 'versions never repeat');

    await new Promise((r) => setImmediate(r));
    const changes = t.events.filter((e) => e.type === 'trust-policy.changed').map((e) => `${e['change']}@${e['version']}`);
    assert.deepEqual(changes, ['created@1', 'updated@2', 'deleted@3', 'created@4']);
  });

  test('invalid policies are refused with the reason', async () => {
    const cases: [unknown, RegExp][] = [
      [{ keys: [{ name: 'k', publicKey: 'not a key' }] }, /invalid trust policy: .*(key|PEM)/i],
      [{ keyz: [] }, /invalid trust policy: .*keyz/],
      [{ version: 3 }, /invalid trust policy: .*version/],
      [{ keyless: { trustedRoot: {}, identities: [] } }, /invalid trust policy: keyless.identities/],
      [{ keyless: { trustedRoot: { mediaType: 'x' }, identities: [{ subject: 'a' }] } }, /invalid trust policy/],
      [{ keys: [], requiredAttestations: [{ predicateType: 'slsaprovenance', builderId: '' }] }, /requiredAttestations/],
    ];
    for (const [policy, reason] of cases) {
      const res = await t.putPolicy('bad', policy as object);
      assert.equal(res.status, 400, JSON.stringify(policy));
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
      assert.match(res.body.errors[0].message, reason);
    }
    const noPolicy = await t.request('PUT', '/api/v1/projects/bad/trust-policy', { body: { requireSignatureToPull: true } });
    assert.equal(noPolicy.status, 400);
    const extra = await t.request('PUT', '/api/v1/projects/bad/trust-policy', { body: { policy: {}, enforce: true } });
    assert.equal(extra.status, 400);
    assert.equal((await t.request('GET', '/api/v1/projects/bad/trust-policy')).status, 404, 'nothing was stored');
  });
});

describe('verification through the registry', () => {
  let t: TestRegistry;
  const trusted = ec();
  const other = ec();
  before(async () => {
    t = await startTestRegistry();
    const res = await t.putPolicy('proj', keyPolicy({ release: pem(trusted.publicKey) }));
    assert.equal(res.status, 201);
  });
  after(() => t.close());

  test('an image pushed without signatures is unsigned; signing it (tag scheme) verifies it on push', async () => {
    const image = await t.pushImage('proj/app', 'v1');
    const s0 = await t.signatures('proj/app', 'v1');
    assert.equal(s0.status, 200);
    assert.equal(s0.body.digest, image.digest, 'a tag resolves to the digest');
    assert.equal(s0.body.verdict, 'unsigned');
    assert.deepEqual(s0.body.missing, ['no signature']);

    const verified = t.nextVerified(image.digest, 'push');
    const sig = await pushCosignSignature(t, 'proj/app', image.digest, trusted.privateKey);
    const event = await verified;
    assert.equal(event.verdict, 'verified');
    assert.equal(event.outcome, 'success');
    assert.deepEqual(event.signers, ['key release']);
    assert.equal(event.policyVersion, 1);

    const s1 = await t.signatures('proj/app', image.digest);
    assert.equal(s1.body.verdict, 'verified');
    assert.equal(s1.body.signatures.length, 1);
    assert.equal(s1.body.signatures[0].ok, true);
    assert.equal(s1.body.signatures[0].artifact, sig.manifestDigest);
    assert.equal(s1.body.signatures[0].method, 'key');
    assert.equal(s1.body.signatures[0].signer.keyName, 'release');
    assert.match(s1.body.signatures[0].reason, /verifies with key release/);
    assert.deepEqual(s1.body.artifacts, [{ digest: sig.manifestDigest, source: 'tag', tag: cosignTag(image.digest, 'sig'), kind: 'cosign-signature' }]);
    assert.deepEqual(s1.body.missing, []);
    assert.equal(s1.body.trustPolicy.version, 1);
    assert.equal(s1.body.manifestPresent, true);
  });

  test('a referrer (cosign --registry-referrers-mode oci-1-1) verifies too', async () => {
    const image = await t.pushImage('proj/ref', 'v1');
    const verified = t.nextVerified(image.digest, 'push');
    const sig = await pushCosignSignature(t, 'proj/ref', image.digest, trusted.privateKey, { referrer: true });
    assert.equal((await verified).verdict, 'verified');
    const s = await t.signatures('proj/ref', image.digest);
    assert.equal(s.body.verdict, 'verified');
    assert.deepEqual(s.body.artifacts, [{ digest: sig.manifestDigest, source: 'referrer', kind: 'cosign-signature' }]);
  });

  test('a policy or key change recomputes the cached verdict', async () => {
    const image = await t.pushImage('proj/rotate', 'v1');
    const verified = t.nextVerified(image.digest, 'push');
    await pushCosignSignature(t, 'proj/rotate', image.digest, trusted.privateKey);
    await verified;
    assert.equal((await t.signatures('proj/rotate', 'v1')).body.verdict, 'verified');
    // the key is rotated out of the policy
    const v2 = await t.putPolicy('proj', keyPolicy({ next: pem(other.publicKey) }));
    assert.equal(v2.body.version, 2);
    const after = await t.signatures('proj/rotate', 'v1');
    assert.equal(after.body.verdict, 'failed');
    assert.equal(after.body.policyVersion, 2);
    assert.match(after.body.signatures[0].reason, /does not verify with any trusted key/);
    assert.match(after.body.missing[0], /no valid signature \(signature does not verify with any trusted key\)/);
    // and back: a new version again, verified again
    const v3 = await t.putPolicy('proj', keyPolicy({ release: pem(trusted.publicKey) }));
    assert.equal(v3.body.version, 3);
    const back = await t.signatures('proj/rotate', 'v1');
    assert.equal(back.body.verdict, 'verified');
    assert.equal(back.body.policyVersion, 3);
  });

  test('verdicts are served from the cache until something changes', async () => {
    const image = await t.pushImage('proj/cache', 'v1');
    const verified = t.nextVerified(image.digest, 'push');
    await pushCosignSignature(t, 'proj/cache', image.digest, trusted.privateKey);
    await verified;
    const before = t.events.filter((e) => e.type === 'signature.verified' && e['digest'] === image.digest).length;
    const a = await t.signatures('proj/cache', 'v1');
    const b = await t.signatures('proj/cache', 'v1');
    assert.equal(a.body.verifiedAt, b.body.verifiedAt, 'the same verdict');
    await new Promise((r) => setImmediate(r));
    assert.equal(t.events.filter((e) => e.type === 'signature.verified' && e['digest'] === image.digest).length, before, 'no recomputation');
  });

  // ---- negative cases: each with a clear reason -------------------------------------------------

  test('wrong key', async () => {
    const image = await t.pushImage('proj/neg', 'wrong-key');
    const verified = t.nextVerified(image.digest, 'push');
    await pushCosignSignature(t, 'proj/neg', image.digest, other.privateKey);
    const e = await verified;
    assert.equal(e.verdict, 'failed');
    assert.equal(e.outcome, 'failure');
    const s = await t.signatures('proj/neg', image.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures[0].ok, false);
    assert.equal(s.body.signatures[0].reason, 'signature does not verify with any trusted key');
    assert.equal(s.body.missing[0], 'no valid signature (signature does not verify with any trusted key)');
  });

  test('tampered payload', async () => {
    const image = await t.pushImage('proj/neg', 'tampered');
    const verified = t.nextVerified(image.digest, 'push');
    await pushCosignSignature(t, 'proj/neg', image.digest, trusted.privateKey, { tamper: true });
    await verified;
    const s = await t.signatures('proj/neg', image.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures[0].reason, 'signature does not verify with any trusted key');
  });

  test('signature moved to another image (the .sig manifest of one image copied to the tag of another)', async () => {
    const a = await t.pushImage('proj/neg', 'moved-a');
    const b = await t.pushImage('proj/neg', 'moved-b');
    const signedA = t.nextVerified(a.digest, 'push');
    const sig = await pushCosignSignature(t, 'proj/neg', a.digest, trusted.privateKey);
    assert.equal((await signedA).verdict, 'verified');
    const sigManifest = (await t.request('GET', `/v2/proj/neg/manifests/${sig.manifestDigest}`)).raw;
    const verifiedB = t.nextVerified(b.digest, 'push');
    await t.putManifest('proj/neg', cosignTag(b.digest, 'sig'), sigManifest);
    assert.equal((await verifiedB).verdict, 'failed');
    const s = await t.signatures('proj/neg', b.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures[0].reason, `payload signs ${a.digest}, not ${b.digest} (signature belongs to another image)`);
    assert.equal((await t.signatures('proj/neg', a.digest)).body.verdict, 'verified', 'the original image keeps its signature');
  });

  test('payload for another digest (a validly signed referrer of this image naming another digest)', async () => {
    const image = await t.pushImage('proj/neg', 'other-digest');
    const elsewhere = sha256('some other manifest');
    const verified = t.nextVerified(image.digest, 'push');
    await pushCosignSignature(t, 'proj/neg', image.digest, trusted.privateKey, { referrer: true, payloadDigest: elsewhere });
    await verified;
    const s = await t.signatures('proj/neg', image.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures[0].reason, `payload signs ${elsewhere}, not ${image.digest} (signature belongs to another image)`);
  });

  test('oversized signature manifest', async () => {
    const image = await t.pushImage('proj/neg', 'oversized');
    const good = await pushCosignSignature(t, 'proj/neg', image.digest, trusted.privateKey);
    // the same layer, with 300 KiB of annotations: the registry stores it (4 MiB limit), verification refuses it
    const descriptor = { ...good.layer.descriptor, annotations: { ...good.layer.descriptor.annotations, padding: 'x'.repeat(300 * 1024) } };
    const { manifest, config } = cosignSignatureManifest([descriptor]);
    await t.pushBlob('proj/neg', config);
    const verified = t.nextVerified(image.digest, 'push');
    const digest = await t.putManifest('proj/neg', cosignTag(image.digest, 'sig'), manifest);
    await verified;
    const s = await t.signatures('proj/neg', image.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures.length, 0);
    assert.equal(s.body.rejected.length, 1);
    assert.equal(s.body.rejected[0].digest, digest);
    assert.equal(s.body.rejected[0].tag, cosignTag(image.digest, 'sig'));
    assert.match(s.body.rejected[0].reason, /signature manifest: \d+ bytes exceeds the limit of 262144/);
    assert.match(s.body.missing[0], /^no signature; tag sha256-[a-f0-9]{64}\.sig sha256:[a-f0-9]{64} rejected: signature manifest: \d+ bytes exceeds the limit/);
  });

  test('malformed signature layer, and a signature tag naming an index', async () => {
    const image = await t.pushImage('proj/neg', 'malformed');
    const junk = Buffer.from('{"critical":{}}');
    await t.pushBlob('proj/neg', junk);
    const { manifest, config } = cosignSignatureManifest([{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: sha256(junk), size: junk.length, annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } }]);
    await t.pushBlob('proj/neg', config);
    const verified = t.nextVerified(image.digest, 'push');
    await t.putManifest('proj/neg', cosignTag(image.digest, 'sig'), manifest);
    await verified;
    const s = await t.signatures('proj/neg', image.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.match(s.body.signatures[0].reason, /simple-signing payload has no critical section|critical.type/);
  });

  test('API errors: unknown digest, bad reference', async () => {
    const unknown = await t.signatures('proj/neg', sha256('nothing'));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errors[0].code, 'MANIFEST_UNKNOWN');
    assert.equal((await t.signatures('proj/neg', 'no-such-tag')).status, 404);
    assert.equal((await t.request('GET', '/api/v1/repositories/proj/neg/manifests/sha256:zz/signatures')).status, 400);
  });

  test('an unknown project has no policy: signatures are found and explained', async () => {
    const image = await t.pushImage('nopolicy/app', 'v1');
    await pushCosignSignature(t, 'nopolicy/app', image.digest, trusted.privateKey);
    const s = await t.signatures('nopolicy/app', 'v1');
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.trustPolicy.configured, false);
    assert.match(s.body.missing[0], /project nopolicy has no trust policy/);
    assert.equal(s.body.signatures[0].reason, 'signed with a key, and no trusted key is configured');
  });

  test('the signature artifact itself is not mistaken for an image manifest', async () => {
    const image = await t.pushImage('proj/shape', 'v1');
    const sig = await pushCosignSignature(t, 'proj/shape', image.digest, trusted.privateKey);
    const m = JSON.parse((await t.request('GET', `/v2/proj/shape/manifests/${sig.manifestDigest}`)).raw.toString()) as { mediaType: string };
    assert.equal(m.mediaType, OCI_MANIFEST);
  });
});
