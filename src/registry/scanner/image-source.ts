/**
 * Where an image's bytes come from: the registry's blob store, an OCI image layout directory, or an
 * archive file (`docker save`, `podman save`, an OCI layout in a tar). Each gives the same thing:
 * the manifest, the parsed configuration and the layers as lazily opened streams, in order, so the
 * walker streams them one after the other and nothing is extracted to disk.
 */
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { digestOf, isDigest } from '../../oci/digest.ts';
import { MediaType } from '../../oci/media-types.ts';
import type { ImageConfig } from './config-checks.ts';
import type { LayerInput } from './inventory/walker.ts';

/** Largest image configuration read (they are a few KiB; a hostile one must not exhaust memory). */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.ociConfig, 'application/vnd.docker.container.image.v1+json'];

const LAYER_TYPE = /^application\/vnd\.(?:oci\.image\.layer(?:\.nondistributable)?\.v1\.tar|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar)(?:\.gzip|\+gzip|\+zstd)?$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  annotations?: Record<string, string>;
}

export type ManifestKind =
  | { kind: 'image'; config: Descriptor; layers: Descriptor[] }
  | { kind: 'index'; manifests: Descriptor[] }
  /** An artifact (signature, SBOM, attestation, Helm chart...): nothing to scan. */
  | { kind: 'other'; reason: string };

/** Decides what a manifest is, for scanning purposes. */
export function classifyManifest(bytes: Buffer): ManifestKind {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return { kind: 'other', reason: 'not JSON' };
  }
  if (Array.isArray(doc.manifests)) return { kind: 'index', manifests: (doc.manifests as Descriptor[]).filter((d) => d && typeof d.digest === 'string') };
  const config = doc.config as Descriptor | undefined;
  if (!config || typeof config.mediaType !== 'string') return { kind: 'other', reason: 'no config' };
  if (!IMAGE_CONFIG_TYPES.includes(config.mediaType)) return { kind: 'other', reason: `config media type ${config.mediaType} is not an image configuration` };
  if (typeof doc.artifactType === 'string' && doc.artifactType.length > 0) return { kind: 'other', reason: `artifact ${doc.artifactType}` };
  const layers = Array.isArray(doc.layers) ? (doc.layers as Descriptor[]) : [];
  return { kind: 'image', config, layers };
}

export function isLayerMediaType(mediaType: string): boolean {
  return LAYER_TYPE.test(mediaType);
}

/** Reads a stream up to `max` bytes (rejects beyond). */
export async function readBounded(stream: AsyncIterable<Uint8Array>, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > max) {
      (stream as Readable).destroy?.();
      throw new Error(`${what} is larger than ${max} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}

export interface ImageSource {
  /** Digest of the manifest scanned. */
  digest: string;
  config: ImageConfig;
  configDigest: string;
  layers: LayerInput[];
  /** Layers skipped (not layer media types, e.g. foreign layers absent from the registry). */
  skipped: Descriptor[];
}

export type BlobOpener = (digest: string) => Promise<Readable>;

/** The image behind an image manifest, its layers opened on demand through `openBlob`. */
export async function imageFrom(digest: string, manifest: Extract<ManifestKind, { kind: 'image' }>, openBlob: BlobOpener, options: { skipNonDistributable?: boolean } = {}): Promise<ImageSource> {
  const configBytes = await readBounded(await openBlob(manifest.config.digest), MAX_CONFIG_BYTES, 'image configuration');
  let config: ImageConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  } catch (error) {
    throw new Error(`image configuration is not JSON: ${(error as Error).message}`);
  }
  if (config === null || typeof config !== 'object') throw new Error('image configuration is not a JSON object');
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  const layers: LayerInput[] = [];
  const skipped: Descriptor[] = [];
  manifest.layers.forEach((d, i) => {
    const nonDistributable = d.mediaType.includes('nondistributable') || d.mediaType.includes('foreign');
    if (!isLayerMediaType(d.mediaType) || (nonDistributable && options.skipNonDistributable)) {
      skipped.push(d);
      return;
    }
    const layer: LayerInput = { digest: d.digest, mediaType: d.mediaType, open: () => openBlob(d.digest) };
    const diffId = diffIds[i];
    if (typeof diffId === 'string' && isDigest(diffId)) layer.diffId = diffId;
    layers.push(layer);
  });
  return { digest, config, configDigest: manifest.config.digest, layers, skipped };
}

/** Picks the manifest of `platform` (`os/arch[/variant]`, default linux/amd64, else the first) from an index. */
export function pickPlatform(manifests: Descriptor[], platform = 'linux/amd64'): Descriptor | undefined {
  const [os, arch, variant] = platform.split('/');
  const fits = manifests.filter((m) => m.platform?.os === os && m.platform?.architecture === arch && (variant === undefined || m.platform?.variant === variant));
  return fits[0] ?? manifests.find((m) => m.platform === undefined || m.platform.os !== 'unknown');
}

// ------------------------------------------------------------------------------------------------
// OCI image layout directory (what `skopeo copy ... oci:DIR:TAG` writes).

function blobPath(dir: string, digest: string): string {
  if (!isDigest(digest)) throw new Error(`invalid digest ${digest}`);
  const [algorithm, hex] = digest.split(':') as [string, string];
  return join(dir, 'blobs', algorithm, hex);
}

/** Resolves `DIR[:TAG]` in an OCI layout to an image (an index is resolved by platform). */
export async function ociLayoutImage(spec: string, platform?: string): Promise<ImageSource> {
  const { dir, tag } = splitLayoutSpec(spec);
  const openBlob: BlobOpener = async (digest) => createReadStream(blobPath(dir, digest));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
  const entries = index.manifests ?? [];
  let entry: Descriptor | undefined;
  if (tag !== undefined) entry = entries.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  else if (entries.length === 1) entry = entries[0];
  else entry = pickPlatform(entries, platform);
  if (!entry) throw new Error(tag !== undefined ? `no image tagged ${tag} in ${dir}` : `${dir} holds ${entries.length} manifests; name one as DIR:TAG`);
  return resolveImage(entry.digest, async (d) => readBounded(await openBlob(d), 16 * 1024 * 1024, 'manifest'), openBlob, platform);
}

export function splitLayoutSpec(spec: string): { dir: string; tag: string | undefined } {
  // DIR:TAG as skopeo's oci: transport names it; a colon in the last path component starts the tag.
  const slash = spec.lastIndexOf('/');
  const colon = spec.indexOf(':', slash + 1);
  if (colon <= 0) return { dir: spec, tag: undefined };
  return { dir: spec.slice(0, colon), tag: spec.slice(colon + 1) || undefined };
}

async function resolveImage(digest: string, readManifest: (digest: string) => Promise<Buffer>, openBlob: BlobOpener, platform?: string, depth = 0): Promise<ImageSource> {
  const bytes = await readManifest(digest);
  if (digestOf(bytes) !== digest) throw new Error(`manifest ${digest} does not match its digest`);
  const kind = classifyManifest(bytes);
  if (kind.kind === 'index') {
    const child = pickPlatform(kind.manifests, platform);
    if (!child || depth > 2) throw new Error(`no ${platform ?? 'linux/amd64'} image in index ${digest}`);
    return resolveImage(child.digest, readManifest, openBlob, platform, depth + 1);
  }
  if (kind.kind === 'other') throw new Error(`${digest} is not an image: ${kind.reason}`);
  return imageFrom(digest, kind, openBlob);
}

// ------------------------------------------------------------------------------------------------
// Archives: docker-archive (`docker save`: manifest.json + config + layer tars) and oci-archive
// (an OCI layout in a tar). Entries are located by reading only the tar headers; each member is
// then streamed from its offset.

interface Member {
  offset: number;
  size: number;
}

/** Offsets of the regular files in an (uncompressed) tar file, by normalised path. */
export async function indexTar(file: string, maxEntries = 1_000_000): Promise<Map<string, Member>> {
  const fh = await open(file, 'r');
  const members = new Map<string, Member>();
  try {
    const { size: fileSize } = await fh.stat();
    const header = Buffer.alloc(512);
    let pos = 0;
    let longName: string | undefined;
    let paxPath: string | undefined;
    while (pos + 512 <= fileSize) {
      await fh.read(header, 0, 512, pos);
      if (header.every((b) => b === 0)) break;
      const field = (start: number, len: number) => header.subarray(start, start + len).toString('latin1').replace(/\0.*$/s, '');
      const sizeField = header[124]! & 0x80 ? Number(header.readBigUInt64BE(128 + 4)) : parseInt(field(124, 12).trim() || '0', 8);
      if (!Number.isFinite(sizeField) || sizeField < 0) throw new Error(`corrupt tar header at ${pos}`);
      const type = String.fromCharCode(header[156]!);
      const prefix = field(345, 155);
      let name = longName ?? paxPath ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
      const dataStart = pos + 512;
      if (type === 'L' || type === 'x') {
        const body = Buffer.alloc(Math.min(sizeField, 64 * 1024));
        await fh.read(body, 0, body.length, dataStart);
        const text = body.toString('utf8');
        if (type === 'L') longName = text.replace(/\0.*$/s, '');
        else paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text)?.[1];
      } else {
        name = name.replace(/^\.\//, '').replace(/^\/+/, '');
        if (type === '0' || type === '\0') members.set(name, { offset: dataStart, size: sizeField });
        longName = undefined;
        paxPath = undefined;
        if (members.size > maxEntries) throw new Error('too many entries in the archive');
      }
      pos = dataStart + Math.ceil(sizeField / 512) * 512;
    }
  } finally {
    await fh.close();
  }
  return members;
}

/** An image from a docker-archive or oci-archive tar file. */
export async function archiveImage(file: string, platform?: string): Promise<ImageSource> {
  const members = await indexTar(file);
  const member = (path: string): Member => {
    const m = members.get(path);
    if (!m) throw new Error(`${path} is not in ${file}`);
    return m;
  };
  const stream = (m: Member): Readable => (m.size === 0 ? createReadStream(file, { start: 1, end: 0 }) : createReadStream(file, { start: m.offset, end: m.offset + m.size - 1 }));
  const readMember = (path: string, max: number) => readBounded(stream(member(path)), max, path);
  if (members.has('manifest.json') && !members.has('index.json')) {
    // docker-archive: layers are tar files (uncompressed or not) named in manifest.json.
    const manifest = JSON.parse((await readMember('manifest.json', 1024 * 1024)).toString('utf8')) as Array<{ Config: string; Layers: string[] }>;
    const first = manifest[0];
    if (!first) throw new Error(`${file}: manifest.json lists no image`);
    const configBytes = await readMember(first.Config, MAX_CONFIG_BYTES);
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    const layers: LayerInput[] = first.Layers.map((path, i) => {
      const m = member(path);
      const diffId = diffIds[i];
      // The archive has no compressed digest; the uncompressed one (diff ID) names the layer.
      const digest = typeof diffId === 'string' && isDigest(diffId) ? diffId : `sha256:${'0'.repeat(63)}${i % 10}`;
      const layer: LayerInput = { digest, mediaType: 'application/vnd.docker.image.rootfs.diff.tar', open: () => stream(m) };
      if (typeof diffId === 'string' && isDigest(diffId)) layer.diffId = diffId;
      return layer;
    });
    return { digest: digestOf(configBytes), config, configDigest: digestOf(configBytes), layers, skipped: [] };
  }
  if (!members.has('index.json')) throw new Error(`${file} is neither a docker-archive (manifest.json) nor an oci-archive (index.json); compressed archives must be decompressed first`);
  const blob = (digest: string) => {
    if (!isDigest(digest)) throw new Error(`invalid digest ${digest}`);
    return `blobs/${digest.replace(':', '/')}`;
  };
  const openBlob: BlobOpener = async (digest) => stream(member(blob(digest)));
  const index = JSON.parse((await readMember('index.json', 1024 * 1024)).toString('utf8')) as { manifests?: Descriptor[] };
  const entries = index.manifests ?? [];
  const entry = entries.length === 1 ? entries[0] : pickPlatform(entries, platform);
  if (!entry) throw new Error(`${file}: index.json lists no image`);
  return resolveImage(entry.digest, (d) => readMember(blob(d), 16 * 1024 * 1024), openBlob, platform);
}
