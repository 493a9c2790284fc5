/**
 * Python: installed distributions' core metadata — `*.dist-info/METADATA` (wheels) and
 * `*.egg-info/PKG-INFO` or a bare `*.egg-info` file (setuptools eggs). Names are PEP 503
 * normalised, as PyPI OSV records name them.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type PackageAnalyzer } from './analyzer.ts';
import { basename, dirname } from './paths.ts';
import { normalizePythonName, purl } from './purl.ts';

export interface PythonMetadata {
  name: string;
  normalizedName: string;
  version: string;
  licenses?: string[];
}

/** Core metadata headers (RFC 822 style, up to the first blank line; continuation lines folded). */
export function parseMetadataHeaders(data: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of data.split(/\r?\n/)) {
    if (line === '') break;
    if ((line.startsWith(' ') || line.startsWith('\t')) && out.length > 0) {
      out[out.length - 1]![1] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}

export function parsePythonMetadata(data: string): PythonMetadata | undefined {
  const headers = parseMetadataHeaders(data);
  const get = (k: string): string | undefined => headers.find(([h]) => h === k)?.[1];
  const name = get('name');
  const version = get('version');
  if (name === undefined || version === undefined || name === '' || version === '') return undefined;
  const md: PythonMetadata = { name, normalizedName: normalizePythonName(name), version };
  const expr = get('license-expression');
  const lic = get('license');
  if (expr !== undefined && expr !== '') md.licenses = [expr];
  else if (lic !== undefined && lic !== '' && lic.toUpperCase() !== 'UNKNOWN' && !lic.includes('\n') && lic.length <= 100) md.licenses = [lic];
  else {
    const fromClassifiers = headers
      .filter(([h, v]) => h === 'classifier' && v.startsWith('License ::'))
      .map(([, v]) => v.split('::').map((s) => s.trim()))
      .filter((parts) => parts.length >= 3)
      .map((parts) => parts[parts.length - 1]!);
    if (fromClassifiers.length > 0) md.licenses = [...new Set(fromClassifiers)];
  }
  return md;
}

const MB = 1024 * 1024;

export const pythonAnalyzer: PackageAnalyzer = {
  name: 'python',
  select(path, info) {
    const name = basename(path);
    if (name === 'METADATA') {
      if (!dirname(path).endsWith('.dist-info')) return undefined;
    } else if (name === 'PKG-INFO') {
      if (!dirname(path).endsWith('.egg-info')) return undefined;
    } else if (!(name.endsWith('.egg-info') && info.type === 'file')) {
      return undefined;
    }
    return { tag: 'python', maxSize: 8 * MB, parse: (c) => parsePythonMetadata(text(c)) };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('python', ctx.warn)) {
      const md = f.node.result as PythonMetadata | undefined;
      if (md === undefined) continue;
      const pkg: InventoryPackage = {
        kind: 'python',
        name: md.normalizedName,
        version: md.version,
        purl: purl('pypi', undefined, md.normalizedName, md.version),
        path: `/${f.path}`,
        ...attribution(ctx, f.node.layerIndex),
      };
      if (md.licenses !== undefined) pkg.licenses = md.licenses;
      out.push(pkg);
    }
    return out;
  },
};
