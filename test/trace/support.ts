/**
 * A traceability scenario on a real in-process registry (token authentication with Basic on /v2,
 * the scanner and signatures on, filesystem blobs, SQLite or PostgreSQL metadata): helpers to push
 * images with annotations and labels, cosign signatures and SLSA provenance attestations, to admit
 * workloads through the validating webhook (deployment records), and to wait until every
 * event-driven recorder is done.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import { DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE } from '../../src/registry/signatures/intoto.ts';
import { COSIGN_ANNOTATIONS } from '../../src/registry/signatures/recognize.ts';
import { cosignSign, cosignSignatureManifest, cosignTag, dsseSign } from '../../src/registry/signatures/signing.ts';
import { MEDIA, sha256, type BuiltImage } from '../acceptance/helpers/oci.ts';
import { review, workloadObject, type WorkloadKind } from '../admission/fixtures.ts';

const ADMISSION_TOKEN = 'trace-admission-token-0123456789abcdef';

export const ADMIN = { username: 'admin', password: `Adm1n-trace-${Date.now().toString(36)}-Xy9` };

export function basicHeader(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export interface Res {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

export interface TraceHarness {
  registry: Registry;
  dataDir: string;
  request(method: string, url: string, options?: { body?: Buffer | string | object; headers?: Record<string, string>; auth?: { username: string; password: string } | null }): Promise<Res>;
  push(repository: string, reference: string, image: BuiltImage): Promise<string>;
  putManifest(repository: string, reference: string, bytes: Buffer, mediaType?: string): Promise<string>;
  pushBlob(repository: string, bytes: Buffer): Promise<string>;
  /** Sends an AdmissionReview to the validating webhook as the API server of `cluster` would; returns whether it was allowed. */
  admit(cluster: string, namespace: string, kind: WorkloadKind, name: string, containers: Array<{ name: string; image: string }>): Promise<boolean>;
  /** Waits for signatures, scanner-driven and trace recorders to settle. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** `options.dataDir`: start on the data of an earlier (closed) registry instead of a new directory. */
export async function startTraceRegistry(metadata: { kind: 'sqlite' } | { kind: 'postgres'; url: string }, overrides: Array<{ path: string[]; value: unknown }> = [], options: { dataDir?: string } = {}): Promise<TraceHarness> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-trace-')));
  await writeFile(join(dataDir, 'admission-token'), `${ADMISSION_TOKEN}\n`, { mode: 0o600 });
  const config = await loadConfig({
    env: {},
    overrides: [
      { path: ['storage', 'dataDir'], value: dataDir },
      ...(metadata.kind === 'postgres' ? [
            { path: ['storage', 'metadata', 'kind'], value: 'postgres' },
            { path: ['storage', 'metadata', 'postgresUrl'], value: metadata.url },
          ] : []),
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'token' },
      { path: ['auth', 'basicAuth'], value: true },
      { path: ['audit', 'enabled'], value: false },
      { path: ['scanner', 'pollIntervalMs'], value: 50 },
      { path: ['scanner', 'retryInitialMs'], value: 50 },
      { path: ['scanner', 'sbom', 'attach'], value: false },
      { path: ['scanner', 'vulnerabilityData', 'reloadIntervalSeconds'], value: 0 },
      { path: ['signatures', 'registryHost'], value: 'localhost:5000' },
      // deployment records come from the admission webhooks, several clusters through one registry
      { path: ['admission', 'enabled'], value: true },
      { path: ['admission', 'registryHosts'], value: ['localhost:5000'] },
      { path: ['admission', 'clusterHeader'], value: true },
      { path: ['admission', 'auth', 'tokenFile'], value: join(dataDir, 'admission-token') },
      ...overrides,
    ].map((o) => ({ ...o, flag: o.path.join('.') })),
  });
  const registry = await buildRegistry(config, { adminPassword: ADMIN.password });
  const request: TraceHarness['request'] = async (method, url, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.auth !== null) headers['authorization'] ??= basicHeader(o.auth ?? ADMIN);
    let payload: Buffer | string | undefined;
    if (Buffer.isBuffer(o.body) || typeof o.body === 'string') payload = o.body;
    else if (o.body !== undefined) {
      payload = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await registry.app.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) });
    let body: unknown = res.body;
    try {
      body = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.statusCode, body, headers: res.headers };
  };
  const h: TraceHarness = {
    registry,
    dataDir,
    request,
    async pushBlob(repository, bytes) {
      const digest = sha256(bytes);
      const res = await request('POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
      if (res.status !== 201) throw new Error(`blob push answered ${res.status}: ${JSON.stringify(res.body)}`);
      return digest;
    },
    async putManifest(repository, reference, bytes, mediaType = MEDIA.ociManifest) {
      const res = await request('PUT', `/v2/${repository}/manifests/${reference}`, { body: bytes, headers: { 'content-type': mediaType } });
      if (res.status !== 201) throw new Error(`manifest PUT ${repository}:${reference} answered ${res.status}: ${JSON.stringify(res.body)}`);
      return sha256(bytes);
    },
    async push(repository, reference, image) {
      for (const blob of [image.config, ...image.layers]) await h.pushBlob(repository, blob.bytes);
      return h.putManifest(repository, reference, image.manifest.bytes, image.manifest.descriptor.mediaType);
    },
    async admit(cluster, namespace, kind, name, containers) {
      const res = await request('POST', '/admission/validate', {
        body: review(workloadObject(kind, name, namespace, { containers })),
        headers: { authorization: `Bearer ${ADMISSION_TOKEN}`, 'x-portcullis-cluster': cluster },
      });
      if (res.status !== 200) throw new Error(`admission answered ${res.status}: ${JSON.stringify(res.body)}`);
      // a denial is a scenario error worth its reason
      if (res.body.response.allowed !== true) throw new Error(`admission denied ${namespace}/${name}: ${JSON.stringify(res.body.response.status)}`);
      return true;
    },
    async settle() {
      for (let i = 0; i < 3; i++) {
        await registry.signatures?.idle();
        await registry.trace?.idle();
      }
    },
    async close() {
      await registry.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

/** The image with manifest annotations (a new manifest, so a new digest). */
export function withAnnotations(image: BuiltImage, annotations: Record<string, string>): BuiltImage {
  const doc = JSON.parse(image.manifest.bytes.toString('utf8')) as Record<string, unknown>;
  const bytes = Buffer.from(JSON.stringify({ ...doc, annotations }));
  return { ...image, manifest: { bytes, descriptor: { mediaType: MEDIA.ociManifest, digest: sha256(bytes), size: bytes.length } } };
}

export function newKey(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** `cosign sign --key`: a `.sig` manifest for `digest`. */
export async function pushSignature(h: TraceHarness, repository: string, digest: string, key: KeyObject): Promise<void> {
  const layer = cosignSign(key, `localhost:5000/${repository}`, digest);
  await h.pushBlob(repository, layer.payload);
  const { manifest, config } = cosignSignatureManifest([layer.descriptor]);
  await h.pushBlob(repository, config);
  await h.putManifest(repository, cosignTag(digest, 'sig'), manifest);
}

/** `cosign attest --key --type slsaprovenance1`: a DSSE in-toto statement in the `.att` manifest. */
export async function pushProvenance(h: TraceHarness, repository: string, digest: string, key: KeyObject, predicate: { predicateType: string; predicate: object }): Promise<void> {
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: `localhost:5000/${repository}`, digest: { sha256: digest.slice('sha256:'.length) } }],
    predicateType: predicate.predicateType,
    predicate: predicate.predicate,
  };
  const { envelope } = dsseSign(key, IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)));
  await h.pushBlob(repository, envelope);
  const descriptor = { mediaType: DSSE_MEDIA_TYPE, digest: sha256(envelope), size: envelope.length, annotations: { [COSIGN_ANNOTATIONS.signature]: '', [COSIGN_ANNOTATIONS.predicateType]: predicate.predicateType } };
  const { manifest, config } = cosignSignatureManifest([descriptor as never]);
  await h.pushBlob(repository, config);
  await h.putManifest(repository, cosignTag(digest, 'att'), manifest);
}

export function slsaV1(commit: string, builder: string): { predicateType: string; predicate: object } {
  return {
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType: 'https://actions.github.io/buildtypes/workflow/v1',
        externalParameters: { workflow: { ref: 'refs/heads/main', repository: 'https://github.com/acme/app', path: '.github/workflows/release.yml' } },
        resolvedDependencies: [{ uri: 'git+https://github.com/acme/app@refs/heads/main', digest: { gitCommit: commit } }],
      },
      runDetails: { builder: { id: builder }, metadata: { invocationId: 'https://github.com/acme/app/actions/runs/1/attempts/1' } },
    },
  };
}

export function slsaV02(commit: string, builder: string): { predicateType: string; predicate: object } {
  return {
    predicateType: 'https://slsa.dev/provenance/v0.2',
    predicate: {
      builder: { id: builder },
      buildType: 'https://github.com/slsa-framework/slsa-github-generator/container@v1',
      invocation: { configSource: { uri: 'git+https://github.com/acme/tool@refs/heads/main', digest: { sha1: commit }, entryPoint: '.github/workflows/build.yml' } },
      materials: [{ uri: 'git+https://github.com/acme/tool@refs/heads/main', digest: { sha1: commit } }],
    },
  };
}
