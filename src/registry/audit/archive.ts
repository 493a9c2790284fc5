/**
 * Archive files: pruned records as gzip-compressed JSON Lines that stay verifiable.
 *
 * `audit-<firstSeq>-<lastSeq>.jsonl.gz` (sequence numbers zero-padded so names sort), lines:
 * 1. `{"kind":"archive","version":1,"firstSeq":..,"lastSeq":..,"prevHash":"..","createdAt":".."}`
 * 2. one line per record, exactly as `audit export` prints it (seq, time, actor, ..., prevHash, hash)
 * 3. `{"kind":"checkpoint",...}` for every checkpoint in the range; the last one signs `lastSeq`
 *    (pruning always stops at a checkpoint), so each file ends on a signed hash.
 *
 * Files are written to a temporary name, fsynced and renamed, so a crash never leaves half an
 * archive under the final name.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { type AuditRecord, type StoredRecord, presentRecord, storedFromPresented } from './record.ts';
import type { Checkpoint } from './store.ts';

export interface ArchiveHeader {
  kind: 'archive';
  version: 1;
  firstSeq: number;
  lastSeq: number;
  prevHash: string;
  createdAt: string;
}

export interface ArchivedCheckpoint {
  kind: 'checkpoint';
  id: number;
  seq: number;
  hash: string;
  at: number;
  keyId: string;
  signature: string;
}

export function archiveName(firstSeq: number, lastSeq: number): string {
  return `audit-${String(firstSeq).padStart(12, '0')}-${String(lastSeq).padStart(12, '0')}.jsonl.gz`;
}

export function checkpointToJson(c: Checkpoint): ArchivedCheckpoint {
  return { kind: 'checkpoint', id: c.id, seq: c.seq, hash: c.hash.toString('hex'), at: c.at, keyId: c.keyId, signature: c.signature.toString('base64') };
}

export function checkpointFromJson(c: ArchivedCheckpoint): Checkpoint {
  return { id: c.id, seq: c.seq, hash: Buffer.from(c.hash, 'hex'), at: c.at, keyId: c.keyId, signature: Buffer.from(c.signature, 'base64') };
}

/**
 * Writes an archive of the records `pages` yields (ascending, contiguous) and the checkpoints.
 * Returns the file path and the SHA-256 of its bytes.
 */
export async function writeArchive(
  dir: string,
  header: Omit<ArchiveHeader, 'kind' | 'version' | 'createdAt'>,
  pages: AsyncIterable<StoredRecord[]>,
  checkpoints: Checkpoint[],
): Promise<{ file: string; sha256: string; records: number }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, archiveName(header.firstSeq, header.lastSeq));
  const temporary = `${file}.tmp`;
  let records = 0;
  async function* lines() {
    yield `${JSON.stringify({ kind: 'archive', version: 1, ...header, createdAt: new Date().toISOString() })}\n`;
    for await (const page of pages) {
      yield page.map((r) => `${JSON.stringify(presentRecord(r))}\n`).join('');
      records += page.length;
    }
    for (const c of checkpoints) yield `${JSON.stringify(checkpointToJson(c))}\n`;
  }
  const hash = createHash('sha256');
  const gzip = createGzip();
  gzip.on('data', (chunk: Buffer) => hash.update(chunk));
  await pipeline(Readable.from(lines()), gzip, createWriteStream(temporary, { mode: 0o600 }));
  const handle = await open(temporary, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  return { file, sha256: hash.digest('hex'), records };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Removes temporaries a crash left behind (retention only: the verifier must not race a writer). */
export async function removeTemporaries(dir: string): Promise<void> {
  for (const name of (await names(dir)).filter((n) => n.endsWith('.jsonl.gz.tmp'))) await rm(join(dir, name), { force: true });
}

/** Archive files in `dir`, oldest first (absent directory: none). */
export async function listArchives(dir: string): Promise<string[]> {
  return (await names(dir))
    .filter((n) => /^audit-\d{12}-\d{12}\.jsonl\.gz$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

export type ArchiveLine = { kind: 'header'; header: ArchiveHeader } | { kind: 'record'; record: StoredRecord; presented: AuditRecord } | { kind: 'checkpoint'; checkpoint: Checkpoint };

/** Reads an archive line by line. @throws on a line that is not JSON (reported as tampering by the verifier). */
export async function* readArchive(file: string): AsyncGenerator<ArchiveLine> {
  const input = createReadStream(file).pipe(createGunzip());
  const reader = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  for await (const text of reader) {
    line++;
    if (text === '') continue;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`${basename(file)} line ${line}: not JSON`);
    }
    if (value.kind === 'archive') yield { kind: 'header', header: value as unknown as ArchiveHeader };
    else if (value.kind === 'checkpoint') yield { kind: 'checkpoint', checkpoint: checkpointFromJson(value as unknown as ArchivedCheckpoint) };
    else yield { kind: 'record', record: storedFromPresented(value as unknown as AuditRecord), presented: value as unknown as AuditRecord };
  }
}
