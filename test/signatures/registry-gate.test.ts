/**
 * "Require a valid signature to pull" through the registry: unverified images are refused with
 * DENIED naming what is missing; signature artifacts, the referrers listing and blobs stay
 * available so clients can verify; platform manifests of a verified index are covered; anything
 * that goes wrong while deciding denies.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { cosignTag } from '../../src/registry/signatures/signing.ts';
import type { SignatureStore } from '../../src/registry/signatures/store.ts';
import { keyPolicy, pem, pushCosignSignature, sha256, startTestRegistry, type TestRegistry } from './registry-helpers.ts';

const trusted = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const untrusted = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

describe('pull enforcement', () => {
  let t: TestRegistry;
  const pull = (repository: string, reference: string, method = 'GET') => t.request(method, `/v2/${repository}/manifests/${reference}`, { headers: { accept: ACCEPT } });
  before(async () => {
    t = await startTestRegistry();
    assert.equal((await t.putPolicy('secure', keyPolicy({ release: pem(trusted.publicKey) }), true)).status, 201);
    assert.equal((await t.putPolicy('open', keyPolicy({ release: pem(trusted.publicKey) }), false)).status, 201);
  });
  after(() => t.close());

  test('an unsigned image is denied, naming what is missing; signing it lets it through', async () => {
    const image = await t.pushImage('secure/app', 'v1');
    const denied = await pull('secure/app', 'v1');
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errors[0].code, 'DENIED');
    assert.equal(denied.body.errors[0].message, `project secure requires a valid signature to pull (trust policy version 1); secure/app@${image.digest}: no signature`);
    assert.deepEqual(denied.body.errors[0].detail.missing, ['no signature']);
    assert.equal(denied.body.errors[0].detail.signatures, `/api/v1/repositories/secure/app/manifests/${image.digest}/signatures`);
    assert.equal((await pull('secure/app', image.digest)).status, 403, 'by digest too');
    assert.equal((await pull('secure/app', 'v1', 'HEAD')).status, 403, 'HEAD too');
    await new Promise((r) => setImmediate(r));
    const event = t.events.find((e) => e.type === 'signature.pull.denied' && e['digest'] === image.digest);
    assert.ok(event, 'the denial is published for the audit log');
    assert.equal(event['tag'], 'v1');

    await pushCosignSignature(t, 'secure/app', image.digest, trusted.privateKey);
    const ok = await pull('secure/app', 'v1');
    assert.equal(ok.status, 200);
    assert.equal(sha256(ok.raw), image.digest);
  });

  test('a signature by an untrusted key is denied with the reason', async () => {
    const image = await t.pushImage('secure/app', 'wrong');
    await pushCosignSignature(t, 'secure/app', image.digest, untrusted.privateKey);
    const denied = await pull('secure/app', 'wrong');
    assert.equal(denied.status, 403);
    assert.match(denied.body.errors[0].message, /no valid signature \(signature does not verify with any trusted key\)$/);
  });

  test('signature artifacts, the referrers listing and blobs stay pullable', async () => {
    const image = await t.pushImage('secure/art', 'v1');
    const sig = await pushCosignSignature(t, 'secure/art', image.digest, untrusted.privateKey);
    const ref = await pushCosignSignature(t, 'secure/art', image.digest, untrusted.privateKey, { referrer: true });
    assert.equal((await pull('secure/art', 'v1')).status, 403);
    assert.equal((await pull('secure/art', cosignTag(image.digest, 'sig'))).status, 200, '.sig by tag');
    assert.equal((await pull('secure/art', sig.manifestDigest)).status, 200, '.sig by digest');
    assert.equal((await pull('secure/art', ref.manifestDigest)).status, 200, 'referrer by digest');
    const referrers = await t.request('GET', `/v2/secure/art/referrers/${image.digest}`);
    assert.equal(referrers.status, 200);
    assert.deepEqual(referrers.body.manifests.map((m: { digest: string }) => m.digest), [ref.manifestDigest]);
    assert.equal((await t.request('GET', `/v2/secure/art/blobs/${sig.layer.descriptor.digest}`)).status, 200, 'the signed payload');
  });

  test('a runnable image disguised under a .sig tag is still denied', async () => {
    const target = await t.pushImage('secure/disguise', 'v1');
    const other = await t.pushImage('secure/disguise', 'other');
    await t.putManifest('secure/disguise', cosignTag(target.digest, 'sig'), other.manifest);
    const res = await pull('secure/disguise', cosignTag(target.digest, 'sig'));
    assert.equal(res.status, 403);
    const s = await t.signatures('secure/disguise', target.digest);
    assert.equal(s.body.verdict, 'failed');
    assert.match(s.body.signatures[0].reason, /not a simple-signing payload/);
  });

  test('platform manifests of a verified index are covered by it; of an unverified one they are not', async () => {
    const a = await t.pushImage('secure/multi', 'amd64');
    const b = await t.pushImage('secure/multi', 'arm64');
    const index = await t.pushIndex('secure/multi', 'v1', [
      { digest: a.digest, size: a.manifest.length },
      { digest: b.digest, size: b.manifest.length },
    ]);
    assert.equal((await pull('secure/multi', 'v1')).status, 403);
    assert.equal((await pull('secure/multi', a.digest)).status, 403);
    await pushCosignSignature(t, 'secure/multi', index, trusted.privateKey);
    assert.equal((await pull('secure/multi', 'v1')).status, 200, 'the signed index');
    assert.equal((await pull('secure/multi', a.digest)).status, 200, 'a platform manifest it lists');
    assert.equal((await pull('secure/multi', b.digest)).status, 200);
    const s = await t.signatures('secure/multi', a.digest);
    assert.equal(s.body.verdict, 'unsigned', 'its own verdict');
    assert.equal(s.body.coveredBy, index, 'and the index that covers it');
    assert.equal(s.body.coveredVerdict, 'verified');
    const facts = await t.registry.signatures!.facts('secure/multi', a.digest);
    assert.equal(facts.coveredBy, index);
    assert.equal(facts.verdict, 'verified');
    assert.equal(facts.signedBy[0]?.signer.kind, 'key');

    const c = await t.pushImage('secure/multi', 'other');
    await t.pushIndex('secure/multi', 'unsigned', [{ digest: c.digest, size: c.manifest.length }]);
    assert.equal((await pull('secure/multi', c.digest)).status, 403);
  });

  test('projects without the switch are not enforced; turning it off and on applies at once', async () => {
    await t.pushImage('open/app', 'v1');
    assert.equal((await pull('open/app', 'v1')).status, 200);
    await t.pushImage('secure/toggle', 'v1');
    assert.equal((await pull('secure/toggle', 'v1')).status, 403);
    assert.equal((await t.putPolicy('secure', keyPolicy({ release: pem(trusted.publicKey) }), false)).status, 200);
    assert.equal((await pull('secure/toggle', 'v1')).status, 200);
    assert.equal((await t.putPolicy('secure', keyPolicy({ release: pem(trusted.publicKey) }), true)).status, 200);
    assert.equal((await pull('secure/toggle', 'v1')).status, 403);
  });

  test('rotating the key out of the policy denies what it signed', async () => {
    const image = await t.pushImage('secure/rot', 'v1');
    await pushCosignSignature(t, 'secure/rot', image.digest, trusted.privateKey);
    assert.equal((await pull('secure/rot', 'v1')).status, 200);
    assert.equal((await t.putPolicy('secure', keyPolicy({ next: pem(untrusted.publicKey) }), true)).status, 200);
    const res = await pull('secure/rot', 'v1');
    assert.equal(res.status, 403);
    assert.match(res.body.errors[0].message, /trust policy version \d+\); .*signature does not verify with any trusted key/);
    assert.equal((await t.putPolicy('secure', keyPolicy({ release: pem(trusted.publicKey) }), true)).status, 200);
    assert.equal((await pull('secure/rot', 'v1')).status, 200);
  });

  test('deleting the signature denies the image again', async () => {
    const image = await t.pushImage('secure/del', 'v1');
    const sig = await pushCosignSignature(t, 'secure/del', image.digest, trusted.privateKey);
    assert.equal((await pull('secure/del', 'v1')).status, 200);
    assert.equal((await t.request('DELETE', `/v2/secure/del/manifests/${sig.manifestDigest}`)).status, 202);
    await t.registry.signatures!.idle();
    assert.equal((await pull('secure/del', 'v1')).status, 403);
  });
});

describe('deny on error', () => {
  let t: TestRegistry;
  let failing = false;
  let store: SignatureStore;
  before(async () => {
    t = await startTestRegistry({}, {
      wrapSignatureStore: (inner: SignatureStore) =>
        (store = inner) &&
        new Proxy(inner, {
          get(target, property) {
            const value = Reflect.get(target, property, target) as unknown;
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              if (failing && property !== 'putPolicy') throw new Error('database is on fire');
              return (value as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        }),
    });
    assert.equal((await t.putPolicy('secure', keyPolicy({ release: pem(trusted.publicKey) }), true)).status, 201);
  });
  after(() => t.close());

  test('a stored policy that no longer compiles denies pulls where enforced, and only there', async () => {
    const broken = { requireSignature: true, keys: [{ name: 'gone', publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }], requireTransparencyLog: false, rekorPublicKeys: [], requiredAttestations: [] };
    // written behind the API's back, as an older release or a manual edit could leave it
    await store.putPolicy('broken', { policy: broken, requireSignatureToPull: true, updatedBy: undefined });
    await store.putPolicy('brokenopen', { policy: broken, requireSignatureToPull: false, updatedBy: undefined });
    const a = await t.pushImage('broken/app', 'v1');
    await t.pushImage('brokenopen/app', 'v1');
    assert.equal((await t.request('GET', '/v2/brokenopen/app/manifests/v1', { headers: { accept: ACCEPT } })).status, 200);
    const denied = await t.request('GET', '/v2/broken/app/manifests/v1', { headers: { accept: ACCEPT } });
    assert.equal(denied.status, 403);
    assert.match(denied.body.errors[0].message, /could not be completed; denied/);
    const api = await t.signatures('broken/app', a.digest);
    assert.equal(api.status, 503);
    assert.match(api.body.errors[0].message, /the trust policy of project broken \(version 1\) cannot be used: /);
    const read = await t.request('GET', '/api/v1/projects/broken/trust-policy');
    assert.equal(read.status, 200);
    assert.match(read.body.error, /this stored policy cannot be used/);
  });

  test('a store failure while deciding denies the pull (and says so)', async () => {
    await t.pushImage('secure/app', 'v1');
    // the cached verdict would allow nothing anyway; make sure nothing is cached for this one
    const image = await t.pushImage('secure/app', 'v2');
    await pushCosignSignature(t, 'secure/app', image.digest, trusted.privateKey);
    await t.registry.signatures!.forget('secure/app', image.digest);
    failing = true;
    try {
      const res = await t.request('GET', `/v2/secure/app/manifests/${image.digest}`, { headers: { accept: ACCEPT } });
      assert.equal(res.status, 403);
      assert.equal(res.body.errors[0].code, 'DENIED');
      assert.match(res.body.errors[0].message, /signature verification of secure\/app@sha256:[a-f0-9]{64} could not be completed; denied/);
      assert.doesNotMatch(JSON.stringify(res.body), /fire/, 'internals stay in the log');
    } finally {
      failing = false;
    }
  });
});
