import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createDigester, digestOf, isDigest, parseDigest, supportedAlgorithms } from './digest.ts';
import { RegistryError } from './errors.ts';

// Well-known digests of the empty input and of the OCI empty JSON blob `{}`.
const sha256Empty = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const sha512Empty = 'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';
const sha256EmptyJson = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

function assertInvalid(value: string, messagePart?: RegExp): void {
  assert.throws(
    () => parseDigest(value),
    (error: unknown) => {
      assert.ok(error instanceof RegistryError, `expected a RegistryError for ${JSON.stringify(value)}`);
      assert.equal(error.code, 'DIGEST_INVALID');
      assert.equal(error.status, 400);
      if (messagePart) assert.match(error.message, messagePart);
      return true;
    },
  );
  assert.equal(isDigest(value), false, `isDigest(${JSON.stringify(value)})`);
}

describe('parseDigest', () => {
  test('accepts sha256 and sha512 digests and returns their parts', () => {
    assert.deepEqual(parseDigest(sha256Empty), { algorithm: 'sha256', hex: sha256Empty.slice(7), digest: sha256Empty });
    assert.deepEqual(parseDigest(sha512Empty), { algorithm: 'sha512', hex: sha512Empty.slice(7), digest: sha512Empty });
    assert.equal(isDigest(sha256Empty), true);
    assert.equal(isDigest(sha512Empty), true);
  });

  test('the encoded part must have exactly the length of the algorithm', () => {
    assert.deepEqual(supportedAlgorithms, { sha256: 64, sha512: 128 });
    assertInvalid(`sha256:${'a'.repeat(63)}`, /64 lowercase hex/);
    assertInvalid(`sha256:${'a'.repeat(65)}`, /64 lowercase hex/);
    assertInvalid(`sha512:${'a'.repeat(64)}`, /128 lowercase hex/);
  });

  test('hex must be lowercase: the same hash in upper case is another string, so it is refused rather than aliased', () => {
    assertInvalid(`sha256:${'A'.repeat(64)}`, /lowercase hex/);
    assertInvalid(sha256Empty.toUpperCase());
  });

  test('the encoded part must be hex for sha256 even where the grammar allows more characters', () => {
    // `[a-zA-Z0-9=_-]+` allows these, the sha256 encoding does not.
    assertInvalid(`sha256:${'g'.repeat(64)}`);
    assertInvalid(`sha256:${'a'.repeat(63)}=`);
    assertInvalid(`sha256:${'a'.repeat(63)}_`);
  });

  test('grammar-conforming digests of unsupported algorithms are refused with a message naming the algorithm', () => {
    assertInvalid(`md5:${'a'.repeat(32)}`, /unsupported digest algorithm "md5"/);
    assertInvalid(`sha384:${'a'.repeat(96)}`, /unsupported digest algorithm "sha384"/);
    // The image spec's own examples of valid-but-unsupported digests.
    assertInvalid('multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8', /unsupported/);
    assertInvalid('sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564', /unsupported/);
  });

  test('strings outside the digest grammar are refused', () => {
    for (const value of [
      '',
      'sha256',
      'sha256:',
      ':abc',
      `SHA256:${'a'.repeat(64)}`,
      `sha256::${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(32)}:${'a'.repeat(31)}`,
      `-sha256:${'a'.repeat(64)}`,
      `sha256-:${'a'.repeat(64)}`,
      `sha..256:${'a'.repeat(64)}`,
      ` ${sha256Empty}`,
      `${sha256Empty} `,
      `${sha256Empty}\n`,
      `${sha256Empty}/`,
      `sha256:${'a'.repeat(32)}%2F${'a'.repeat(29)}`,
      `sha256:../../${'a'.repeat(58)}`,
    ]) {
      assertInvalid(value, /invalid digest/);
    }
  });

  test('an oversized value is quoted in the message only in part', () => {
    const huge = `sha256:${'x'.repeat(10_000)}!`;
    assert.throws(
      () => parseDigest(huge),
      (error: RegistryError) => error.message.length < 300,
    );
  });
});

describe('digestOf and createDigester', () => {
  test('digestOf computes the canonical algorithm:hex string (sha256 by default)', () => {
    assert.equal(digestOf(new Uint8Array()), sha256Empty);
    assert.equal(digestOf(Buffer.from('{}')), sha256EmptyJson);
    assert.equal(digestOf(new Uint8Array(), 'sha512'), sha512Empty);
    assert.equal(isDigest(digestOf(Buffer.from('anything'))), true);
  });

  test('createDigester hashes incrementally to the same digest as digestOf', () => {
    const hash = createDigester('sha256');
    hash.update('{');
    hash.update('}');
    assert.equal(`sha256:${hash.digest('hex')}`, sha256EmptyJson);
    const hash512 = createDigester('sha512');
    assert.equal(`sha512:${hash512.digest('hex')}`, sha512Empty);
  });
});
