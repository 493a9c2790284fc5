import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Accept header covering every manifest type, as real clients send it. */
export const ACCEPT_ALL_MANIFESTS = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hexOf(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
  artifactType?: string;
}

// ---------------------------------------------------------------------------------------------
// Minimal deterministic ustar writer (regular files and directories only).

function tarHeader(name: string, size: number, type: '0' | '5', mode: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long for this tiny writer: ${name}`);
  const header = Buffer.alloc(512, 0);
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'utf8');
  const octal = (offset: number, length: number, value: number) => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000); // fixed mtime
  field(148, 8, '        '); // checksum placeholder
  field(156, 1, type);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return header;
}

export interface LayerFile {
  /** Path inside the image, without leading slash, e.g. `data/a.bin`. */
  path: string;
  content: Buffer;
}

export function createTar(files: LayerFile[]): Buffer {
  const parts: Buffer[] = [];
  const dirs = new Set<string>();
  for (const file of files) {
    const segments = file.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join('/') + '/';
      if (!dirs.has(dir)) {
        dirs.add(dir);
        parts.push(tarHeader(dir, 0, '5', 0o755));
      }
    }
    parts.push(tarHeader(file.path, file.content.length, '0', 0o644), file.content);
    const padding = (512 - (file.content.length % 512)) % 512;
    if (padding) parts.push(Buffer.alloc(padding));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// Images built in memory.

export interface Blob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export interface BuiltLayer extends Blob {
  /** sha256 of the uncompressed tar (the config's diff_id). */
  diffId: string;
  files: LayerFile[];
}

export interface BuiltImage {
  kind: 'image';
  platform: { architecture: string; os: string };
  config: Blob;
  layers: BuiltLayer[];
  manifest: Blob;
}

export interface BuiltIndex {
  kind: 'index';
  images: BuiltImage[];
  manifest: Blob;
}

/** Random (incompressible) payload so that every test run uploads fresh, never-seen blobs. */
export function randomFile(path: string, size: number): LayerFile {
  return { path, content: randomBytes(size) };
}

export function buildImage(options: { architecture?: string; os?: string; layers: LayerFile[][]; labels?: Record<string, string> }): BuiltImage {
  const architecture = options.architecture ?? 'amd64';
  const os = options.os ?? 'linux';
  const layers: BuiltLayer[] = options.layers.map((files) => {
    const tar = createTar(files);
    const gz = gzipSync(tar, { level: 1 });
    return { files, diffId: sha256(tar), bytes: gz, descriptor: { mediaType: MEDIA.ociLayerGzip, digest: sha256(gz), size: gz.length } };
  });
  const configJson = {
    created: '2024-01-01T00:00:00Z',
    architecture,
    os,
    config: { Cmd: ['/bin/true'], Labels: options.labels ?? { 'org.example.acceptance': 'portcullis' } },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `acceptance layer ${i}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config: Blob = { bytes: configBytes, descriptor: { mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length } };
  const manifestBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: config.descriptor, layers: layers.map((layer) => layer.descriptor) }),
  );
  return {
    kind: 'image',
    platform: { architecture, os },
    config,
    layers,
    manifest: { bytes: manifestBytes, descriptor: { mediaType: MEDIA.ociManifest, digest: sha256(manifestBytes), size: manifestBytes.length } },
  };
}

export function buildIndex(images: BuiltImage[]): BuiltIndex {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: images.map((image) => ({ ...image.manifest.descriptor, platform: image.platform })),
    }),
  );
  return { kind: 'index', images, manifest: { bytes, descriptor: { mediaType: MEDIA.ociIndex, digest: sha256(bytes), size: bytes.length } } };
}

function blobsOf(item: BuiltImage | BuiltIndex): Blob[] {
  if (item.kind === 'index') return [...item.images.flatMap(blobsOf), item.manifest];
  return [item.config, ...item.layers, item.manifest];
}

/** Writes an OCI image layout; `refs` maps tag (org.opencontainers.image.ref.name) to content. */
export async function writeOciLayout(dir: string, refs: Record<string, BuiltImage | BuiltIndex>): Promise<void> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests: Descriptor[] = [];
  for (const [tag, item] of Object.entries(refs)) {
    for (const blob of blobsOf(item)) await writeFile(join(blobDir, hexOf(blob.descriptor.digest)), blob.bytes);
    manifests.push({ ...item.manifest.descriptor, annotations: { 'org.opencontainers.image.ref.name': tag } });
  }
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
}

/** Reads a layout written by a client (e.g. `skopeo copy ... oci:DIR:TAG`). */
export async function readOciLayout(dir: string, tag: string): Promise<{ descriptor: Descriptor; manifest: Buffer; blob: (digest: string) => Promise<Buffer> }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const descriptor = index.manifests.find((entry) => entry.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!descriptor) throw new Error(`tag ${tag} not found in ${dir}/index.json: ${JSON.stringify(index)}`);
  const blob = (digest: string) => readFile(join(dir, 'blobs', 'sha256', hexOf(digest)));
  return { descriptor, manifest: await blob(descriptor.digest), blob };
}
