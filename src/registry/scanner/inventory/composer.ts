/**
 * PHP: `composer.lock` (`packages` and `packages-dev`) and Composer's record of what is installed,
 * `vendor/composer/installed.json` (Composer 1: an array; Composer 2: `{ packages: [...] }`).
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type PackageAnalyzer } from './analyzer.ts';
import { basename } from './paths.ts';
import { composerPurl } from './purl.ts';

export interface ComposerPackage {
  name: string;
  version: string;
  licenses?: string[];
  dev?: true;
}

function entries(list: unknown, dev: boolean): ComposerPackage[] {
  if (!Array.isArray(list)) return [];
  const out: ComposerPackage[] = [];
  for (const p of list) {
    if (typeof p !== 'object' || p === null) continue;
    const { name, version, license } = p as { name?: unknown; version?: unknown; license?: unknown };
    if (typeof name !== 'string' || typeof version !== 'string' || name === '' || version === '') continue;
    const c: ComposerPackage = { name, version };
    const lic = Array.isArray(license) ? license.filter((l): l is string => typeof l === 'string') : typeof license === 'string' ? [license] : [];
    if (lic.length > 0) c.licenses = lic;
    if (dev) c.dev = true;
    out.push(c);
  }
  return out;
}

export function parseComposerLock(data: string): ComposerPackage[] {
  const doc = JSON.parse(data) as { packages?: unknown; 'packages-dev'?: unknown };
  if (typeof doc !== 'object' || doc === null) throw new Error('composer.lock is not a JSON object');
  return [...entries(doc.packages, false), ...entries(doc['packages-dev'], true)];
}

export function parseComposerInstalled(data: string): ComposerPackage[] {
  const doc: unknown = JSON.parse(data);
  if (Array.isArray(doc)) return entries(doc, false);
  if (typeof doc !== 'object' || doc === null) throw new Error('installed.json is not JSON');
  const devNames = new Set(Array.isArray((doc as { 'dev-package-names'?: unknown })['dev-package-names']) ? ((doc as { 'dev-package-names': unknown[] })['dev-package-names'].filter((n) => typeof n === 'string') as string[]) : []);
  return entries((doc as { packages?: unknown }).packages, false).map((p) => (devNames.has(p.name) ? { ...p, dev: true as const } : p));
}

const MB = 1024 * 1024;

export const composerAnalyzer: PackageAnalyzer = {
  name: 'composer',
  select(path) {
    if (basename(path) === 'composer.lock') return { tag: 'composer-lock', maxSize: 64 * MB, parse: (c) => parseComposerLock(text(c)) };
    if (path.endsWith('vendor/composer/installed.json')) return { tag: 'composer-installed', maxSize: 64 * MB, parse: (c) => parseComposerInstalled(text(c)) };
    return undefined;
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    const installed = new Set<string>();
    for (const tag of ['composer-installed', 'composer-lock']) {
      for (const f of ctx.view.tagged(tag, ctx.warn)) {
        for (const p of (f.node.result as ComposerPackage[] | undefined) ?? []) {
          const key = `${p.name}@${p.version}`;
          if (tag === 'composer-installed') installed.add(key);
          else if (installed.has(key)) continue;
          const pkg: InventoryPackage = { kind: 'composer', name: p.name, version: p.version, purl: composerPurl(p.name, p.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) };
          if (p.licenses !== undefined) pkg.licenses = p.licenses;
          if (p.dev) pkg.dev = true;
          out.push(pkg);
        }
      }
    }
    return out;
  },
};
