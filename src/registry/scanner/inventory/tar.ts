/**
 * A push-based tar reader for layer walking: ustar, GNU (long names `L`/`K`, base-256 sizes) and
 * POSIX pax (`x` and global `g` records: path, linkpath, size). Headers are decoded synchronously
 * as bytes arrive and entry data is handed to the consumer the caller returns for that entry (or
 * skipped) without copying, so an entry costs a header decode and nothing more unless someone
 * wants its bytes. Only a consumer's `end()` may be asynchronous; the reader awaits it before going
 * on, which is how backpressure reaches the decompressor.
 *
 * Malformed input raises {@link LayerError}: `corrupt-tar` (checksum, impossible sizes, oversized
 * extended headers) or `truncated` (input ends inside the archive).
 */
import { LayerError } from './errors.ts';

export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file' | 'other';

export interface TarEntryHeader {
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  linkname: string;
}

export interface TarEntryConsumer {
  data(chunk: Buffer): void;
  end(): void | Promise<void>;
}

const BLOCK = 512;
const MAX_EXTENDED = 1024 * 1024;

const TYPES: Record<number, TarEntryType> = {
  0: 'file',
  48: 'file', // '0'
  49: 'link',
  50: 'symlink',
  51: 'character-device',
  52: 'block-device',
  53: 'directory',
  54: 'fifo',
  55: 'contiguous-file',
};

function cstring(b: Buffer, start: number, len: number): string {
  let end = b.indexOf(0, start);
  if (end === -1 || end > start + len) end = start + len;
  // Names are bytes; UTF-8 is what every layer producer writes.
  return b.toString('utf8', start, end);
}

function octal(b: Buffer, start: number, len: number): number {
  // GNU base-256 for values that do not fit (sizes over 8 GiB, negative times).
  if ((b[start]! & 0x80) !== 0) {
    if ((b[start]! & 0x40) !== 0) return -1; // negative
    let v = b[start]! & 0x3f;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + b[i]!;
    return v;
  }
  let i = start;
  const end = start + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : v;
}

function checksumOk(b: Buffer): boolean {
  const want = octal(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** Parses pax extended header records (`<len> <key>=<value>\n`). */
export function parsePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp === -1) break;
    const len = Number(buf.toString('latin1', off, sp));
    if (!Number.isInteger(len) || len <= 0 || off + len > buf.length) throw new LayerError('corrupt-tar', 'malformed pax record');
    const rec = buf.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

type State = 'header' | 'data' | 'padding' | 'extended' | 'done';

export class TarReader {
  private readonly onEntry: (h: TarEntryHeader) => TarEntryConsumer | undefined;
  private state: State = 'header';
  private header = Buffer.alloc(BLOCK);
  private headerLen = 0;
  private remaining = 0;
  private padding = 0;
  private consumer: TarEntryConsumer | undefined;
  private extended: Buffer[] = [];
  private extendedLen = 0;
  private extendedType = 0;
  private pax: Map<string, string> | undefined;
  private globalPax: Map<string, string> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private zeroBlocks = 0;
  /** Entries seen (extended headers excluded). */
  entries = 0;

  constructor(onEntry: (h: TarEntryHeader) => TarEntryConsumer | undefined) {
    this.onEntry = onEntry;
  }

  /** Feeds bytes; resolves when every entry completed in them has been handed over. */
  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      switch (this.state) {
        case 'done':
          return; // bytes after the end-of-archive blocks are ignored, as tar does
        case 'header': {
          const n = Math.min(BLOCK - this.headerLen, chunk.length - off);
          if (this.headerLen === 0 && n === BLOCK) {
            // Whole header in this chunk: no copy.
            const pending = this.onHeader(chunk.subarray(off, off + BLOCK));
            off += BLOCK;
            if (pending !== undefined) await pending;
            continue;
          }
          chunk.copy(this.header, this.headerLen, off, off + n);
          this.headerLen += n;
          off += n;
          if (this.headerLen === BLOCK) {
            this.headerLen = 0;
            const pending = this.onHeader(this.header);
            if (pending !== undefined) await pending;
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, chunk.length - off);
          this.consumer?.data(chunk.subarray(off, off + n));
          this.remaining -= n;
          off += n;
          if (this.remaining === 0) {
            const pending = this.finishEntry();
            if (pending !== undefined) await pending;
          }
          break;
        }
        case 'extended': {
          const n = Math.min(this.remaining, chunk.length - off);
          this.extended.push(chunk.subarray(off, off + n));
          this.extendedLen += n;
          this.remaining -= n;
          off += n;
          if (this.remaining === 0) this.finishExtended();
          break;
        }
        case 'padding': {
          const n = Math.min(this.padding, chunk.length - off);
          this.padding -= n;
          off += n;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** Input is complete: anything but a clean entry boundary means the archive was cut. */
  end(): void {
    if (this.state === 'done') return;
    if (this.state !== 'header' || this.headerLen !== 0) {
      throw new LayerError('truncated', 'the tar stream ends in the middle of an entry');
    }
    if (this.pax !== undefined || this.longName !== undefined || this.longLink !== undefined) {
      throw new LayerError('truncated', 'the tar stream ends after an extended header');
    }
  }

  private onHeader(h: Buffer): Promise<void> | void {
    if (isZeroBlock(h)) {
      if (++this.zeroBlocks >= 2) this.state = 'done';
      return;
    }
    this.zeroBlocks = 0;
    if (!checksumOk(h)) throw new LayerError('corrupt-tar', 'tar header checksum mismatch (not a tar archive, or corrupted)');
    const typeflag = h[156]!;
    let size = octal(h, 124, 12);
    if (size < 0 || !Number.isSafeInteger(size)) throw new LayerError('corrupt-tar', 'impossible entry size in tar header');

    // Extended headers: collect their payload, apply to the next entry.
    if (typeflag === 0x78 /* x */ || typeflag === 0x67 /* g */ || typeflag === 0x4c /* L */ || typeflag === 0x4b /* K */) {
      if (size > MAX_EXTENDED) throw new LayerError('corrupt-tar', `extended tar header of ${size} bytes`);
      this.extendedType = typeflag;
      this.extended = [];
      this.extendedLen = 0;
      this.remaining = size;
      this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if (size === 0) this.finishExtended();
      else this.state = 'extended';
      return;
    }

    const magic = h.toString('latin1', 257, 263);
    let name = cstring(h, 0, 100);
    if (magic === 'ustar\0' && h[345] !== 0) name = `${cstring(h, 345, 155)}/${name}`;
    let linkname = cstring(h, 157, 100);
    let type: TarEntryType = TYPES[typeflag] ?? 'other';
    const pax = this.pax ?? this.globalPax;
    if (pax !== undefined) {
      const merged = this.pax !== undefined && this.globalPax !== undefined ? new Map([...this.globalPax, ...this.pax]) : pax;
      const p = merged.get('path');
      if (p !== undefined) name = p;
      const l = merged.get('linkpath');
      if (l !== undefined) linkname = l;
      const s = merged.get('size');
      if (s !== undefined) {
        size = Number(s);
        if (!Number.isSafeInteger(size) || size < 0) throw new LayerError('corrupt-tar', 'impossible entry size in pax header');
      }
    }
    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkname = this.longLink;
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    if (type === 'file' && name.endsWith('/')) type = 'directory'; // old tars mark directories with a slash
    // Links, devices, fifos and directories carry no data whatever the size field says.
    if (type === 'link' || type === 'symlink' || type === 'directory' || type === 'character-device' || type === 'block-device' || type === 'fifo') size = 0;

    this.entries++;
    this.consumer = this.onEntry({ name, type, size, mode: octal(h, 100, 8), linkname });
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) return this.finishEntry();
    this.state = 'data';
  }

  private finishEntry(): Promise<void> | void {
    const c = this.consumer;
    this.consumer = undefined;
    this.state = this.padding > 0 ? 'padding' : 'header';
    return c?.end();
  }

  private finishExtended(): void {
    const buf = Buffer.concat(this.extended, this.extendedLen);
    this.extended = [];
    switch (this.extendedType) {
      case 0x78:
        this.pax = parsePax(buf);
        break;
      case 0x67:
        this.globalPax = new Map([...(this.globalPax ?? []), ...parsePax(buf)]);
        break;
      case 0x4c:
        this.longName = cstring(buf, 0, buf.length);
        break;
      case 0x4b:
        this.longLink = cstring(buf, 0, buf.length);
        break;
    }
    this.extendedType = 0;
    this.state = this.padding > 0 ? 'padding' : 'header';
  }
}
