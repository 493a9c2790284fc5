/**
 * An in-process registry for garbage-collection race tests: the real stores (filesystem +
 * SQLite) under a clock the test moves, behind proxies that let a test run code at exact points
 * between two store calls (where a concurrent collector or push would interleave), and Fastify's
 * `inject` as the HTTP client.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import { EventBus } from '../../src/registry/events/bus.ts';
import { UploadService } from '../../src/registry/distribution/uploads.ts';
import { GarbageCollector } from '../../src/registry/gc/collector.ts';
import { FsBlobStore } from '../../src/registry/storage/fs/fs-blob-store.ts';
import type { BlobStore, MetadataStore } from '../../src/registry/storage/ports.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';

export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** `before` runs before a store method, `after` once it resolved (before the caller sees the result). */
export interface Hooks {
  before?: (method: string, args: unknown[]) => Promise<void> | void;
  after?: (method: string, args: unknown[], result: unknown) => Promise<void> | void;
}

/** Wraps `target` so that `hooks` see every call; methods keep their own `this`. */
function hooked<T extends object>(target: T, hooks: Hooks): T {
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await hooks.before?.(String(property), args);
        const result = await (value as (...a: unknown[]) => unknown).apply(object, args);
        await hooks.after?.(String(property), args, result);
        return result;
      };
    },
  });
}

export interface Harness {
  registry: Registry;
  /** The raw stores (calls on them are not hooked). */
  meta: MetadataStore;
  blobs: BlobStore;
  /** Hooks on the stores the registry uses; set and clear them around the step under test. */
  metaHooks: Hooks;
  blobHooks: Hooks;
  clock: { now: number };
  /** A second, independent collector over the same stores (another replica or the CLI). */
  otherCollector: GarbageCollector;
  request(method: string, url: string, options?: { body?: Buffer | string; headers?: Record<string, string> }): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }>;
  pushBlob(repository: string, content: Buffer): Promise<string>;
  putManifest(repository: string, reference: string, manifest: Buffer): Promise<number>;
  collect(): Promise<void>;
  close(): Promise<void>;
}

export async function startInProcess(settings: { blobGraceSeconds: number; untaggedManifestsAfterSeconds?: number }): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-gc-'));
  const clock = { now: Date.now() };
  const blobs = new FsBlobStore(dir);
  await blobs.init();
  const meta = new SqlMetadataStore(new SqliteDriver(join(dir, 'metadata.sqlite')), { now: () => clock.now });
  await meta.migrate();
  const metaHooks: Hooks = {};
  const blobHooks: Hooks = {};
  const config = await loadConfig({
    env: {},
    overrides: [
      { path: ['storage', 'dataDir'], value: dir },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['gc', 'blobGraceSeconds'], value: settings.blobGraceSeconds },
      { path: ['gc', 'untaggedManifestsAfterSeconds'], value: settings.untaggedManifestsAfterSeconds ?? 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
    ],
  });
  const stores = { blobs: hooked<BlobStore>(blobs, blobHooks), meta: hooked<MetadataStore>(meta, metaHooks), close: () => meta.close() };
  const registry = await buildRegistry(config, { stores });
  const events = new EventBus();
  const otherCollector = new GarbageCollector(
    { blobs, meta, events, uploads: new UploadService({ blobs, meta, events }, { blobMaxBytes: 0, blobGraceMs: settings.blobGraceSeconds * 1000 }) },
    { untaggedManifestsAfterMs: (settings.untaggedManifestsAfterSeconds ?? 0) * 1000, uploadExpiryMs: 24 * 3600 * 1000 },
  );

  const request: Harness['request'] = async (method, url, options = {}) => {
    const res = await registry.app.inject({ method: method as 'GET', url, headers: options.headers, ...(options.body !== undefined ? { payload: options.body } : {}) });
    return { status: res.statusCode, body: res.rawPayload, headers: res.headers };
  };
  return {
    registry,
    meta,
    blobs,
    metaHooks,
    blobHooks,
    clock,
    otherCollector,
    request,
    async pushBlob(repository, content) {
      const digest = sha256(content);
      const res = await request('POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { body: content, headers: { 'content-type': 'application/octet-stream' } });
      if (res.status !== 201) throw new Error(`blob push answered ${res.status}: ${res.body}`);
      return digest;
    },
    async putManifest(repository, reference, manifest) {
      return (await request('PUT', `/v2/${repository}/manifests/${reference}`, { body: manifest, headers: { 'content-type': MANIFEST } })).status;
    },
    async collect() {
      await registry.collector.collect({ now: new Date(clock.now) });
    },
    async close() {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An OCI image manifest over `config` and `layers`. */
export function manifestOf(config: Buffer, layers: Buffer[], annotations?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length })),
      ...(annotations ? { annotations } : {}),
    }),
  );
}
