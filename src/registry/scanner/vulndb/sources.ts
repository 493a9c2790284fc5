/**
 * Reading OSV data from where it lives: a directory tree of `.json`/`.yaml` records, a zip (OSV's
 * per-ecosystem `all.zip`), a single JSON file (one record or an array), or an HTTP(S) URL fetched
 * with conditional requests. Every reader enforces limits (entry count, entry size, total bytes,
 * download size) so a hostile archive or server fails the import with a reason instead of
 * exhausting memory or disk.
 */
import { createWriteStream } from 'node:fs';
import { lstat, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';

export interface SourceLimits {
  /** Files or zip entries read at most. */
  maxEntries: number;
  /** Largest single record file / zip entry (uncompressed). */
  maxEntryBytes: number;
  /** Total uncompressed bytes read from one source. */
  maxTotalBytes: number;
  /** Largest HTTP download. */
  maxDownloadBytes: number;
  /** Directory nesting followed at most (symlinks are never followed). */
  maxDepth: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = {
  maxEntries: 2_000_000,
  maxEntryBytes: 16 * 1024 * 1024,
  maxTotalBytes: 16 * 1024 * 1024 * 1024,
  maxDownloadBytes: 4 * 1024 * 1024 * 1024,
  maxDepth: 32,
};

export class SourceError extends Error {
  override name = 'SourceError';
}

export interface SourceEntry {
  /** Path inside the source (relative path or zip entry name). */
  name: string;
  bytes: Buffer;
}

/** Entries worth parsing: OSV JSON records, and the YAML form some databases keep (pypa). */
export function isRecordFile(name: string): boolean {
  return /\.(json|ya?ml)$/i.test(name);
}

class Budget {
  entries = 0;
  bytes = 0;
  readonly limits: SourceLimits;
  constructor(limits: SourceLimits) {
    this.limits = limits;
  }
  take(name: string, size: number): void {
    if (++this.entries > this.limits.maxEntries) throw new SourceError(`too many entries (> ${this.limits.maxEntries})`);
    if (size > this.limits.maxEntryBytes) throw new SourceError(`${name}: entry too large (${size} bytes > ${this.limits.maxEntryBytes})`);
    this.bytes += size;
    if (this.bytes > this.limits.maxTotalBytes) throw new SourceError(`source too large (> ${this.limits.maxTotalBytes} bytes uncompressed)`);
  }
}

export async function* readDirectory(root: string, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceEntry> {
  const budget = new Budget(limits);
  async function* walk(dir: string, depth: number): AsyncGenerator<SourceEntry> {
    if (depth > limits.maxDepth) throw new SourceError(`${relative(root, dir)}: directory nesting deeper than ${limits.maxDepth}`);
    const names = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const d of names) {
      const full = join(dir, d.name);
      if (d.isDirectory()) yield* walk(full, depth + 1);
      else if (d.isFile() && isRecordFile(d.name)) {
        const st = await lstat(full);
        budget.take(relative(root, full), st.size);
        yield { name: relative(root, full), bytes: await readFile(full) };
      }
    }
  }
  yield* walk(root, 0);
}

async function readLimited(stream: Readable, max: number, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > max) {
      stream.destroy();
      throw new SourceError(`${name}: entry larger than ${max} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, total);
}

export async function* readZip(file: string, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceEntry> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false, decodeStrings: true });
  } catch (err) {
    throw new SourceError(`not a readable zip: ${(err as Error).message}`);
  }
  try {
    if (zip.entryCount > limits.maxEntries) throw new SourceError(`zip has ${zip.entryCount} entries (> ${limits.maxEntries})`);
    const budget = new Budget(limits);
    for await (const entry of zip.eachEntry()) {
      const name = entry.fileName;
      if (name.endsWith('/') || !isRecordFile(name)) continue;
      if (entry.isEncrypted()) throw new SourceError(`${name}: encrypted zip entries are not supported`);
      budget.take(name, entry.uncompressedSize);
      const stream = await zip.openReadStreamPromise(entry);
      // validateEntrySizes makes yauzl fail a stream whose real size differs from the header's.
      yield { name, bytes: await readLimited(stream, limits.maxEntryBytes, name) };
    }
  } catch (err) {
    if (err instanceof SourceError) throw err;
    throw new SourceError(`corrupt zip: ${(err as Error).message}`);
  } finally {
    zip.close();
  }
}

export async function isZipFile(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return bytesRead === 4 && buf.readUInt32LE(0) === 0x04034b50;
  } finally {
    await fh.close();
  }
}

export interface DownloadValidators {
  etag?: string;
  lastModified?: string;
}

export type DownloadResult =
  | { status: 'not-modified' }
  | { status: 'downloaded'; file: string; cleanup: () => Promise<void>; etag?: string; lastModified?: string; contentType?: string };

/**
 * Downloads `url` to a temporary file, sending `If-None-Match` / `If-Modified-Since` from the
 * previous import; a 304 answer means "unchanged". Only http: and https: are accepted.
 */
export async function download(url: string, previous: DownloadValidators, limits: SourceLimits = DEFAULT_SOURCE_LIMITS, timeoutMs = 10 * 60_000): Promise<DownloadResult> {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SourceError(`unsupported URL scheme ${u.protocol}`);
  const headers: Record<string, string> = { accept: 'application/zip, application/json;q=0.9, */*;q=0.1' };
  if (previous.etag) headers['if-none-match'] = previous.etag;
  if (previous.lastModified) headers['if-modified-since'] = previous.lastModified;
  let res: Response;
  try {
    res = await fetch(u, { headers, redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new SourceError(`download failed: ${(err as Error).message}`);
  }
  if (res.status === 304) {
    await res.body?.cancel();
    return { status: 'not-modified' };
  }
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    throw new SourceError(`download failed: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > limits.maxDownloadBytes) {
    await res.body.cancel();
    throw new SourceError(`download too large: ${declared} bytes > ${limits.maxDownloadBytes}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-vulndb-'));
  const file = join(dir, 'download');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  let received = 0;
  const max = limits.maxDownloadBytes;
  try {
    await pipeline(
      Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          received += chunk.length;
          if (received > max) throw new SourceError(`download larger than ${max} bytes`);
          yield chunk;
        }
      },
      createWriteStream(file),
    );
  } catch (err) {
    await cleanup();
    if (err instanceof SourceError) throw err;
    throw new SourceError(`download failed: ${(err as Error).message}`);
  }
  const out: DownloadResult = { status: 'downloaded', file, cleanup };
  const etag = res.headers.get('etag');
  const lastModified = res.headers.get('last-modified');
  const contentType = res.headers.get('content-type');
  if (etag) out.etag = etag;
  if (lastModified) out.lastModified = lastModified;
  if (contentType) out.contentType = contentType;
  return out;
}
