/**
 * SemVer 2.0.0 precedence (semver.org section 11), as used by npm, crates.io and OSV `SEMVER`
 * ranges: numeric major.minor.patch, then pre-release identifiers (numeric ones compare as numbers
 * and sort below alphanumeric ones; a version without pre-release is greater), build metadata
 * ignored. Parsing is tolerant like node-semver's loose mode where real data needs it: a leading
 * `v`/`=`, surrounding whitespace, and missing minor/patch (treated as 0). Strings that are not
 * SemVer at all still get a deterministic order (see `compareLooseFallback`).
 *
 * Go module versions are SemVer with a mandatory `v` prefix; `+incompatible` is build metadata and
 * pseudo-versions (`v0.0.0-20191109021931-daa7c04131f5`) are pre-releases, so both order correctly
 * here once the `v` is dropped.
 */
import { cmpBigInt, compareIdentifiers, compareLists } from './util.ts';

export interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  prerelease: string[];
}

const SEMVER_RE = /^\s*[v=]*\s*([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-?([0-9A-Za-z][0-9A-Za-z.-]*?))?(?:\+([0-9A-Za-z.+-]*))?\s*$/;

export function parseSemVer(input: string): SemVer | undefined {
  if (input.length > 256) return undefined;
  const m = SEMVER_RE.exec(input);
  if (!m) return undefined;
  const pre = m[4];
  return {
    major: BigInt(m[1]!),
    minor: BigInt(m[2] ?? '0'),
    patch: BigInt(m[3] ?? '0'),
    prerelease: pre === undefined || pre === '' ? [] : pre.split('.'),
  };
}

export function compareParsedSemVer(a: SemVer, b: SemVer): number {
  const core = compareLists([a.major, a.minor, a.patch], [b.major, b.minor, b.patch], cmpBigInt);
  if (core !== 0) return core;
  const ap = a.prerelease;
  const bp = b.prerelease;
  if (ap.length === 0 && bp.length === 0) return 0;
  if (ap.length === 0) return 1;
  if (bp.length === 0) return -1;
  return compareLists(ap, bp, compareIdentifiers);
}

/**
 * Deterministic order for strings that do not parse: split into digit and non-digit runs and compare
 * run by run (numbers numerically). Invalid versions never match a range by accident of a crash.
 */
export function compareLooseFallback(a: string, b: string): number {
  return compareLists(a.match(/[0-9]+|[^0-9]+/g) ?? [], b.match(/[0-9]+|[^0-9]+/g) ?? [], compareIdentifiers);
}

export function compareSemVer(a: string, b: string): number {
  const pa = parseSemVer(a);
  const pb = parseSemVer(b);
  if (pa && pb) return compareParsedSemVer(pa, pb);
  // Valid versions sort after garbage, so an unparsable bound never widens a range silently.
  if (pa) return 1;
  if (pb) return -1;
  return compareLooseFallback(a, b);
}

/** Go module versions: `v` prefix optional here (OSV Go records omit it), `+incompatible` ignored. */
export function compareGo(a: string, b: string): number {
  return compareSemVer(stripGo(a), stripGo(b));
}

function stripGo(v: string): string {
  let s = v.trim();
  if (s.startsWith('go') && /^go[0-9]/.test(s)) return goToolchainToSemVer(s);
  if (s.startsWith('v')) s = s.slice(1);
  return s.replace(/\+incompatible$/, '');
}

/**
 * Go toolchain versions as the Go vulnerability database writes them: `go1.22.1` -> `1.22.1`,
 * `go1.22` -> `1.22.0`, `go1.21rc2` -> `1.21.0-rc.2`, `go1.20beta1` -> `1.20.0-beta.1`.
 */
export function goToolchainToSemVer(v: string): string {
  const m = /^go([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:(rc|beta|alpha)([0-9]+))?/.exec(v.trim());
  if (!m) return v.replace(/^go/, '');
  const core = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}`;
  return m[4] ? `${core}-${m[4]}.${m[5]}` : core;
}
