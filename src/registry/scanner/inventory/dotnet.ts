/**
 * .NET: `*.deps.json` files written next to published applications; every `libraries` entry of
 * type `package` is a NuGet package (`Name/Version` keys). Projects and reference assemblies are not.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type PackageAnalyzer } from './analyzer.ts';
import { purl } from './purl.ts';

export interface DotnetPackage {
  name: string;
  version: string;
}

export function parseDepsJson(data: string): DotnetPackage[] {
  const doc: unknown = JSON.parse(data);
  if (typeof doc !== 'object' || doc === null) throw new Error('deps.json is not a JSON object');
  const libs = (doc as { libraries?: unknown }).libraries;
  if (typeof libs !== 'object' || libs === null) return [];
  const out: DotnetPackage[] = [];
  for (const [key, value] of Object.entries(libs as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null || (value as { type?: unknown }).type !== 'package') continue;
    const slash = key.indexOf('/');
    if (slash <= 0 || slash === key.length - 1) continue;
    out.push({ name: key.slice(0, slash), version: key.slice(slash + 1) });
  }
  return out;
}

const MB = 1024 * 1024;

export const dotnetAnalyzer: PackageAnalyzer = {
  name: 'dotnet',
  select(path) {
    if (!path.endsWith('.deps.json')) return undefined;
    return { tag: 'dotnet-deps', maxSize: 64 * MB, parse: (c) => parseDepsJson(text(c)) };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('dotnet-deps', ctx.warn)) {
      for (const p of (f.node.result as DotnetPackage[] | undefined) ?? []) {
        out.push({ kind: 'nuget', name: p.name, version: p.version, purl: purl('nuget', undefined, p.name, p.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) });
      }
    }
    return out;
  },
};
