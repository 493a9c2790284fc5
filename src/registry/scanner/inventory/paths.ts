/**
 * Path handling for layer entries: normalisation of tar names into image-root-relative paths
 * (no leading slash, no `.`/`..`, no empty components) and symlink resolution that can never
 * leave the image root (`..` at the root stays at the root, absolute targets start at the root,
 * exactly as a chroot would see them).
 */
import { LayerError } from './errors.ts';
import type { WalkLimits } from './limits.ts';

// Anything that needs the slow path: leading slash, `.`/`..` components, `//`, trailing slash, NUL.
const NEEDS_WORK = /(?:^|\/)\.{1,2}(?:\/|$)|\/\/|^\/|\/$|\0/;

/**
 * Normalises a tar entry name to an image-root-relative path ('' for the root itself).
 * Throws {@link LayerError} `unsafe-path` for `..` components, NUL bytes, or paths beyond the limits.
 */
export function normalizeEntryPath(raw: string, limits: Pick<WalkLimits, 'maxPathBytes' | 'maxPathDepth'>): string {
  let path = raw;
  if (path.length > limits.maxPathBytes || (path.length * 3 > limits.maxPathBytes && Buffer.byteLength(path) > limits.maxPathBytes)) {
    throw new LayerError('unsafe-path', `entry path longer than ${limits.maxPathBytes} bytes`, { entryPath: raw.slice(0, 200) });
  }
  if (NEEDS_WORK.test(path)) {
    if (path.includes('\0')) throw new LayerError('unsafe-path', 'entry path contains a NUL byte', { entryPath: raw.replaceAll('\0', '\\0') });
    const out: string[] = [];
    for (const c of path.split('/')) {
      if (c === '' || c === '.') continue;
      if (c === '..') throw new LayerError('unsafe-path', `entry path contains '..': ${raw}`, { entryPath: raw });
      out.push(c);
    }
    path = out.join('/');
  }
  let depth = 1;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    if (++depth > limits.maxPathDepth) {
      throw new LayerError('unsafe-path', `entry path deeper than ${limits.maxPathDepth} components`, { entryPath: raw.slice(0, 200) });
    }
  }
  return path;
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i === -1 ? '' : path.slice(0, i);
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** Proper ancestors of a path, nearest last: `a/b/c` -> `a`, `a/b`. */
export function* ancestors(path: string): Generator<string> {
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) yield path.slice(0, i);
}

export type ResolveResult =
  | { ok: true; path: string; hops: number }
  | { ok: false; reason: 'loop'; path: string };

/**
 * Resolves `path` (image-root-relative) through the symlinks `lookup` knows, never leaving the root.
 * `followLast` = false resolves only the parent directories (lstat semantics).
 */
export function resolveInRoot(
  path: string,
  lookup: (p: string) => string | undefined,
  maxHops: number,
  followLast = true,
): ResolveResult {
  let pending = path.split('/');
  let i = 0;
  const out: string[] = [];
  let hops = 0;
  while (i < pending.length) {
    const c = pending[i++]!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      out.pop(); // clamped at the root, like a chroot
      continue;
    }
    out.push(c);
    const isLast = i >= pending.length;
    if (isLast && !followLast) break;
    const target = lookup(out.join('/'));
    if (target === undefined) continue;
    if (++hops > maxHops) return { ok: false, reason: 'loop', path };
    out.pop();
    if (target.startsWith('/')) out.length = 0;
    pending = [...target.split('/'), ...pending.slice(i)];
    i = 0;
  }
  return { ok: true, path: out.join('/'), hops };
}
