/**
 * OCI Distribution Spec v1.1, "Workflow Categories › Content Management": Deleting tags,
 * Deleting Manifests (end-9) and Deleting Blobs (end-10), with deletion enabled and disabled.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  MT,
  deviation,
  expectError,
  expectStatus,
  pushBlob,
  pushImage,
  putManifest,
  sha256,
  startTarget,
  uniqueRepo,
  type Client,
  type Target,
} from '../support/http-target.ts';

let target: Target;
let client: Client;

before(async () => {
  target = await startTarget({ deleteEnabled: true });
  client = target.client;
});

after(async () => {
  await target?.stop();
});

const specErrorCodes = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
];

const noTagDelete = deviation('distribution', 'distribution 2.8 does not delete tags: DELETE /manifests/<tag> answers 400 DIGEST_INVALID (the spec permits 400 when tag deletion is disabled)');

const accept = { Accept: `${MT.manifest}, ${MT.index}` };

describe('Content Management › Deleting tags (end-9)', () => {
  test('spec §Deleting tags: DELETE /manifests/<tag> answers 202; the tag then answers 404 MANIFEST_UNKNOWN; the manifest stays pullable by digest', { todo: noTagDelete }, async () => {
    const repo = uniqueRepo('del-tag');
    const image = await pushImage(client, repo, { tag: 'doomed', seed: 'del-tag' });
    expectStatus(await putManifest(client, repo, 'kept', image.manifest), 201);
    const res = await client.delete(`/v2/${repo}/manifests/doomed`);
    expectStatus(res, 202);
    expectError(await client.get(`/v2/${repo}/manifests/doomed`, { headers: accept }), 404, 'MANIFEST_UNKNOWN');
    expectStatus(await client.head(`/v2/${repo}/manifests/doomed`, { headers: accept }), 404);
    const byDigest = await client.get(`/v2/${repo}/manifests/${image.digest}`, { headers: accept });
    expectStatus(byDigest, 200);
    assert.ok(byDigest.body.equals(image.manifest));
    expectStatus(await client.get(`/v2/${repo}/manifests/kept`, { headers: accept }), 200);
    const tags = await client.get(`/v2/${repo}/tags/list`);
    expectStatus(tags, 200);
    assert.deepEqual(tags.json().tags, ['kept']);
  });

  test('spec §Deleting tags: DELETE of an unknown tag answers 404 MANIFEST_UNKNOWN', { todo: noTagDelete }, async () => {
    const repo = uniqueRepo('del-tag');
    await pushImage(client, repo, { tag: 'present', seed: 'del-unknown-tag' });
    expectError(await client.delete(`/v2/${repo}/manifests/absent`), 404, 'MANIFEST_UNKNOWN');
  });
});

describe('Content Management › Deleting Manifests (end-9)', () => {
  test('spec §Deleting Manifests: DELETE /manifests/<digest> answers 202; GET by digest and by every tag pointing at it then answers 404', async () => {
    const repo = uniqueRepo('del-manifest');
    const image = await pushImage(client, repo, { tag: 'one', seed: 'del-manifest' });
    expectStatus(await putManifest(client, repo, 'two', image.manifest), 201);
    const other = await pushImage(client, repo, { tag: 'other', seed: 'del-manifest-other' });

    const res = await client.delete(`/v2/${repo}/manifests/${image.digest}`);
    expectStatus(res, 202);
    expectError(await client.get(`/v2/${repo}/manifests/${image.digest}`, { headers: accept }), 404, 'MANIFEST_UNKNOWN');
    expectStatus(await client.head(`/v2/${repo}/manifests/${image.digest}`, { headers: accept }), 404);
    for (const tag of ['one', 'two']) expectError(await client.get(`/v2/${repo}/manifests/${tag}`, { headers: accept }), 404, 'MANIFEST_UNKNOWN');

    const tags = await client.get(`/v2/${repo}/tags/list`);
    expectStatus(tags, 200);
    assert.deepEqual(tags.json().tags, ['other'], 'tags of the deleted manifest are gone from tags/list');
    expectStatus(await client.get(`/v2/${repo}/manifests/${other.digest}`, { headers: accept }), 200);
  });

  test('spec §Deleting Manifests: DELETE of an unknown digest answers 404 MANIFEST_UNKNOWN', async () => {
    const repo = uniqueRepo('del-manifest');
    await pushImage(client, repo, { tag: 'x', seed: 'del-unknown-digest' });
    expectError(await client.delete(`/v2/${repo}/manifests/${sha256('never pushed')}`), 404, 'MANIFEST_UNKNOWN');
  });

  test('spec §Deleting Manifests: "If the repository does not exist, the response MUST return 404 Not Found"', async () => {
    const res = await client.delete(`/v2/${uniqueRepo('nowhere')}/manifests/${sha256('x')}`);
    expectError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });

  test('spec §Deleting Manifests: deleting a manifest twice answers 404 MANIFEST_UNKNOWN the second time', async () => {
    const repo = uniqueRepo('del-manifest');
    const image = await pushImage(client, repo, { seed: 'del-twice' });
    expectStatus(await client.delete(`/v2/${repo}/manifests/${image.digest}`), 202);
    expectError(await client.delete(`/v2/${repo}/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  test('spec §Deleting Manifests: a deleted manifest can be pushed again and is pullable again', async () => {
    const repo = uniqueRepo('del-manifest');
    const image = await pushImage(client, repo, { tag: 'again', seed: 'del-repush' });
    expectStatus(await client.delete(`/v2/${repo}/manifests/${image.digest}`), 202);
    expectStatus(await putManifest(client, repo, 'again', image.manifest), 201);
    const res = await client.get(`/v2/${repo}/manifests/again`, { headers: accept });
    expectStatus(res, 200);
    assert.ok(res.body.equals(image.manifest));
  });

  test('spec §Deleting Manifests: deleting a manifest in one repository leaves the same manifest in another repository intact', async () => {
    const a = uniqueRepo('del-manifest-a');
    const b = uniqueRepo('del-manifest-b');
    const image = await pushImage(client, a, { tag: 'same', seed: 'del-cross' });
    await pushImage(client, b, { tag: 'same', seed: 'del-cross', config: image.config });
    expectStatus(await client.delete(`/v2/${a}/manifests/${image.digest}`), 202);
    const res = await client.get(`/v2/${b}/manifests/${image.digest}`, { headers: accept });
    expectStatus(res, 200);
    assert.ok(res.body.equals(image.manifest));
  });

  test('spec §Deleting Manifests: after deleting its only manifest, tags/list answers 200 with no tags or 404 NAME_UNKNOWN', async () => {
    const repo = uniqueRepo('del-manifest');
    const image = await pushImage(client, repo, { tag: 'only', seed: 'del-last' });
    expectStatus(await client.delete(`/v2/${repo}/manifests/${image.digest}`), 202);
    const res = await client.get(`/v2/${repo}/tags/list`);
    if (res.status === 200) assert.deepEqual(res.json().tags ?? [], []);
    else expectError(res, 404, 'NAME_UNKNOWN');
  });
});

describe('Content Management › Deleting Blobs (end-10)', () => {
  test('spec §Deleting Blobs: DELETE /blobs/<digest> answers 202; GET then answers 404 BLOB_UNKNOWN and HEAD 404', async () => {
    const repo = uniqueRepo('del-blob');
    const content = Buffer.from('a blob nobody references');
    const digest = await pushBlob(client, repo, content);
    expectStatus(await client.delete(`/v2/${repo}/blobs/${digest}`), 202);
    expectError(await client.get(`/v2/${repo}/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    expectStatus(await client.head(`/v2/${repo}/blobs/${digest}`), 404);
  });

  test('spec §Deleting Blobs: "If the blob is not found, a 404 Not Found code MUST be returned" (BLOB_UNKNOWN), also for a second DELETE', async () => {
    const repo = uniqueRepo('del-blob');
    const digest = await pushBlob(client, repo, Buffer.from('delete me twice'));
    expectStatus(await client.delete(`/v2/${repo}/blobs/${digest}`), 202);
    expectError(await client.delete(`/v2/${repo}/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    expectError(await client.delete(`/v2/${repo}/blobs/${sha256('never pushed at all')}`), 404, 'BLOB_UNKNOWN');
  });

  test('spec §Deleting Blobs: deleting a blob in one repository leaves it in another repository', async () => {
    const a = uniqueRepo('del-blob-a');
    const b = uniqueRepo('del-blob-b');
    const content = Buffer.from('shared blob content');
    const digest = await pushBlob(client, a, content);
    await pushBlob(client, b, content);
    expectStatus(await client.delete(`/v2/${a}/blobs/${digest}`), 202);
    expectStatus(await client.head(`/v2/${a}/blobs/${digest}`), 404);
    const res = await client.get(`/v2/${b}/blobs/${digest}`);
    expectStatus(res, 200);
    assert.ok(res.body.equals(content));
  });

  test('spec §Deleting Blobs: a deleted blob can be pushed again', async () => {
    const repo = uniqueRepo('del-blob');
    const content = Buffer.from('phoenix');
    const digest = await pushBlob(client, repo, content);
    expectStatus(await client.delete(`/v2/${repo}/blobs/${digest}`), 202);
    await pushBlob(client, repo, content);
    const res = await client.get(`/v2/${repo}/blobs/${digest}`);
    expectStatus(res, 200);
    assert.ok(res.body.equals(content));
  });

  test(
    'Portcullis policy (spec §Deleting Blobs leaves it open): deleting a blob still referenced by a manifest is refused and the image stays pullable',
    { todo: deviation('distribution', 'distribution deletes referenced blobs (202) and leaves the manifest dangling') },
    async () => {
      const repo = uniqueRepo('del-blob-ref');
      const image = await pushImage(client, repo, { tag: 'in-use', seed: 'del-referenced' });
      const layerDigest = sha256(image.layers[0]!);
      const res = await client.delete(`/v2/${repo}/blobs/${layerDigest}`);
      assert.ok(res.status >= 400 && res.status < 500, `deleting a referenced blob must be refused with a 4xx: ${res.describe()}`);
      // Any code, as long as it is one of the spec's (§Error Codes: "The code field MUST be one of the following").
      expectError(res, res.status, specErrorCodes);
      const blob = await client.get(`/v2/${repo}/blobs/${layerDigest}`);
      expectStatus(blob, 200);
      assert.ok(blob.body.equals(image.layers[0]!));
      expectStatus(await client.get(`/v2/${repo}/blobs/${sha256(image.config)}`), 200);
      expectStatus(await client.delete(`/v2/${repo}/blobs/${sha256(image.config)}`), [400, 403, 405, 409, 412]);
      expectStatus(await client.get(`/v2/${repo}/manifests/in-use`, { headers: accept }), 200);

      // Once the manifest is gone, the blob may be deleted.
      expectStatus(await client.delete(`/v2/${repo}/manifests/${image.digest}`), 202);
      expectStatus(await client.delete(`/v2/${repo}/blobs/${layerDigest}`), 202);
      expectError(await client.get(`/v2/${repo}/blobs/${layerDigest}`), 404, 'BLOB_UNKNOWN');
    },
  );
});

describe('Content Management › deletion disabled', () => {
  let readOnly: Target;

  before(async () => {
    readOnly = await startTarget({ deleteEnabled: false });
  });

  after(async () => {
    await readOnly?.stop();
  });

  test('spec §Deleting Manifests/tags/Blobs: with deletion disabled every DELETE answers 405 UNSUPPORTED and nothing is removed', async () => {
    const c = readOnly.client;
    const repo = uniqueRepo('no-delete');
    const image = await pushImage(c, repo, { tag: 'keep', seed: 'no-delete' });
    const loose = await pushBlob(c, repo, Buffer.from('unreferenced but undeletable'));

    // "If ... deletion is disabled, the registry MUST respond with either a 400 Bad Request or a 405 Method Not Allowed."
    expectError(await c.delete(`/v2/${repo}/manifests/keep`), 405, 'UNSUPPORTED');
    expectError(await c.delete(`/v2/${repo}/manifests/${image.digest}`), 405, 'UNSUPPORTED');
    expectError(await c.delete(`/v2/${repo}/blobs/${loose}`), 405, 'UNSUPPORTED');
    expectError(await c.delete(`/v2/${repo}/blobs/${sha256(image.layers[0]!)}`), 405, 'UNSUPPORTED');

    expectStatus(await c.get(`/v2/${repo}/manifests/keep`, { headers: accept }), 200);
    expectStatus(await c.get(`/v2/${repo}/manifests/${image.digest}`, { headers: accept }), 200);
    expectStatus(await c.get(`/v2/${repo}/blobs/${loose}`), 200);
  });

  test('with deletion disabled, cancelling an upload session (DELETE <location>) still works (204)', async () => {
    const c = readOnly.client;
    const repo = uniqueRepo('no-delete');
    const start = await c.request('POST', `/v2/${repo}/blobs/uploads/`);
    expectStatus(start, 202);
    const location = c.pathOf(start.header('location')!, start.path);
    expectStatus(await c.delete(location), 204);
    expectError(await c.get(location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});
