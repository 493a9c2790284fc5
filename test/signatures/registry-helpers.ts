/**
 * An in-process registry (real stores: filesystem + SQLite, `auth.mode none`, Fastify `inject`)
 * for the signature capability's HTTP tests, and helpers to push images and signature artifacts the
 * way cosign, Notation and ORAS push them: blobs first, then the manifest by tag or digest.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegistry, openStores, type Registry } from '../../src/registry/app/build-app.ts';
import { environmentVariables, loadConfig } from '../../src/registry/config/load.ts';
import type { EventOf } from '../../src/registry/events/bus.ts';
import { COSIGN_SIGNATURE_ARTIFACT_TYPE } from '../../src/registry/signatures/collect.ts';
import { cosignSign, cosignSignatureManifest, cosignTag, referrerManifest } from '../../src/registry/signatures/signing.ts';
import type { SignatureStore } from '../../src/registry/signatures/store.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface Res {
  status: number;
  body: any;
  raw: Buffer;
  headers: Record<string, unknown>;
}

export interface TestRegistry {
  registry: Registry;
  dir: string;
  request(method: string, url: string, options?: { body?: Buffer | string | object; headers?: Record<string, string> }): Promise<Res>;
  pushBlob(repository: string, content: Buffer): Promise<string>;
  /** PUT a manifest; throws unless 201. Returns its digest. */
  putManifest(repository: string, reference: string, manifest: Buffer, mediaType?: string): Promise<string>;
  /** A small runnable image (config + one tar layer); returns its digest and bytes. */
  pushImage(repository: string, tag: string): Promise<{ digest: string; manifest: Buffer }>;
  /** An index over the given manifests. */
  pushIndex(repository: string, tag: string, children: { digest: string; size: number }[]): Promise<string>;
  putPolicy(project: string, policy: object, requireSignatureToPull?: boolean): Promise<Res>;
  signatures(repository: string, reference: string): Promise<Res>;
  /** Resolves with the next `signature.verified` event for `digest` (with `trigger`, if given). */
  nextVerified(digest: string, trigger?: string): Promise<EventOf<'signature.verified'>>;
  events: { type: string; [k: string]: unknown }[];
  close(): Promise<void>;
}

export async function startTestRegistry(env: Record<string, string> = {}, options: { wrapSignatureStore?: (store: SignatureStore) => SignatureStore; /** Share another registry's data (a second replica). */ dataDir?: string } = {}): Promise<TestRegistry> {
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-sig-')));
  const config = await loadConfig({
    // the scanner and the audit log are not under test here (where this build has them)
    env: { ...Object.fromEntries(Object.entries({ PORTCULLIS_SCANNER_ENABLED: 'false', PORTCULLIS_AUDIT_ENABLED: 'false' }).filter(([k]) => environmentVariables().includes(k))), ...env },
    overrides: [
      { path: ['storage', 'dataDir'], value: dir },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      { path: ['signatures', 'registryHost'], value: 'localhost:5000' },
    ],
  });
  const stores = await openStores(config);
  if (options.wrapSignatureStore && stores.signatures) stores.signatures = options.wrapSignatureStore(stores.signatures);
  const registry = await buildRegistry(config, { stores });
  const events: TestRegistry['events'] = [];
  registry.events.subscribe('*', (e) => void events.push(e as never));
  const request: TestRegistry['request'] = async (method, url, options = {}) => {
    const headers = { ...(options.headers ?? {}) };
    let payload: Buffer | string | undefined;
    if (Buffer.isBuffer(options.body) || typeof options.body === 'string') payload = options.body;
    else if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await registry.app.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) });
    let body: unknown;
    try {
      body = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      body = res.body;
    }
    return { status: res.statusCode, body, raw: res.rawPayload, headers: res.headers };
  };
  const t: TestRegistry = {
    registry,
    dir,
    events,
    request,
    async pushBlob(repository, content) {
      const digest = sha256(content);
      const res = await request('POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { body: content, headers: { 'content-type': 'application/octet-stream' } });
      if (res.status !== 201) throw new Error(`blob push answered ${res.status}: ${JSON.stringify(res.body)}`);
      return digest;
    },
    async putManifest(repository, reference, manifest, mediaType = OCI_MANIFEST) {
      const res = await request('PUT', `/v2/${repository}/manifests/${reference}`, { body: manifest, headers: { 'content-type': mediaType } });
      if (res.status !== 201) throw new Error(`manifest PUT ${repository}:${reference} answered ${res.status}: ${JSON.stringify(res.body)}`);
      await registry.signatures?.idle();
      return sha256(manifest);
    },
    async pushImage(repository, tag) {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(8).toString('hex') }));
      const layer = randomBytes(128);
      await t.pushBlob(repository, config);
      await t.pushBlob(repository, layer);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
        }),
      );
      const digest = await t.putManifest(repository, tag, manifest);
      return { digest, manifest };
    },
    async pushIndex(repository, tag, children) {
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: OCI_MANIFEST, digest: c.digest, size: c.size, platform: { os: 'linux', architecture: 'amd64' } })) }));
      return t.putManifest(repository, tag, index, OCI_INDEX);
    },
    putPolicy(project, policy, requireSignatureToPull = false) {
      return request('PUT', `/api/v1/projects/${project}/trust-policy`, { body: { policy, requireSignatureToPull } });
    },
    signatures(repository, reference) {
      return request('GET', `/api/v1/repositories/${repository}/manifests/${reference}/signatures`);
    },
    nextVerified(digest, trigger) {
      return new Promise((resolve) => {
        const off = registry.events.subscribe('signature.verified', (e) => {
          if (e.digest !== digest || (trigger && e.trigger !== trigger)) return;
          off();
          resolve(e);
        });
      });
    },
    async close() {
      await registry.close();
      if (!options.dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/**
 * Signs `digest` the way `cosign sign --key` does and pushes the `.sig` manifest (appending to an
 * existing one, as cosign does). Returns the signature manifest digest and the layer.
 */
export async function pushCosignSignature(
  t: TestRegistry,
  repository: string,
  digest: string,
  key: KeyObject,
  options: { payloadDigest?: string; tamper?: boolean; referrer?: boolean } = {},
): Promise<{ manifestDigest: string; layer: ReturnType<typeof cosignSign> }> {
  const layer = cosignSign(key, `localhost:5000/${repository}`, options.payloadDigest ?? digest);
  let payload = layer.payload;
  if (options.tamper) {
    payload = Buffer.from(payload.toString('utf8').replace('"optional":null', '"optional":{"tampered":"yes"}'));
    layer.descriptor.digest = sha256(payload);
    layer.descriptor.size = payload.length;
  }
  await t.pushBlob(repository, payload);
  if (options.referrer) {
    const { manifest, config } = referrerManifest(COSIGN_SIGNATURE_ARTIFACT_TYPE, [layer.descriptor], { mediaType: OCI_MANIFEST, digest, size: 1 });
    await t.pushBlob(repository, config);
    return { manifestDigest: await t.putManifest(repository, sha256(manifest), manifest), layer };
  }
  const { manifest, config } = cosignSignatureManifest([layer.descriptor]);
  await t.pushBlob(repository, config);
  return { manifestDigest: await t.putManifest(repository, cosignTag(digest, 'sig'), manifest), layer };
}

/** A trust policy trusting `keys` (name -> SPKI PEM). */
export function keyPolicy(keys: Record<string, string>, extra: object = {}): object {
  return { keys: Object.entries(keys).map(([name, publicKey]) => ({ name, publicKey })), ...extra };
}

export function pem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}
