/**
 * The core publishes one event per committed change and per pull, with who/what/when/where.
 * The registry runs in-process here (buildRegistry) so the test can subscribe to its bus; the
 * requests still travel over a real loopback socket.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Registry, buildRegistry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import type { RegistryEvent } from '../../src/registry/events/bus.ts';

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let registry: Registry;
let base: string;
let dataDir: string;
const events: RegistryEvent[] = [];

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portcullis-events-'));
  const config = validateConfig({ storage: { dataDir, delete: { enabled: true } }, gc: { intervalSeconds: 0 }, log: { level: 'silent' }, auth: { mode: 'none' } });
  registry = await buildRegistry(config);
  registry.events.subscribe('*', (event) => {
    events.push(event);
  });
  base = await registry.app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await registry?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(new URL(path, base), { method, body, headers: { 'user-agent': 'events-test/1.0', ...headers } });
}

/** Events are delivered after the response; wait until `predicate` holds for one of them. */
async function eventWhere<T extends RegistryEvent['type']>(type: T, predicate: (event: Extract<RegistryEvent, { type: T }>) => boolean): Promise<Extract<RegistryEvent, { type: T }>> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const found = events.find((event): event is Extract<RegistryEvent, { type: T }> => event.type === type && predicate(event as Extract<RegistryEvent, { type: T }>));
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`no ${type} event matched; got ${events.map((e) => e.type).join(', ')}`);
}

function assertOrigin(event: RegistryEvent): void {
  assert.ok(event.at instanceof Date);
  assert.ok(event.origin, 'a client action carries its origin');
  assert.equal(event.origin.userAgent, 'events-test/1.0');
  assert.match(event.origin.clientAddress, /127\.0\.0\.1/);
  assert.ok(event.origin.requestId);
}

describe('event bus: what the core publishes', () => {
  const repo = 'events/app';
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layer = Buffer.from('layer bytes for the events test');
  const manifest = (configBytes: Buffer) =>
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(configBytes), size: configBytes.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    });

  test('blob.uploaded, manifest.pushed (tag and previous target), pulls, tag and manifest deletion', async () => {
    for (const blob of [config, layer]) {
      const res = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, blob, { 'content-type': 'application/octet-stream' });
      assert.equal(res.status, 201);
    }
    const uploaded = await eventWhere('blob.uploaded', (e) => e.digest === sha256(layer));
    assert.equal(uploaded.repository, repo);
    assert.equal(uploaded.size, layer.length);
    assertOrigin(uploaded);

    const first = manifest(config);
    assert.equal((await call('PUT', `/v2/${repo}/manifests/v1`, first, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })).status, 201);
    const pushed = await eventWhere('manifest.pushed', (e) => e.digest === sha256(first));
    assert.deepEqual(
      { repository: pushed.repository, tag: pushed.tag, created: pushed.created, previous: pushed.previousTagTarget, mediaType: pushed.mediaType, size: pushed.size },
      { repository: repo, tag: 'v1', created: true, previous: undefined, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: Buffer.byteLength(first) },
    );
    assertOrigin(pushed);

    // Moving the tag names the digest it pointed at before.
    const config2 = Buffer.from('{"architecture":"arm64","os":"linux"}');
    await call('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(config2)}`, config2);
    const second = manifest(config2);
    assert.equal((await call('PUT', `/v2/${repo}/manifests/v1`, second, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })).status, 201);
    const moved = await eventWhere('manifest.pushed', (e) => e.digest === sha256(second));
    assert.equal(moved.previousTagTarget, sha256(first));

    // Pulls: manifest by tag, blob (full and ranged). HEAD is not a pull.
    events.length = 0;
    assert.equal((await call('HEAD', `/v2/${repo}/manifests/v1`)).status, 200);
    assert.equal((await call('GET', `/v2/${repo}/manifests/v1`)).status, 200);
    const pulled = await eventWhere('manifest.pulled', (e) => e.digest === sha256(second));
    assert.equal(pulled.tag, 'v1');
    assertOrigin(pulled);
    assert.equal(events.filter((e) => e.type === 'manifest.pulled').length, 1, 'HEAD publishes no pull');
    const blob = await call('GET', `/v2/${repo}/blobs/${sha256(layer)}`, undefined, { range: 'bytes=0-3' });
    assert.equal(blob.status, 206);
    await blob.arrayBuffer();
    const blobPull = await eventWhere('blob.pulled', (e) => e.digest === sha256(layer));
    assert.equal(blobPull.range, true);

    // Deleting the tag, then the first manifest by digest.
    assert.equal((await call('DELETE', `/v2/${repo}/manifests/v1`)).status, 202);
    const tagDeleted = await eventWhere('tag.deleted', (e) => e.tag === 'v1');
    assert.equal(tagDeleted.digest, sha256(second));
    assert.equal((await call('DELETE', `/v2/${repo}/manifests/${sha256(first)}`)).status, 202);
    const deleted = await eventWhere('manifest.deleted', (e) => e.digest === sha256(first));
    assert.equal(deleted.repository, repo);
  });

  test('a refused push publishes nothing', async () => {
    events.length = 0;
    const bad = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('absent'), size: 6 }, layers: [] });
    const res = await call('PUT', `/v2/${repo}/manifests/broken`, bad, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    assert.equal(res.status, 404);
    const mismatch = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256('other')}`, 'content');
    assert.equal(mismatch.status, 400);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Scans of the images pushed by the test before may finish meanwhile (background work, not this push).
    assert.deepEqual(events.map((e) => e.type).filter((type) => !type.startsWith('scan.')), []);
  });

  test('a failing subscriber does not affect the request or other subscribers', async () => {
    const seen: string[] = [];
    const unsubscribeBad = registry.events.subscribe('blob.uploaded', () => {
      throw new Error('subscriber failure');
    });
    const unsubscribeGood = registry.events.subscribe('blob.uploaded', (event) => {
      seen.push(event.digest);
    });
    try {
      const blob = Buffer.from('after a failing subscriber');
      const res = await call('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, blob);
      assert.equal(res.status, 201);
      await eventWhere('blob.uploaded', (e) => e.digest === sha256(blob));
      assert.deepEqual(seen, [sha256(blob)]);
    } finally {
      unsubscribeBad();
      unsubscribeGood();
    }
  });
});
