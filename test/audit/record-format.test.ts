/**
 * The chain format is a contract with every record already stored and archived: the hashes of a
 * fixed set of records (pulls and pushes mapped from bus events, details with unsorted, numeric
 * and nested keys, truncated and escaped text) are pinned to the values version 1 produced when it
 * was written, computed directly and through the store's batched inserts. A faster serialisation
 * or insert path must give exactly these bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RegistryEvent, RequestOrigin } from '../../src/registry/events/bus.ts';
import { entriesFromEvent } from '../../src/registry/audit/from-event.ts';
import { type AuditEntry, GENESIS_HASH, chainHash, fieldsOf, sortedJson } from '../../src/registry/audit/record.ts';
import { verifyAuditLog } from '../../src/registry/audit/verify.ts';
import { sqliteFixture } from './support.ts';

const at = new Date('2025-03-01T10:00:00Z');
const origin: RequestOrigin = { clientAddress: '192.0.2.4', userAgent: 'skopeo/1.16 \u00e9\u{1F600} "q" \\', requestId: 'req-9', actor: { kind: 'user', name: 'alice', auth: 'token' } };
const digest = (c: string) => `sha256:${c.repeat(64)}`;
/** Control characters: JSON escapes each to six characters, so this record's text passes 16 KiB. */
const ctl = (n: number) => '\u0001'.repeat(n);

const entries: AuditEntry[] = [
  ...entriesFromEvent({ type: 'manifest.pulled', at, origin, repository: 'team/app', digest: digest('b'), mediaType: 'application/vnd.oci.image.manifest.v1+json', tag: 'v1' }),
  ...entriesFromEvent({ type: 'manifest.pulled', at, origin: { ...origin, actor: { kind: 'anonymous' } }, repository: 'team/app', digest: digest('b'), mediaType: 'application/vnd.oci.image.manifest.v1+json', tag: undefined }),
  ...entriesFromEvent({
    type: 'manifest.pushed',
    at,
    origin,
    repository: 'team/app',
    digest: digest('c'),
    mediaType: 'm',
    artifactType: undefined,
    subject: undefined,
    size: 512,
    created: true,
    tag: 'v1',
    previousTagTarget: digest('b'),
  } satisfies RegistryEvent),
  ...entriesFromEvent({ type: 'blob.collected', at, origin: undefined, digest: 'sha256:x', size: 10 }),
  { actor: { kind: 'user' }, action: 'x', outcome: 'denied', details: { z: 1, '10': 'ten', '9': 'nine', a: null, b: undefined, c: true, d: 'str\u2028', e: 1.5e300, f: Number.NaN } },
  { actor: { kind: 'user' }, action: 'x', outcome: 'error', details: { b: { y: [1, { q: 2, p: 1 }], x: 'k' }, a: [3, 2] } },
  { actor: { kind: 'user' }, action: 'x', outcome: 'success', details: { only: undefined } },
  { actor: { kind: '', name: '', auth: '' }, action: '', outcome: 'success', userAgent: 'u'.repeat(600), reason: 'r', details: { blob: 'z'.repeat(5000) } },
  { at: new Date(1), actor: { kind: 'robot', name: 'robot$ci' }, action: 'auth.failed', outcome: 'failure', client: '::1', tag: 't', details: {} },
  { actor: { kind: 'user', name: ctl(300) }, action: 'x', outcome: 'error', userAgent: ctl(600), repository: ctl(1100), digest: ctl(300), tag: ctl(300), reason: ctl(1100), details: { k: ctl(600) } },
];

/** Computed by the first implementation of version 1 (record.ts before the hashing was made cheaper). */
const expected = [
  '2a9f3106761fdf02892ccf31680d6c1b0433dce96d78bbbde505f27667ed5707',
  '2617f21c9c940212cc18135731a79c41b2c48dde1340c186b0ade2063bba462a',
  '57335224f0084493b97c4bc245b48300ffd4e53c05845ebb9afd73bfc45a6290',
  'd188e0bddd0505bf1f719c2b2ce63e97c63b4d3e9b86162924f4ef4ab0330570',
  '66223630a62c24c28d3ecbc01534fbcfb5322292cd40b079f98d1c4d85cb0111',
  'a7417e24b1956d0e8366bf91b49d3d5dea8ba312a4a2d46dcaaf658277ee567a',
  '4aaae11b58578a3b50db095a0c91571d4e4b13465e64f9d9e3b2d5d2a6cda407',
  '8f3f31d7e5ed4fd77412e13ab9ecc0594945eef0a7d9d990bcc189312b3e5bc6',
  '960b0f9d2ffb429c72fcc4255ddff9c40a21e20addd6b5f8cbecc22100198728',
  'a46ea4dc4018db480ae06b403055a173425e18119a3993af5b1d1afdbc170ea0',
  '85b1309a13f2b95ddc46784b2f61f5ffba8ede96d012626d2959bb5ae685705a',
];

const NOW = 1_700_000_000_000;

test('record hashes are those of chain format version 1', () => {
  let prev: Buffer = GENESIS_HASH;
  const hashes = entries.map((entry) => (prev = chainHash(prev, fieldsOf(entry, NOW))).toString('hex'));
  assert.deepEqual(hashes, expected);
  // Twice over: the reused hashing buffer grew for the long record and must not leak into the next.
  prev = GENESIS_HASH;
  assert.deepEqual(
    entries.map((entry) => (prev = chainHash(prev, fieldsOf(entry, NOW))).toString('hex')),
    expected,
  );
});

test('details text: keys sorted at every level, integer-like keys in numeric order, undefined and functions left out', () => {
  assert.equal(sortedJson({ b: 1, a: 2 }), '{"a":2,"b":1}');
  assert.equal(sortedJson({ a: 2, b: 1 }), '{"a":2,"b":1}');
  assert.equal(sortedJson({ '2': 1, '10': 2, b: 3, a: 4 }), '{"2":1,"10":2,"a":4,"b":3}');
  assert.equal(sortedJson({ a: undefined, b: () => 1 }), '{}');
  assert.equal(sortedJson({ d: new Date(0), c: [1] }), '{"c":[1],"d":"1970-01-01T00:00:00.000Z"}');
  // Own enumerable properties only, as a plain object: not what a prototype's toJSON would say.
  assert.equal(sortedJson(new Date(0)), '{}');
  assert.equal(sortedJson(Object.assign(Object.create({ toJSON: () => 'x' }) as object, { b: 1, a: 2 })), '{"a":2,"b":1}');
  assert.equal(sortedJson(Object.assign(Object.create({ toJSON: () => 'x' }) as object, { a: 2, b: 1 })), '{"a":2,"b":1}');
});

test('the store writes the same chain in its batched inserts (a 10-row and a 1-row statement), and it verifies', async () => {
  const f = await sqliteFixture();
  try {
    const result = await f.store.append(
      entries.map((entry) => fieldsOf(entry, NOW)),
      { signer: f.signer, everyRecords: 1_000_000, everyMs: 3_600_000, now: NOW },
    );
    assert.deepEqual([result.firstSeq, result.lastSeq], [1, entries.length]);
    const stored = await f.store.recordsAfter(0, 100);
    assert.deepEqual(
      stored.map((r) => r.hash.toString('hex')),
      expected,
    );
    assert.deepEqual(
      stored.map((r) => r.prevHash.toString('hex')),
      [GENESIS_HASH.toString('hex'), ...expected.slice(0, -1)],
    );
    assert.deepEqual(
      stored.map((r) => r.seq),
      entries.map((_, i) => i + 1),
    );
    await f.store.checkpoint(f.signer, NOW);
    const report = await verifyAuditLog(f.store, { keys: f.keys });
    assert.equal(report.ok, true, report.failure?.message);
    assert.equal(report.records, entries.length);
  } finally {
    await f.cleanup();
  }
});
