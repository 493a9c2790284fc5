/**
 * Storage ports. The protocol core talks only to these interfaces; backends (filesystem,
 * SQLite, PostgreSQL, later S3 and Redis) implement them and prove it with the contract suites
 * in `contract/`.
 *
 * Layout of responsibilities:
 * - {@link BlobStore}: bytes only, content-addressed, global (knows nothing of repositories).
 *   Upload sessions keep their partial data here so another process can continue them.
 * - {@link MetadataStore}: everything else (repositories, per-repository blob links, manifests,
 *   tags, referrers, upload sessions, reference counts for garbage collection). Each method is
 *   one transaction.
 */
import type { Readable } from 'node:stream';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface BlobStore {
  /** Size of a committed blob, or undefined when absent. */
  stat(digest: string): Promise<{ size: number } | undefined>;
  /** Streams a committed blob (or a byte range of it). Rejects with NotFoundError when absent. */
  read(digest: string, range?: ByteRange): Promise<Readable>;
  /**
   * Optional random access to a committed blob, for the blob GET path: the caller reads into its
   * own reused buffers, where `read` allocates a fresh buffer per chunk (external memory that
   * drives V8 into full garbage collections at pull rates). Rejects with NotFoundError when absent.
   */
  open?(digest: string): Promise<BlobFile>;
  /** Deletes a committed blob. Idempotent. */
  delete(digest: string): Promise<void>;

  /** Creates empty partial data for upload `id`. */
  createUpload(id: string): Promise<void>;
  /**
   * Appends `source` to upload `id`, which must currently hold exactly `offset` bytes
   * (else OffsetMismatchError, nothing written). At offset 0 an absent upload is created (a
   * session's first chunk), at any other offset it is NotFoundError. Stops with SizeLimitError
   * past `maxBytes`. On failure the partial data is truncated back to `offset`, so a failed chunk
   * leaves nothing. Returns the new size. `durable`: the last chunk before a commit; a store may
   * make the bytes durable as it writes them, so that the commit has nothing left to flush.
   */
  appendUpload(id: string, offset: number, source: Readable, maxBytes?: number, options?: { durable?: boolean }): Promise<number>;
  /** Current size of upload `id`, or undefined when unknown. */
  uploadSize(id: string): Promise<number | undefined>;
  /** Streams the partial data of upload `id` (used to re-hash after a restart). */
  readUpload(id: string): Promise<Readable>;
  /**
   * Makes upload `id` durable as blob `digest` (fsync + atomic rename on a filesystem). When the
   * blob already exists the partial data is discarded. The caller has verified the digest.
   */
  commitUpload(id: string, digest: string): Promise<void>;
  /**
   * Cuts the partial data of upload `id` back to `size` bytes (no-op when it holds no more).
   * Used after a crash: bytes of a chunk that was never acknowledged may have been written.
   * Rejects with NotFoundError when the upload is unknown.
   */
  truncateUpload(id: string, size: number): Promise<void>;
  /** Discards upload `id`. Idempotent. */
  deleteUpload(id: string): Promise<void>;
  /** Upload ids whose partial data was last written before `olderThan` (for cleanup). */
  listUploads(olderThan: Date): Promise<string[]>;
}

/** An open committed blob (see {@link BlobStore.open}); the caller must close it. */
export interface BlobFile {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into the start of `buffer`; 0 at the end. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
export class OffsetMismatchError extends Error {
  override name = 'OffsetMismatchError';
  readonly actual: number;
  constructor(actual: number) {
    super(`upload holds ${actual} bytes`);
    this.actual = actual;
  }
}
export class SizeLimitError extends Error {
  override name = 'SizeLimitError';
}

/**
 * Thrown by {@link MetadataStore.putManifest} when a blob or child manifest it checked was
 * deleted (by the collector) before it could be referenced; the transaction rolled back.
 */
export class ConcurrentDeletionError extends Error {
  override name = 'ConcurrentDeletionError';
  readonly digest: string;
  constructor(digest: string) {
    super(`${digest} was deleted concurrently`);
    this.digest = digest;
  }
}

export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes received so far, as recorded after the last successful chunk. */
  size: number;
  startedAt: Date;
  updatedAt: Date;
}

export interface ManifestRecord {
  repository: string;
  digest: string;
  mediaType: string;
  artifactType: string | undefined;
  size: number;
  /** The exact bytes pushed. */
  content: Buffer;
  subject: string | undefined;
  annotations: Record<string, string> | undefined;
  createdAt: Date;
}

export interface ManifestWrite {
  repository: string;
  digest: string;
  mediaType: string;
  artifactType: string | undefined;
  content: Buffer;
  subject: string | undefined;
  annotations: Record<string, string> | undefined;
  /** Blobs (config, layers) the manifest references; each must be linked to the repository. */
  blobs: string[];
  /** Child manifests (index entries); each must exist in the repository. */
  children: string[];
  /** Tag to point at the manifest, if pushed by tag. */
  tag: string | undefined;
}

export type ManifestWriteResult =
  | { ok: true; created: boolean; previousTagTarget: string | undefined }
  | { ok: false; missingBlobs: string[]; missingChildren: string[] };

/**
 * Several manifests of one repository written in one transaction (promotion): blobs linked first
 * (each from `from`, where it must be linked, or, with `from` undefined, any live recorded blob),
 * then the manifests in order (children before their index, subjects before their referrers).
 * Either everything is written or nothing, not even the repository.
 */
export interface ManifestBatch {
  repository: string;
  blobs: Array<{ digest: string; from: string | undefined }>;
  manifests: ManifestWrite[];
  /** Protection given to linked blobs, as for a mount. */
  graceMs: number;
}

export type ManifestBatchResult =
  | { ok: true; results: Array<Extract<ManifestWriteResult, { ok: true }>> }
  | Extract<ManifestWriteResult, { ok: false }>;

/** A stored manifest that is not a referrer (listing for fleet-wide policy simulation). */
export interface StoredManifestRef {
  repository: string;
  digest: string;
  mediaType: string;
}

export interface ReferrerRecord {
  digest: string;
  mediaType: string;
  artifactType: string | undefined;
  size: number;
  annotations: Record<string, string> | undefined;
}

export interface Page<T> {
  items: T[];
  /** True when more items follow the last one. */
  more: boolean;
}

export interface GcCandidate {
  digest: string;
  size: number;
}

export interface UntaggedManifest {
  repository: string;
  digest: string;
}

export interface MetadataStore {
  /** Applies pending migrations. Safe to call from several processes at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // --- repositories
  repositoryExists(repository: string): Promise<boolean>;
  /** Repository names after `last` in lexical (byte) order. */
  listRepositories(limit: number, last?: string): Promise<Page<string>>;

  // --- blobs
  /**
   * Records a blob about to be committed (or re-pushed), protecting it from garbage collection
   * for `graceMs`. Returns false while the collector is deleting that blob (retry shortly).
   * Call before the bytes are moved into place, so the collector cannot race the commit.
   */
  recordBlob(digest: string, size: number, graceMs: number): Promise<boolean>;
  /** Makes a recorded blob visible in `repository` (creating the repository). Idempotent. */
  linkBlob(repository: string, digest: string): Promise<void>;
  /** The size of `digest` if it is linked to `repository`, and whether any manifest references it. */
  linkedBlob(repository: string, digest: string): Promise<{ size: number; referenced: boolean } | undefined>;
  /** Links an existing live blob into another repository (cross-repository mount). False when `from` does not hold it. */
  mountBlob(repository: string, digest: string, from: string | undefined, graceMs: number): Promise<boolean>;
  /**
   * Protects a blob from collection for `graceMs` (never shortening a protection), referenced
   * or not: a client that just checked it may reference it, even if the manifest referencing it
   * now is deleted meanwhile. False when the blob is unknown or being deleted, in which case the
   * client must be told it is absent.
   */
  protectBlob(digest: string, graceMs: number): Promise<boolean>;
  /**
   * Removes the link of `digest` from `repository`. 'referenced' when a manifest of the
   * repository still references it (nothing changes), 'unknown' when not linked.
   */
  unlinkBlob(repository: string, digest: string): Promise<'deleted' | 'referenced' | 'unknown'>;

  // --- manifests and tags
  /**
   * Stores a manifest and moves its tag in one transaction, after checking every reference.
   * Pushing a manifest that already exists refreshes its push time (see untaggedManifests).
   * @throws ConcurrentDeletionError when a checked blob or child was deleted meanwhile.
   */
  putManifest(write: ManifestWrite): Promise<ManifestWriteResult>;
  /**
   * {@link putManifest} for several manifests in one transaction, after linking blobs.
   * @throws ConcurrentDeletionError when a checked blob or child was deleted meanwhile (nothing written).
   */
  putManifests(batch: ManifestBatch): Promise<ManifestBatchResult>;
  /**
   * Manifests that are not referrers (no subject), ordered by repository then digest, after
   * `after`; `project` keeps those of one project (`project` or `project/...`).
   */
  listManifests(limit: number, after?: { repository: string; digest: string }, project?: string): Promise<Page<StoredManifestRef>>;
  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  resolveTag(repository: string, tag: string): Promise<string | undefined>;
  /** The manifest a tag points at, read at once with the tag. */
  getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined>;
  listTags(repository: string, limit: number, last?: string): Promise<Page<string>>;
  /** Tags pointing at a digest (used in events when a manifest is deleted). */
  tagsOf(repository: string, digest: string): Promise<string[]>;
  /** Deletes a tag; the manifest stays. False when unknown. */
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /**
   * Deletes a manifest and its tags, releasing its references. 'referenced' when an index of the
   * repository still lists it (nothing changes); 'unknown' when absent.
   */
  deleteManifest(repository: string, digest: string): Promise<{ outcome: 'deleted'; tags: string[] } | { outcome: 'referenced' | 'unknown' }>;
  listReferrers(repository: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]>;

  // --- upload sessions
  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | undefined>;
  /** Records progress only if the session still holds `expectedSize` (optimistic concurrency). */
  advanceUpload(id: string, expectedSize: number, newSize: number): Promise<boolean>;
  /**
   * Links the uploaded blob into the session's repository and ends the session, at once; false
   * (nothing changed) when the session is gone or no longer holds `expectedSize`.
   */
  completeUpload(id: string, repository: string, digest: string, expectedSize: number): Promise<boolean>;
  deleteUpload(id: string): Promise<void>;
  expiredUploads(olderThan: Date, limit: number): Promise<UploadSession[]>;

  // --- garbage collection (cost proportional to what changed, never a walk)
  /** Unreferenced blobs whose protection ran out, oldest first. */
  gcCandidates(now: Date, limit: number): Promise<GcCandidate[]>;
  /**
   * Atomically re-checks a candidate (still unreferenced, protection expired) and marks it as
   * being deleted (recording when), so concurrent manifest pushes no longer see it. False if it
   * was rescued.
   */
  beginBlobDeletion(digest: string, now: Date): Promise<boolean>;
  /** Removes the blob's rows after its bytes were deleted. */
  finishBlobDeletion(digest: string): Promise<void>;
  /**
   * Untagged manifests last pushed before `olderThan` that no index lists and that are not a
   * referrer of an existing subject.
   */
  untaggedManifests(olderThan: Date, limit: number): Promise<UntaggedManifest[]>;
  /**
   * Deletes a manifest (as deleteManifest) only if, in the same transaction, it still meets every
   * condition of untaggedManifests: a tag or re-push since the listing keeps it. True if deleted.
   */
  deleteUntaggedManifest(repository: string, digest: string, olderThan: Date): Promise<boolean>;
  /**
   * Blobs marked for deletion, by a collector that died if marked before `markedBefore` (the
   * default lists every mark). Only such stale marks may be finished by another collector: a
   * live one finishing a fresh mark would let an upload re-create the blob before the marking
   * collector deletes its bytes.
   */
  blobsBeingDeleted(limit: number, markedBefore?: Date): Promise<string[]>;
}
