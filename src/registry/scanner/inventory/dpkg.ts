/**
 * dpkg: `/var/lib/dpkg/status` (one stanza per package) and distroless `/var/lib/dpkg/status.d/*`
 * (one file per package, `*.md5sums` beside them are not packages). Only installed packages
 * (status `<want> ok installed`) are reported; `Source: name (version)` gives the source package
 * that Debian and Ubuntu advisories are keyed by. Licences come from DEP-5
 * `/usr/share/doc/<package>/copyright` files where present.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, introducingLayer, lastSegments, memoKeys, text, type PackageAnalyzer } from './analyzer.ts';
import { debNamespace, distroQualifier, purl } from './purl.ts';
import type { ViewNode } from './walker.ts';

export interface DpkgRecord {
  name: string;
  version?: string;
  status?: string;
  installed: boolean;
  /** `Source:` name, or the binary name when absent. */
  sourceName: string;
  /** Version in `Source: name (version)`, or the binary version. */
  sourceVersion?: string;
  arch?: string;
}

export interface DpkgParse {
  records: DpkgRecord[];
  /** Lines or stanzas that could not be read (the rest was). */
  problems: string[];
}

const FIELD = /^([A-Za-z0-9][A-Za-z0-9_-]*):[ \t]*(.*)$/;

/** Parses deb822 control data into stanzas of field -> value (continuation lines joined with \n). */
export function parseControl(data: string): { stanzas: Array<Map<string, string>>; problems: string[] } {
  const stanzas: Array<Map<string, string>> = [];
  const problems: string[] = [];
  let cur: Map<string, string> | undefined;
  let last: string | undefined;
  const lines = data.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      if (cur !== undefined) stanzas.push(cur);
      cur = undefined;
      last = undefined;
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (cur !== undefined && last !== undefined) cur.set(last, `${cur.get(last)}\n${line.trim()}`);
      else problems.push(`line ${i + 1}: continuation line outside a field`);
      continue;
    }
    const m = FIELD.exec(line);
    if (m === null) {
      problems.push(`line ${i + 1}: not a 'Field: value' line`);
      continue;
    }
    cur ??= new Map();
    last = m[1]!.toLowerCase();
    cur.set(last, m[2]!.trimEnd());
  }
  if (cur !== undefined) stanzas.push(cur);
  return { stanzas, problems };
}

/**
 * Parses a dpkg status file. `statusD`: a distroless `status.d/` entry, where a stanza without a
 * Status field is installed (the directory only holds installed packages; its writers omit Status).
 */
export function parseDpkgStatus(data: string, statusD = false): DpkgParse {
  const { stanzas, problems } = parseControl(data);
  const records: DpkgRecord[] = [];
  for (const s of stanzas) {
    const name = s.get('package');
    if (name === undefined) {
      problems.push('stanza without Package field');
      continue;
    }
    const version = s.get('version');
    const status = s.get('status') ?? (statusD ? 'install ok installed' : undefined);
    const words = status?.split(/\s+/) ?? [];
    const rec: DpkgRecord = { name, installed: words.length === 3 && words[2] === 'installed', sourceName: name };
    if (version !== undefined) rec.version = version;
    if (status !== undefined) rec.status = status;
    const arch = s.get('architecture');
    if (arch !== undefined) rec.arch = arch;
    const source = s.get('source');
    if (source !== undefined && source !== '') {
      const m = /^(\S+)(?:\s+\(([^)]*)\))?/.exec(source);
      if (m !== null) {
        rec.sourceName = m[1]!;
        if (m[2] !== undefined && m[2].trim() !== '') rec.sourceVersion = m[2].trim();
      }
    }
    if (rec.sourceVersion === undefined && version !== undefined) rec.sourceVersion = version;
    records.push(rec);
  }
  return { records, problems };
}

/** dpkg version syntax: [epoch:]upstream[-revision]; upstream starts with a digit (go-deb-version, dpkg). */
export function isValidDpkgVersion(v: string): boolean {
  const m = /^(?:(\d+):)?(.+)$/.exec(v);
  if (m === null) return false;
  const rest = m[2]!;
  if (!/^[0-9][0-9A-Za-z.+~:-]*$/.test(rest)) return false;
  return m[1] !== undefined || !rest.includes(':');
}

/** Licence names from a DEP-5 copyright file (`License:` fields of all paragraphs). */
export function parseCopyrightLicenses(data: string): string[] {
  const out: string[] = [];
  for (const m of data.matchAll(/^License:[ \t]*([^\r\n]+)/gim)) {
    const lic = m[1]!.trim();
    if (lic === '' || lic.length > 100 || out.includes(lic)) continue;
    out.push(lic);
    if (out.length >= 16) break;
  }
  return out;
}

const STATUS = 'var/lib/dpkg/status';
const STATUS_D = 'var/lib/dpkg/status.d/';
const MB = 1024 * 1024;

const keysOf = memoKeys((r: DpkgParse) => new Set(r.records.filter((x) => x.installed).map((x) => `${x.name}@${x.version ?? ''}`)));

export const dpkgAnalyzer: PackageAnalyzer = {
  name: 'dpkg',
  select(path) {
    if (path === STATUS) return { tag: 'dpkg-status', maxSize: 256 * MB, keepHistory: true, parse: (c) => parseDpkgStatus(text(c)) };
    if (path.startsWith(STATUS_D)) {
      const name = path.slice(STATUS_D.length);
      if (name === '' || name.includes('/') || name.endsWith('.md5sums')) return undefined;
      return { tag: 'dpkg-status.d', maxSize: 16 * MB, keepHistory: true, parse: (c) => parseDpkgStatus(text(c), true) };
    }
    if (path.startsWith('usr/share/doc/') && path.endsWith('/copyright') && path.indexOf('/', 'usr/share/doc/'.length) === path.length - '/copyright'.length) {
      return { tag: 'dpkg-copyright', maxSize: 4 * MB, parse: (c) => parseCopyrightLicenses(text(c)) };
    }
    return undefined;
  },
  packages(ctx) {
    const licenses = new Map<string, string[]>();
    for (const f of ctx.view.tagged('dpkg-copyright', ctx.warn)) {
      const pkg = lastSegments(f.node.path, 2)[0]!;
      const l = f.node.result as string[] | undefined;
      if (l !== undefined && l.length > 0) licenses.set(pkg, l);
    }
    const out: InventoryPackage[] = [];
    const files = [...ctx.view.tagged('dpkg-status', ctx.warn), ...ctx.view.tagged('dpkg-status.d', ctx.warn)];
    const seen = new Set<string>();
    for (const f of files) {
      const node: ViewNode = f.node;
      const parsed = node.result as DpkgParse | undefined;
      if (parsed === undefined) continue;
      if (parsed.problems.length > 0) {
        ctx.warn({ code: 'malformed-database', message: `/${f.path}: ${parsed.problems.length} unreadable line(s) or stanza(s) skipped (first: ${parsed.problems[0]})`, path: `/${f.path}`, ...attribution(ctx, node.layerIndex) });
      }
      for (const r of parsed.records) {
        if (!r.installed) continue;
        if (r.name === '' || r.version === undefined || !isValidDpkgVersion(r.version)) {
          ctx.warn({ code: 'record-skipped', message: `/${f.path}: package '${r.name}' has ${r.version === undefined ? 'no version' : `an invalid version '${r.version}'`}; skipped`, path: `/${f.path}` });
          continue;
        }
        const key = `${r.name}:${r.arch ?? ''}@${r.version}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const epoch = /^(\d+):/.exec(r.version)?.[1];
        const layer = introducingLayer(node, `${r.name}@${r.version}`, keysOf);
        const pkg: InventoryPackage = {
          kind: 'dpkg',
          name: r.name,
          version: r.version,
          sourceName: r.sourceName,
          purl: purl('deb', debNamespace(ctx.os), r.name, r.version, {
            arch: r.arch,
            distro: distroQualifier(ctx.os),
            upstream: r.sourceName !== r.name ? r.sourceName : undefined,
          }),
          path: `/${f.path}`,
          ...attribution(ctx, layer),
        };
        if (r.sourceVersion !== undefined) pkg.sourceVersion = r.sourceVersion;
        if (epoch !== undefined) pkg.epoch = Number(epoch);
        if (r.arch !== undefined) pkg.arch = r.arch;
        const lic = licenses.get(r.name) ?? licenses.get(r.name.replace(/:.*$/, ''));
        if (lic !== undefined) pkg.licenses = lic;
        out.push(pkg);
      }
    }
    return out;
  },
};
