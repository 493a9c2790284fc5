import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError } from '../../oci/errors.ts';
import { parseChunkRange, parseRequestRange, uploadProgressRange } from './content-range.ts';

function assertRangeInvalid(header: string): void {
  assert.throws(
    () => parseChunkRange(header),
    (error: unknown) => {
      assert.ok(error instanceof RegistryError, JSON.stringify(header));
      assert.equal(error.code, 'RANGE_INVALID');
      assert.equal(error.status, 416);
      assert.ok(error.message.length < 300, 'the header is quoted in part only');
      return true;
    },
    JSON.stringify(header),
  );
}

describe('parseChunkRange (PATCH Content-Range)', () => {
  test('the distribution spec form <start>-<end>, inclusive', () => {
    assert.deepEqual(parseChunkRange('0-99'), { start: 0, end: 99 });
    assert.deepEqual(parseChunkRange('100-100'), { start: 100, end: 100 });
    assert.deepEqual(parseChunkRange(' 5-9 '), { start: 5, end: 9 });
  });

  test('the RFC 9110 form bytes <start>-<end>/<size|*> is accepted too', () => {
    assert.deepEqual(parseChunkRange('bytes 0-99/100'), { start: 0, end: 99 });
    assert.deepEqual(parseChunkRange('bytes 100-199/*'), { start: 100, end: 199 });
    assert.deepEqual(parseChunkRange('bytes=0-9'), { start: 0, end: 9 });
  });

  test('an end before the start is refused', () => {
    assertRangeInvalid('10-9');
  });

  test('malformed values are refused with RANGE_INVALID', () => {
    for (const header of ['', '-', '0-', '-9', '0', 'a-b', '0-9-10', '0 - 9', '+0-9', '0x0-0x9', '1.5-9', 'bytes 0-9/', 'items 0-9', `0-${'9'.repeat(1000)}`]) {
      assertRangeInvalid(header);
    }
  });

  test('offsets beyond the safe integer range are refused rather than rounded', () => {
    assertRangeInvalid('0-9007199254740993');
    assertRangeInvalid('9007199254740993-9007199254740994');
  });
});

describe('parseRequestRange (GET blob Range)', () => {
  const size = 100;

  test('absent or empty: the whole blob', () => {
    assert.equal(parseRequestRange(undefined, size), undefined);
    assert.equal(parseRequestRange('', size), undefined);
  });

  test('first-last, clamped to the blob', () => {
    assert.deepEqual(parseRequestRange('bytes=0-9', size), { start: 0, end: 9 });
    assert.deepEqual(parseRequestRange('Bytes=0-9', size), { start: 0, end: 9 }, 'the unit is case-insensitive');
    assert.deepEqual(parseRequestRange('bytes=10-10', size), { start: 10, end: 10 });
    assert.deepEqual(parseRequestRange('bytes=90-1000', size), { start: 90, end: 99 });
  });

  test('an open end runs to the last byte', () => {
    assert.deepEqual(parseRequestRange('bytes=90-', size), { start: 90, end: 99 });
    assert.deepEqual(parseRequestRange('bytes=0-', size), { start: 0, end: 99 });
  });

  test('a suffix range selects the last N bytes, or all of a shorter blob', () => {
    assert.deepEqual(parseRequestRange('bytes=-10', size), { start: 90, end: 99 });
    assert.deepEqual(parseRequestRange('bytes=-1000', size), { start: 0, end: 99 });
  });

  test('no byte of the range exists: unsatisfiable (416)', () => {
    assert.equal(parseRequestRange('bytes=100-', size), 'unsatisfiable');
    assert.equal(parseRequestRange('bytes=100-200', size), 'unsatisfiable');
    assert.equal(parseRequestRange('bytes=-0', size), 'unsatisfiable');
    assert.equal(parseRequestRange('bytes=0-0', 0), 'unsatisfiable');
    assert.equal(parseRequestRange('bytes=-5', 0), 'unsatisfiable');
  });

  test('last before first is refused as unsatisfiable, not served whole', () => {
    assert.equal(parseRequestRange('bytes=9-5', size), 'unsatisfiable');
  });

  test('forms the server may ignore (several ranges, other units, junk) serve the whole blob', () => {
    for (const header of ['bytes=0-1,5-6', 'items=0-9', 'bytes=-', 'bytes=a-b', 'bytes 0-9', '0-9', 'bytes=0-9/100']) {
      assert.equal(parseRequestRange(header, size), undefined, header);
    }
  });
});

describe('uploadProgressRange', () => {
  test('reports 0-<last byte>, and 0-0 for an empty upload (as distribution does)', () => {
    assert.equal(uploadProgressRange(0), '0-0');
    assert.equal(uploadProgressRange(1), '0-0');
    assert.equal(uploadProgressRange(100), '0-99');
  });

  test('round-trips: the next chunk starts right after the reported range', () => {
    const reported = parseChunkRange(uploadProgressRange(100));
    assert.equal(reported.end + 1, 100);
  });
});
