/**
 * NuGet version ordering (NuGet.Versioning `NuGetVersion`, SemVer 2.0 with NuGet's extensions):
 * up to four numeric parts (missing ones are 0, so 1.0 == 1.0.0 == 1.0.0.0), pre-release labels
 * compared case-insensitively (numeric labels numerically and below alphanumeric ones), a release
 * above its pre-releases, build metadata ignored.
 */
import { cmpBigInt, compareIdentifiers, compareLists } from './util.ts';

const NUGET_RE = /^\s*v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]*)?\s*$/;

interface NuGetVersion {
  parts: bigint[];
  pre: string[];
}

export function parseNuGet(v: string): NuGetVersion | undefined {
  if (v.length > 256) return undefined;
  const m = NUGET_RE.exec(v);
  if (!m) return undefined;
  return {
    parts: [m[1], m[2], m[3], m[4]].map((x) => BigInt(x ?? '0')),
    pre: m[5] ? m[5].toLowerCase().split('.') : [],
  };
}

export function compareNuGet(a: string, b: string): number {
  const x = parseNuGet(a);
  const y = parseNuGet(b);
  if (!x || !y) {
    if (x) return 1;
    if (y) return -1;
    return a === b ? 0 : a < b ? -1 : 1;
  }
  const core = compareLists(x.parts, y.parts, cmpBigInt);
  if (core !== 0) return core;
  if (x.pre.length === 0 && y.pre.length === 0) return 0;
  if (x.pre.length === 0) return 1;
  if (y.pre.length === 0) return -1;
  return compareLists(x.pre, y.pre, compareIdentifiers);
}
