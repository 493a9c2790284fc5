/**
 * Helpers for scanner tests: an in-process registry (real stores in a temporary data directory,
 * the scanner polling fast), pushing in-memory images through the HTTP API, fixture layers, OSV
 * subsets and waiting for scan states.
 */
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegistry, openStores, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import type { BlobStore } from '../../src/registry/storage/ports.ts';
import { MEDIA, sha256, type BuiltImage, type LayerFile } from '../acceptance/helpers/oci.ts';

export interface ScannerHarness {
  registry: Registry;
  dataDir: string;
  /** Layer and config blobs read from the blob store by anyone (the scanner is the only reader here). */
  blobReads: string[];
  request(method: string, url: string, options?: { body?: Buffer | string; headers?: Record<string, string> }): Promise<{ status: number; body: Buffer; json: () => any; headers: Record<string, unknown> }>;
  push(repository: string, reference: string, image: BuiltImage): Promise<void>;
  /** Stops the registry (keeps the data directory unless `remove`). */
  close(remove?: boolean): Promise<void>;
}

export async function startScannerRegistry(options: { dataDir?: string; overrides?: Array<{ path: string[]; value: unknown }>; env?: Record<string, string> } = {}): Promise<ScannerHarness> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-scan-')));
  const config = await loadConfig({
    env: options.env ?? {},
    overrides: [
      { path: ['storage', 'dataDir'], value: dataDir },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      { path: ['audit', 'enabled'], value: false },
      { path: ['scanner', 'pollIntervalMs'], value: 50 },
      { path: ['scanner', 'retryInitialMs'], value: 50 },
      { path: ['scanner', 'vulnerabilityData', 'reloadIntervalSeconds'], value: 0 },
      ...(options.overrides ?? []),
    ].map((o) => ({ ...o, flag: o.path.join('.') })),
  });
  const stores = await openStores(config);
  const blobReads: string[] = [];
  const raw = stores.blobs;
  const blobs = new Proxy(raw, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'read') return (digest: string, range?: unknown) => (blobReads.push(digest), (value as BlobStore['read']).call(target, digest, range as never));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  const registry = await buildRegistry(config, { stores: { ...stores, blobs } });
  const request: ScannerHarness['request'] = async (method, url, o = {}) => {
    const res = await registry.app.inject({ method: method as 'GET', url, headers: o.headers, ...(o.body !== undefined ? { payload: o.body } : {}) });
    return { status: res.statusCode, body: res.rawPayload, json: () => JSON.parse(res.payload), headers: res.headers };
  };
  return {
    registry,
    dataDir,
    blobReads,
    request,
    async push(repository, reference, image) {
      for (const blob of [image.config, ...image.layers]) {
        const res = await request('POST', `/v2/${repository}/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes, headers: { 'content-type': 'application/octet-stream' } });
        if (res.status !== 201) throw new Error(`blob push answered ${res.status}: ${res.body}`);
      }
      const res = await request('PUT', `/v2/${repository}/manifests/${reference}`, { body: image.manifest.bytes, headers: { 'content-type': image.manifest.descriptor.mediaType } });
      if (res.status !== 201) throw new Error(`manifest push answered ${res.status}: ${res.body}`);
    },
    async close(remove = true) {
      await registry.close();
      if (remove) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value other than undefined (no fixed sleeps in assertions). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until the scan of `digest` is complete or failed and returns the report. */
export async function waitForScan(h: ScannerHarness, repository: string, digest: string, status: 'complete' | 'failed' = 'complete'): Promise<any> {
  return waitFor(`scan of ${digest} to be ${status}`, async () => {
    const res = await h.request('GET', `/api/v1/repositories/${repository}/scans/${digest}`);
    if (res.status !== 200) return undefined;
    const report = res.json();
    if (report.status === 'complete' || report.status === 'failed') {
      if (report.status !== status) throw new Error(`scan ended ${report.status}: ${report.reason ?? ''}`);
      return report;
    }
    return undefined;
  });
}

/** os-release of Ubuntu 18.04 (bionic), written by us: the fixtures' dpkg database is from 18.04. */
export const UBUNTU_1804_OS_RELEASE = Buffer.from(
  'NAME="Ubuntu"\nVERSION="18.04.1 LTS (Bionic Beaver)"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 18.04.1 LTS"\nVERSION_ID="18.04"\nVERSION_CODENAME=bionic\nUBUNTU_CODENAME=bionic\n',
);

/** The Ubuntu 18.04 base layer: os-release and the real dpkg status fixture. */
export async function ubuntuBaseLayer(fixtures: string): Promise<LayerFile[]> {
  return [
    { path: 'etc/os-release', content: UBUNTU_1804_OS_RELEASE },
    { path: 'var/lib/dpkg/status', content: await readFile(join(fixtures, 'pkgdb/dpkg/ubuntu-18.04-trivy-valid/var/lib/dpkg/status')) },
  ];
}

/** A directory holding the fixture OSV records of `ecosystems` (JSON only), minus `exclude` ids. */
export async function osvSubset(fixtures: string, ecosystems: string[], exclude: string[] = []): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-osv-'));
  for (const eco of ecosystems) {
    await mkdir(join(dir, eco), { recursive: true });
    await cp(join(fixtures, 'osv', eco), join(dir, eco), { recursive: true, filter: (src) => !src.endsWith('.yaml') && !exclude.some((id) => src.endsWith(`/${id}.json`)) });
  }
  return dir;
}

/** The ids the fixtures expect to match the Ubuntu 18.04 dpkg database (expected/matches-os.json). */
export async function expectedUbuntuMatches(fixtures: string): Promise<string[]> {
  const doc = JSON.parse(await readFile(join(fixtures, 'expected/matches-os.json'), 'utf8')) as { matches: Array<{ id: string; match: boolean; package: { ecosystem: string } }> };
  return [...new Set(doc.matches.filter((m) => m.match && m.package.ecosystem === 'Ubuntu:18.04:LTS').map((m) => m.id))].sort();
}

/** The image with its only layer replaced by raw bytes (the config's diff ID left as built: a hostile layer lies). */
export function withRawLayer(image: BuiltImage, bytes: Buffer): BuiltImage {
  const layer = { ...image.layers[0]!, bytes, descriptor: { mediaType: MEDIA.ociLayerGzip, digest: sha256(bytes), size: bytes.length } };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: image.config.descriptor, layers: [layer.descriptor] }));
  return { ...image, layers: [layer], manifest: { bytes: manifest, descriptor: { mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: manifest.length } } };
}
