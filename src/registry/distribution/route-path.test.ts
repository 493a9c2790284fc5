import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError } from '../../oci/errors.ts';
import { allowedMethods, matchRoute } from './route-path.ts';

const digest = `sha256:${'a'.repeat(64)}`;

function assertRefused(path: string, code: 'NAME_INVALID' | 'NOT_FOUND'): void {
  assert.throws(
    () => matchRoute(path),
    (error: unknown) => {
      assert.ok(error instanceof RegistryError, path);
      assert.equal(error.code, code, path);
      return true;
    },
    path,
  );
}

describe('matchRoute', () => {
  test('the base endpoint and the catalog', () => {
    assert.deepEqual(matchRoute(''), { kind: 'base' });
    assert.deepEqual(matchRoute('_catalog'), { kind: 'catalog' });
  });

  test('every endpoint of the distribution spec, with a nested name', () => {
    const name = 'team-a/sub.group/app';
    assert.deepEqual(matchRoute(`${name}/blobs/uploads/`), { kind: 'uploads', name });
    assert.deepEqual(matchRoute(`${name}/blobs/uploads`), { kind: 'uploads', name });
    assert.deepEqual(matchRoute(`${name}/blobs/uploads/3f8a-uuid`), { kind: 'upload', name, id: '3f8a-uuid' });
    assert.deepEqual(matchRoute(`${name}/blobs/${digest}`), { kind: 'blob', name, digest });
    assert.deepEqual(matchRoute(`${name}/manifests/latest`), { kind: 'manifest', name, reference: 'latest' });
    assert.deepEqual(matchRoute(`${name}/manifests/${digest}`), { kind: 'manifest', name, reference: digest });
    assert.deepEqual(matchRoute(`${name}/tags/list`), { kind: 'tags', name });
    assert.deepEqual(matchRoute(`${name}/referrers/${digest}`), { kind: 'referrers', name, digest });
  });

  test('names may contain the words the endpoints use', () => {
    assert.deepEqual(matchRoute('blobs/manifests/manifests/latest'), { kind: 'manifest', name: 'blobs/manifests', reference: 'latest' });
    assert.deepEqual(matchRoute('a/tags/list/tags/list'), { kind: 'tags', name: 'a/tags/list' });
    assert.deepEqual(matchRoute(`a/blobs/blobs/${digest}`), { kind: 'blob', name: 'a/blobs', digest });
    assert.deepEqual(matchRoute('uploads/blobs/uploads/'), { kind: 'uploads', name: 'uploads' });
  });

  test('the name is validated: traversal, encoded traversal and bad characters get NAME_INVALID', () => {
    for (const name of ['..', '../etc', 'a/../b', 'a/./b', '%2e%2e', 'a/%2e%2e/b', '%2e%2e%2fetc', 'a%2fb', 'A/b', 'a//b', '/a', 'a b', 'a\\..\\b', '_catalog']) {
      assertRefused(`${name}/manifests/latest`, 'NAME_INVALID');
      assertRefused(`${name}/blobs/${digest}`, 'NAME_INVALID');
      assertRefused(`${name}/tags/list`, 'NAME_INVALID');
    }
    assertRefused(`${'a'.repeat(256)}/manifests/latest`, 'NAME_INVALID');
  });

  test('paths that are no endpoint get NOT_FOUND', () => {
    for (const path of [
      'a',
      'a/b',
      'a/manifests',
      'a/manifests/',
      'a/manifests/x/y',
      'a/blobs',
      'a/blobs/',
      'a/blobs/uploads/id/extra',
      'a/tags',
      'a/tags/list/',
      'a/referrers',
      'a/referrers/',
      '_catalog/',
      '/',
      'manifests/latest',
    ]) {
      assertRefused(path, 'NOT_FOUND');
    }
  });

  test('the NOT_FOUND message quotes a long path in part only', () => {
    assert.throws(
      () => matchRoute(`x/${'y'.repeat(5000)}`),
      (error: RegistryError) => error.code === 'NOT_FOUND' && error.message.length < 300,
    );
  });
});

describe('allowedMethods', () => {
  // The distribution spec's endpoint table (end-1 to end-13), plus the catalog and cancelling an
  // upload, which distribution and its clients use.
  const endpoints: Array<[id: string, method: string, kind: keyof typeof allowedMethods]> = [
    ['end-1', 'GET', 'base'],
    ['end-2', 'GET', 'blob'],
    ['end-2', 'HEAD', 'blob'],
    ['end-3', 'GET', 'manifest'],
    ['end-3', 'HEAD', 'manifest'],
    ['end-4', 'POST', 'uploads'],
    ['end-5', 'PATCH', 'upload'],
    ['end-6', 'PUT', 'upload'],
    ['end-7', 'PUT', 'manifest'],
    ['end-8', 'GET', 'tags'],
    ['end-9', 'DELETE', 'manifest'],
    ['end-10', 'DELETE', 'blob'],
    ['end-11', 'POST', 'uploads'],
    ['end-12', 'GET', 'referrers'],
    ['end-13', 'GET', 'upload'],
    ['catalog', 'GET', 'catalog'],
    ['cancel upload', 'DELETE', 'upload'],
  ];

  test('every endpoint answers the methods the spec gives it', () => {
    for (const [id, method, kind] of endpoints) assert.ok(allowedMethods[kind].includes(method), `${id}: ${method} on ${kind}`);
  });

  test('no endpoint accepts a write method the spec does not give it', () => {
    for (const [kind, methods] of Object.entries(allowedMethods)) {
      for (const method of methods.filter((m) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(m))) {
        assert.ok(
          endpoints.some(([, m, k]) => m === method && k === kind),
          `${method} on ${kind} is in no spec endpoint`,
        );
      }
    }
  });
});
