/**
 * npm: installed packages (`node_modules/<name>/package.json`, `node_modules/@scope/<name>/package.json`,
 * at any depth) and `package-lock.json` files outside node_modules (lockfileVersion 1: the nested
 * `dependencies` tree; 2 and 3: the flat `packages` map, workspaces included). A lockfile entry
 * whose package is also installed beside the lockfile is reported once, from node_modules.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type AnalyzerContext, type PackageAnalyzer } from './analyzer.ts';
import { basename, dirname, joinPath } from './paths.ts';
import { npmPurl } from './purl.ts';

export interface NpmLockEntry {
  /** Location key: `node_modules/a/node_modules/b` (v1 keys are rebuilt the same way). */
  path: string;
  name: string;
  version?: string;
  dev?: true;
  optional?: true;
  devOptional?: true;
  peer?: true;
  /** A workspace link (`link: true`), `resolved` naming the member directory. */
  link?: true;
  resolved?: string;
}

export interface NpmLockfile {
  lockfileVersion: number;
  root: { name?: string; version?: string };
  packages: NpmLockEntry[];
  /** Workspace members (v2/v3 keys that are not under node_modules). */
  workspaceMembers: Array<{ path: string; name?: string; version?: string }>;
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function flags(entry: NpmLockEntry, src: Json): void {
  if (src.dev === true) entry.dev = true;
  if (src.optional === true) entry.optional = true;
  if (src.devOptional === true) entry.devOptional = true;
  if (src.peer === true) entry.peer = true;
}

const MAX_ENTRIES = 200_000;

export function parsePackageLock(data: string): NpmLockfile {
  const doc: unknown = JSON.parse(data);
  if (!isObj(doc)) throw new Error('package-lock.json is not a JSON object');
  const lockfileVersion = typeof doc.lockfileVersion === 'number' ? doc.lockfileVersion : 1;
  const out: NpmLockfile = { lockfileVersion, root: {}, packages: [], workspaceMembers: [] };
  const rootName = str(doc.name);
  const rootVersion = str(doc.version);
  if (rootName !== undefined) out.root.name = rootName;
  if (rootVersion !== undefined) out.root.version = rootVersion;

  if (lockfileVersion >= 2 && isObj(doc.packages)) {
    for (const [key, raw] of Object.entries(doc.packages)) {
      if (!isObj(raw)) continue;
      if (out.packages.length + out.workspaceMembers.length > MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} entries`);
      if (key === '') {
        if (str(raw.name) !== undefined) out.root.name = str(raw.name)!;
        if (str(raw.version) !== undefined) out.root.version = str(raw.version)!;
        continue;
      }
      const nm = key.lastIndexOf('node_modules/');
      if (nm === -1) {
        const member: { path: string; name?: string; version?: string } = { path: key };
        if (str(raw.name) !== undefined) member.name = str(raw.name)!;
        if (str(raw.version) !== undefined) member.version = str(raw.version)!;
        out.workspaceMembers.push(member);
        continue;
      }
      const entry: NpmLockEntry = { path: key, name: str(raw.name) ?? key.slice(nm + 'node_modules/'.length) };
      const version = str(raw.version);
      if (version !== undefined) entry.version = version;
      flags(entry, raw);
      if (raw.link === true) {
        entry.link = true;
        const resolved = str(raw.resolved);
        if (resolved !== undefined) entry.resolved = resolved;
      }
      out.packages.push(entry);
    }
  } else if (isObj(doc.dependencies)) {
    const walk = (deps: Json, prefix: string, depth: number): void => {
      if (depth > 64) throw new Error('dependency tree nested deeper than 64 levels');
      for (const [name, raw] of Object.entries(deps)) {
        if (!isObj(raw)) continue;
        if (out.packages.length > MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} entries`);
        const path = `${prefix}node_modules/${name}`;
        const entry: NpmLockEntry = { path, name };
        const version = str(raw.version);
        if (version !== undefined) entry.version = version;
        flags(entry, raw);
        out.packages.push(entry);
        if (isObj(raw.dependencies)) walk(raw.dependencies, `${path}/`, depth + 1);
      }
    };
    walk(doc.dependencies, '', 0);
  }
  out.packages.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

export interface NpmPackageJson {
  name: string;
  version: string;
  licenses?: string[];
}

/** `license` as a string or `{type}`, or the legacy `licenses` array. */
function licensesOf(doc: Json): string[] | undefined {
  const out: string[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'string' && v.trim() !== '') out.push(v.trim());
    else if (isObj(v) && typeof v.type === 'string') out.push(v.type);
  };
  add(doc.license);
  if (Array.isArray(doc.license)) doc.license.forEach(add);
  if (Array.isArray(doc.licenses)) doc.licenses.forEach(add);
  return out.length > 0 ? [...new Set(out)] : undefined;
}

/** An installed package's package.json; undefined when it has no name or version (e.g. a nested "type": "module" stub). */
export function parseNpmPackageJson(data: string): NpmPackageJson | undefined {
  const doc: unknown = JSON.parse(data);
  if (!isObj(doc)) throw new Error('package.json is not a JSON object');
  const name = str(doc.name);
  const version = str(doc.version);
  if (name === undefined || version === undefined || name === '' || version === '') return undefined;
  const out: NpmPackageJson = { name, version };
  const l = licensesOf(doc);
  if (l !== undefined) out.licenses = l;
  return out;
}

/** Is `path` the package.json of a package directly inside a node_modules directory? */
export function isInstalledPackageJson(path: string): boolean {
  if (!path.endsWith('/package.json')) return false;
  const dir = dirname(path);
  const parent = dirname(dir);
  if (basename(parent) === 'node_modules') return !basename(dir).startsWith('.');
  return basename(parent).startsWith('@') && basename(dirname(parent)) === 'node_modules';
}

const MB = 1024 * 1024;

export const npmAnalyzer: PackageAnalyzer = {
  name: 'npm',
  select(path) {
    if (path.endsWith('/package.json') || path === 'package.json') {
      if (isInstalledPackageJson(path)) return { tag: 'npm-package', maxSize: 4 * MB, parse: (c) => parseNpmPackageJson(text(c)) };
      return undefined;
    }
    if (basename(path) === 'package-lock.json' && !path.includes('node_modules/')) {
      return { tag: 'npm-lock', maxSize: 128 * MB, parse: (c) => parsePackageLock(text(c)) };
    }
    return undefined;
  },
  packages(ctx: AnalyzerContext) {
    const out: InventoryPackage[] = [];
    const installed = new Map<string, NpmPackageJson>();
    for (const f of ctx.view.tagged('npm-package', ctx.warn)) {
      const p = f.node.result as NpmPackageJson | undefined;
      if (f.node.error !== undefined) continue;
      if (p === undefined) continue;
      installed.set(f.node.path, p);
      const pkg: InventoryPackage = { kind: 'npm', name: p.name, version: p.version, purl: npmPurl(p.name, p.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) };
      if (p.licenses !== undefined) pkg.licenses = p.licenses;
      out.push(pkg);
    }
    for (const f of ctx.view.tagged('npm-lock', ctx.warn)) {
      const lock = f.node.result as NpmLockfile | undefined;
      if (lock === undefined) continue;
      const dir = dirname(f.node.path);
      for (const e of lock.packages) {
        if (e.link || e.version === undefined) continue;
        // Non-registry specs (git URLs, file: links, aliases) are not registry versions.
        if (!/^\d/.test(e.version)) continue;
        const inst = installed.get(joinPath(dir, `${e.path}/package.json`));
        if (inst !== undefined && inst.name === e.name && inst.version === e.version) continue;
        const pkg: InventoryPackage = { kind: 'npm', name: e.name, version: e.version, purl: npmPurl(e.name, e.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) };
        if (e.dev) pkg.dev = true;
        out.push(pkg);
      }
    }
    return out;
  },
};
