/**
 * PEP 440 version ordering (https://peps.python.org/pep-0440/), following the sort key of
 * pypa/packaging's `Version`: epoch, release (trailing zeros ignored), pre-release (a < b < rc;
 * a dev-only release sorts before its pre-releases), post-release, dev-release, local version
 * (numeric segments above alphanumeric ones). Alternative spellings are normalised (alpha, beta,
 * c/pre/preview, rev/r, `1.0-1` implicit post, `-_.` separators, leading `v`, case).
 * Strings that are not PEP 440 sort below every valid version (as packaging's LegacyVersion did).
 */
import { cmpBigInt, cmpString, compareLists } from './util.ts';

const VERSION_RE = new RegExp(
  '^\\s*v?' +
    '(?:(?<epoch>[0-9]+)!)?' +
    '(?<release>[0-9]+(?:\\.[0-9]+)*)' +
    '(?<pre>[-_.]?(?<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?<pre_n>[0-9]+)?)?' +
    '(?<post>(?:-(?<post_n1>[0-9]+))|(?:[-_.]?(?<post_l>post|rev|r)[-_.]?(?<post_n2>[0-9]+)?))?' +
    '(?<dev>[-_.]?(?<dev_l>dev)[-_.]?(?<dev_n>[0-9]+)?)?' +
    '(?:\\+(?<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?' +
    '\\s*$',
  'i',
);

export interface Pep440Version {
  epoch: bigint;
  release: bigint[];
  /** 0 = a, 1 = b, 2 = rc */
  pre?: [number, bigint];
  post?: bigint;
  dev?: bigint;
  local?: (bigint | string)[];
}

export function parsePep440(input: string): Pep440Version | undefined {
  if (input.length > 256) return undefined;
  const m = VERSION_RE.exec(input);
  if (!m || !m.groups) return undefined;
  const g = m.groups;
  const v: Pep440Version = {
    epoch: BigInt(g.epoch ?? '0'),
    release: g.release!.split('.').map((x) => BigInt(x)),
  };
  if (g.pre_l !== undefined) {
    const l = g.pre_l.toLowerCase();
    const kind = l === 'a' || l === 'alpha' ? 0 : l === 'b' || l === 'beta' ? 1 : 2;
    v.pre = [kind, BigInt(g.pre_n ?? '0')];
  }
  if (g.post_n1 !== undefined) v.post = BigInt(g.post_n1);
  else if (g.post_l !== undefined) v.post = BigInt(g.post_n2 ?? '0');
  if (g.dev_l !== undefined) v.dev = BigInt(g.dev_n ?? '0');
  if (g.local !== undefined) {
    v.local = g.local
      .toLowerCase()
      .split(/[-_.]/)
      .map((p) => (/^[0-9]+$/.test(p) ? BigInt(p) : p));
  }
  return v;
}

/** Compare with explicit infinities: `undefined` sides are replaced by the caller's choice. */
function cmpOpt(a: bigint | undefined, b: bigint | undefined, missing: 'low' | 'high'): number {
  if (a === undefined && b === undefined) return 0;
  if (a === undefined) return missing === 'low' ? -1 : 1;
  if (b === undefined) return missing === 'low' ? 1 : -1;
  return cmpBigInt(a, b);
}

function trimRelease(r: bigint[]): bigint[] {
  let n = r.length;
  while (n > 0 && r[n - 1] === 0n) n--;
  return r.slice(0, n);
}

export function compareParsedPep440(a: Pep440Version, b: Pep440Version): number {
  let c = cmpBigInt(a.epoch, b.epoch);
  if (c !== 0) return c;
  c = compareLists(trimRelease(a.release), trimRelease(b.release), cmpBigInt);
  if (c !== 0) return c;
  // Pre-release key: dev-only releases (no pre, no post) sort before any pre-release of the same
  // release; a release without pre-release sorts after all its pre-releases.
  const preKey = (v: Pep440Version): [number, number, bigint] => {
    if (v.pre === undefined && v.post === undefined && v.dev !== undefined) return [-1, 0, 0n];
    if (v.pre === undefined) return [1, 0, 0n];
    return [0, v.pre[0], v.pre[1]];
  };
  const pa = preKey(a);
  const pb = preKey(b);
  if (pa[0] !== pb[0]) return pa[0] < pb[0] ? -1 : 1;
  if (pa[1] !== pb[1]) return pa[1] < pb[1] ? -1 : 1;
  c = cmpBigInt(pa[2], pb[2]);
  if (c !== 0) return c;
  c = cmpOpt(a.post, b.post, 'low');
  if (c !== 0) return c;
  c = cmpOpt(a.dev, b.dev, 'high');
  if (c !== 0) return c;
  // Local: absent sorts lowest; numeric segments above alphanumeric; shorter prefix lower.
  if (a.local === undefined && b.local === undefined) return 0;
  if (a.local === undefined) return -1;
  if (b.local === undefined) return 1;
  return compareLists(a.local, b.local, (x, y) => {
    if (typeof x === 'bigint') return typeof y === 'bigint' ? cmpBigInt(x, y) : 1;
    return typeof y === 'bigint' ? -1 : cmpString(x, y);
  });
}

export function comparePep440(a: string, b: string): number {
  const pa = parsePep440(a);
  const pb = parsePep440(b);
  if (pa && pb) return compareParsedPep440(pa, pb);
  if (pa) return 1;
  if (pb) return -1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** PEP 503 name normalisation, which is how PyPI OSV records name packages. */
export function normalizePypiName(name: string): string {
  return name.trim().toLowerCase().replace(/[-_.]+/g, '-');
}
