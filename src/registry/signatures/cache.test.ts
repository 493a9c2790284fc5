import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VerificationCache } from './cache.ts';
import { compilePolicy, verifyImage } from './policy.ts';

test('cache: per digest and policy hash, LRU bounded, dropped per digest, lookups well under 1 ms', () => {
  const p1 = compilePolicy({ version: 1, requireSignature: false });
  const p2 = compilePolicy({ version: 2, requireSignature: true });
  const cache = new VerificationCache(3);
  const d = (i: number) => `sha256:${String(i).padStart(64, '0')}`;
  cache.set(verifyImage(d(1), [], p1));
  cache.set(verifyImage(d(1), [], p2));
  assert.equal(cache.get(d(1), p1.hash)?.verdict, 'verified');
  assert.equal(cache.get(d(1), p2.hash)?.verdict, 'unsigned');
  cache.set(verifyImage(d(2), [], p1));
  cache.set(verifyImage(d(3), [], p1));
  assert.equal(cache.size, 3);
  assert.equal(cache.get(d(1), p1.hash), undefined, 'least recently used is evicted');
  assert.ok(cache.get(d(1), p2.hash));
  cache.forgetDigest(d(2));
  assert.equal(cache.get(d(2), p1.hash), undefined);
  const n = 100_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) cache.get(d(3), p1.hash);
  const perLookupMs = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  assert.ok(perLookupMs < 0.05, `lookup took ${perLookupMs} ms`);
});
