/**
 * Two registries over the same stores (replicas): a verdict computed by one is read by the other
 * from the shared verdict table, not recomputed; a policy change made on one applies on the other
 * once its memory cache lapses (`signatures.cacheSeconds`, 0 here), and so does the pull switch.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { keyPolicy, pem, pushCosignSignature, startTestRegistry, type TestRegistry } from './registry-helpers.ts';

let a: TestRegistry;
let b: TestRegistry;
const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const k2 = generateKeyPairSync('ec', { namedCurve: 'P-256' });

before(async () => {
  a = await startTestRegistry({ PORTCULLIS_SIGNATURES_CACHE_SECONDS: '0' });
  b = await startTestRegistry({ PORTCULLIS_SIGNATURES_CACHE_SECONDS: '0' }, { dataDir: a.dir });
});
after(async () => {
  await b.close();
  await a.close();
});

test('a verdict stored by one replica is served by the other; policy changes reach both', async () => {
  assert.equal((await a.putPolicy('p', keyPolicy({ one: pem(k1.publicKey) }))).status, 201);
  const image = await a.pushImage('p/app', 'v1');
  const verified = a.nextVerified(image.digest, 'push');
  await pushCosignSignature(a, 'p/app', image.digest, k1.privateKey);
  assert.equal((await verified).verdict, 'verified');

  const onB = await b.signatures('p/app', image.digest);
  assert.equal(onB.body.verdict, 'verified');
  await new Promise((r) => setImmediate(r));
  assert.equal(b.events.filter((e) => e.type === 'signature.verified').length, 0, 'read from the shared table, not recomputed');

  // a key rotation on A: B recomputes under the new version
  assert.equal((await a.putPolicy('p', keyPolicy({ two: pem(k2.publicKey) }), true)).body.version, 2);
  const after = await b.signatures('p/app', image.digest);
  assert.equal(after.body.policyVersion, 2);
  assert.equal(after.body.verdict, 'failed');
  const pull = await b.request('GET', `/v2/p/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(pull.status, 403, 'the pull switch set on A applies on B');
});
