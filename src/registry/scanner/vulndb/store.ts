/**
 * Durable form of the vulnerability database: one gzip-compressed NDJSON snapshot under
 * `<dataDir>/vulndb/` — a header line (format, metadata) and one line per record with its source
 * and digest. Written to a temporary file, fsynced and renamed into place, so a crash leaves the
 * previous snapshot intact. NDJSON (not one JSON document) keeps loading streaming and within
 * V8's string limits for the full OSV corpus.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { VulnDatabase, type DatabaseMeta } from './database.ts';
import type { VulnRecord } from './osv.ts';

export const SNAPSHOT_FILE = 'vulndb.ndjson.gz';

export function snapshotPath(dataDir: string): string {
  return join(dataDir, 'vulndb', SNAPSHOT_FILE);
}

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

export async function saveDatabase(db: VulnDatabase, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const meta = db.meta;
  function* lines(): Generator<string> {
    yield `${JSON.stringify({ format: meta.format, meta })}\n`;
    for (const e of db.snapshotEntries()) yield `${JSON.stringify({ s: e.source, d: e.digest, r: e.record })}\n`;
  }
  try {
    await pipeline(Readable.from(lines()), createGzip({ level: 6 }), createWriteStream(tmp));
    const fh = await open(tmp, 'r');
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
    const dh = await open(dirname(file), 'r');
    await dh.sync().catch(() => undefined);
    await dh.close();
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Loads a snapshot; a missing file gives an empty database, a corrupt one a `SnapshotError`. */
export async function loadDatabase(file: string): Promise<VulnDatabase> {
  if (!(await stat(file).catch(() => undefined))) return new VulnDatabase();
  const input = createReadStream(file).pipe(createGunzip());
  const rl = createInterface({ input, crlfDelay: Infinity });
  let meta: DatabaseMeta | undefined;
  const entries: { record: VulnRecord; source: string; digest: string }[] = [];
  let lineNo = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      if (line.length === 0) continue;
      const value = JSON.parse(line) as { format?: number; meta?: DatabaseMeta; s?: string; d?: string; r?: VulnRecord };
      if (lineNo === 1) {
        if (value.format !== 1 || !value.meta) throw new SnapshotError(`unsupported snapshot format ${String(value.format)}`);
        meta = value.meta;
        continue;
      }
      if (typeof value.s !== 'string' || typeof value.d !== 'string' || typeof value.r?.id !== 'string') {
        throw new SnapshotError(`line ${lineNo}: malformed entry`);
      }
      entries.push({ source: value.s, digest: value.d, record: value.r });
    }
  } catch (err) {
    if (err instanceof SnapshotError) throw err;
    throw new SnapshotError(`corrupt snapshot ${file} at line ${lineNo}: ${(err as Error).message}`);
  } finally {
    input.destroy();
  }
  if (!meta) throw new SnapshotError(`empty snapshot ${file}`);
  return VulnDatabase.fromSnapshot(meta, entries);
}
