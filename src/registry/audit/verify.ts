/**
 * Verification of the audit chain: archives (oldest first), then the stored records, against
 * the signed checkpoints.
 *
 * What it proves: every record's hash matches its content and its predecessor's hash; the
 * sequence has no gaps; every checkpoint is signed by a trusted key and matches the record it
 * names; and the archives and the stored records join up. It names the first record that breaks
 * this, and says how: altered (content no longer matches its hash), deleted (a gap), inserted
 * (a record its successor does not chain to), reordered (a record chaining after the next one),
 * or rewritten (self-consistent but contradicting a signed checkpoint).
 *
 * What it cannot prove: records after the last checkpoint are chained but unsigned, so someone
 * able to write the database could rewrite or cut that tail undetected; the report says how many
 * such records there are. Checkpoints are frequent and signed at shutdown to keep it short, and
 * forwarding copies records off the host.
 */
import { basename } from 'node:path';
import { listArchives, readArchive, sha256File } from './archive.ts';
import { type TrustedKeys, checkpointPayload, verifyCheckpointSignature } from './keys.ts';
import { GENESIS_HASH, type StoredRecord, chainHash } from './record.ts';
import type { Checkpoint, SqlAuditStore } from './store.ts';

export type FailureKind = 'altered' | 'deleted' | 'inserted' | 'reordered' | 'broken-link' | 'rewritten' | 'truncated' | 'checkpoint' | 'archive';

export interface VerifyFailure {
  kind: FailureKind;
  /** The first record concerned (absent for a checkpoint or archive-level failure). */
  seq?: number;
  /** Where: `database` or an archive file name. */
  where: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Records checked in the database. */
  records: number;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  archives: { files: number; records: number };
  lastCheckpoint: Pick<Checkpoint, 'id' | 'seq' | 'at' | 'keyId'> | undefined;
  /** Records after the last checkpoint: chained, not yet signed. */
  unsigned: number;
  notes: string[];
  failure?: VerifyFailure;
}

/** Walks one contiguous run of records, one record of lookahead for the diagnosis. */
class ChainWalker {
  readonly #where: string;
  readonly #checkpoints: Map<number, Checkpoint>;
  #expectedSeq: number;
  #prevHash: Buffer;
  #prevPrevHash: Buffer | undefined;
  #pending: StoredRecord | undefined;
  #lastCheckpointSeq: number;
  count = 0;
  lastSeq: number;
  markers: StoredRecord[] = [];

  constructor(where: string, start: { seq: number; prevHash: Buffer }, checkpoints: Map<number, Checkpoint>) {
    this.#where = where;
    this.#expectedSeq = start.seq;
    this.#prevHash = start.prevHash;
    this.#checkpoints = checkpoints;
    this.lastSeq = start.seq - 1;
    this.#lastCheckpointSeq = start.seq - 1;
  }

  get lastHash(): Buffer {
    return this.#prevHash;
  }

  push(record: StoredRecord): VerifyFailure | undefined {
    const pending = this.#pending;
    this.#pending = record;
    return pending ? this.#check(pending, record) : undefined;
  }

  end(): VerifyFailure | undefined {
    const pending = this.#pending;
    this.#pending = undefined;
    return pending ? this.#check(pending, undefined) : undefined;
  }

  #fail(kind: FailureKind, seq: number, message: string): VerifyFailure {
    return { kind, seq, where: this.#where, message };
  }

  #check(r: StoredRecord, next: StoredRecord | undefined): VerifyFailure | undefined {
    const expected = this.#expectedSeq;
    if (r.seq > expected) {
      return this.#fail('deleted', expected, r.seq - expected === 1 ? `record ${expected} is missing (deleted)` : `records ${expected} to ${r.seq - 1} are missing (deleted)`);
    }
    if (r.seq < expected) return this.#fail('reordered', r.seq, `record ${r.seq} appears after record ${expected - 1} (out of sequence)`);
    const selfOk = chainHash(r.prevHash, r).equals(r.hash);
    const linkOk = r.prevHash.equals(this.#prevHash);
    if (!selfOk || !linkOk) {
      if (next && r.prevHash.equals(next.hash)) return this.#fail('reordered', r.seq, `record ${r.seq} is out of order: it chains after record ${next.seq}`);
      if (next && next.prevHash.equals(this.#prevHash)) return this.#fail('inserted', r.seq, `record ${r.seq} was inserted: record ${next.seq} chains to record ${r.seq - 1}`);
      if (!linkOk && this.#prevPrevHash && r.prevHash.equals(this.#prevPrevHash)) {
        return this.#fail('inserted', r.seq - 1, `record ${r.seq - 1} was inserted: record ${r.seq} chains to record ${r.seq - 2}`);
      }
      if (!selfOk) return this.#fail('altered', r.seq, `record ${r.seq} was altered: its content no longer matches its hash`);
      return this.#fail(
        'broken-link',
        r.seq,
        `record ${r.seq} does not chain to record ${r.seq - 1}: record ${r.seq - 1} was altered (its hash recomputed) or records between them were deleted`,
      );
    }
    const checkpoint = this.#checkpoints.get(r.seq);
    if (checkpoint && !checkpoint.hash.equals(r.hash)) {
      return this.#fail(
        'rewritten',
        this.#lastCheckpointSeq + 1,
        `record ${r.seq} contradicts signed checkpoint #${checkpoint.id}: records ${this.#lastCheckpointSeq + 1} to ${r.seq} were rewritten`,
      );
    }
    if (checkpoint) this.#lastCheckpointSeq = r.seq;
    if (r.action === 'audit.archived') this.markers.push(r);
    this.#prevPrevHash = this.#prevHash;
    this.#prevHash = r.hash;
    this.#expectedSeq = r.seq + 1;
    this.lastSeq = r.seq;
    this.count++;
    return undefined;
  }
}

function checkCheckpoints(checkpoints: Checkpoint[], keys: TrustedKeys, where: string): VerifyFailure | undefined {
  let previous: Checkpoint | undefined;
  for (const c of checkpoints) {
    const expectedId = previous ? previous.id + 1 : c.id;
    if (c.id !== expectedId) return { kind: 'checkpoint', where, message: `checkpoint #${expectedId} is missing (deleted)` };
    if (previous && (c.seq < previous.seq || c.at < previous.at)) return { kind: 'checkpoint', where, message: `checkpoint #${c.id} goes back in sequence or time` };
    const key = keys.get(c.keyId);
    if (!key) return { kind: 'checkpoint', where, message: `checkpoint #${c.id} is signed by key ${c.keyId}, which is not trusted (pass its public key with --public-key)` };
    if (!verifyCheckpointSignature(key, checkpointPayload(c), c.signature)) return { kind: 'checkpoint', where, message: `checkpoint #${c.id} has an invalid signature (altered)` };
    previous = c;
  }
  if (checkpoints[0] && checkpoints[0].id !== 1 && where === 'database') return { kind: 'checkpoint', where, message: `checkpoints #1 to #${checkpoints[0].id - 1} are missing (deleted)` };
  return undefined;
}

interface MarkerDetails {
  throughSeq: number;
  throughHash: string;
  file: string;
  sha256: string;
}

function markerDetails(r: StoredRecord): MarkerDetails | undefined {
  try {
    const d = JSON.parse(r.details ?? 'null') as Partial<MarkerDetails> | null;
    if (d && typeof d.throughSeq === 'number' && typeof d.throughHash === 'string' && typeof d.file === 'string' && typeof d.sha256 === 'string') return d as MarkerDetails;
  } catch {
    // reported below as a bad marker
  }
  return undefined;
}

/**
 * Verifies the audit log. `archiveDir` adds the archive files (when absent or empty, archived
 * records are reported as not checked).
 */
export async function verifyAuditLog(store: SqlAuditStore, options: { keys: TrustedKeys; archiveDir?: string; pageSize?: number }): Promise<VerifyReport> {
  const pageSize = options.pageSize ?? 5000;
  const report: VerifyReport = { ok: false, records: 0, firstSeq: undefined, lastSeq: undefined, archives: { files: 0, records: 0 }, lastCheckpoint: undefined, unsigned: 0, notes: [] };
  const fail = (failure: VerifyFailure) => ({ ...report, ok: false, failure });
  const checkpoints = await store.checkpoints();
  const checkpointFailure = checkCheckpoints(checkpoints, options.keys, 'database');
  if (checkpointFailure) return fail(checkpointFailure);
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));
  const last = checkpoints.at(-1);
  if (last) report.lastCheckpoint = { id: last.id, seq: last.seq, at: last.at, keyId: last.keyId };

  // Where the stored chain begins: after the newest archive marker, else at the genesis.
  const marker = await store.lastArchiveMarker();
  let start = { seq: 1, prevHash: GENESIS_HASH };
  if (marker) {
    const d = markerDetails(marker);
    if (!d) return fail({ kind: 'altered', seq: marker.seq, where: 'database', message: `record ${marker.seq} (audit.archived) has unreadable details` });
    start = { seq: d.throughSeq + 1, prevHash: Buffer.from(d.throughHash, 'hex') };
    const boundary = bySeq.get(d.throughSeq);
    if (!boundary || !boundary.hash.equals(start.prevHash)) {
      return fail({ kind: 'archive', where: 'database', message: `the archive boundary at record ${d.throughSeq} (record ${marker.seq}) matches no signed checkpoint` });
    }
  }

  // Archives, oldest first, each a contiguous run ending on a signed checkpoint.
  const markers = new Map<string, MarkerDetails>();
  const files = options.archiveDir ? await listArchives(options.archiveDir) : [];
  let previous: { seq: number; hash: Buffer } | undefined;
  const fileHashes = new Map<string, string>();
  for (const file of files) {
    const name = basename(file);
    try {
      let header: { firstSeq: number; lastSeq: number; prevHash: string } | undefined;
      const archived: Checkpoint[] = [];
      for await (const line of readArchive(file)) {
        if (line.kind === 'header') header = line.header;
        else if (line.kind === 'checkpoint') archived.push(line.checkpoint);
      }
      if (!header) return fail({ kind: 'archive', where: name, message: `${name} has no header line` });
      const archivedFailure = checkCheckpoints(archived, options.keys, name);
      if (archivedFailure) return fail(archivedFailure);
      for (const c of archived) {
        const stored = checkpoints.find((s) => s.id === c.id);
        if (stored && !(stored.hash.equals(c.hash) && stored.seq === c.seq)) return fail({ kind: 'archive', where: name, message: `${name}: checkpoint #${c.id} differs from the stored one` });
      }
      const headerHash = Buffer.from(header.prevHash, 'hex');
      if (previous && (header.firstSeq !== previous.seq + 1 || !headerHash.equals(previous.hash))) {
        return fail({ kind: 'archive', seq: previous.seq + 1, where: name, message: `${name} does not continue the previous archive (expected record ${previous.seq + 1})` });
      }
      if (!previous && header.firstSeq !== 1) report.notes.push(`archives begin at record ${header.firstSeq}; older archive files are not present`);
      const walker = new ChainWalker(name, { seq: header.firstSeq, prevHash: headerHash }, new Map(archived.map((c) => [c.seq, c])));
      for await (const line of readArchive(file)) {
        if (line.kind !== 'record') continue;
        const failure = walker.push(line.record);
        if (failure) return fail(failure);
      }
      const endFailure = walker.end();
      if (endFailure) return fail(endFailure);
      if (walker.lastSeq !== header.lastSeq) return fail({ kind: 'deleted', seq: walker.lastSeq + 1, where: name, message: `${name}: records ${walker.lastSeq + 1} to ${header.lastSeq} are missing` });
      const closing = archived.find((c) => c.seq === header.lastSeq);
      if (!closing) return fail({ kind: 'archive', where: name, message: `${name} does not end on a signed checkpoint` });
      for (const m of walker.markers) {
        const d = markerDetails(m);
        if (d) markers.set(d.file, d);
      }
      fileHashes.set(name, await sha256File(file));
      previous = { seq: walker.lastSeq, hash: walker.lastHash };
      report.archives.files++;
      report.archives.records += walker.count;
    } catch (error) {
      return fail({ kind: 'archive', where: name, message: `${name} cannot be read: ${(error as Error).message}` });
    }
  }
  if (previous && (previous.seq !== start.seq - 1 || !previous.hash.equals(start.prevHash))) {
    return fail({ kind: 'archive', seq: previous.seq + 1, where: 'database', message: `the newest archive ends at record ${previous.seq} but the database continues from record ${start.seq - 1}` });
  }
  if (start.seq > 1 && files.length === 0) report.notes.push(`records 1 to ${start.seq - 1} are archived and were not checked (no archive files${options.archiveDir ? ` in ${options.archiveDir}` : ''})`);

  // The stored records.
  const walker = new ChainWalker('database', start, bySeq);
  for (let after = start.seq - 1; ; ) {
    const page = await store.recordsAfter(after, pageSize);
    for (const record of page) {
      const failure = walker.push(record);
      if (failure) return fail(failure);
    }
    if (page.length < pageSize) break;
    after = page.at(-1)!.seq;
  }
  const endFailure = walker.end();
  if (endFailure) return fail(endFailure);
  for (const m of walker.markers) {
    const d = markerDetails(m);
    if (d) markers.set(d.file, d);
  }
  report.records = walker.count;
  report.firstSeq = walker.count > 0 ? start.seq : undefined;
  report.lastSeq = walker.count > 0 ? walker.lastSeq : undefined;
  if (last && last.seq > walker.lastSeq) {
    return fail({
      kind: 'truncated',
      seq: walker.lastSeq + 1,
      where: 'database',
      message: `records ${walker.lastSeq + 1} to ${last.seq} are missing: signed checkpoint #${last.id} covers record ${last.seq} but the log ends at record ${walker.lastSeq}`,
    });
  }
  report.unsigned = walker.lastSeq - (last?.seq ?? 0);
  for (const [name, sha] of fileHashes) {
    const d = markers.get(name);
    if (d && d.sha256 !== sha) return fail({ kind: 'archive', where: name, message: `${name} differs from the archive recorded in the chain (sha256 ${sha} != ${d.sha256})` });
  }
  return { ...report, ok: true };
}
