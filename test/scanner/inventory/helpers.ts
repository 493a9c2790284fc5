/**
 * Test helpers for the inventory stage: building real OCI layer blobs (tar, gzip, zstd) in memory
 * from entry lists or fixture directories, and locating the shared scanner fixtures.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, lstatSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import tar from 'tar-stream';
import type { Header as TarHeader } from 'tar-stream';
import type { LayerInput } from '../../../src/registry/scanner/inventory/walker.ts';

/**
 * The scanner fixture directory (`$PORTCULLIS_FIXTURES/scanner` or `<repo>/test/fixtures/scanner`),
 * or undefined when missing outside CI (tests then skip); under CI=true a missing directory throws.
 */
export { requireScannerFixtures as fixtures, fixturesSkip as skipWithoutFixtures, scannerFixtures as scannerFixtureDir } from '../vuln-fixtures.ts';

export interface TarSpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  /** Declared size differing from the content (for hostile tests). */
  size?: number;
}

export async function buildTar(entries: TarSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = e.content === undefined ? undefined : Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content);
    await new Promise<void>((res, rej) => {
      const header: Partial<TarHeader> & { name: string } = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: new Date(0) };
      if (e.linkname !== undefined) header.linkname = e.linkname;
      if (type === 'file') {
        header.size = content?.length ?? 0;
        pack.entry(header, content ?? Buffer.alloc(0), (err) => (err ? rej(err) : res()));
      } else {
        pack.entry(header, (err) => (err ? rej(err) : res()));
      }
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export type Compression = 'gzip' | 'zstd' | 'none';

export function compress(tarBytes: Buffer, c: Compression): Buffer {
  if (c === 'gzip') return gzipSync(tarBytes, { level: 1 });
  if (c === 'zstd') return zstdCompressSync(tarBytes);
  return tarBytes;
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

const MEDIA: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

/** A layer input over an in-memory blob, delivered in small chunks like a real read stream. */
export function layerFromBlob(blob: Buffer, mediaType: string, chunk = 64 * 1024): LayerInput {
  return {
    digest: sha256(blob),
    mediaType,
    open: () => Readable.from(chunks(blob, chunk), { objectMode: false }),
  };
}

function* chunks(b: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(b.length, i + size));
}

export async function layer(entries: TarSpec[], c: Compression = 'gzip'): Promise<LayerInput & { tar: Buffer }> {
  const t = await buildTar(entries);
  return { ...layerFromBlob(compress(t, c), MEDIA[c]), diffId: sha256(t), tar: t };
}

/** Entries for every file under `dir` (directories and symlinks included), at `prefix` inside the image. */
export function dirEntries(dir: string, prefix = ''): TarSpec[] {
  const out: TarSpec[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const rel = join(prefix, relative(dir, full));
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out.push({ name: rel, type: 'symlink', linkname: readlinkSync(full) });
      else if (st.isDirectory()) {
        out.push({ name: `${rel}/`, type: 'directory' });
        walk(full);
      } else out.push({ name: rel, content: readFileSync(full), mode: st.mode & 0o7777 });
    }
  };
  walk(dir);
  return out;
}

/** A plain ustar archive of regular files with short names, written directly (fast for 100k entries). */
export function quickTar(files: Array<{ name: string; content?: Buffer | string }>): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const body = f.content === undefined ? Buffer.alloc(0) : Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 100, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.write('        ', 148, 'latin1');
    h[156] = 0x30;
    h.write('ustar\x0000', 257, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[i]!;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    parts.push(h, body);
    if (body.length % 512 !== 0) parts.push(Buffer.alloc(512 - (body.length % 512)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
