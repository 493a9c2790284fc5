/** An immutable tag also guards deletion of its manifest by digest (which would take the tag with it). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: team-policy, project: team }
rules:
  - { name: releases-immutable, kind: immutable-tags, tags: ["v*"], points: [push] }
`;

describe('immutable tags and manifest deletion by digest', () => {
  let dir: string;
  let registry: Registry;
  let base: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-delete-guard-'));
    await writeFile(join(dir, 'team.yaml'), POLICY);
    const config = await loadConfig({
      env: {},
      overrides: [
        { path: ['storage', 'dataDir'], value: join(dir, 'data') },
        { path: ['gc', 'intervalSeconds'], value: 0 },
        { path: ['log', 'level'], value: 'silent' },
        { path: ['auth', 'mode'], value: 'none' },
        { path: ['scanner', 'enabled'], value: false },
        { path: ['policy', 'files'], value: [join(dir, 'team.yaml')] },
      ],
    });
    registry = await buildRegistry(config);
    await registry.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function pushImage(repo: string, tags: string[]): Promise<string> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: Math.random() }));
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 201);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }));
    for (const tag of tags) assert.equal((await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': MANIFEST } })).status, 201);
    return sha256(manifest);
  }

  it('refuses to delete by digest a manifest an immutable tag points at, encoded or not; nothing changes', async () => {
    const digest = await pushImage('team/app', ['v1', 'candidate']);
    for (const reference of [digest, encodeURIComponent(digest)]) {
      const del = await fetch(`${base}/v2/team/app/manifests/${reference}`, { method: 'DELETE' });
      assert.equal(del.status, 403, reference);
      const body = (await del.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]!.code, 'DENIED');
      assert.match(body.errors[0]!.message, /releases-immutable: tag v1 matches immutable pattern v\* and cannot be deleted/);
    }
    for (const ref of ['v1', 'candidate', digest]) assert.equal((await fetch(`${base}/v2/team/app/manifests/${ref}`, { headers: { accept: MANIFEST } })).status, 200, ref);
  });

  it('a manifest whose tags are all mutable is deleted by digest, with its tags', async () => {
    const digest = await pushImage('team/app', ['scratch', 'tmp']);
    assert.equal((await fetch(`${base}/v2/team/app/manifests/${digest}`, { method: 'DELETE' })).status, 202);
    for (const ref of ['scratch', 'tmp', digest]) assert.equal((await fetch(`${base}/v2/team/app/manifests/${ref}`, { headers: { accept: MANIFEST } })).status, 404, ref);
    const untagged = await pushImage('other/app', ['v1']);
    assert.equal((await fetch(`${base}/v2/other/app/manifests/${untagged}`, { method: 'DELETE' })).status, 202, 'no policy for project other');
  });
});
