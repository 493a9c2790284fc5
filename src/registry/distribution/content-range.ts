import { RegistryError } from '../../oci/errors.ts';
import type { ByteRange } from '../storage/ports.ts';

/**
 * Parses a chunk's `Content-Range` (`<start>-<end>`, inclusive, as the distribution spec uses it;
 * the RFC 9110 form `bytes <start>-<end>/<size>` is accepted too).
 * @throws RegistryError RANGE_INVALID when malformed
 */
export function parseChunkRange(header: string): ByteRange {
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) throw new RegistryError('RANGE_INVALID', `malformed Content-Range ${JSON.stringify(header.slice(0, 100))}; expected <start>-<end>`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw new RegistryError('RANGE_INVALID', `invalid Content-Range ${JSON.stringify(header.slice(0, 100))}`);
  }
  return { start, end };
}

/**
 * Parses a request `Range` header against a blob of `size` bytes. Returns undefined when the
 * header is absent or not a single byte range (RFC 9110 lets a server ignore it), 'unsatisfiable'
 * when no byte of it exists.
 */
export function parseRequestRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  // The range unit is case-insensitive (RFC 9110 §14.1).
  const match = /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || (match[2] !== '' && Number(match[2]) < start)) return 'unsatisfiable';
  return { start, end };
}

/** The `Range` header value reporting upload progress (`0-<last byte>`; `0-0` when empty, as distribution does). */
export function uploadProgressRange(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}
