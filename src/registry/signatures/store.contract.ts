/**
 * The SignatureStore contract: every implementation (SQL on SQLite and PostgreSQL, memory) runs it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyVersionConflict, type SignatureStore, type TrustPolicyDocument } from './store.ts';

const doc = (name: string): TrustPolicyDocument => ({
  requireSignature: true,
  keys: [{ name, publicKey: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n' }],
  requireTransparencyLog: false,
  rekorPublicKeys: [],
  requiredAttestations: [],
});

export function runSignatureStoreContract(label: string, open: () => Promise<{ store: SignatureStore; cleanup(): Promise<void> }>): void {
  const withStore = (name: string, fn: (store: SignatureStore) => Promise<void>) =>
    test(`SignatureStore contract (${label}): ${name}`, async () => {
      const { store, cleanup } = await open();
      try {
        await fn(store);
      } finally {
        await cleanup();
      }
    });

  withStore('policies are versioned; versions never repeat, even across a deletion', async (store) => {
    assert.equal(await store.getPolicy('team'), undefined);
    const v1 = await store.putPolicy('team', { policy: doc('a'), requireSignatureToPull: false, updatedBy: 'alice' });
    assert.equal(v1.version, 1);
    const read = await store.getPolicy('team');
    assert.deepEqual(read?.policy, doc('a'));
    assert.equal(read?.updatedBy, 'alice');
    assert.equal(read?.requireSignatureToPull, false);
    const v2 = await store.putPolicy('team', { policy: doc('b'), requireSignatureToPull: true, updatedBy: undefined });
    assert.equal(v2.version, 2);
    assert.equal((await store.getPolicy('team'))?.requireSignatureToPull, true);
    assert.equal(await store.deletePolicy('team', 'bob'), 3);
    assert.equal(await store.getPolicy('team'), undefined);
    assert.equal(await store.deletePolicy('team', 'bob'), undefined, 'nothing left to delete');
    const v4 = await store.putPolicy('team', { policy: doc('a'), requireSignatureToPull: false, updatedBy: 'alice' });
    assert.equal(v4.version, 4, 'a re-created policy continues the count');
    assert.equal(await store.getPolicy('other'), undefined, 'projects are separate');
  });

  withStore('optimistic concurrency on expectedVersion', async (store) => {
    await assert.rejects(store.putPolicy('p', { policy: doc('a'), requireSignatureToPull: false, updatedBy: undefined }, 1), PolicyVersionConflict);
    assert.equal((await store.putPolicy('p', { policy: doc('a'), requireSignatureToPull: false, updatedBy: undefined }, 0)).version, 1);
    await assert.rejects(store.putPolicy('p', { policy: doc('b'), requireSignatureToPull: false, updatedBy: undefined }, 0), PolicyVersionConflict);
    assert.equal((await store.putPolicy('p', { policy: doc('b'), requireSignatureToPull: false, updatedBy: undefined }, 1)).version, 2);
    await assert.rejects(store.deletePolicy('p', undefined, 1), PolicyVersionConflict);
    assert.equal(await store.deletePolicy('p', undefined, 2), 3);
    assert.equal((await store.putPolicy('p', { policy: doc('c'), requireSignatureToPull: false, updatedBy: undefined }, 0)).version, 4, 'after a deletion, 0 means "no policy"');
  });

  withStore('verdicts: one per repository and digest, replaced, deleted', async (store) => {
    const d = `sha256:${'a'.repeat(64)}`;
    const e = `sha256:${'b'.repeat(64)}`;
    assert.equal(await store.getVerdict('p/app', d), undefined);
    const at = new Date(1_700_000_000_000);
    await store.putVerdict({ repository: 'p/app', digest: d, policyHash: 'h1', policyVersion: 1, verdict: 'failed', result: '{"x":1}', verifiedAt: at });
    await store.putVerdict({ repository: 'p/app', digest: d, policyHash: 'h2', policyVersion: 2, verdict: 'verified', result: '{"x":2}', verifiedAt: at });
    await store.putVerdict({ repository: 'p/app', digest: e, policyHash: 'h2', policyVersion: 2, verdict: 'unsigned', result: '{}', verifiedAt: at });
    await store.putVerdict({ repository: 'p/other', digest: d, policyHash: 'h2', policyVersion: 2, verdict: 'unsigned', result: '{}', verifiedAt: at });
    assert.deepEqual(await store.getVerdict('p/app', d), { repository: 'p/app', digest: d, policyHash: 'h2', policyVersion: 2, verdict: 'verified', result: '{"x":2}', verifiedAt: at });
    await store.deleteVerdicts('p/app', d);
    assert.equal(await store.getVerdict('p/app', d), undefined);
    assert.ok(await store.getVerdict('p/app', e));
    await store.deleteVerdicts('p/app');
    assert.equal(await store.getVerdict('p/app', e), undefined);
    assert.ok(await store.getVerdict('p/other', d), 'other repositories keep theirs');
  });

  withStore('index children', async (store) => {
    const [i1, i2, c1, c2] = ['1', '2', '3', '4'].map((x) => `sha256:${x.repeat(64)}`) as [string, string, string, string];
    await store.addIndexChildren('p/app', i1, [c1, c2, c1]);
    await store.addIndexChildren('p/app', i2, [c1]);
    await store.addIndexChildren('p/app', i2, [c1]);
    assert.deepEqual(await store.parentsOf('p/app', c1), [i1, i2].sort());
    assert.deepEqual(await store.parentsOf('p/app', c2), [i1]);
    assert.deepEqual(await store.parentsOf('p/other', c1), []);
    await store.deleteIndex('p/app', i1);
    assert.deepEqual(await store.parentsOf('p/app', c1), [i2]);
    assert.deepEqual(await store.parentsOf('p/app', c2), []);
  });
}
