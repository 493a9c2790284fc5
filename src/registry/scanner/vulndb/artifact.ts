/**
 * Vulnerability data as an OCI artifact, for sites without internet access: the OSV data is pushed
 * into a registry (ours, or any OCI 1.1 registry) and imported from there.
 *
 * The artifact: an OCI image manifest with `artifactType` {@link OSV_ARTIFACT_TYPE}, the empty
 * config, and one or more layers, each an OSV zip (`application/zip`, e.g. OSV's per-ecosystem
 * `all.zip`), a tar of OSV JSON/YAML records (`application/vnd.oci.image.layer.v1.tar`, `+gzip`),
 * or a JSON record or record array (`application/json`). Annotations tell where the data came from
 * ({@link ANNOTATION_SOURCE}) and when it was packed (`org.opencontainers.image.created`).
 * All layers together are one source: re-importing the same reference replaces what it gave
 * before, and a manifest digest equal to the last import's is "unchanged" without reading a layer.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, crc32, deflateRawSync } from 'node:zlib';
import { TarReader } from '../inventory/tar.ts';
import { DEFAULT_SOURCE_LIMITS, isRecordFile, SourceError, type SourceEntry, type SourceLimits, readZip } from './sources.ts';

export const OSV_ARTIFACT_TYPE = 'application/vnd.portcullis.osv.v1';
export const ANNOTATION_SOURCE = 'dev.portcullis.osv.source';
export const ANNOTATION_RECORDS = 'dev.portcullis.osv.records';
export const EMPTY_CONFIG_TYPE = 'application/vnd.oci.empty.v1+json';

const LAYER_FORMATS: Record<string, LayerFormat> = {
  'application/zip': 'zip',
  'application/vnd.oci.image.layer.v1.tar': 'tar',
  'application/x-tar': 'tar',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'tar+gzip',
  'application/gzip': 'tar+gzip',
  'application/json': 'json',
};

export type LayerFormat = 'zip' | 'tar' | 'tar+gzip' | 'json';

export interface ArtifactLayer {
  digest: string;
  size: number;
  mediaType: string;
  format: LayerFormat;
}

export interface OsvArtifact {
  layers: ArtifactLayer[];
  annotations: Record<string, string>;
}

const MAX_LAYERS = 256;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Reads and checks an artifact manifest; anything that is not OSV data is a clear error. */
export function parseOsvArtifact(manifest: Buffer, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): OsvArtifact {
  let m: { mediaType?: unknown; artifactType?: unknown; config?: { mediaType?: unknown }; layers?: unknown; annotations?: unknown };
  try {
    m = JSON.parse(manifest.toString('utf8')) as typeof m;
  } catch {
    throw new SourceError('the artifact manifest is not JSON');
  }
  if (typeof m !== 'object' || m === null) throw new SourceError('the artifact manifest is not a JSON object');
  const type = typeof m.artifactType === 'string' ? m.artifactType : m.config?.mediaType;
  if (type !== OSV_ARTIFACT_TYPE) throw new SourceError(`not OSV data: the artifact type is ${JSON.stringify(type ?? m.mediaType ?? null)}, expected ${OSV_ARTIFACT_TYPE}`);
  if (!Array.isArray(m.layers) || m.layers.length === 0) throw new SourceError('the OSV artifact has no layers');
  if (m.layers.length > MAX_LAYERS) throw new SourceError(`the OSV artifact has ${m.layers.length} layers (> ${MAX_LAYERS})`);
  let total = 0;
  const layers = m.layers.map((raw, i): ArtifactLayer => {
    const l = raw as { digest?: unknown; size?: unknown; mediaType?: unknown };
    if (typeof l.digest !== 'string' || !DIGEST.test(l.digest)) throw new SourceError(`layer ${i}: the digest must be sha256:<64 hex>`);
    if (typeof l.size !== 'number' || !Number.isSafeInteger(l.size) || l.size < 0) throw new SourceError(`layer ${i}: invalid size`);
    const mediaType = typeof l.mediaType === 'string' ? l.mediaType : '';
    const format = LAYER_FORMATS[mediaType];
    if (!format) throw new SourceError(`layer ${i}: unsupported media type ${JSON.stringify(mediaType)} (expected one of ${Object.keys(LAYER_FORMATS).join(', ')})`);
    if (l.size > limits.maxDownloadBytes) throw new SourceError(`layer ${i}: ${l.size} bytes > ${limits.maxDownloadBytes}`);
    total += l.size;
    return { digest: l.digest, size: l.size, mediaType, format };
  });
  if (total > limits.maxDownloadBytes) throw new SourceError(`the OSV artifact's layers total ${total} bytes > ${limits.maxDownloadBytes}`);
  const annotations: Record<string, string> = {};
  if (typeof m.annotations === 'object' && m.annotations !== null) {
    for (const [k, v] of Object.entries(m.annotations)) if (typeof v === 'string') annotations[k] = v.slice(0, 2048);
  }
  return { layers, annotations };
}

/** A layer saved to a temporary file, its digest and size verified. */
export interface FetchedLayer {
  file: string;
  cleanup: () => Promise<void>;
}

/**
 * Copies `source` to a temporary file, failing when it is longer than `size` or its sha256 is not
 * `digest`: a registry (or blob store) handing other bytes than the manifest names is refused.
 */
export async function saveVerified(source: Readable, digest: string, size: number): Promise<FetchedLayer> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-osv-layer-'));
  const file = join(dir, 'layer');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const hash = createHash('sha256');
  let received = 0;
  try {
    await pipeline(
      source,
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          received += chunk.length;
          if (received > size) {
            done(new SourceError(`layer ${digest} is longer than its declared ${size} bytes`));
            return;
          }
          hash.update(chunk);
          done(null, chunk);
        },
      }),
      createWriteStream(file),
    );
    if (received !== size) throw new SourceError(`layer ${digest}: ${received} bytes received, ${size} declared`);
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) throw new SourceError(`layer ${digest}: content has digest ${actual}`);
  } catch (err) {
    await cleanup();
    if (err instanceof SourceError) throw err;
    throw new SourceError(`reading layer ${digest}: ${(err as Error).message}`);
  }
  return { file, cleanup };
}

/** OSV records of a tar layer (plain or gzip), with the same limits as a zip. */
export async function* readTar(file: string, gzip: boolean, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceEntry> {
  const ready: SourceEntry[] = [];
  let entries = 0;
  let bytes = 0;
  const reader = new TarReader((h) => {
    if (h.type !== 'file' || !isRecordFile(h.name)) return undefined;
    if (++entries > limits.maxEntries) throw new SourceError(`too many entries (> ${limits.maxEntries})`);
    if (h.size > limits.maxEntryBytes) throw new SourceError(`${h.name}: entry too large (${h.size} bytes > ${limits.maxEntryBytes})`);
    bytes += h.size;
    if (bytes > limits.maxTotalBytes) throw new SourceError(`source too large (> ${limits.maxTotalBytes} bytes uncompressed)`);
    const chunks: Buffer[] = [];
    return {
      data: (c) => void chunks.push(Buffer.from(c)),
      end: () => void ready.push({ name: h.name, bytes: Buffer.concat(chunks) }),
    };
  });
  const input = createReadStream(file);
  const stream: AsyncIterable<Buffer> = gzip ? input.pipe(createGunzip()) : input;
  try {
    for await (const chunk of stream) {
      await reader.write(chunk);
      yield* ready.splice(0);
    }
    reader.end();
    yield* ready.splice(0);
  } catch (err) {
    if (err instanceof SourceError) throw err;
    throw new SourceError(`corrupt tar layer: ${(err as Error).message}`);
  } finally {
    input.destroy();
  }
}

/** The records of every layer, in manifest order; each layer is fetched only when reached and removed after. */
export async function* artifactEntries(artifact: OsvArtifact, fetchLayer: (layer: ArtifactLayer) => Promise<FetchedLayer>, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceEntry> {
  for (const [i, layer] of artifact.layers.entries()) {
    const fetched = await fetchLayer(layer);
    try {
      const prefix = `layer ${i} (${layer.digest.slice(7, 19)})/`;
      const entries =
        layer.format === 'zip' ? readZip(fetched.file, limits) : layer.format === 'json' ? jsonFile(fetched.file, layer.size, limits) : readTar(fetched.file, layer.format === 'tar+gzip', limits);
      for await (const e of entries) yield { name: prefix + e.name, bytes: e.bytes };
    } finally {
      await fetched.cleanup();
    }
  }
}

async function* jsonFile(file: string, size: number, limits: SourceLimits): AsyncGenerator<SourceEntry> {
  if (size > limits.maxEntryBytes) throw new SourceError(`JSON layer too large (${size} bytes > ${limits.maxEntryBytes})`);
  const { readFile } = await import('node:fs/promises');
  yield { name: 'records.json', bytes: await readFile(file) };
}

// ------------------------------------------------------------------------------------------------
// Packing (`portcullis vulndb push`)

export interface ZipInput {
  name: string;
  bytes: Buffer;
  /** Stored instead of deflated. */
  store?: boolean;
  /** Lie about the uncompressed size in both headers (hostile-archive tests). */
  declaredSize?: number;
}

/** A zip (deflated entries, UTF-8 names, no zip64) of record files: what `vulndb push DIR` sends as the layer. */
export function buildZip(entries: Iterable<ZipInput>): Buffer {
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  let count = 0;
  for (const e of entries) {
    const method = e.store ? 0 : 8;
    const body = e.store ? e.bytes : deflateRawSync(e.bytes);
    const name = Buffer.from(e.name.replaceAll('\\', '/'));
    const crc = crc32(e.bytes);
    const size = e.declaredSize ?? e.bytes.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
    count++;
    if (count > 0xffff || offset > 0xffffffff) throw new SourceError('too much data for one zip (no zip64): push a zip made with a zip tool instead');
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

export const EMPTY_CONFIG = Buffer.from('{}');

/** The artifact manifest for `layers` (zip layers), with the annotations that say where the data came from. */
export function artifactManifest(layers: Array<{ digest: string; size: number; title: string }>, origin: string, records: number, created: Date): Buffer {
  const emptyDigest = `sha256:${createHash('sha256').update(EMPTY_CONFIG).digest('hex')}`;
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: OSV_ARTIFACT_TYPE,
      config: { mediaType: EMPTY_CONFIG_TYPE, digest: emptyDigest, size: 2, data: 'e30=' },
      layers: layers.map((l) => ({ mediaType: 'application/zip', digest: l.digest, size: l.size, annotations: { 'org.opencontainers.image.title': l.title } })),
      annotations: { 'org.opencontainers.image.created': created.toISOString(), [ANNOTATION_SOURCE]: origin, [ANNOTATION_RECORDS]: String(records) },
    }),
  );
}
