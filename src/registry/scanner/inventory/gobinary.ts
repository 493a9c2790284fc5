/**
 * Go binaries: the build information the Go linker embeds (`.go.buildinfo`): Go version, main
 * module, dependencies with versions (and `=>` replacements), build settings. Read while the file
 * streams past, never buffered whole: the ELF program headers (in the first bytes) give the file
 * offset of the first writable data segment, which the linker starts with the build-info header
 * (`\xff Go buildinf:` at a 16-byte boundary within its first 64 KiB, as debug/buildinfo searches).
 * Go >= 1.18 writes the version and module strings inline after the header; the older
 * pointer-based layout is reported as unsupported.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, type PackageAnalyzer } from './analyzer.ts';
import { golangPurl, purl } from './purl.ts';
import type { FileContext, FileSink } from './walker.ts';

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const HEADER_BYTES = 4096;
const SEARCH = 64 * 1024;
/**
 * Externally linked binaries (cgo; how distributions build Go programs) put `.go.buildinfo` after
 * `.data` in the one writable segment, so the search there may need to go further: up to the
 * segment's size, at most this much.
 */
const MAX_SEARCH = 4 * 1024 * 1024;
const MAX_STRINGS = 4 * 1024 * 1024;

export interface GoModule {
  path: string;
  version: string;
  sum?: string;
  replace?: { path: string; version: string; sum?: string };
}

export interface GoBuildInfo {
  goVersion: string;
  /** Import path of the main package (`path` line). */
  path?: string;
  main?: GoModule;
  deps: GoModule[];
  settings: Array<[string, string]>;
}

export type GoScan = { info: GoBuildInfo } | { unsupported: string } | undefined;

/**
 * File offsets (and sizes) of the writable, non-executable PT_LOAD segments, from the ELF and
 * program headers. Go's internal linker starts one of them with the build info (the first; in PIE
 * binaries the one after RELRO); with an external linker it follows `.data` in the segment.
 */
export function elfDataOffsets(head: Buffer): Array<{ offset: number; size: number }> | undefined {
  if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const u16 = (o: number): number => (le ? head.readUInt16LE(o) : head.readUInt16BE(o));
  const u32 = (o: number): number => (le ? head.readUInt32LE(o) : head.readUInt32BE(o));
  const u64 = (o: number): number => Number(le ? head.readBigUInt64LE(o) : head.readBigUInt64BE(o));
  const phoff = is64 ? u64(32) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = Math.min(u16(is64 ? 56 : 44), 64);
  const out: Array<{ offset: number; size: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + (is64 ? 56 : 32) > head.length) break;
    const type = u32(p);
    const flags = is64 ? u32(p + 4) : u32(p + 24);
    if (type === 1 && (flags & 2) !== 0 && (flags & 1) === 0) out.push(is64 ? { offset: u64(p + 8), size: u64(p + 32) } : { offset: u32(p + 4), size: u32(p + 16) });
  }
  out.sort((x, y) => x.offset - y.offset);
  return out.length > 0 ? out.slice(0, 4) : undefined;
}

function uvarint(b: Buffer, off: number): [value: number, next: number] | undefined {
  let x = 0;
  let s = 0;
  for (let i = off; i < b.length && i < off + 10; i++) {
    const c = b[i]!;
    if (c < 0x80) return [x + c * 2 ** s, i + 1];
    x += (c & 0x7f) * 2 ** s;
    s += 7;
  }
  return undefined;
}

/** Parses the build-info blob found at `at` in `data` (header + inline strings). */
export function parseBuildInfoAt(data: Buffer, at: number): { info: GoBuildInfo } | { unsupported: string } | { need: number } | undefined {
  if (at + 32 > data.length) return { need: at + 32 };
  const ptrSize = data[at + 14];
  const flags = data[at + 15]!;
  if (ptrSize !== 4 && ptrSize !== 8) return undefined;
  if ((flags & 2) === 0) return { unsupported: 'Go build info in the pre-1.18 pointer layout' };
  const v = uvarint(data, at + 32);
  if (v === undefined) return { need: at + 42 };
  const [vlen, vend] = v;
  if (vlen > 1024) return undefined;
  const m = uvarint(data, vend + vlen);
  if (m === undefined) return { need: vend + vlen + 10 };
  const [mlen, mstart] = m;
  if (mlen > MAX_STRINGS) return undefined;
  if (mstart + mlen > data.length) return { need: mstart + mlen };
  const goVersion = data.toString('utf8', vend, vend + vlen);
  if (!goVersion.startsWith('go') && !goVersion.startsWith('devel')) return undefined;
  let mod = data.subarray(mstart, mstart + mlen);
  // cmd/go wraps modinfo in 16-byte sentinels.
  if (mod.length >= 33 && mod[mod.length - 17] === 0x0a) mod = mod.subarray(16, mod.length - 16);
  return { info: parseModInfo(goVersion, mod.toString('utf8')) };
}

export function parseModInfo(goVersion: string, modinfo: string): GoBuildInfo {
  const info: GoBuildInfo = { goVersion, deps: [], settings: [] };
  let last: GoModule | undefined;
  for (const line of modinfo.split('\n')) {
    const f = line.split('\t');
    switch (f[0]) {
      case 'path':
        if (f[1] !== undefined) info.path = f[1];
        break;
      case 'mod':
      case 'dep': {
        if (f[1] === undefined) break;
        const m: GoModule = { path: f[1], version: f[2] ?? '' };
        if (f[3]) m.sum = f[3];
        if (f[0] === 'mod') info.main = m;
        else info.deps.push(m);
        last = m;
        break;
      }
      case '=>':
        if (last !== undefined && f[1] !== undefined) {
          last.replace = { path: f[1], version: f[2] ?? '' };
          if (f[3]) last.replace.sum = f[3];
        }
        break;
      case 'build': {
        const kv = f.slice(1).join('\t');
        const eq = kv.indexOf('=');
        if (eq > 0) info.settings.push([kv.slice(0, eq), kv.slice(eq + 1)]);
        break;
      }
      default:
        break;
    }
  }
  return info;
}

interface Window {
  start: number;
  end: number;
  /** How far into the segment the header may start. */
  search: number;
  parts: Buffer[];
  len: number;
  done: boolean;
}

/** Streaming reader of one ELF file's Go build info: keeps only a 64 KiB window at the start of each data segment. */
export class GoBuildInfoSink implements FileSink {
  private pos = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  private windows: Window[] | undefined;
  private result: GoScan;
  private done = false;

  write(chunk: Buffer): boolean {
    if (this.done) return false;
    const start = this.pos;
    this.pos += chunk.length;
    if (this.windows === undefined) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen >= 4 && (this.head.length === 1 ? chunk : Buffer.concat(this.head)).readUInt32BE(0) !== 0x7f454c46) return this.finish();
      if (this.headLen < HEADER_BYTES) return true;
      const head = Buffer.concat(this.head, this.headLen);
      this.head = [];
      const offsets = elfDataOffsets(head);
      if (offsets === undefined) return this.finish();
      this.windows = offsets.map((o) => {
        const search = Math.max(SEARCH, Math.min(o.size, MAX_SEARCH));
        return { start: o.offset, end: o.offset + search + 32, search, parts: [], len: 0, done: false };
      });
      return this.feed(head, 0);
    }
    return this.feed(chunk, start);
  }

  /** Hands the part of `bytes` (at file offset `at`) that falls into open windows to them. */
  private feed(bytes: Buffer, at: number): boolean {
    const endAt = at + bytes.length;
    let open = false;
    for (const w of this.windows!) {
      while (!w.done) {
        const from = Math.max(w.start + w.len, at);
        const to = Math.min(w.end, endAt);
        if (from < to) {
          w.parts.push(bytes.subarray(from - at, to - at));
          w.len += to - from;
        }
        if (w.start + w.len < w.end) break;
        const before = w.end;
        if (this.evaluate(w, false)) return this.finish();
        if (w.end === before) break; // widened windows take the rest of this chunk on the next turn
      }
      if (!w.done) open = true;
    }
    return open ? true : this.finish();
  }

  /** Looks for the header in a window; true when the search is over (found or hopeless). May widen the window for the inline strings. */
  private evaluate(w: Window, atEnd: boolean): boolean {
    const data = Buffer.concat(w.parts, w.len);
    w.parts = [data];
    const limit = Math.min(data.length - MAGIC.length, w.search);
    // The header is 16-byte aligned in the file (offsets and addresses agree modulo the page size); a segment need not start aligned.
    const first = (16 - (w.start % 16)) % 16;
    for (let i = 0; i <= limit; i = i === 0 && first !== 0 ? first : i + 16) {
      if (data[i] !== 0xff || !data.subarray(i, i + MAGIC.length).equals(MAGIC)) continue;
      const r = parseBuildInfoAt(data, i);
      if (r === undefined) continue;
      if ('need' in r) {
        if (atEnd || r.need > w.search + MAX_STRINGS + 64) {
          w.done = true;
          return false;
        }
        w.end = w.start + r.need;
        return false;
      }
      this.result = r;
      return true;
    }
    w.done = true;
    w.parts = [];
    return false;
  }

  private finish(): false {
    this.done = true;
    this.head = [];
    this.windows = [];
    return false;
  }

  end(): GoScan {
    if (!this.done) {
      for (const w of this.windows ?? []) {
        if (!w.done && w.len > 0 && this.evaluate(w, true)) break;
      }
    }
    this.finish();
    return this.result;
  }
}

/** Version of the main module from `-X main.version=v1.2.3`-style link flags, when the build info says (devel). */
export function versionFromLdflags(info: GoBuildInfo): string | undefined {
  const ldflags = info.settings.find(([k]) => k === '-ldflags')?.[1];
  if (ldflags === undefined) return undefined;
  const mainPath = info.main?.path;
  for (const m of ldflags.matchAll(/-X(?:\s+|=)['"]?([^'"\s=]+)=([^'"\s]+)/g)) {
    const key = m[1]!;
    const value = m[2]!;
    const dot = key.lastIndexOf('.');
    const pkg = key.slice(0, dot);
    const name = key.slice(dot + 1);
    if (!/^(?:version|Version|gitVersion|GitVersion|buildVersion|BuildVersion|appVersion|AppVersion)$/.test(name)) continue;
    if (!(pkg === 'main' || pkg === mainPath || (mainPath !== undefined && pkg.startsWith(`${mainPath}/`)) || /(?:^|\/)(?:version|cmd|common|build|buildinfo)$/.test(pkg))) continue;
    if (/^v?\d+(?:\.\d+)*(?:[-+.][0-9A-Za-z.+-]*)?$/.test(value)) return value;
  }
  return undefined;
}

/** `go1.22.1` -> `1.22.1` (undefined for development toolchains). */
export function stdlibVersion(goVersion: string): string | undefined {
  const m = /^go(\d+(?:\.\d+){0,2}(?:(?:rc|beta)\d+)?)(?:\s|$|[-+ ])/.exec(`${goVersion} `);
  return m?.[1];
}

function stripV(v: string): string {
  return v.startsWith('v') ? v.slice(1) : v;
}

export const goBinaryAnalyzer: PackageAnalyzer = {
  name: 'go-binary',
  select(path, info) {
    if (info.type !== 'file' || (info.mode & 0o111) === 0 || info.size < 4096) return undefined;
    return { tag: 'go-binary', sink: (_ctx: FileContext) => new GoBuildInfoSink() };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('go-binary')) {
      const r = f.node.result as GoScan;
      if (r === undefined) continue;
      if ('unsupported' in r) {
        ctx.warn({ code: 'unsupported-format', message: `/${f.path}: ${r.unsupported}; its modules are not reported`, path: `/${f.path}` });
        continue;
      }
      const info = r.info;
      const at = { path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) };
      const std = stdlibVersion(info.goVersion);
      if (std !== undefined) out.push({ kind: 'go-stdlib', name: 'stdlib', version: std, purl: purl('golang', undefined, 'stdlib', `v${std}`), ...at });
      if (info.main !== undefined && info.main.path !== '') {
        const v = info.main.version !== '' && info.main.version !== '(devel)' ? info.main.version : versionFromLdflags(info);
        if (v !== undefined) out.push({ kind: 'go-module', name: info.main.path, version: stripV(v), purl: golangPurl(info.main.path, v), ...at });
      }
      for (const d of info.deps) {
        const m = d.replace !== undefined ? (d.replace.version === '' ? undefined : d.replace) : d;
        if (m === undefined || m.version === '' || m.version === '(devel)') continue;
        out.push({ kind: 'go-module', name: m.path, version: stripV(m.version), purl: golangPurl(m.path, m.version), ...at });
      }
    }
    return out;
  },
};
