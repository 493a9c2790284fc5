import { randomUUID, type Hash } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type DigestAlgorithm, createDigester, parseDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import { type BlobStore, type ByteRange, type MetadataStore, NotFoundError, OffsetMismatchError, SizeLimitError, type UploadSession } from '../storage/ports.ts';
import { bodyBuffers } from './body-buffers.ts';
import { uploadProgressRange } from './content-range.ts';

export interface UploadOptions {
  /** Largest blob accepted; 0 = unlimited. */
  blobMaxBytes: number;
  /** GC protection given to a freshly committed blob so the manifest push that follows can reference it. */
  blobGraceMs: number;
}

interface RunningHash {
  hash: Hash;
  algorithm: DigestAlgorithm;
  /** Bytes absorbed; valid only while it equals the stored upload size. */
  offset: number;
}

/**
 * Blob upload sessions: start, chunk, status, commit, cancel, mount. Session state lives in the
 * metadata store and partial bytes in the blob store, so a session survives a restart. The digest
 * is computed while the bytes stream through; after a restart (or on another replica) it is
 * recomputed from the stored partial data at commit.
 */
export class UploadService {
  readonly #blobs: BlobStore;
  readonly #meta: MetadataStore;
  readonly #events: EventBus;
  readonly #options: UploadOptions;
  /** In-process digest state per session (an optimisation, never the source of truth). */
  readonly #hashes = new Map<string, RunningHash>();
  /** Sessions with a chunk in flight in this process: a second concurrent chunk is refused. */
  readonly #busy = new Set<string>();

  constructor(deps: { blobs: BlobStore; meta: MetadataStore; events: EventBus }, options: UploadOptions) {
    this.#blobs = deps.blobs;
    this.#meta = deps.meta;
    this.#events = deps.events;
    this.#options = options;
  }

  /** Starts a session. */
  async start(repository: string): Promise<UploadSession> {
    const now = new Date();
    const session: UploadSession = { id: randomUUID(), repository, size: 0, startedAt: now, updatedAt: now };
    // The partial data is created by the first chunk (one file creation less per blob).
    await this.#meta.createUpload(session);
    this.#hashes.set(session.id, { hash: createDigester('sha256'), algorithm: 'sha256', offset: 0 });
    return session;
  }

  /** Looks up a session of `repository`. @throws BLOB_UPLOAD_UNKNOWN */
  async get(repository: string, id: string): Promise<UploadSession> {
    const session = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? await this.#meta.getUpload(id) : undefined;
    // A session is bound to its repository: its id is useless under another name.
    if (!session || session.repository !== repository) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown, expired or cancelled`);
    return session;
  }

  /**
   * Appends a chunk. `range`, when given, must start at the current size (else 416 with the
   * current progress); `declaredLength` (Content-Length) must then match the range. A failed
   * chunk (client gone, size mismatch) leaves the session exactly as it was.
   */
  async appendChunk(session: UploadSession, body: Readable, range: ByteRange | undefined, declaredLength: number | undefined): Promise<UploadSession> {
    const newSize = await this.#appendBytes(session, body, range, declaredLength, false);
    if (!(await this.#meta.advanceUpload(session.id, session.size, newSize))) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload was changed concurrently; restart it');
    }
    return { ...session, size: newSize, updatedAt: new Date() };
  }

  /** Writes a chunk to the partial data without recording the new size in the session. */
  async #appendBytes(session: UploadSession, body: Readable, range: ByteRange | undefined, declaredLength: number | undefined, last: boolean): Promise<number> {
    const progress = { Range: uploadProgressRange(session.size) };
    if (range && range.start !== session.size) {
      throw new RegistryError('RANGE_INVALID', `chunk starts at ${range.start} but the upload holds ${session.size} bytes`, { headers: progress });
    }
    let expected = declaredLength;
    if (range) {
      const length = range.end - range.start + 1;
      if (declaredLength !== undefined && declaredLength !== length) {
        throw new RegistryError('RANGE_INVALID', `Content-Range covers ${length} bytes but Content-Length is ${declaredLength}`, { headers: progress });
      }
      expected = length;
    }
    if (this.#busy.has(session.id)) throw new RegistryError('RANGE_INVALID', 'another chunk of this upload is in progress', { headers: progress });
    this.#busy.add(session.id);
    try {
      return await this.#write(session, body, expected, last);
    } finally {
      this.#busy.delete(session.id);
    }
  }

  async #write(session: UploadSession, body: Readable, expectedLength: number | undefined, last: boolean): Promise<number> {
    const running = this.#hashes.get(session.id);
    const usable = running && running.offset === session.size ? running : undefined;
    if (!usable) await this.#reconcile(session);
    const snapshot = usable?.hash.copy();
    const max = this.#options.blobMaxBytes || Number.MAX_SAFE_INTEGER;
    const counter = new ChunkCounter(expectedLength, usable?.hash);
    try {
      const source = body.pipe(counter);
      body.once('error', (error) => counter.destroy(error));
      // A client that disconnects mid-chunk must fail the write, not end it early as if complete.
      body.once('close', () => {
        if (!body.readableEnded) counter.destroy(new ChunkLengthError('client disconnected during the chunk'));
      });
      const newSize = await this.#blobs.appendUpload(session.id, session.size, source, max, { durable: last });
      if (usable) usable.offset = newSize;
      return newSize;
    } catch (error) {
      if (usable && snapshot) usable.hash = snapshot;
      if (error instanceof OffsetMismatchError) {
        throw new RegistryError('RANGE_INVALID', `upload holds ${error.actual} bytes`, { headers: { Range: uploadProgressRange(error.actual) } });
      }
      if (error instanceof SizeLimitError) throw new RegistryError('SIZE_INVALID', `blob exceeds the limit of ${max} bytes`);
      if (error instanceof ChunkLengthError) throw new RegistryError('SIZE_INVALID', error.message);
      if (error instanceof NotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload data is gone');
      throw error;
    }
  }

  /**
   * Finishes a session as blob `digest`, after an optional final chunk. On a digest mismatch the
   * session and its data are discarded and DIGEST_INVALID is thrown: nothing is kept.
   */
  async commit(session: UploadSession, digestParam: string | undefined, finalChunk: Readable | undefined, finalLength: number | undefined, origin: RequestOrigin): Promise<{ digest: string; size: number }> {
    if (!digestParam) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
    const { digest, algorithm } = parseDigest(digestParam);
    let current = session;
    // The final chunk's size is recorded by the commit itself (one statement less per blob); if the
    // commit fails, the session still holds its previous size and the extra bytes are cut off.
    if (finalChunk) current = { ...session, size: await this.#appendBytes(session, finalChunk, undefined, finalLength, true), updatedAt: new Date() };
    // Hashing (or reconciling) while a chunk is still being written would see a moving target.
    else if (this.#busy.has(session.id)) throw new RegistryError('RANGE_INVALID', 'a chunk of this upload is still in progress', { headers: { Range: uploadProgressRange(session.size) } });
    const actual = await this.#digestOf(current, algorithm);
    if (actual !== digest) {
      await this.discard(current.id);
      throw new RegistryError('DIGEST_INVALID', `uploaded content has digest ${actual}, not ${digest}`, { detail: { expected: digest, actual } });
    }
    await this.#commitAs(current, digest, session.size);
    this.#events.publish({ type: 'blob.uploaded', at: new Date(), origin, repository: current.repository, digest, size: current.size });
    return { digest, size: current.size };
  }

  /** Single-request upload (`POST ?digest=` or `PUT` on a fresh session): streams, hashes, commits. */
  async monolithic(repository: string, digestParam: string, body: Readable, declaredLength: number | undefined, origin: RequestOrigin): Promise<{ digest: string; size: number }> {
    const { algorithm } = parseDigest(digestParam);
    const session = await this.start(repository);
    if (algorithm !== 'sha256') this.#hashes.set(session.id, { hash: createDigester(algorithm), algorithm, offset: 0 });
    try {
      return await this.commit(session, digestParam, body, declaredLength, origin);
    } catch (error) {
      await this.discard(session.id);
      throw error;
    }
  }

  async #digestOf(session: UploadSession, algorithm: DigestAlgorithm): Promise<string> {
    const running = this.#hashes.get(session.id);
    if (running && running.algorithm === algorithm && running.offset === session.size) {
      return `${algorithm}:${running.hash.digest('hex')}`;
    }
    // After a restart or on another replica: recompute from the stored bytes.
    await this.#reconcile(session);
    if (session.size === 0) return `${algorithm}:${createDigester(algorithm).digest('hex')}`;
    const hash = createDigester(algorithm);
    await pipeline(await this.#blobs.readUpload(session.id), async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) hash.update(chunk);
    });
    return `${algorithm}:${hash.digest('hex')}`;
  }

  /**
   * Brings the partial data in line with the session when this process has not seen every byte
   * of it (after a restart, or on another replica). A crash in the middle of a chunk leaves bytes
   * the session never recorded; that chunk was never acknowledged, so the client sends it again
   * and they are cut off. Data that is gone or shorter than recorded cannot be trusted: the
   * session is discarded and reported unknown.
   */
  async #reconcile(session: UploadSession): Promise<void> {
    let stored = await this.#blobs.uploadSize(session.id);
    // No chunk yet: there is no partial data to lose.
    if (stored === undefined && session.size === 0) return;
    if (stored !== undefined && stored > session.size) {
      try {
        await this.#blobs.truncateUpload(session.id, session.size);
        stored = session.size;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        stored = undefined;
      }
    }
    if (stored !== session.size) {
      await this.discard(session.id);
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${session.id} lost its data; restart it`);
    }
  }

  /** `recordedSize`: the size the session row holds (the final chunk is not recorded in it). */
  async #commitAs(session: UploadSession, digest: string, recordedSize: number): Promise<void> {
    // Protect the digest from the collector before the bytes land; while the collector is
    // deleting that very blob, wait for it to finish and then record it anew.
    for (let attempt = 0; !(await this.#meta.recordBlob(digest, session.size, this.#options.blobGraceMs)); attempt++) {
      if (attempt > 200) throw new RegistryError('UNAVAILABLE', 'blob is being garbage-collected; retry');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // An empty blob may never have had a chunk, so no partial data yet.
    if (session.size === 0 && (await this.#blobs.uploadSize(session.id)) === undefined) await this.#blobs.createUpload(session.id);
    await this.#blobs.commitUpload(session.id, digest);
    // A session changed or cancelled meanwhile leaves the blob unlinked (the collector takes it).
    if (!(await this.#meta.completeUpload(session.id, session.repository, digest, recordedSize))) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload was changed concurrently; restart it');
    }
    this.#hashes.delete(session.id);
  }

  /** Cancels a session (DELETE). */
  async cancel(session: UploadSession, origin: RequestOrigin): Promise<void> {
    await this.discard(session.id);
    this.#events.publish({ type: 'upload.cancelled', at: new Date(), origin, repository: session.repository, uploadId: session.id });
  }

  /** Removes a session's row and bytes. Idempotent. */
  async discard(id: string): Promise<void> {
    this.#hashes.delete(id);
    await this.#meta.deleteUpload(id);
    await this.#blobs.deleteUpload(id);
  }

  /** Removes sessions idle since before `olderThan`, and partial data whose session row is gone. */
  async expire(olderThan: Date): Promise<number> {
    let removed = 0;
    for (;;) {
      const batch = await this.#meta.expiredUploads(olderThan, 500);
      for (const session of batch) {
        await this.discard(session.id);
        this.#events.publish({ type: 'upload.expired', at: new Date(), origin: undefined, repository: session.repository, uploadId: session.id });
      }
      removed += batch.length;
      if (batch.length < 500) break;
    }
    for (const id of await this.#blobs.listUploads(olderThan)) {
      if (!(await this.#meta.getUpload(id))) {
        await this.#blobs.deleteUpload(id);
        removed++;
      }
    }
    return removed;
  }
}

class ChunkLengthError extends Error {
  override name = 'ChunkLengthError';
}

/** Passes a chunk through, feeding the running digest and enforcing the declared length. */
class ChunkCounter extends Transform {
  readonly #expected: number | undefined;
  readonly #hash: Hash | undefined;
  #seen = 0;

  constructor(expected: number | undefined, hash: Hash | undefined) {
    super();
    this.#expected = expected;
    this.#hash = hash;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#expected !== undefined && this.#seen > this.#expected) {
      callback(new ChunkLengthError(`chunk is longer than the declared ${this.#expected} bytes`));
      return;
    }
    this.#hash?.update(chunk);
    bodyBuffers.received(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#expected !== undefined && this.#seen !== this.#expected) callback(new ChunkLengthError(`chunk has ${this.#seen} bytes but ${this.#expected} were declared`));
    else callback();
  }
}
