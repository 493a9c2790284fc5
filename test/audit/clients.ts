/** Clients for the audit tests: a minimal OCI client (push a one-layer image, pull it) and the `portcullis` CLI. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/** Runs `portcullis ARGS`; resolves with the exit code and output. */
export function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export function digestOf(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function expect(response: Response, status: number, what: string): Promise<Response> {
  if (response.status !== status) throw new Error(`${what}: HTTP ${response.status} ${await response.text()}`);
  return response;
}

export async function pushBlob(base: string, repository: string, content: Buffer): Promise<string> {
  const digest = digestOf(content);
  await expect(await fetch(`${base}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: content, headers: { 'content-type': 'application/octet-stream' } }), 201, 'blob push');
  return digest;
}

/** Pushes config + one layer + manifest under `tag`; returns the manifest digest. */
export async function pushImage(base: string, repository: string, tag: string, seed: string): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer ${seed}`);
  const [configDigest, layerDigest] = await Promise.all([pushBlob(base, repository, config), pushBlob(base, repository, layer)]);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    }),
  );
  await expect(await fetch(`${base}/v2/${repository}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': MANIFEST } }), 201, 'manifest push');
  return digestOf(manifest);
}

export async function pullManifest(base: string, repository: string, reference: string, userAgent = 'audit-test/1.0'): Promise<void> {
  const response = await expect(await fetch(`${base}/v2/${repository}/manifests/${reference}`, { headers: { accept: MANIFEST, 'user-agent': userAgent } }), 200, 'manifest pull');
  await response.arrayBuffer();
}
