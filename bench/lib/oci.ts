/**
 * OCI Distribution client operations used by the scenarios, and generators of test content.
 */
import http from 'node:http';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { type Body, type HttpResponse, expectStatus, request } from './http.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MANIFEST_ACCEPT = [OCI_MANIFEST, 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

export const MiB = 1024 * 1024;

/** A registry base URL plus a keep-alive agent (one per scenario and concurrency level). */
export interface Client {
  base: URL;
  agent: http.Agent;
}

export function makeClient(baseUrl: string, maxSockets: number): Client {
  return { base: new URL(baseUrl), agent: new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets }) };
}

export function closeClient(client: Client): void {
  client.agent.destroy();
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface BlobSpec {
  digest: string;
  body: Body;
}

/**
 * Produces distinct large blobs without holding them: every blob is `repeat` copies of one
 * random `unit` buffer whose last 32 bytes are replaced by a unique random suffix. The hash of
 * the common part is computed once, so a new blob's digest costs one Hash.copy().
 */
export class BlobFactory {
  readonly size: number;
  private readonly unit: Buffer;
  private readonly repeat: number;
  private readonly commonHash: Hash;

  constructor(unitSize: number, repeat = 1) {
    if (unitSize < 64) throw new Error('unit too small');
    this.unit = randomBytes(unitSize);
    this.repeat = repeat;
    this.size = unitSize * repeat;
    this.commonHash = createHash('sha256');
    for (let i = 0; i < repeat - 1; i++) this.commonHash.update(this.unit);
    this.commonHash.update(this.unit.subarray(0, unitSize - 32));
  }

  /** The blob's bytes as a list of slices (views of the shared buffer, plus the suffix). */
  private slices(suffix: Buffer): Buffer[] {
    const parts: Buffer[] = [];
    for (let i = 0; i < this.repeat - 1; i++) parts.push(this.unit);
    parts.push(this.unit.subarray(0, this.unit.length - 32), suffix);
    return parts;
  }

  make(): BlobSpec & { chunks: (chunkSize: number) => Body[] } {
    const suffix = randomBytes(32);
    const digest = `sha256:${this.commonHash.copy().update(suffix).digest('hex')}`;
    const size = this.size;
    const slices = () => this.slices(suffix);
    return {
      digest,
      body: { length: size, parts: slices },
      chunks: (chunkSize: number) => {
        const bodies: Body[] = [];
        for (let start = 0; start < size; start += chunkSize) {
          const end = Math.min(size, start + chunkSize);
          bodies.push({ length: end - start, parts: () => sliceRange(slices(), start, end) });
        }
        return bodies;
      },
    };
  }
}

/** Views of the bytes [start, end) of the concatenation of `parts`. */
function sliceRange(parts: Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const part of parts) {
    const partEnd = offset + part.length;
    if (partEnd > start && offset < end) out.push(part.subarray(Math.max(0, start - offset), Math.min(part.length, end - offset)));
    offset = partEnd;
    if (offset >= end) break;
  }
  return out;
}

function location(client: Client, res: HttpResponse, what: string): URL {
  const value = res.headers.location;
  if (!value) throw new Error(`${what}: no Location header`);
  const url = new URL(value, client.base);
  if (url.origin !== client.base.origin) throw new Error(`${what}: Location points to another origin: ${url.href}`);
  return url;
}

export async function startUpload(client: Client, repo: string): Promise<URL> {
  const res = await request({ method: 'POST', url: new URL(`/v2/${repo}/blobs/uploads/`, client.base), agent: client.agent });
  expectStatus(`POST /v2/${repo}/blobs/uploads/`, res, 202);
  return location(client, res, 'POST upload');
}

/** POST, then PUT ?digest= with the whole body. */
export async function pushBlobMonolithic(client: Client, repo: string, blob: BlobSpec): Promise<void> {
  const url = await startUpload(client, repo);
  url.searchParams.set('digest', blob.digest);
  const res = await request({
    method: 'PUT',
    url,
    agent: client.agent,
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.body,
  });
  expectStatus(`PUT blob ${repo}@${blob.digest.slice(0, 19)}`, res, 201);
}

/** POST, PATCH each chunk with Content-Range, PUT ?digest= without body. */
export async function pushBlobChunked(client: Client, repo: string, digest: string, chunks: Body[]): Promise<void> {
  let url = await startUpload(client, repo);
  let offset = 0;
  for (const chunk of chunks) {
    const res = await request({
      method: 'PATCH',
      url,
      agent: client.agent,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
      body: chunk,
    });
    expectStatus(`PATCH ${repo} upload at ${offset}`, res, 202);
    url = location(client, res, 'PATCH upload');
    offset += chunk.length;
  }
  url.searchParams.set('digest', digest);
  const res = await request({ method: 'PUT', url, agent: client.agent });
  expectStatus(`PUT (close) ${repo}@${digest.slice(0, 19)}`, res, 201);
}

export async function pushSmallBlob(client: Client, repo: string, data: Buffer, digest = sha256(data)): Promise<string> {
  await pushBlobMonolithic(client, repo, { digest, body: { length: data.length, parts: () => [data] } });
  return digest;
}

/** GETs a blob, discarding the bytes; returns the number of bytes received. */
export async function pullBlob(client: Client, repo: string, digest: string): Promise<number> {
  const res = await request({ method: 'GET', url: new URL(`/v2/${repo}/blobs/${digest}`, client.base), agent: client.agent, read: 'drain' });
  expectStatus(`GET blob ${repo}@${digest.slice(0, 19)}`, res, 200);
  return res.bytes;
}

export async function headBlob(client: Client, repo: string, digest: string): Promise<number> {
  const res = await request({ method: 'HEAD', url: new URL(`/v2/${repo}/blobs/${digest}`, client.base), agent: client.agent });
  return res.status;
}

export async function putManifest(client: Client, repo: string, reference: string, manifest: Buffer, mediaType = OCI_MANIFEST): Promise<string> {
  const res = await request({
    method: 'PUT',
    url: new URL(`/v2/${repo}/manifests/${reference}`, client.base),
    agent: client.agent,
    headers: { 'content-type': mediaType },
    body: manifest,
  });
  expectStatus(`PUT manifest ${repo}:${reference}`, res, 201);
  return sha256(manifest);
}

export async function getManifest(client: Client, repo: string, reference: string): Promise<HttpResponse> {
  return request({
    method: 'GET',
    url: new URL(`/v2/${repo}/manifests/${reference}`, client.base),
    agent: client.agent,
    headers: { accept: MANIFEST_ACCEPT },
  });
}

export interface SmallImage {
  layers: { data: Buffer; digest: string }[];
  config: { data: Buffer; digest: string };
  manifest: Buffer;
  manifestDigest: string;
}

/** An image of `layerCount` random layers of `layerSize` bytes, an OCI config and manifest. */
export function makeSmallImage(layerCount: number, layerSize: number, extraLayers: { digest: string; size: number }[] = []): SmallImage {
  const layers = Array.from({ length: layerCount }, () => {
    const data = randomBytes(layerSize);
    return { data, digest: sha256(data) };
  });
  const allLayers = [...layers.map((l) => ({ digest: l.digest, size: l.data.length })), ...extraLayers];
  const configData = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: allLayers.map((l) => l.digest) },
      history: allLayers.map(() => ({ created_by: 'portcullis-bench' })),
    }),
  );
  const config = { data: configData, digest: sha256(configData) };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: configData.length },
      layers: allLayers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    }),
  );
  return { layers, config, manifest, manifestDigest: sha256(manifest) };
}

/** Pushes the layers and config (POST + PUT each), then the manifest under `tag`. */
export async function pushSmallImage(client: Client, repo: string, image: SmallImage, tag: string): Promise<void> {
  for (const layer of image.layers) await pushSmallBlob(client, repo, layer.data, layer.digest);
  await pushSmallBlob(client, repo, image.config.data, image.config.digest);
  await putManifest(client, repo, tag, image.manifest);
}
