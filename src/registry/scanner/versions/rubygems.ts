/**
 * RubyGems `Gem::Version` ordering: segments are runs of digits (numbers) or letters (strings);
 * any letter makes a pre-release, which sorts before the release; trailing zeros are dropped from
 * the numeric part and from the pre-release part ("canonical segments"); a string segment is lower
 * than a number; strings compare byte-wise. A hyphen before a digit means `.pre.` (`1.0.0-1` is a
 * pre-release of 1.0.0), before a letter it is a dot (`1.0.0-beta.1 == 1.0.0.beta.1`), and a
 * legacy `.pre.` directly before a letter label is ignored (`1.0.0.pre.beta.1 == 1.0.0.beta.1`).
 * An empty version is "0".
 */

type Segment = bigint | string;

const VERSION_RE = /^[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export function isValidGemVersion(v: string): boolean {
  const s = v.trim();
  return s === '' || VERSION_RE.test(s);
}

function segmentsOf(input: string): Segment[] {
  let s = input.trim();
  if (s === '') s = '0';
  s = s.replace(/-(?=[0-9])/g, '.pre.').replace(/-/g, '.');
  const out: Segment[] = [];
  for (const m of s.matchAll(/[0-9]+|[a-zA-Z]+/g)) {
    const t = m[0];
    out.push(/^[0-9]/.test(t) ? BigInt(t) : t);
  }
  // Legacy ".pre." in front of a letter label compares like the label alone.
  return out.filter((seg, i) => !(seg === 'pre' && typeof out[i + 1] === 'string'));
}

function dropTrailingZeros(s: Segment[]): Segment[] {
  let n = s.length;
  while (n > 0 && s[n - 1] === 0n) n--;
  return s.slice(0, n);
}

export function canonicalGemSegments(input: string): Segment[] {
  const segs = segmentsOf(input);
  const firstString = segs.findIndex((x) => typeof x === 'string');
  const numeric = firstString === -1 ? segs : segs.slice(0, firstString);
  const rest = firstString === -1 ? [] : segs.slice(firstString);
  return [...dropTrailingZeros(numeric), ...dropTrailingZeros(rest)];
}

export function compareGem(a: string, b: string): number {
  const l = canonicalGemSegments(a);
  const r = canonicalGemSegments(b);
  const n = Math.max(l.length, r.length);
  for (let i = 0; i < n; i++) {
    const x = l[i] ?? 0n;
    const y = r[i] ?? 0n;
    if (x === y) continue;
    if (typeof x === 'string' && typeof y === 'bigint') return -1;
    if (typeof x === 'bigint' && typeof y === 'string') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}
