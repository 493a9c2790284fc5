/**
 * Alpine apk version ordering, with the semantics of apk-tools' version.c as ported by
 * knqyf263/go-apk-version (what Trivy uses): a token machine over digits, letters, `_suffix[N]`
 * (alpha < beta < pre < rc < (b) < nothing < cvs < svn < git < hg < p) and `-rN` revisions.
 * This is a re-implementation of that algorithm, including its reader quirks (a `-` consumes the
 * following character, unread after end-of-input is a no-op), because the vectors depend on them.
 */

const T_INVALID = -1;
const T_DIGIT_OR_ZERO = 0;
const T_DIGIT = 1;
const T_LETTER = 2;
const T_SUFFIX = 3;
const T_SUFFIX_NO = 4;
const T_REVISION_NO = 5;
const T_END = 6;

const PRE_SUFFIXES = ['alpha', 'beta', 'pre', 'rc', 'b'];
const POST_SUFFIXES = ['cvs', 'svn', 'git', 'hg', 'p'];

const EOF = -1;

class Reader {
  readonly s: string;
  pos = 0;
  /** Whether the last operation was a successful rune read (the only case in which unread works). */
  private canUnread = false;

  constructor(s: string) {
    this.s = s;
  }

  read(): number {
    if (this.pos >= this.s.length) {
      this.canUnread = false;
      return EOF;
    }
    const c = this.s.charCodeAt(this.pos++);
    this.canUnread = true;
    return c;
  }

  unread(): void {
    if (this.canUnread) {
      this.pos--;
      this.canUnread = false;
    }
  }

  peekIs(word: string): boolean {
    this.canUnread = false;
    return this.s.startsWith(word, this.pos);
  }

  atEnd(): boolean {
    this.canUnread = false;
    return this.pos >= this.s.length;
  }

  discard(n: number): void {
    this.canUnread = false;
    this.pos = Math.min(this.s.length, this.pos + n);
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isLower(c: number): boolean {
  return c >= 97 && c <= 122;
}

function nextToken(r: Reader, tokenType: number): number {
  let n = T_INVALID;
  let c = r.read();
  if (c === EOF) n = T_END;
  if ((tokenType === T_DIGIT || tokenType === T_DIGIT_OR_ZERO) && isLower(c)) {
    n = T_LETTER;
  } else if (tokenType === T_LETTER && isDigit(c)) {
    n = T_DIGIT;
  } else if (tokenType === T_SUFFIX && isDigit(c)) {
    n = T_SUFFIX_NO;
  } else if (c === 46 /* . */) {
    n = T_DIGIT_OR_ZERO;
  } else if (c === 95 /* _ */) {
    n = T_SUFFIX;
  } else if (c === 45 /* - */) {
    c = r.read();
    n = c === EOF ? T_INVALID : T_REVISION_NO;
  }
  if (n === T_END || n === T_LETTER || n === T_DIGIT || n === T_SUFFIX_NO) r.unread();
  if (n < tokenType) {
    if (n === T_DIGIT_OR_ZERO && tokenType === T_DIGIT) return n;
    if (n === T_SUFFIX && tokenType === T_SUFFIX_NO) return n;
    if (n === T_DIGIT && tokenType === T_LETTER) return n;
    return T_INVALID;
  }
  return n;
}

/** Reads one token of `tokenType`; returns its value and the type of the token that follows. */
function getToken(r: Reader, tokenType: number): [number, number] {
  let nt = T_INVALID;
  let value = 0;
  let c = r.read();
  let numeric = false;
  switch (tokenType) {
    case T_DIGIT_OR_ZERO:
      if (c === 48) {
        // Leading zeros get a special treatment: each one lowers the value.
        for (;;) {
          value -= 1;
          const d = r.read();
          if (d === EOF) break;
          if (d !== 48) {
            r.unread();
            break;
          }
        }
        nt = T_DIGIT;
        break;
      }
      numeric = true;
      break;
    case T_DIGIT:
    case T_SUFFIX_NO:
    case T_REVISION_NO:
      numeric = true;
      break;
    case T_LETTER:
      value = c;
      break;
    case T_SUFFIX: {
      r.unread();
      for (let i = 0; i < PRE_SUFFIXES.length; i++) {
        const s = PRE_SUFFIXES[i]!;
        if (r.peekIs(s)) {
          value = i - PRE_SUFFIXES.length;
          r.discard(s.length);
          break;
        }
      }
      if (value !== 0) break;
      value = -1;
      for (let i = 0; i < POST_SUFFIXES.length; i++) {
        const s = POST_SUFFIXES[i]!;
        if (r.peekIs(s)) {
          value = i;
          r.discard(s.length);
          break;
        }
      }
      if (value >= 0) break;
      return [-1, T_INVALID];
    }
    default:
      return [-1, T_INVALID];
  }
  if (numeric) {
    while (isDigit(c)) {
      // Keep within safe integers on absurd inputs; ordering of such numbers is then approximate.
      value = Math.min(value * 10 + (c - 48), Number.MAX_SAFE_INTEGER);
      c = r.read();
      if (c === EOF) break;
    }
    r.unread();
  }
  let next: number;
  if (r.atEnd()) next = T_END;
  else if (nt !== T_INVALID) next = nt;
  else next = nextToken(r, tokenType);
  return [value, next];
}

export function compareApk(a: string, b: string): number {
  const ra = new Reader(a);
  const rb = new Reader(b);
  let at = T_DIGIT;
  let bt = T_DIGIT;
  let av = 0;
  let bv = 0;
  while (at === bt && at !== T_END && at !== T_INVALID && av === bv) {
    [av, at] = getToken(ra, at);
    [bv, bt] = getToken(rb, bt);
  }
  if (av < bv) return -1;
  if (av > bv) return 1;
  if (at === bt) return 0;
  // Leading components equal: the longer version is greater unless what follows is a pre-release suffix.
  if (at === T_SUFFIX && getToken(ra, at)[0] < 0) return -1;
  if (bt === T_SUFFIX && getToken(rb, bt)[0] < 0) return 1;
  if (at > bt) return -1;
  if (at < bt) return 1;
  return 0;
}

export function isValidApkVersion(v: string): boolean {
  const r = new Reader(v);
  let t = T_DIGIT;
  while (t !== T_END && t !== T_INVALID) t = getToken(r, t)[1];
  return t === T_END;
}
