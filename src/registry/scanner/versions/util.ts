/** Small shared pieces of the version comparators. */

export function cmpBigInt(a: bigint, b: bigint): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

export function cmpString(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Element-wise comparison; when one list is a prefix of the other, the shorter one is lower. */
export function compareLists<T>(a: readonly T[], b: readonly T[], cmp: (x: T, y: T) => number): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = cmp(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

const NUMERIC = /^[0-9]+$/;

/** SemVer identifier rule: numeric identifiers compare numerically and below alphanumeric ones. */
export function compareIdentifiers(a: string, b: string): number {
  const an = NUMERIC.test(a);
  const bn = NUMERIC.test(b);
  if (an && bn) return cmpBigInt(BigInt(a), BigInt(b));
  if (an) return -1;
  if (bn) return 1;
  return cmpString(a, b);
}
