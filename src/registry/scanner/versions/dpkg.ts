/**
 * Debian package version ordering (deb-version(7), Debian Policy 5.6.12), as dpkg's
 * `--compare-versions` does it: `[epoch:]upstream[-revision]`, compared epoch first (numerically),
 * then upstream and revision with the "verrevcmp" rule: alternating non-digit and digit runs;
 * in non-digit runs letters sort before non-letters and `~` before everything, even the end.
 */

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

export function parseDpkgVersion(input: string): DpkgVersion {
  const s = input.trim();
  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const e = s.slice(0, colon);
    // A non-numeric epoch is invalid for dpkg; treat it as 0 rather than crash on hostile input.
    epoch = /^[0-9]+$/.test(e) ? Number.parseInt(e, 10) : 0;
    rest = s.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  if (dash >= 0) return { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
  return { epoch, upstream: rest, revision: '' };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** dpkg's `order()`: weight of one character in a non-digit run; 0 stands for "end of string". */
function order(c: number): number {
  if (Number.isNaN(c)) return 0; // past the end
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126 /* ~ */) return -1;
  return c + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

export function compareDpkg(a: string, b: string): number {
  const va = parseDpkgVersion(a);
  const vb = parseDpkgVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  const u = verrevcmp(va.upstream, vb.upstream);
  if (u !== 0) return Math.sign(u);
  return Math.sign(verrevcmp(va.revision, vb.revision));
}

/** A version dpkg would accept: numeric epoch, upstream starting with a digit, allowed characters only. */
export function isValidDpkgVersion(v: string): boolean {
  return /^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$/.test(v.trim());
}
