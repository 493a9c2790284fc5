/** The contract every EdgeState (memory, Redis) passes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackoffPolicy, EdgeState } from '../../src/registry/edge/ports.ts';

const policy: BackoffPolicy = { freeFailures: 2, baseDelayMs: 1000, maxDelayMs: 8000, forgetAfterMs: 60_000 };

export function edgeStateContract(name: string, open: () => Promise<EdgeState>): void {
  const t0 = 1_800_000_000_000;

  test(`${name}: failures count, back off exponentially up to the lockout, and clear`, async () => {
    const state = await open();
    try {
      assert.deepEqual(await state.failures.get('a', t0), { failures: 0, blockedUntilMs: 0 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 1, blockedUntilMs: 0 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 2, blockedUntilMs: t0 + 1000 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 3, blockedUntilMs: t0 + 2000 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 4, blockedUntilMs: t0 + 4000 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 5, blockedUntilMs: t0 + 8000 });
      assert.deepEqual(await state.failures.fail('a', policy, t0), { failures: 6, blockedUntilMs: t0 + 8000 }, 'capped at the lockout');
      assert.deepEqual(await state.failures.get('a', t0 + 1), { failures: 6, blockedUntilMs: t0 + 8000 });
      assert.equal((await state.failures.get('a', t0 + 9000)).blockedUntilMs, 0, 'a lapsed block reads as none');
      assert.equal((await state.failures.get('b', t0)).failures, 0, 'keys are independent');
      await state.failures.clear('a');
      assert.deepEqual(await state.failures.get('a', t0), { failures: 0, blockedUntilMs: 0 });
    } finally {
      await state.close();
    }
  });

  test(`${name}: concurrent failures are all counted`, async () => {
    const state = await open();
    try {
      await Promise.all(Array.from({ length: 50 }, () => state.failures.fail('c', policy, t0)));
      assert.equal((await state.failures.get('c', t0)).failures, 50);
    } finally {
      await state.close();
    }
  });

  test(`${name}: token buckets allow the burst, refuse with the time to the next token, refill`, async () => {
    const state = await open();
    const spec = { capacity: 3, refillPerSecond: 2 };
    try {
      for (let i = 0; i < 3; i++) assert.equal((await state.buckets.take('k', spec, t0)).allowed, true);
      const refused = await state.buckets.take('k', spec, t0);
      assert.equal(refused.allowed, false);
      assert.equal(refused.retryAfterMs, 500);
      assert.equal((await state.buckets.take('other', spec, t0)).allowed, true, 'buckets are independent');
      assert.equal((await state.buckets.take('k', spec, t0 + 500)).allowed, true, 'one token after 500 ms');
      assert.equal((await state.buckets.take('k', spec, t0 + 500)).allowed, false);
      const later = await state.buckets.take('k', spec, t0 + 60_000);
      assert.equal(later.allowed, true);
      assert.equal(later.remaining, 2, 'refill stops at the capacity');
    } finally {
      await state.close();
    }
  });

  test(`${name}: concurrent takes never exceed the capacity`, async () => {
    const state = await open();
    try {
      const results = await Promise.all(Array.from({ length: 40 }, () => state.buckets.take('c', { capacity: 10, refillPerSecond: 0.001 }, t0)));
      assert.equal(results.filter((r) => r.allowed).length, 10);
    } finally {
      await state.close();
    }
  });
}
