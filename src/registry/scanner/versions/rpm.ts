/**
 * RPM version ordering: `rpmvercmp` from rpm's lib/rpmvercmp.c (alphanumeric segments, numeric
 * segments compared as numbers and greater than alphabetic ones, `~` sorts before anything even the
 * end, `^` sorts after the end but before any other segment), applied to `[epoch:]version[-release]`.
 */

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isAlnum(c: number): boolean {
  return isDigit(c) || isAlpha(c);
}

const TILDE = 126;
const CARET = 94;

/** rpmvercmp on one field (version or release). */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const la = a.length;
  const lb = b.length;
  while (i < la || j < lb) {
    while (i < la && !isAlnum(a.charCodeAt(i)) && a.charCodeAt(i) !== TILDE && a.charCodeAt(i) !== CARET) i++;
    while (j < lb && !isAlnum(b.charCodeAt(j)) && b.charCodeAt(j) !== TILDE && b.charCodeAt(j) !== CARET) j++;
    const ca = i < la ? a.charCodeAt(i) : 0;
    const cb = j < lb ? b.charCodeAt(j) : 0;
    if (ca === TILDE || cb === TILDE) {
      if (ca !== TILDE) return 1;
      if (cb !== TILDE) return -1;
      i++;
      j++;
      continue;
    }
    if (ca === CARET || cb === CARET) {
      if (i >= la) return -1;
      if (j >= lb) return 1;
      if (ca !== CARET) return 1;
      if (cb !== CARET) return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < la && j < lb)) break;
    let ei = i;
    let ej = j;
    let isNum: boolean;
    if (isDigit(a.charCodeAt(i))) {
      while (ei < la && isDigit(a.charCodeAt(ei))) ei++;
      while (ej < lb && isDigit(b.charCodeAt(ej))) ej++;
      isNum = true;
    } else {
      while (ei < la && isAlpha(a.charCodeAt(ei))) ei++;
      while (ej < lb && isAlpha(b.charCodeAt(ej))) ej++;
      isNum = false;
    }
    // Segments of different kinds: a numeric segment is newer than an alphabetic one.
    if (ei === i) return -1; // cannot happen (a[i] is alnum), kept as rpm has it
    if (ej === j) return isNum ? 1 : -1;
    let sa = a.slice(i, ei);
    let sb = b.slice(j, ej);
    if (isNum) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= la && j >= lb) return 0;
  return i >= la ? -1 : 1;
}

export interface RpmEvr {
  epoch: number;
  version: string;
  release?: string;
}

export function parseRpmEvr(input: string): RpmEvr {
  let s = input.trim();
  let epoch = 0;
  const colon = s.indexOf(':');
  if (colon >= 0 && /^[0-9]+$/.test(s.slice(0, colon))) {
    epoch = Number.parseInt(s.slice(0, colon), 10);
    s = s.slice(colon + 1);
  }
  const dash = s.lastIndexOf('-');
  if (dash >= 0) return { epoch, version: s.slice(0, dash), release: s.slice(dash + 1) };
  return { epoch, version: s };
}

/** Compares `[epoch:]version[-release]`; like rpm, the release is only compared when both sides have one. */
export function compareRpm(a: string, b: string): number {
  const va = parseRpmEvr(a);
  const vb = parseRpmEvr(b);
  if (va.epoch !== vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  const v = rpmvercmp(va.version, vb.version);
  if (v !== 0) return v;
  if (va.release === undefined || vb.release === undefined) return 0;
  return rpmvercmp(va.release, vb.release);
}
