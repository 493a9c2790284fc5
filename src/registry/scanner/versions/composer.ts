/**
 * Composer (Packagist) version ordering: Composer normalises versions (drops a leading `v`, maps
 * stability suffixes) and then orders them with PHP's `version_compare`. This implements
 * `version_compare`'s canonicalisation (`-`, `_`, `+` become `.`, a `.` is inserted at every
 * digit/non-digit transition) and its special forms: any other string < dev < alpha = a <
 * beta = b < RC = rc < (number) < pl = p. Comparing `1.0` with `1.0rc1`, the missing part of the
 * shorter version is taken as the number position ("#"), so `1.0rc1 < 1.0 < 1.0pl1`.
 */

function canonicalize(v: string): string[] {
  let s = v.trim().replace(/^v(?=[0-9])/i, '');
  s = s.replace(/[-_+]/g, '.');
  s = s.replace(/([0-9])(?=[^0-9.])/g, '$1.').replace(/([^0-9.])(?=[0-9])/g, '$1.');
  return s.split('.').filter((p) => p !== '');
}

const SPECIAL: Record<string, number> = { dev: 0, alpha: 1, a: 1, beta: 2, b: 2, rc: 3, '#': 4, pl: 5, p: 5 };

function specialOrder(form: string): number {
  const f = form.toLowerCase();
  // PHP matches special forms by prefix of the form name (e.g. "alpha1" never reaches here since
  // digits are split off); unknown strings rank below "dev".
  return SPECIAL[f] ?? -1;
}

function isNum(p: string): boolean {
  return /^[0-9]+$/.test(p);
}

function comparePart(a: string, b: string): number {
  const an = isNum(a);
  const bn = isNum(b);
  if (an && bn) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x === y ? 0 : x < y ? -1 : 1;
  }
  const x = an ? 4 : specialOrder(a);
  const y = bn ? 4 : specialOrder(b);
  return x === y ? 0 : x < y ? -1 : 1;
}

export function compareComposer(a: string, b: string): number {
  const pa = canonicalize(a);
  const pb = canonicalize(b);
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const c = comparePart(pa[i]!, pb[i]!);
    if (c !== 0) return c;
  }
  if (pa.length === pb.length) return 0;
  // The longer version's next part decides, compared with the number position "#".
  if (pa.length > pb.length) {
    const p = pa[n]!;
    return isNum(p) ? 1 : comparePart(p, '#');
  }
  const p = pb[n]!;
  return isNum(p) ? -1 : -comparePart(p, '#');
}
