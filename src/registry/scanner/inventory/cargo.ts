/**
 * Rust: `Cargo.lock` (`[[package]]` tables with name, version, source). Only crates with a
 * `source` (registry or git) are packages of an ecosystem; source-less entries are the workspace's
 * own crates and are not reported.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type PackageAnalyzer } from './analyzer.ts';
import { basename } from './paths.ts';
import { purl } from './purl.ts';

export interface CargoPackage {
  name: string;
  version: string;
  source?: string;
}

export interface CargoLock {
  /** `version = N` at the top level (absent in v1 lockfiles). */
  formatVersion?: number;
  packages: CargoPackage[];
}

/** A TOML string value on one line: basic, literal, or multi-line basic/literal closed on the same line. */
function tomlString(v: string): string | undefined {
  const t = v.trim();
  const multi = /^"""([\s\S]*?)"""/.exec(t) ?? /^'''([\s\S]*?)'''/.exec(t);
  if (multi !== null) return multi[1]!;
  const literal = /^'([^']*)'/.exec(t);
  if (literal !== null) return literal[1]!;
  const basic = /^"((?:\\.|[^"\\])*)"/.exec(t);
  return basic === null ? undefined : basic[1]!.replace(/\\(.)/g, '$1');
}

/** A line-based reader for the TOML subset cargo writes into Cargo.lock. */
export function parseCargoLock(data: string): CargoLock {
  const out: CargoLock = { packages: [] };
  let section = '';
  let cur: Partial<CargoPackage> | undefined;
  let inArray = false;
  const flush = (): void => {
    if (cur?.name !== undefined && cur.version !== undefined) {
      const p: CargoPackage = { name: cur.name, version: cur.version };
      if (cur.source !== undefined) p.source = cur.source;
      out.packages.push(p);
    }
    cur = undefined;
  };
  for (const raw of data.split(/\r?\n/)) {
    const line = raw.trim();
    if (inArray) {
      if (line.startsWith(']')) inArray = false;
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      flush();
      section = line;
      if (line === '[[package]]') cur = {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (value.startsWith('[') && !value.includes(']')) {
      inArray = true;
      continue;
    }
    if (section === '' && key === 'version' && /^\d+$/.test(value)) out.formatVersion = Number(value);
    if (cur === undefined) continue;
    if (key === 'name' || key === 'version' || key === 'source') {
      const s = tomlString(value);
      if (s !== undefined) cur[key] = s;
    }
  }
  flush();
  return out;
}

const MB = 1024 * 1024;

export const cargoAnalyzer: PackageAnalyzer = {
  name: 'cargo',
  select(path) {
    if (basename(path) !== 'Cargo.lock') return undefined;
    return { tag: 'cargo-lock', maxSize: 64 * MB, parse: (c) => parseCargoLock(text(c)) };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('cargo-lock', ctx.warn)) {
      const lock = f.node.result as CargoLock | undefined;
      if (lock === undefined) continue;
      for (const p of lock.packages) {
        if (p.source === undefined) continue;
        out.push({ kind: 'cargo', name: p.name, version: p.version, purl: purl('cargo', undefined, p.name, p.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) });
      }
    }
    return out;
  },
};
