/**
 * Layer blob decoding: the compression is sniffed from the first bytes (gzip and zstd magic),
 * because Docker schema2 layers are all labelled `tar.gzip` whatever they hold; the declared media
 * type only produces a warning when it disagrees.
 */
import { createGunzip, createZstdDecompress, constants as zc, type ZlibOptions, type ZstdOptions } from 'node:zlib';
import type { Transform } from 'node:stream';

export type Compression = 'gzip' | 'zstd' | 'none';

const CHUNK = 512 * 1024;
/** Decompressed bytes the decoder may run ahead of the tar reader (decoding overlaps parsing). */
const AHEAD = 8 * 1024 * 1024;

/** What the media type claims (undefined when the media type says nothing we know). */
export function declaredCompression(mediaType: string): Compression | undefined {
  const mt = mediaType.toLowerCase().split(';')[0]!.trim();
  if (mt.endsWith('+gzip') || mt.endsWith('.tar.gzip') || mt === 'application/vnd.docker.image.rootfs.diff.tar.gzip' || mt.endsWith('.gzip')) return 'gzip';
  if (mt.endsWith('+zstd') || mt.endsWith('.zstd')) return 'zstd';
  if (mt.endsWith('.tar') || mt.endsWith('v1.tar') || mt === 'application/x-tar') return 'none';
  return undefined;
}

export type Sniffed = Compression | 'bzip2' | 'xz' | 'unknown-short';

/** Compression from magic bytes; `none` for anything else (an uncompressed tar). */
export function sniffCompression(head: Uint8Array): Sniffed {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.length >= 3 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return 'bzip2';
  if (head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a && head[5] === 0x00) return 'xz';
  return 'none';
}

export function createDecoder(kind: 'gzip' | 'zstd'): Transform {
  // highWaterMark is a Transform option zlib passes through (missing from the option types).
  if (kind === 'gzip') return createGunzip({ chunkSize: CHUNK, highWaterMark: AHEAD } as ZlibOptions);
  return createZstdDecompress({ chunkSize: CHUNK, highWaterMark: AHEAD, params: { [zc.ZSTD_d_windowLogMax]: 27 } } as ZstdOptions);
}
