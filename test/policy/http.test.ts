/** Policy at the push and pull gates, over real HTTP against an in-process registry. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import type { RegistryEvent } from '../../src/registry/events/bus.ts';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: team-policy, project: team, version: 3 }
rules:
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push] }
  - { name: releases-immutable, kind: immutable-tags, tags: ["v*"], points: [push] }
  - { name: owner, kind: required-labels, annotations: [org.opencontainers.image.authors], mode: warn, points: [push] }
  - { name: linux-only, kind: cel, expression: 'image.platform.os == "linux"', points: [pull] }
  - { name: audit-size, kind: cel, expression: 'image.size < 10', mode: audit }
`;

const GLOBAL = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: default }
rules:
  - { name: no-dev, kind: forbidden-tags, tags: ["dev"] }
`;

describe('policy gates over HTTP', () => {
  let dir: string;
  let registry: Registry;
  let base: string;
  const decisions: Array<Extract<RegistryEvent, { type: 'policy.decision' }>> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-'));
    await writeFile(join(dir, 'team.yaml'), POLICY);
    await writeFile(join(dir, 'global.yaml'), GLOBAL);
    const config = await loadConfig({
      env: {},
      overrides: [
        { path: ['storage', 'dataDir'], value: join(dir, 'data') },
        { path: ['gc', 'intervalSeconds'], value: 0 },
        { path: ['log', 'level'], value: 'silent' },
        { path: ['auth', 'mode'], value: 'none' },
        { path: ['scanner', 'enabled'], value: false },
        { path: ['policy', 'files'], value: [join(dir, 'team.yaml'), join(dir, 'global.yaml')] },
      ],
    });
    registry = await buildRegistry(config);
    registry.events.subscribe('policy.decision', (e) => void decisions.push(e));
    await registry.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function blob(repo: string, content: Buffer): Promise<string> {
    const digest = sha256(content);
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: content, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 201, await res.text());
    return digest;
  }

  async function image(repo: string, os: string, annotations?: Record<string, string>): Promise<Buffer> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os, created: '2026-01-01T00:00:00Z', config: { Labels: { a: 'b' } }, rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = Buffer.from(`layer ${os} ${Math.random()}`);
    await blob(repo, config);
    await blob(repo, layer);
    return Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      ...(annotations ? { annotations } : {}),
    }));
  }

  const put = (repo: string, ref: string, body: Buffer) => fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': MANIFEST } });

  it('refuses a forbidden tag with DENIED naming the rule, and publishes the decision', async () => {
    const m = await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' });
    const res = await put('team/app', 'latest', m);
    assert.equal(res.status, 403);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'DENIED');
    assert.match(body.errors[0]!.message, /team-policy v3: rule no-latest: tag latest matches forbidden pattern latest/);
    assert.equal((await put('team/app', '1.0', m)).status, 201);
    await new Promise((r) => setTimeout(r, 20));
    const denied = decisions.find((d) => d.outcome === 'denied' && d.tag === 'latest');
    assert.ok(denied);
    assert.equal(denied.point, 'push');
    assert.equal(denied.policy.version, 3);
    assert.deepEqual(denied.rules.map((r) => `${r.rule}:${r.outcome}:${r.mode}`), ['no-latest:fail:enforce', 'audit-size:fail:audit']);
  });

  it('an immutable tag can be created and re-pushed but not moved', async () => {
    const a = await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' });
    const b = await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' });
    assert.equal((await put('team/app', 'v1', a)).status, 201);
    assert.equal((await put('team/app', 'v1', a)).status, 201);
    const moved = await put('team/app', 'v1', b);
    assert.equal(moved.status, 403);
    assert.match(await moved.text(), /releases-immutable: tag v1 matches immutable pattern v\* and already points at sha256:/);
    assert.equal((await put('team/app', sha256(b), b)).status, 201, 'by digest is fine');
    const del = await fetch(`${base}/v2/team/app/manifests/v1`, { method: 'DELETE' });
    assert.equal(del.status, 403);
    assert.match(await del.text(), /releases-immutable: tag v1 matches immutable pattern v\* and cannot be deleted/);
    assert.equal((await put('team/app', 'scratch', b)).status, 201);
    assert.equal((await fetch(`${base}/v2/team/app/manifests/scratch`, { method: 'DELETE' })).status, 202);
  });

  it('refuses to delete by digest a manifest an immutable tag points at, encoded or not; nothing changes', async () => {
    const m = await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' });
    const digest = sha256(m);
    for (const tag of ['v7', 'candidate']) assert.equal((await put('team/app', tag, m)).status, 201);
    for (const reference of [digest, encodeURIComponent(digest)]) {
      const del = await fetch(`${base}/v2/team/app/manifests/${reference}`, { method: 'DELETE' });
      assert.equal(del.status, 403, reference);
      const body = (await del.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]!.code, 'DENIED');
      assert.match(body.errors[0]!.message, /releases-immutable: tag v7 matches immutable pattern v\* and cannot be deleted/);
    }
    for (const ref of ['v7', 'candidate', digest]) assert.equal((await fetch(`${base}/v2/team/app/manifests/${ref}`, { headers: { accept: MANIFEST } })).status, 200, ref);
  });

  it('a manifest whose tags are all mutable is deleted by digest, with its tags', async () => {
    const m = await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' });
    const digest = sha256(m);
    for (const tag of ['scratch2', 'tmp']) assert.equal((await put('team/app', tag, m)).status, 201);
    assert.equal((await fetch(`${base}/v2/team/app/manifests/${digest}`, { method: 'DELETE' })).status, 202);
    for (const ref of ['scratch2', 'tmp', digest]) assert.equal((await fetch(`${base}/v2/team/app/manifests/${ref}`, { headers: { accept: MANIFEST } })).status, 404, ref);
    const other = await image('other/app', 'linux');
    assert.equal((await put('other/app', 'v1', other)).status, 201);
    assert.equal((await fetch(`${base}/v2/other/app/manifests/${sha256(other)}`, { method: 'DELETE' })).status, 202, 'no immutable rule for project other');
  });

  it('a warn rule allows with a Warning: 299 header', async () => {
    const m = await image('team/app', 'linux');
    const res = await put('team/app', '2.0', m);
    assert.equal(res.status, 201);
    assert.match(res.headers.get('warning') ?? '', /^299 - "rule owner: annotation org\.opencontainers\.image\.authors is missing"$/);
    const quiet = await put('team/app', '2.1', await image('team/app', 'linux', { 'org.opencontainers.image.authors': 'me' }));
    assert.equal(quiet.headers.get('warning'), null);
  });

  it('enforces pull rules on GET and HEAD, facts from the image config', async () => {
    const m = await image('team/win', 'windows', { 'org.opencontainers.image.authors': 'me' });
    assert.equal((await put('team/win', '1.0', m)).status, 201);
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${base}/v2/team/win/manifests/1.0`, { method, headers: { accept: MANIFEST } });
      assert.equal(res.status, 403, method);
    }
    const res = await fetch(`${base}/v2/team/win/manifests/1.0`, { headers: { accept: MANIFEST } });
    assert.match(await res.text(), /linux-only: expression is false/);
    assert.equal((await fetch(`${base}/v2/team/app/manifests/1.0`, { headers: { accept: MANIFEST } })).status, 200);
  });

  it('projects without a policy get the global one; referrers are not evaluated', async () => {
    const m = await image('other/app', 'linux');
    assert.equal((await put('other/app', 'dev', m)).status, 403);
    assert.equal((await put('other/app', 'latest', m)).status, 201);
    const empty = Buffer.from('{}');
    await blob('team/app', empty);
    const referrer = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [],
      subject: { mediaType: MANIFEST, digest: sha256(m), size: m.length },
    }));
    assert.equal((await put('team/app', sha256(referrer), referrer)).status, 201);
  });
});
