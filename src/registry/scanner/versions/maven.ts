/**
 * Maven version ordering: a re-implementation of Maven's `ComparableVersion` (maven-artifact,
 * current algorithm incl. MNG-5568, MNG-6964, MNG-7644 and the combination items "X1"), which is
 * what Maven, osv.dev and OSV `Maven` ranges mean by version order
 * (https://maven.apache.org/pom.html#version-order-specification).
 *
 * Items: numbers; qualifiers (alpha = a < beta = b < milestone = m < rc = cr < snapshot <
 * "" = ga = final = release < sp < other strings, case-insensitive); combinations of a qualifier and
 * a number (`rc1`, `X-1`); and sub-lists started by `-` or by a digit/letter transition. A hyphen is
 * less significant than a dot: `1.0.X2 < 1.0-X3 < 1.0.1`; `29.0-jre > 29.0` and `29.0-jre < 32.0.0-android`.
 */

const MAX_VERSION_LENGTH = 256;

type Item = NumberItem | StringItem | CombinationItem | ListItem;

interface NumberItem {
  kind: 'number';
  value: bigint;
}
interface StringItem {
  kind: 'string';
  value: string;
}
interface CombinationItem {
  kind: 'combination';
  stringPart: StringItem;
  digitPart: NumberItem;
}
interface ListItem {
  kind: 'list';
  items: Item[];
}

const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
const RELEASE_QUALIFIERS = new Set(['ga', 'final', 'release']);
const RELEASE_VERSION_INDEX = String(QUALIFIERS.indexOf(''));

function comparableQualifier(q: string): string {
  if (RELEASE_QUALIFIERS.has(q)) return RELEASE_VERSION_INDEX;
  const i = QUALIFIERS.indexOf(q);
  return i === -1 ? `${QUALIFIERS.length}-${q}` : String(i);
}

function strcmp(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

function numberItem(digits: string): NumberItem {
  const d = digits.replace(/[^0-9]/g, '');
  return { kind: 'number', value: d === '' ? 0n : BigInt(d) };
}

function stringItem(value: string, followedByDigit: boolean): StringItem {
  let v = value;
  if (followedByDigit && v.length === 1) {
    if (v === 'a') v = 'alpha';
    else if (v === 'b') v = 'beta';
    else if (v === 'm') v = 'milestone';
  }
  if (v === 'cr') v = 'rc';
  return { kind: 'string', value: v };
}

function combinationItem(value: string): CombinationItem {
  let index = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      index = i;
      break;
    }
  }
  return { kind: 'combination', stringPart: stringItem(value.slice(0, index), true), digitPart: numberItem(value.slice(index)) };
}

function isNull(item: Item): boolean {
  switch (item.kind) {
    case 'number':
      return item.value === 0n;
    case 'string':
      return item.value === '';
    case 'combination':
      return false;
    case 'list':
      return item.items.length === 0;
  }
}

function compareItem(a: Item, b: Item | null): number {
  switch (a.kind) {
    case 'number':
      if (b === null) return a.value === 0n ? 0 : 1;
      if (b.kind === 'number') return a.value === b.value ? 0 : a.value < b.value ? -1 : 1;
      return 1; // 1.1 > 1-sp, 1.1 > 1-1, number > qualifier
    case 'string':
      if (b === null) return strcmp(comparableQualifier(a.value), RELEASE_VERSION_INDEX);
      switch (b.kind) {
        case 'number':
          return -1;
        case 'string':
          return strcmp(comparableQualifier(a.value), comparableQualifier(b.value));
        case 'combination': {
          const r = compareItem(a, b.stringPart);
          if (r === 0) return compareItem(a, null) === 0 ? -compareItem(b.digitPart, null) : -1;
          return r;
        }
        case 'list':
          return -compareItem(b, a);
      }
      break;
    case 'combination':
      if (b === null) {
        const r = compareItem(a.stringPart, null);
        return r === 0 ? compareItem(a.digitPart, null) : r;
      }
      switch (b.kind) {
        case 'number':
          return -1;
        case 'string': {
          const r = compareItem(a.stringPart, b);
          if (r === 0) return compareItem(a.stringPart, null) === 0 ? compareItem(a.digitPart, null) : 1;
          return r;
        }
        case 'list':
          return -compareItem(b, a);
        case 'combination': {
          const r = compareItem(a.stringPart, b.stringPart);
          return r === 0 ? compareItem(a.digitPart, b.digitPart) : r;
        }
      }
      break;
    case 'list':
      if (b === null) {
        for (const i of a.items) {
          const r = compareItem(i, null);
          if (r !== 0) return r;
        }
        return 0;
      }
      switch (b.kind) {
        case 'number':
          return -1; // 1-1 < 1.0.x
        case 'string':
        case 'combination': {
          let r = a.items.length === 0 ? -compareItem(b, null) : compareItem(a.items[0]!, b);
          for (let i = 1; r === 0 && i < a.items.length; i++) r = compareItem(a.items[i]!, null);
          return r;
        }
        case 'list': {
          const n = Math.max(a.items.length, b.items.length);
          for (let i = 0; i < n; i++) {
            const l = a.items[i] ?? null;
            const r = b.items[i] ?? null;
            const res = l === null ? (r === null ? 0 : -compareItem(r, l)) : compareItem(l, r);
            if (res !== 0) return res;
          }
          return 0;
        }
      }
  }
  return 0;
}

function normalize(list: ListItem): void {
  const items = list.items;
  for (let i = items.length - 1; i >= 0; i--) {
    const last = items[i]!;
    if (!isNull(last)) continue;
    const next = items[i + 1];
    if (i === items.length - 1 || next?.kind === 'string') {
      items.splice(i, 1);
    } else if (next?.kind === 'list') {
      const first = next.items[0];
      if (first !== undefined && (first.kind === 'combination' || first.kind === 'string')) items.splice(i, 1);
    }
  }
  const only = items[0];
  if (items.length === 1 && only !== undefined && only.kind === 'list') {
    const inner = only.items;
    items.length = 0;
    items.push(...inner);
  }
}

function parseItem(isCombination: boolean, isDigit: boolean, buf: string): Item {
  if (isCombination) return combinationItem(buf.replaceAll('-', ''));
  if (isDigit) return numberItem(buf);
  return stringItem(buf, false);
}

function isAsciiDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function parseMaven(input: string): ListItem {
  const version = input.slice(0, MAX_VERSION_LENGTH).toLowerCase();
  const root: ListItem = { kind: 'list', items: [] };
  let list = root;
  const stack: ListItem[] = [root];
  let isDigit = false;
  let isCombination = false;
  let startIndex = 0;
  const push = (): void => {
    const l: ListItem = { kind: 'list', items: [] };
    list.items.push(l);
    list = l;
    stack.push(l);
  };
  for (let i = 0; i < version.length; i++) {
    const c = version.charCodeAt(i);
    if (c === 46 /* . */) {
      if (i === startIndex) list.items.push({ kind: 'number', value: 0n });
      else list.items.push(parseItem(isCombination, isDigit, version.slice(startIndex, i)));
      isCombination = false;
      startIndex = i + 1;
    } else if (c === 45 /* - */) {
      if (i === startIndex) {
        list.items.push({ kind: 'number', value: 0n });
      } else {
        // X-1 is treated as X1
        if (!isDigit && i !== version.length - 1 && isAsciiDigit(version.charCodeAt(i + 1))) {
          isCombination = true;
          continue;
        }
        list.items.push(parseItem(isCombination, isDigit, version.slice(startIndex, i)));
      }
      startIndex = i + 1;
      if (list.items.length > 0) push();
      isCombination = false;
    } else if (isAsciiDigit(c)) {
      if (!isDigit && i > startIndex) {
        // X1
        isCombination = true;
        if (list.items.length > 0) push();
      }
      isDigit = true;
    } else {
      if (isDigit && i > startIndex) {
        list.items.push(parseItem(isCombination, true, version.slice(startIndex, i)));
        startIndex = i;
        push();
        isCombination = false;
      }
      isDigit = false;
    }
  }
  if (version.length > startIndex) {
    // 1.0.0.X1 < 1.0.0-X2: treat .X as -X for any string qualifier X
    if (!isDigit && list.items.length > 0) push();
    list.items.push(parseItem(isCombination, isDigit, version.slice(startIndex)));
  }
  while (stack.length > 0) normalize(stack.pop()!);
  return root;
}

/** The canonical form Maven prints for a version (useful in tests and diagnostics). */
export function canonicalMaven(input: string): string {
  const show = (item: Item): string => {
    switch (item.kind) {
      case 'number':
        return item.value.toString();
      case 'string':
        return item.value;
      case 'combination':
        return item.stringPart.value + item.digitPart.value.toString();
      case 'list': {
        let out = '';
        for (const i of item.items) {
          if (out.length > 0) out += i.kind === 'list' ? '-' : '.';
          out += show(i);
        }
        return out;
      }
    }
  };
  return show(parseMaven(input));
}

export function compareMaven(a: string, b: string): number {
  return Math.sign(compareItem(parseMaven(a), parseMaven(b)));
}
