/**
 * Zips for tests (stored or deflated entries, no zip64), so import tests can build real archives —
 * and deliberately broken ones — without an external tool; the writer is `vulndb push`'s own.
 */
import { buildZip as writeZip } from '../../src/registry/scanner/vulndb/artifact.ts';

export interface ZipEntryInput {
  name: string;
  data: Buffer | string;
  deflate?: boolean;
  /** Lie about the uncompressed size in both headers (hostile-archive tests). */
  declaredSize?: number;
}

export function buildZip(entries: ZipEntryInput[]): Buffer {
  return writeZip(
    entries.map((e) => ({
      name: e.name,
      bytes: Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data),
      ...(e.deflate ? {} : { store: true }),
      ...(e.declaredSize !== undefined ? { declaredSize: e.declaredSize } : {}),
    })),
  );
}
