/**
 * The contract between the walker and the package analyzers: an analyzer selects files by path
 * (before any content is read), parses each selected file once per layer that carries it, and,
 * after the walk, turns the final view's results into inventory packages.
 */
import type { InventoryPackage, OperatingSystem } from '../model.ts';
import type { InventoryWarning } from './errors.ts';
import type { EntryInfo, FileInterest, ImageView, ViewNode } from './walker.ts';

export interface AnalyzerContext {
  os: OperatingSystem | undefined;
  view: ImageView;
  warn(w: InventoryWarning): void;
  /** Diff ID and digest of a layer by index. */
  layer(index: number): { diffId?: string; digest?: string };
}

export interface PackageAnalyzer {
  name: string;
  /** Cheap path test; called for every regular file and symlink of every layer. */
  select(path: string, info: EntryInfo): FileInterest | undefined;
  /** Packages from the final view. */
  packages(ctx: AnalyzerContext): InventoryPackage[];
}

/** Splits a path into components once for analyzers that test several of them. */
export function lastSegments(path: string, n: number): string[] {
  const parts: string[] = [];
  let end = path.length;
  for (let i = 0; i < n; i++) {
    const slash = path.lastIndexOf('/', end - 1);
    parts.unshift(path.slice(slash + 1, end));
    if (slash === -1) break;
    end = slash;
  }
  return parts;
}

/**
 * The layer that introduced a record of a file rewritten by several layers (a dpkg status file is
 * rewritten by every layer that installs packages): the oldest layer of the unbroken run of
 * versions of the file, ending with the final one, that all contain the record.
 */
export function introducingLayer<R>(node: ViewNode, key: string, keysOf: (result: R) => Set<string>): number {
  let layer = node.layerIndex;
  const history = node.history ?? [];
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]!;
    if (h.result === undefined || !keysOf(h.result as R).has(key)) break;
    layer = h.layerIndex;
  }
  return layer;
}

/** Memoises `keysOf` per result object (history entries are consulted once per package). */
export function memoKeys<R>(fn: (result: R) => Set<string>): (result: R) => Set<string> {
  const cache = new WeakMap<object, Set<string>>();
  return (result: R) => {
    const o = result as unknown as object;
    let s = cache.get(o);
    if (s === undefined) {
      s = fn(result);
      cache.set(o, s);
    }
    return s;
  };
}

/** Layer attribution fields for a package read from `node` (or from the layer `layerIndex`). */
export function attribution(ctx: AnalyzerContext, layerIndex: number): Pick<InventoryPackage, 'layerDiffId' | 'layerDigest'> {
  const l = ctx.layer(layerIndex);
  const out: Pick<InventoryPackage, 'layerDiffId' | 'layerDigest'> = {};
  if (l.diffId !== undefined) out.layerDiffId = l.diffId;
  if (l.digest !== undefined) out.layerDigest = l.digest;
  return out;
}

/** Decodes file content as UTF-8 text (invalid sequences replaced). */
export function text(content: Buffer): string {
  return content.toString('utf8');
}
