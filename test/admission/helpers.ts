/** An in-process registry with admission enabled, and small images pushed over HTTP. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import type { RegistryEvent } from '../../src/registry/events/bus.ts';

export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const HOST = 'registry.test:5000';
export const TOKEN = 'admission-token-0123456789abcdef';

export interface AdmissionHarness {
  registry: Registry;
  base: string;
  dir: string;
  events: RegistryEvent[];
  /** Pushes a one-layer image; returns its digest. */
  image(repo: string, tag: string, config?: { os?: string; labels?: Record<string, string> }): Promise<string>;
  /** POSTs a review to /admission/{validate|mutate} with the admission token. */
  call(which: 'validate' | 'mutate', body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startAdmissionRegistry(policy: string, overrides: Array<{ path: string[]; value: unknown }> = []): Promise<AdmissionHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-admission-'));
  await writeFile(join(dir, 'policy.yaml'), policy);
  await writeFile(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  const config = await loadConfig({
    env: {},
    overrides: [
      { path: ['storage', 'dataDir'], value: join(dir, 'data') },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      { path: ['scanner', 'enabled'], value: false },
      { path: ['policy', 'files'], value: [join(dir, 'policy.yaml')] },
      { path: ['admission', 'enabled'], value: true },
      { path: ['admission', 'registryHosts'], value: [HOST] },
      { path: ['admission', 'clusterName'], value: 'test-cluster' },
      { path: ['admission', 'auth', 'tokenFile'], value: join(dir, 'token') },
      ...overrides,
    ],
  });
  const registry = await buildRegistry(config);
  const events: RegistryEvent[] = [];
  registry.events.subscribe('*', (e) => void events.push(e));
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`;

  async function blob(repo: string, content: Buffer): Promise<string> {
    const digest = sha256(content);
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: content, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 201, await res.text());
    return digest;
  }
  return {
    registry,
    base,
    dir,
    events,
    async image(repo, tag, c = {}) {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: c.os ?? 'linux', created: '2026-01-01T00:00:00Z', config: { Labels: c.labels ?? {} }, rootfs: { type: 'layers', diff_ids: [] } }));
      const layer = Buffer.from(`layer ${repo} ${tag} ${Math.random()}`);
      await blob(repo, config);
      await blob(repo, layer);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }));
      const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': MANIFEST } });
      assert.equal(res.status, 201, await res.text());
      return sha256(manifest);
    },
    async call(which, body, headers = {}) {
      const res = await fetch(`${base}/admission/${which}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async close() {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Lets bus handlers run (they are delivered on the next macrotask). */
export const settle = () => new Promise((r) => setTimeout(r, 20));
