/**
 * OCI Distribution Spec v1.1, §Pulling manifests: "Throughout this document, <name> MUST match
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*", with the
 * implementers' note on the 255-character limit, and error code-8 NAME_INVALID. Every
 * endpoint must refuse a name outside the grammar, including path-traversal attempts sent
 * raw and percent-encoded, before touching storage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deviation, expectError, expectStatus, pushBlob, pushImage, sha256, startTarget, type Client, type Target } from '../support/http-target.ts';

let target: Target;
let client: Client;

before(async () => {
  target = await startTarget();
  client = target.client;
  // Something worth stealing next to the test repositories.
  await pushImage(client, 'victim/app', { tag: 'latest', seed: 'victim' });
});

after(async () => {
  await target?.stop();
});

const routerDeviation = deviation('distribution', 'its router answers a plain-text 404 page (or a redirect) for names outside the grammar instead of 400 NAME_INVALID');

/** Each invalid name, as it appears raw in the request path. */
const invalidNames: Array<[string, string]> = [
  ['uppercase', 'Library/Ubuntu'],
  ['uppercase in a later component', 'library/Ubuntu'],
  ['raw ../ traversal', 'victim/../victim/app'],
  ['raw leading ..', '../victim/app'],
  ['percent-encoded %2e%2e traversal', 'victim/%2e%2e/victim/app'],
  ['percent-encoded %2E%2E (upper-case hex)', 'victim/%2E%2E/victim/app'],
  ['raw . component', 'victim/./app'],
  ['empty component (//)', 'victim//app'],
  ['leading separator', '-victim/app'],
  ['trailing separator', 'victim-/app'],
  ['triple underscore', 'a___b'],
  ['double dot separator', 'a..b'],
  ['percent-encoded space', 'a%20b'],
  ['percent-encoded NUL', 'victim%00/app'],
  ['256 characters', `${'a'.repeat(127)}/${'b'.repeat(128)}`],
];

describe('names › invalid names answer 400 NAME_INVALID on every endpoint', () => {
  for (const [label, name] of invalidNames) {
    test(`spec §Pulling manifests (<name> grammar) + code-8: ${label} (${name.length > 40 ? `${name.slice(0, 40)}…` : name}) answers 400 NAME_INVALID`, { todo: routerDeviation }, async () => {
      expectError(await client.get(`/v2/${name}/manifests/latest`), 400, 'NAME_INVALID');
      expectError(await client.get(`/v2/${name}/blobs/${sha256('x')}`), 400, 'NAME_INVALID');
      expectError(await client.get(`/v2/${name}/tags/list`), 400, 'NAME_INVALID');
      expectError(await client.request('POST', `/v2/${name}/blobs/uploads/`), 400, 'NAME_INVALID');
      expectError(await client.request('PUT', `/v2/${name}/manifests/latest`, { headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: '{}' }), 400, 'NAME_INVALID');
      expectError(await client.delete(`/v2/${name}/manifests/latest`), 400, 'NAME_INVALID');
    });
  }

  test('spec §Pulling manifests (<name> grammar): a traversal never serves another repository\'s content', async () => {
    for (const path of ['/v2/victim/../victim/app/manifests/latest', '/v2/x/%2e%2e/victim/app/manifests/latest', '/v2/x/..%2fvictim/app/manifests/latest', '/v2/x/%2e%2e%2fvictim/app/manifests/latest']) {
      const res = await client.get(path, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.ok(res.status >= 300 && res.status < 500, `traversal must be refused, got ${res.describe()}`);
      assert.notEqual(res.status, 200);
    }
  });

  test('a traversal in the digest or upload id of a path is refused (400 or 404), never served', { todo: deviation('distribution', 'Go path cleaning answers 301 redirects (e.g. to /v2/etc/passwd) for encoded ../ in the digest') }, async () => {
    for (const path of ['/v2/victim/app/blobs/..%2f..%2f..%2fetc%2fpasswd', '/v2/victim/app/blobs/sha256:..%2f..', '/v2/victim/app/blobs/uploads/..%2f..%2f..%2fetc%2fpasswd', '/v2/victim/app/manifests/..%2f..%2flatest']) {
      const res = await client.get(path);
      expectStatus(res, [400, 404]);
      assert.ok(!res.text().includes('root:'), res.describe());
    }
  });

  test('spec §Pulling manifests (implementers note, 255 characters): an over-long name (256) is refused with NAME_INVALID on push', { todo: routerDeviation }, async () => {
    const name = `${'a'.repeat(200)}/${'b'.repeat(55)}`;
    assert.equal(name.length, 256);
    expectError(await client.request('POST', `/v2/${name}/blobs/uploads/`), 400, 'NAME_INVALID');
  });
});

describe('names › valid names at the edges of the grammar are accepted', () => {
  for (const name of ['a', 'a__b/c', 'a--b/c---d', 'a.b/c_d/e-f', '0/1/2/3/4/5/6/7/8/9', `${'a'.repeat(127)}/${'b'.repeat(127)}`]) {
    test(`spec §Pulling manifests (<name> grammar): ${name.length > 40 ? `${name.length}-character name` : name} is accepted (push and pull a blob)`, async () => {
      const content = Buffer.from(`content for ${name}`);
      const digest = await pushBlob(client, name, content);
      const res = await client.get(`/v2/${name}/blobs/${digest}`);
      expectStatus(res, 200);
      assert.ok(res.body.equals(content));
    });
  }
});
