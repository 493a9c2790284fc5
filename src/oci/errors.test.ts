import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ociSpecCodes } from '../../test/support/oci-spec-codes.ts';
import { type ErrorCode, RegistryError, errorCatalogue, wireCodeOf } from './errors.ts';

const codes = Object.keys(errorCatalogue) as ErrorCode[];

describe('error catalogue', () => {
  test('contains every OCI spec code, with its status, travelling as itself', () => {
    for (const [code, status] of Object.entries(ociSpecCodes)) {
      assert.ok(code in errorCatalogue, `${code} is missing from the catalogue`);
      assert.equal(errorCatalogue[code as ErrorCode].status, status, code);
      assert.equal(wireCodeOf(code as ErrorCode), code);
    }
  });

  test('every entry has an error status, a message and a description', () => {
    for (const code of codes) {
      const entry = errorCatalogue[code];
      assert.ok(entry.status >= 400 && entry.status <= 599, `${code}: status ${entry.status}`);
      assert.ok(entry.message.length > 0, `${code}: message`);
      assert.ok(entry.description.length > 0, `${code}: description`);
      assert.match(code, /^[A-Z_]+$/);
    }
  });

  test('an extension that declares a wire code travels as a spec code, keeping its own status', () => {
    const extensions = codes.filter((code) => !(code in ociSpecCodes));
    for (const code of extensions) {
      const entry = errorCatalogue[code];
      if (!('wireCode' in entry)) continue;
      assert.ok(entry.wireCode in ociSpecCodes, `${code} travels as ${entry.wireCode}, which is not a spec code`);
      assert.equal(wireCodeOf(code), entry.wireCode);
    }
    assert.equal(wireCodeOf('RANGE_INVALID'), 'BLOB_UPLOAD_INVALID');
    assert.equal(errorCatalogue.RANGE_INVALID.status, 416);
    assert.equal(wireCodeOf('METHOD_NOT_ALLOWED'), 'UNSUPPORTED');
    assert.equal(wireCodeOf('MANIFEST_TOO_LARGE'), 'SIZE_INVALID');
    assert.equal(errorCatalogue.MANIFEST_TOO_LARGE.status, 413);
  });
});

describe('RegistryError', () => {
  test('takes status and default message from the catalogue', () => {
    const error = new RegistryError('MANIFEST_UNKNOWN');
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'RegistryError');
    assert.equal(error.code, 'MANIFEST_UNKNOWN');
    assert.equal(error.status, 404);
    assert.equal(error.message, errorCatalogue.MANIFEST_UNKNOWN.message);
    assert.deepEqual(error.headers, {});
    assert.deepEqual(error.toJSON(), { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown to registry' }] });
  });

  test('the envelope carries the wire code, the message and the detail, never the cause', () => {
    const cause = new Error('disk on fire at /var/lib/secret');
    const error = new RegistryError('RANGE_INVALID', 'chunk out of order', { detail: { expected: 10 }, cause, headers: { Range: '0-9' } });
    assert.equal(error.status, 416);
    assert.equal(error.cause, cause);
    assert.deepEqual(error.headers, { Range: '0-9' });
    const body = JSON.stringify(error);
    assert.deepEqual(JSON.parse(body), { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'chunk out of order', detail: { expected: 10 } }] });
    assert.ok(!body.includes('disk on fire'));
  });

  test('a falsy detail is still sent; an absent one is omitted', () => {
    assert.deepEqual(new RegistryError('DENIED', 'no', { detail: null }).toJSON().errors[0], { code: 'DENIED', message: 'no', detail: null });
    assert.ok(!('detail' in new RegistryError('DENIED', 'no').toJSON().errors[0]!));
  });
});
