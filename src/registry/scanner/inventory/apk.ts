/**
 * apk: `/lib/apk/db/installed` (Alpine, Wolfi, Chainguard). Stanzas of `X:value` lines separated by
 * blank lines; `P` name, `V` version, `A` arch, `o` origin (the source package Alpine advisories
 * name), `L` licence. Lines that are not `X:value` are skipped and reported.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, introducingLayer, memoKeys, text, type PackageAnalyzer } from './analyzer.ts';
import { apkNamespace, distroQualifier, purl } from './purl.ts';

export interface ApkRecord {
  name: string;
  version?: string;
  arch?: string;
  origin?: string;
  license?: string;
}

export interface ApkParse {
  records: ApkRecord[];
  problems: string[];
}

export function parseApkInstalled(data: string): ApkParse {
  const records: ApkRecord[] = [];
  const problems: string[] = [];
  let cur: Partial<ApkRecord> & { seen?: boolean } = {};
  const flush = (): void => {
    if (cur.seen) {
      if (cur.name === undefined || cur.name === '') problems.push('stanza without P: (package name)');
      else {
        const r: ApkRecord = { name: cur.name };
        if (cur.version !== undefined) r.version = cur.version;
        if (cur.arch !== undefined) r.arch = cur.arch;
        if (cur.origin !== undefined) r.origin = cur.origin;
        if (cur.license !== undefined) r.license = cur.license;
        records.push(r);
      }
    }
    cur = {};
  };
  const lines = data.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') {
      flush();
      continue;
    }
    if (line.length < 2 || line[1] !== ':' || !/[A-Za-z]/.test(line[0]!)) {
      problems.push(`line ${i + 1}: not an 'X:value' line`);
      continue;
    }
    cur.seen = true;
    const v = line.slice(2);
    switch (line[0]) {
      case 'P':
        cur.name = v;
        break;
      case 'V':
        cur.version = v;
        break;
      case 'A':
        cur.arch = v;
        break;
      case 'o':
        cur.origin = v;
        break;
      case 'L':
        cur.license = v;
        break;
      default:
        break;
    }
  }
  flush();
  return { records, problems };
}

/** SPDX-ish licence string of apk (`MIT AND BSD-2-Clause`, or legacy space-separated names). */
export function apkLicenses(l: string | undefined): string[] | undefined {
  if (l === undefined || l.trim() === '') return undefined;
  return [l.trim()];
}

const MB = 1024 * 1024;
const keysOf = memoKeys((r: ApkParse) => new Set(r.records.map((x) => `${x.name}@${x.version ?? ''}`)));

export const apkAnalyzer: PackageAnalyzer = {
  name: 'apk',
  select(path) {
    if (path === 'lib/apk/db/installed' || path === 'usr/lib/apk/db/installed') {
      return { tag: 'apk', maxSize: 128 * MB, keepHistory: true, parse: (c) => parseApkInstalled(text(c)) };
    }
    return undefined;
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('apk', ctx.warn)) {
      const parsed = f.node.result as ApkParse | undefined;
      if (parsed === undefined) continue;
      if (parsed.problems.length > 0) {
        ctx.warn({ code: 'malformed-database', message: `/${f.path}: ${parsed.problems.length} unreadable line(s) skipped (first: ${parsed.problems[0]})`, path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) });
      }
      for (const r of parsed.records) {
        if (r.version === undefined || r.version === '') {
          ctx.warn({ code: 'record-skipped', message: `/${f.path}: package ${r.name} has no version; skipped`, path: `/${f.path}` });
          continue;
        }
        const layer = introducingLayer(f.node, `${r.name}@${r.version}`, keysOf);
        const pkg: InventoryPackage = {
          kind: 'apk',
          name: r.name,
          version: r.version,
          sourceName: r.origin ?? r.name,
          sourceVersion: r.version,
          purl: purl('apk', apkNamespace(ctx.os), r.name, r.version, {
            arch: r.arch,
            distro: distroQualifier(ctx.os),
            upstream: r.origin !== undefined && r.origin !== r.name ? r.origin : undefined,
          }),
          path: `/${f.path}`,
          ...attribution(ctx, layer),
        };
        if (r.arch !== undefined) pkg.arch = r.arch;
        const lic = apkLicenses(r.license);
        if (lic !== undefined) pkg.licenses = lic;
        out.push(pkg);
      }
    }
    return out;
  },
};
