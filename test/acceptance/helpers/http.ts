import assert from 'node:assert/strict';
import { ACCEPT_ALL_MANIFESTS, MEDIA, sha256, type Blob, type BuiltImage, type BuiltIndex } from './oci.ts';

/** Raw HTTP calls against the Distribution API (what a client library does under the hood). */

export async function describeResponse(response: Response, body?: string): Promise<string> {
  const text = body ?? (await response.text().catch(() => ''));
  const headers = [...response.headers].map(([key, value]) => `${key}: ${value}`).join('\n');
  return `${response.status} ${response.statusText}\n${headers}\n\n${text.slice(0, 2000)}`;
}

function resolveLocation(baseUrl: string, response: Response): URL {
  const location = response.headers.get('location');
  assert.ok(location, `upload response has no Location header:\n${[...response.headers].join('\n')}`);
  return new URL(location, baseUrl);
}

export async function startUpload(baseUrl: string, repo: string): Promise<URL> {
  const response = await fetch(`${baseUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const body = await response.text();
  assert.equal(response.status, 202, `POST /v2/${repo}/blobs/uploads/ should start an upload:\n${await describeResponse(response, body)}`);
  return resolveLocation(baseUrl, response);
}

export async function finishUpload(baseUrl: string, location: URL, digest: string, body?: Uint8Array): Promise<Response> {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: body ?? new Uint8Array(0),
  });
  return response;
}

/** POST + PUT monolithic upload (skipped when the blob already exists). */
export async function pushBlob(baseUrl: string, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const head = await fetch(`${baseUrl}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const location = await startUpload(baseUrl, repo);
  const response = await finishUpload(baseUrl, location, digest, bytes);
  const body = await response.text();
  assert.equal(response.status, 201, `PUT upload of ${digest} to ${repo}:\n${await describeResponse(response, body)}`);
  return digest;
}

export async function putManifest(baseUrl: string, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<Response> {
  return fetch(`${baseUrl}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
}

export async function putManifestOk(baseUrl: string, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<Response> {
  const response = await putManifest(baseUrl, repo, reference, bytes, mediaType);
  const body = await response.text();
  assert.equal(response.status, 201, `PUT /v2/${repo}/manifests/${reference}:\n${await describeResponse(response, body)}`);
  return response;
}

/** Pushes an in-memory image (blobs then manifest) with raw HTTP. */
export async function pushImage(baseUrl: string, repo: string, tag: string, image: BuiltImage): Promise<void> {
  for (const blob of [image.config, ...image.layers] as Blob[]) await pushBlob(baseUrl, repo, blob.bytes);
  await putManifestOk(baseUrl, repo, tag, image.manifest.bytes, image.manifest.descriptor.mediaType);
}

export async function pushIndex(baseUrl: string, repo: string, tag: string, index: BuiltIndex): Promise<void> {
  for (const image of index.images) await pushImage(baseUrl, repo, image.manifest.descriptor.digest, image);
  await putManifestOk(baseUrl, repo, tag, index.manifest.bytes, MEDIA.ociIndex);
}

export async function getManifest(baseUrl: string, repo: string, reference: string, accept: string = ACCEPT_ALL_MANIFESTS): Promise<{ response: Response; bytes: Buffer }> {
  const response = await fetch(`${baseUrl}/v2/${repo}/manifests/${reference}`, { headers: { accept } });
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

export async function getBlob(baseUrl: string, repo: string, digest: string): Promise<{ response: Response; bytes: Buffer }> {
  const response = await fetch(`${baseUrl}/v2/${repo}/blobs/${digest}`);
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

/** The manifest digest the registry reports for a tag (Docker-Content-Digest of a HEAD). */
export async function manifestDigest(baseUrl: string, repo: string, reference: string, accept: string = ACCEPT_ALL_MANIFESTS): Promise<string> {
  const { response, bytes } = await getManifest(baseUrl, repo, reference, accept);
  assert.equal(response.status, 200, `GET /v2/${repo}/manifests/${reference}:\n${await describeResponse(response, bytes.toString())}`);
  const digest = sha256(bytes);
  const header = response.headers.get('docker-content-digest');
  if (header) assert.equal(header, digest, 'Docker-Content-Digest must be the sha256 of the returned bytes');
  return digest;
}
