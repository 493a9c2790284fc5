import { createWriteStream, fdatasync, open as openCallback } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseDigest } from '../../../oci/digest.ts';
import { type BlobFile, type BlobStore, type ByteRange, NotFoundError, OffsetMismatchError, SizeLimitError } from '../ports.ts';

/**
 * Filesystem blob store.
 *
 * ```
 * <root>/blobs/<alg>/<first two hex>/<hex>     committed, immutable, content-addressed
 * <root>/uploads/<id>                          partial data of an upload session
 * ```
 * Commit = fsync the upload file, rename it into place (atomic on one filesystem), fsync the
 * directory. A crash therefore leaves either no blob or a whole one, never a partial blob. File
 * operations are costly system calls here (creating a file is the dearest), so a blob pushed in
 * one request costs one file creation and one open: its chunk is fsync'd as it is closed (the
 * `durable` hint) and the commit does not reopen it; a prefix directory is created once.
 * Intermediate chunks are not fsync'd: the disk writes them back while the next chunk arrives.
 */
export class FsBlobStore implements BlobStore {
  readonly #blobs: string;
  readonly #uploads: string;
  /** Per-upload queue: chunks of one upload are written one after the other (in this process). */
  readonly #uploadLocks = new Map<string, Promise<unknown>>();
  /** Blob prefix directories known to exist (at most 256 per algorithm). */
  readonly #blobDirs = new Set<string>();
  /** Uploads whose every byte was fsync'd by this process since their last write. */
  readonly #durable = new Set<string>();
  /** Chunks being written now, in this process (sizes their write buffers). */
  #writing = 0;

  constructor(root: string) {
    this.#blobs = join(root, 'blobs');
    this.#uploads = join(root, 'uploads');
  }

  async init(): Promise<void> {
    await mkdir(this.#blobs, { recursive: true });
    await mkdir(this.#uploads, { recursive: true });
  }

  #blobPath(digest: string): string {
    // parseDigest guarantees [a-z0-9]+ algorithm and hex: no separators, no traversal.
    const { algorithm, hex } = parseDigest(digest);
    return join(this.#blobs, algorithm, hex.slice(0, 2), hex);
  }

  #uploadPath(id: string): string {
    if (!isUploadId(id)) throw new NotFoundError('invalid upload id');
    return join(this.#uploads, id);
  }

  /** Runs `fn` once every earlier operation on upload `id` has settled. */
  async #withUpload<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#uploadLocks.get(id) ?? Promise.resolve();
    const current = previous.then(fn, fn);
    const settled = current.catch(() => undefined);
    this.#uploadLocks.set(id, settled);
    try {
      return await current;
    } finally {
      if (this.#uploadLocks.get(id) === settled) this.#uploadLocks.delete(id);
    }
  }

  async stat(digest: string): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.#blobPath(digest));
      return { size: info.size };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async read(digest: string, range?: ByteRange): Promise<Readable> {
    return openStream(this.#blobPath(digest), range);
  }

  async open(digest: string): Promise<BlobFile> {
    let handle: FileHandle;
    try {
      handle = await open(this.#blobPath(digest), 'r');
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError(digest);
      throw error;
    }
    try {
      const { size } = await handle.stat();
      return {
        size,
        read: async (buffer, length, position) => (await handle.read(buffer, 0, length, position)).bytesRead,
        close: () => handle.close(),
      };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async delete(digest: string): Promise<void> {
    await rm(this.#blobPath(digest), { force: true });
  }

  async createUpload(id: string): Promise<void> {
    const handle = await open(this.#uploadPath(id), 'wx');
    await handle.close();
  }

  async appendUpload(id: string, offset: number, source: Readable, maxBytes = Number.MAX_SAFE_INTEGER, options: { durable?: boolean } = {}): Promise<number> {
    const path = this.#uploadPath(id);
    // Serialised per upload: two chunks racing for the same offset must not both be written
    // (the loser gets OffsetMismatchError). Other processes sharing the directory are not covered.
    return this.#withUpload(id, async () => {
      const fd = await this.#openForAppend(id, offset);
      let written = offset;
      // Early write-back: every 16 MiB the kernel is asked to start writing what it holds
      // (fdatasync on the pool, not awaited), so the fsync before the blob is acknowledged finds
      // little left to write; distribution does not fsync blobs at all, so this is what keeps a
      // durable push close to its speed.
      let unsynced = 0;
      let syncing: Promise<void> | undefined;
      const limiter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          if (written > maxBytes) return callback(new SizeLimitError(`upload exceeds ${maxBytes} bytes`));
          unsynced += chunk.length;
          if (unsynced >= earlyWritebackBytes && !syncing) {
            unsynced = 0;
            syncing = new Promise<void>((resolve) => fdatasync(fd, () => resolve())).finally(() => (syncing = undefined));
          }
          callback(null, chunk);
        },
        // The descriptor is closed after the last write: no write-back may still be queued on it.
        flush(callback) {
          void (syncing ?? Promise.resolve()).then(() => callback());
        },
      });
      // fsync covers the whole file, earlier chunks included.
      const durable = options.durable === true;
      this.#durable.delete(id);
      // A 1 MiB write buffer (less with many chunks at once) keeps the socket read while a write is
      // in flight: with the 16 KiB default every 64 KiB chunk paused the request until its write
      // finished, and one stream pushed about half as fast (docs/benchmarks.md).
      const sink = createWriteStream('', { fd, start: offset, flush: durable, highWaterMark: writeBufferBytes(++this.#writing) });
      try {
        await pipeline(source, limiter, sink);
        if (durable) this.#durable.add(id);
      } catch (error) {
        // A failed or aborted chunk leaves the upload exactly as it was before. Wait until the
        // file is closed so that no write still in flight lands after the truncation.
        if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
        await truncate(path, offset).catch(() => undefined);
        throw error;
      } finally {
        this.#writing--;
      }
      return written;
    });
  }

  /**
   * A first chunk creates the file; otherwise (or when it exists already) the size must match.
   * A plain descriptor, not a FileHandle: a stream over a FileHandle costs a promise per write,
   * which shows as garbage-collection time at blob push rates.
   */
  async #openForAppend(id: string, offset: number): Promise<number> {
    const path = this.#uploadPath(id);
    if (offset === 0) {
      try {
        return await openFd(path, 'wx');
      } catch (error) {
        if (!isExists(error)) throw error;
      }
    }
    const current = await this.uploadSize(id);
    if (current === undefined) throw new NotFoundError(`upload ${id} unknown`);
    if (current !== offset) throw new OffsetMismatchError(current);
    try {
      return await openFd(path, 'r+');
    } catch (error) {
      throw isNotFound(error) ? new NotFoundError(`upload ${id} unknown`) : error;
    }
  }

  async uploadSize(id: string): Promise<number | undefined> {
    if (!isUploadId(id)) return undefined;
    try {
      return (await stat(this.#uploadPath(id))).size;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readUpload(id: string): Promise<Readable> {
    return openStream(this.#uploadPath(id));
  }

  async commitUpload(id: string, digest: string): Promise<void> {
    const source = this.#uploadPath(id);
    const target = this.#blobPath(digest);
    // After any chunk still being written: renaming a file mid-write would publish a torn blob.
    await this.#withUpload(id, async () => {
      if (!this.#durable.delete(id)) {
        let handle;
        try {
          handle = await open(source, 'r+');
        } catch (error) {
          throw isNotFound(error) ? new NotFoundError(`upload ${id} unknown`) : error;
        }
        try {
          await handle.datasync();
        } finally {
          await handle.close();
        }
      }
      const dir = join(target, '..');
      if (!this.#blobDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.#blobDirs.add(dir);
      }
      try {
        await rename(source, target);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        // The upload is gone, or the directory was removed under us: tell which.
        if ((await this.uploadSize(id)) === undefined) throw new NotFoundError(`upload ${id} unknown`);
        await mkdir(dir, { recursive: true });
        await rename(source, target);
      }
      const dirHandle = await open(dir, 'r');
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    });
  }

  async truncateUpload(id: string, size: number): Promise<void> {
    // Queued like a chunk, so it never cuts a write of this process in the middle.
    await this.#withUpload(id, async () => {
      const current = await this.uploadSize(id);
      if (current === undefined) throw new NotFoundError(`upload ${id} unknown`);
      if (current > size) {
        this.#durable.delete(id);
        await truncate(this.#uploadPath(id), size);
      }
    });
  }

  async deleteUpload(id: string): Promise<void> {
    if (!isUploadId(id)) return; // no such upload can exist
    this.#durable.delete(id);
    await rm(this.#uploadPath(id), { force: true });
  }

  async listUploads(olderThan: Date): Promise<string[]> {
    const ids: string[] = [];
    for (const name of await readdir(this.#uploads)) {
      const info = await stat(join(this.#uploads, name)).catch(() => undefined);
      if (info && info.mtime < olderThan) ids.push(name);
    }
    return ids;
  }
}

function isUploadId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

const openFd = promisify(openCallback);

/**
 * Bytes a chunk's file writer holds before it pauses the request, when `writing` chunks are being
 * written: 1 MiB each for up to 8, then shrinking so that all of them together hold about 8 MiB
 * (never under 64 KiB each). Many concurrent pushes are bound by the disk, not by the turns one
 * stream takes between socket and file: 32 pushes of 64 MiB with 1 MiB each peaked 20-30 MB
 * higher (256-265 MB) and were no faster than with this sizing (237-239 MB).
 */
export function writeBufferBytes(writing: number): number {
  return Math.max(64 * 1024, Math.min(1024 * 1024, Math.floor((8 * 1024 * 1024) / Math.max(1, writing))));
}

/** Bytes received between two early write-back requests. */
const earlyWritebackBytes = 16 * 1024 * 1024;

function isExists(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'EEXIST';
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

const readChunkBytes = 64 * 1024;

async function openStream(path: string, range?: ByteRange): Promise<Readable> {
  // Open first so a missing file is a rejected promise, not a stream error after headers were sent.
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (isNotFound(error)) throw new NotFoundError(path);
    throw error;
  }
  // Blob pulls go through open() and pooled buffers; these streams feed the server's own readers
  // (scanner, policy, promotion), mostly of small blobs. A read stream allocates a buffer of its
  // full highWaterMark per read whatever the file's size, so 1 MiB here cost 1 MiB of garbage per
  // 16 KiB layer scanned, and the collections it forced showed in small-image pushes.
  return handle.createReadStream({ highWaterMark: readChunkBytes, ...(range ? { start: range.start, end: range.end } : {}) });
}

