/**
 * rpm: the package database in both formats rpm has used in images —
 * `rpmdb.sqlite` (rpm >= 4.16; read with node:sqlite from memory, never from disk) and the
 * Berkeley DB hash `Packages` file (rpm < 4.16; read by our own page walker) — whose values are
 * RPM header blobs. From each header: name, epoch, version, release, arch, source RPM, licence,
 * vendor.
 */
import { DatabaseSync } from 'node:sqlite';
import type { InventoryPackage } from '../model.ts';
import { attribution, introducingLayer, memoKeys, type PackageAnalyzer } from './analyzer.ts';
import { distroQualifier, purl, rpmNamespace } from './purl.ts';

export interface RpmRecord {
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch?: string;
  sourceRpm?: string;
  license?: string;
  vendor?: string;
  modularityLabel?: string;
}

export interface RpmParse {
  records: RpmRecord[];
  problems: string[];
}

const TAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  VENDOR: 1011,
  LICENSE: 1014,
  ARCH: 1022,
  SOURCERPM: 1044,
  MODULARITYLABEL: 5096,
} as const;

const TYPE_INT32 = 4;
const TYPE_STRING = 6;
const TYPE_STRING_ARRAY = 8;
const TYPE_I18NSTRING = 9;
const MAX_HEADER_DATA = 256 * 1024 * 1024;

/**
 * Parses an RPM header blob as stored in the rpm database (no lead, no header magic):
 * index count, data length, index entries (tag, type, offset, count; big-endian), data store.
 */
export function parseRpmHeader(blob: Uint8Array): RpmRecord {
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buf.length < 8) throw new Error('header blob shorter than 8 bytes');
  const il = buf.readUInt32BE(0);
  const dl = buf.readUInt32BE(4);
  if (il < 1 || il > 0xffff) throw new Error(`header index count ${il} out of range`);
  if (dl > MAX_HEADER_DATA) throw new Error(`header data length ${dl} out of range`);
  const dataStart = 8 + il * 16;
  if (dataStart + dl > buf.length) throw new Error(`header claims ${dataStart + dl} bytes but the blob has ${buf.length}`);
  const data = buf.subarray(dataStart, dataStart + dl);
  const strings = new Map<number, string>();
  let epoch: number | undefined;
  for (let i = 0; i < il; i++) {
    const e = 8 + i * 16;
    const tag = buf.readUInt32BE(e);
    const type = buf.readUInt32BE(e + 4);
    const offset = buf.readUInt32BE(e + 8);
    const count = buf.readUInt32BE(e + 12);
    if (tag < 1000 || (tag > 1044 && tag !== TAG.MODULARITYLABEL)) continue;
    if (offset >= dl) throw new Error(`tag ${tag} points outside the data store`);
    if (tag === TAG.EPOCH) {
      if (type !== TYPE_INT32 || count < 1 || offset + 4 > dl) throw new Error('malformed EPOCH tag');
      epoch = data.readInt32BE(offset);
      continue;
    }
    if (type === TYPE_STRING || type === TYPE_STRING_ARRAY || type === TYPE_I18NSTRING) {
      const end = data.indexOf(0, offset);
      if (end === -1) throw new Error(`unterminated string for tag ${tag}`);
      strings.set(tag, data.toString('utf8', offset, end));
    }
  }
  const name = strings.get(TAG.NAME);
  const version = strings.get(TAG.VERSION);
  const release = strings.get(TAG.RELEASE);
  if (name === undefined || version === undefined || release === undefined) throw new Error('header lacks NAME, VERSION or RELEASE');
  const r: RpmRecord = { name, version, release };
  if (epoch !== undefined) r.epoch = epoch;
  const opt: Array<[keyof RpmRecord, number]> = [['arch', TAG.ARCH], ['sourceRpm', TAG.SOURCERPM], ['license', TAG.LICENSE], ['vendor', TAG.VENDOR], ['modularityLabel', TAG.MODULARITYLABEL]];
  for (const [k, t] of opt) {
    const v = strings.get(t);
    if (v !== undefined && v !== '') (r as unknown as Record<string, string>)[k] = v;
  }
  return r;
}

function headersToParse(blobs: Iterable<Uint8Array>): RpmParse {
  const records: RpmRecord[] = [];
  const problems: string[] = [];
  for (const b of blobs) {
    try {
      records.push(parseRpmHeader(b));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return { records, problems };
}

/** Reads `Packages` of an rpmdb.sqlite held in memory. */
export function parseRpmSqlite(content: Buffer): RpmParse {
  if (content.length < 100 || content.toString('latin1', 0, 16) !== 'SQLite format 3\0') throw new Error('not an SQLite database');
  // WAL-mode databases cannot be opened from memory; the main file is complete after a checkpoint,
  // which rpm does on close. Mark the copy as rollback-journal mode.
  const copy = new Uint8Array(content);
  if (copy[18] === 2) copy[18] = 1;
  if (copy[19] === 2) copy[19] = 1;
  const db = new DatabaseSync(':memory:');
  try {
    db.deserialize(copy);
    const rows = db.prepare('SELECT blob FROM Packages').all() as Array<{ blob: Uint8Array | null }>;
    return headersToParse(rows.flatMap((r) => (r.blob instanceof Uint8Array ? [r.blob] : [])));
  } finally {
    db.close();
  }
}

// Berkeley DB (hash access method, format 8/9) as written by rpm < 4.16.
const HASH_MAGIC = 0x061561;
const P_HASH_UNSORTED = 2;
const P_OVERFLOW = 7;
const P_HASH = 13;
const H_KEYDATA = 1;
const H_OFFPAGE = 3;
const PAGE_HEADER = 26;

/** Reads every value of a Berkeley DB hash database (the `Packages` file) and parses it as an RPM header. */
export function parseRpmBdb(content: Buffer): RpmParse {
  return headersToParse(bdbHashValues(content));
}

export function* bdbHashValues(db: Buffer): Generator<Buffer> {
  if (db.length < 512) throw new Error('too small for a Berkeley DB file');
  let le = true;
  if (db.readUInt32LE(12) !== HASH_MAGIC) {
    if (db.readUInt32BE(12) !== HASH_MAGIC) throw new Error('not a Berkeley DB hash database (bad magic)');
    le = false;
  }
  const u32 = (o: number): number => (le ? db.readUInt32LE(o) : db.readUInt32BE(o));
  const u16 = (o: number): number => (le ? db.readUInt16LE(o) : db.readUInt16BE(o));
  const version = u32(16);
  if (version < 8 || version > 10) throw new Error(`unsupported hash version ${version}`);
  const pageSize = u32(20);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new Error(`bad page size ${pageSize}`);
  if (db[24] !== 0) throw new Error('encrypted Berkeley DB databases are not supported');
  const lastPage = u32(32);
  const pages = Math.min(lastPage + 1, Math.floor(db.length / pageSize));
  if (lastPage + 1 > pages) throw new Error(`database claims ${lastPage + 1} pages but holds ${pages}`);

  const overflow = (start: number, total: number): Buffer => {
    if (total > MAX_HEADER_DATA) throw new Error(`overflow item of ${total} bytes`);
    const out = Buffer.allocUnsafe(total);
    let off = 0;
    let pg = start;
    let hops = 0;
    while (pg !== 0 && off < total) {
      if (pg >= pages || ++hops > pages) throw new Error('overflow chain leaves the file or loops');
      const base = pg * pageSize;
      if (db[base + 25] !== P_OVERFLOW) throw new Error(`page ${pg} in an overflow chain is not an overflow page`);
      const len = u16(base + 22);
      if (PAGE_HEADER + len > pageSize || off + len > total) throw new Error(`overflow page ${pg} has a bad length`);
      db.copy(out, off, base + PAGE_HEADER, base + PAGE_HEADER + len);
      off += len;
      pg = u32(base + 16);
    }
    if (off !== total) throw new Error('overflow chain shorter than its item');
    return out;
  };

  for (let pg = 1; pg < pages; pg++) {
    const base = pg * pageSize;
    const type = db[base + 25];
    if (type !== P_HASH && type !== P_HASH_UNSORTED) continue;
    const entries = u16(base + 20);
    if (PAGE_HEADER + entries * 2 > pageSize) throw new Error(`page ${pg} claims ${entries} entries`);
    for (let i = 1; i < entries; i += 2) {
      const off = u16(base + PAGE_HEADER + i * 2);
      const prevEnd = u16(base + PAGE_HEADER + (i - 1) * 2);
      if (off >= pageSize || off < PAGE_HEADER + entries * 2 || prevEnd > pageSize || prevEnd < off) throw new Error(`page ${pg}: item ${i} out of bounds`);
      const itemType = db[base + off];
      if (itemType === H_OFFPAGE) {
        if (off + 12 > pageSize) throw new Error(`page ${pg}: truncated off-page item`);
        yield overflow(u32(base + off + 4), u32(base + off + 8));
      } else if (itemType === H_KEYDATA) {
        const value = db.subarray(base + off + 1, base + prevEnd);
        if (value.length >= 16) yield Buffer.from(value);
      }
    }
  }
}

/** Splits `util-linux-2.32.1-42.el8_8.src.rpm` into name and version-release. */
export function splitSourceRpm(srpm: string): { name: string; version: string; release: string } | undefined {
  const base = srpm.replace(/\.(?:no)?src\.rpm$/, '');
  const r = base.lastIndexOf('-');
  if (r <= 0) return undefined;
  const v = base.lastIndexOf('-', r - 1);
  if (v <= 0) return undefined;
  return { name: base.slice(0, v), version: base.slice(v + 1, r), release: base.slice(r + 1) };
}

/** `[epoch:]version-release`, the string rpm version comparison works on. */
export function rpmEvr(r: { epoch?: number; version: string; release: string }): string {
  return `${r.epoch !== undefined && r.epoch !== 0 ? `${r.epoch}:` : ''}${r.version}-${r.release}`;
}

const MB = 1024 * 1024;
const keysOf = memoKeys((r: RpmParse) => new Set(r.records.map((x) => `${x.name}.${x.arch ?? ''}@${rpmEvr(x)}`)));
const RPM_DIRS = ['var/lib/rpm/', 'usr/lib/sysimage/rpm/', 'usr/share/rpm/'];

export const rpmAnalyzer: PackageAnalyzer = {
  name: 'rpm',
  select(path) {
    for (const d of RPM_DIRS) {
      if (!path.startsWith(d)) continue;
      const f = path.slice(d.length);
      if (f === 'rpmdb.sqlite') return { tag: 'rpm', maxSize: 1024 * MB, keepHistory: true, parse: (c) => parseRpmSqlite(c) };
      if (f === 'Packages') return { tag: 'rpm', maxSize: 1024 * MB, keepHistory: true, parse: (c) => parseRpmBdb(c) };
      if (f === 'Packages.db') {
        return { tag: 'rpm', maxSize: 1024 * MB, parse: () => { throw new Error('the ndb rpm database format (SUSE) is not supported'); } };
      }
    }
    return undefined;
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    const seen = new Set<string>();
    for (const f of ctx.view.tagged('rpm', ctx.warn)) {
      const parsed = f.node.result as RpmParse | undefined;
      if (parsed === undefined) continue; // the walker has warned about the parse error
      if (parsed.problems.length > 0) {
        ctx.warn({ code: 'malformed-database', message: `/${f.path}: ${parsed.problems.length} unreadable header(s) skipped (first: ${parsed.problems[0]})`, path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) });
      }
      for (const r of parsed.records) {
        if (r.name === 'gpg-pubkey') continue;
        const evr = rpmEvr(r);
        const key = `${r.name}.${r.arch ?? ''}@${evr}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const src = r.sourceRpm === undefined ? undefined : splitSourceRpm(r.sourceRpm);
        const pkg: InventoryPackage = {
          kind: 'rpm',
          name: r.name,
          version: evr,
          purl: purl('rpm', rpmNamespace(ctx.os), r.name, `${r.version}-${r.release}`, {
            arch: r.arch,
            epoch: r.epoch !== undefined && r.epoch !== 0 ? String(r.epoch) : undefined,
            distro: distroQualifier(ctx.os),
            upstream: r.sourceRpm,
          }),
          path: `/${f.path}`,
          ...attribution(ctx, introducingLayer(f.node, key, keysOf)),
        };
        if (src !== undefined) {
          pkg.sourceName = src.name;
          pkg.sourceVersion = rpmEvr({ ...(r.epoch === undefined ? {} : { epoch: r.epoch }), version: src.version, release: src.release });
        }
        if (r.epoch !== undefined) pkg.epoch = r.epoch;
        if (r.arch !== undefined) pkg.arch = r.arch;
        if (r.license !== undefined) pkg.licenses = [r.license];
        out.push(pkg);
      }
    }
    return out;
  },
};
