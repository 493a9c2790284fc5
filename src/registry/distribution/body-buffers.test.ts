import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BodyBufferReclaimer } from './body-buffers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('the reclaimer collects once per everyBytes received, however the bytes are split', () => {
  let collections = 0;
  const reclaimer = new BodyBufferReclaimer(1 * MiB, () => collections++);
  for (let i = 0; i < 15; i++) reclaimer.received(64 * KiB);
  assert.equal(collections, 0, '960 KiB is under the threshold');
  reclaimer.received(64 * KiB);
  assert.equal(collections, 1);
  reclaimer.received(3 * MiB);
  assert.equal(collections, 2, 'one large chunk is one collection, and the count starts again');
  reclaimer.received(1 * MiB - 1);
  assert.equal(collections, 2);
  reclaimer.received(1);
  assert.equal(collections, 3);
});

test('the default collector frees dead body-sized buffers held outside the heap', async () => {
  const dropped = 256; // 16 MiB of 64 KiB buffers, like node:http's copies of a request body
  const reclaimer = new BodyBufferReclaimer(dropped * 64 * KiB);
  await sleep(20);
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < dropped - 1; i++) Buffer.allocUnsafeSlow(64 * KiB).fill(i);
  const held = process.memoryUsage().arrayBuffers;
  assert.ok(held - before >= 15 * MiB, `the buffers are counted until collected (${held - before} bytes)`);
  for (let i = 0; i < dropped; i++) reclaimer.received(64 * KiB);
  // Array buffers are released by a sweep that may finish on a V8 thread shortly after the scavenge.
  let after = process.memoryUsage().arrayBuffers;
  for (let wait = 0; wait < 50 && after - before > 4 * MiB; wait++) {
    await sleep(10);
    after = process.memoryUsage().arrayBuffers;
  }
  assert.ok(after - before <= 4 * MiB, `dead buffers are freed: ${((after - before) / MiB).toFixed(1)} MiB remain of ${((held - before) / MiB).toFixed(1)}`);
});
