/**
 * The BlobStore contract. Every backend runs this suite from its own test file:
 *
 * ```ts
 * runBlobStoreContract('filesystem', async () => { ...; return { store, cleanup } });
 * ```
 *
 * `makeStore` must return a ready, EMPTY store; `cleanup` removes everything it holds.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type BlobStore, NotFoundError, OffsetMismatchError, SizeLimitError } from '../ports.ts';

export interface BlobStoreHarness {
  store: BlobStore;
  cleanup(): Promise<void>;
}

export type MakeBlobStore = () => Promise<BlobStoreHarness>;

const MiB = 1024 * 1024;

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

function source(...chunks: Buffer[]): Readable {
  return Readable.from(chunks, { objectMode: false });
}

/** Deterministic pseudo-random content: byte i of the stream is a function of i alone. */
function patternChunk(offset: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    const n = offset + i;
    chunk[i] = (n * 2654435761 + (n >>> 13)) & 0xff;
  }
  return chunk;
}

/** Streams `total` bytes of {@link patternChunk} content in 64 KiB chunks, never holding it all. */
function patternStream(start: number, total: number): Readable {
  let position = start;
  const end = start + total;
  return new Readable({
    read() {
      if (position >= end) {
        this.push(null);
        return;
      }
      const length = Math.min(64 * 1024, end - position);
      this.push(patternChunk(position, length));
      position += length;
    },
  });
}

/** Emits `good` bytes in several chunks, then fails. */
function failingStream(good: number, error: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= good) {
        setImmediate(() => this.destroy(error));
        return;
      }
      const length = Math.min(16 * 1024, good - sent);
      sent += length;
      this.push(Buffer.alloc(length, 0x78));
    },
  });
}

export function runBlobStoreContract(name: string, makeStore: MakeBlobStore): void {
  describe(`BlobStore contract: ${name}`, () => {
    let harness: BlobStoreHarness;
    let store: BlobStore;
    let uploadCounter = 0;

    beforeEach(async () => {
      harness = await makeStore();
      store = harness.store;
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    const newId = () => `upload-${process.pid}-${++uploadCounter}`;

    async function putBlob(bytes: Buffer): Promise<string> {
      const id = newId();
      const digest = sha256(bytes);
      await store.createUpload(id);
      assert.equal(await store.appendUpload(id, 0, source(bytes)), bytes.length);
      await store.commitUpload(id, digest);
      return digest;
    }

    async function uploadContent(id: string): Promise<Buffer> {
      return collect(await store.readUpload(id));
    }

    describe('committed blobs', () => {
      it('stat, read and delete an absent blob', async () => {
        const digest = sha256(Buffer.from('absent'));
        assert.equal(await store.stat(digest), undefined);
        await assert.rejects(store.read(digest), NotFoundError);
        await assert.rejects(store.read(digest, { start: 0, end: 1 }), NotFoundError);
        await store.delete(digest);
      });

      it('stores a blob and reads back the exact bytes', async () => {
        const bytes = Buffer.from('hello, registry\n\x00\xff binary', 'latin1');
        const digest = await putBlob(bytes);
        assert.deepEqual(await store.stat(digest), { size: bytes.length });
        assert.ok((await collect(await store.read(digest))).equals(bytes));
        // Concurrent readers each get the whole blob.
        const reads = await Promise.all(Array.from({ length: 5 }, async () => collect(await store.read(digest))));
        for (const read of reads) assert.ok(read.equals(bytes));
      });

      it('reads inclusive byte ranges', async () => {
        const bytes = Buffer.from('0123456789abcdef');
        const digest = await putBlob(bytes);
        const range = async (start: number, end: number) => (await collect(await store.read(digest, { start, end }))).toString();
        assert.equal(await range(2, 5), '2345');
        assert.equal(await range(0, 0), '0');
        assert.equal(await range(15, 15), 'f');
        assert.equal(await range(10, 15), 'abcdef');
        assert.equal(await range(0, 15), bytes.toString());
      });

      it('open (when offered) reads at any position into the caller\'s buffer; an absent blob is NotFoundError', async (t) => {
        if (!store.open) return t.skip('this store offers no random access');
        await assert.rejects(store.open(sha256(Buffer.from('absent for open'))), NotFoundError);
        const bytes = Buffer.from('0123456789abcdef');
        const file = await store.open(await putBlob(bytes));
        try {
          assert.equal(file.size, bytes.length);
          const buffer = Buffer.alloc(8, 0x2e);
          assert.equal(await file.read(buffer, 4, 10), 4);
          assert.equal(buffer.toString(), 'abcd....');
          assert.equal(await file.read(buffer, 8, 12), 4, 'a read past the end is short');
          assert.equal(buffer.subarray(0, 4).toString(), 'cdef');
          assert.equal(await file.read(buffer, 8, 16), 0);
        } finally {
          await file.close();
        }
      });

      it('stores sha512 blobs too', async () => {
        const bytes = Buffer.from('sha512 content');
        const id = newId();
        const digest = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(bytes));
        await store.commitUpload(id, digest);
        assert.deepEqual(await store.stat(digest), { size: bytes.length });
        assert.ok((await collect(await store.read(digest))).equals(bytes));
        assert.equal(await store.stat(sha256(bytes)), undefined, 'algorithms are distinct');
      });

      it('delete removes a blob and is idempotent', async () => {
        const keep = await putBlob(Buffer.from('keep'));
        const digest = await putBlob(Buffer.from('remove me'));
        await store.delete(digest);
        assert.equal(await store.stat(digest), undefined);
        await assert.rejects(store.read(digest), NotFoundError);
        await store.delete(digest);
        assert.deepEqual(await store.stat(keep), { size: 4 });
      });

      it('handles zero-byte blobs', async () => {
        const empty = Buffer.alloc(0);
        const id = newId();
        await store.createUpload(id);
        assert.equal(await store.uploadSize(id), 0);
        assert.equal(await store.appendUpload(id, 0, source()), 0, 'an empty chunk');
        assert.equal((await uploadContent(id)).length, 0);
        await store.commitUpload(id, sha256(empty));
        assert.deepEqual(await store.stat(sha256(empty)), { size: 0 });
        assert.equal((await collect(await store.read(sha256(empty)))).length, 0);
        // Committed without any append at all.
        const id2 = newId();
        await store.createUpload(id2);
        await store.commitUpload(id2, sha256(empty));
        assert.equal(await store.uploadSize(id2), undefined);
        assert.deepEqual(await store.stat(sha256(empty)), { size: 0 });
      });

      it('streams a 20 MiB blob in and out', { timeout: 120_000 }, async () => {
        const total = 20 * MiB;
        const first = 7 * MiB + 123;
        const id = newId();
        await store.createUpload(id);
        assert.equal(await store.appendUpload(id, 0, patternStream(0, first)), first);
        assert.equal(await store.appendUpload(id, first, patternStream(first, total - first), total), total);
        assert.equal(await store.uploadSize(id), total);

        const expected = createHash('sha256');
        for (let offset = 0; offset < total; offset += MiB) expected.update(patternChunk(offset, Math.min(MiB, total - offset)));
        const digest = `sha256:${expected.digest('hex')}`;

        // Re-hashing the partial data (as after a restart) gives the same digest.
        const rehash = createHash('sha256');
        for await (const chunk of await store.readUpload(id)) rehash.update(chunk as Buffer);
        assert.equal(`sha256:${rehash.digest('hex')}`, digest);

        await store.commitUpload(id, digest);
        assert.deepEqual(await store.stat(digest), { size: total });
        const actual = createHash('sha256');
        let size = 0;
        for await (const chunk of await store.read(digest)) {
          actual.update(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
        assert.equal(size, total);
        assert.equal(`sha256:${actual.digest('hex')}`, digest);

        const start = 13 * MiB - 7;
        const end = start + 300_000;
        const range = await collect(await store.read(digest, { start, end }));
        assert.ok(range.equals(patternChunk(start, end - start + 1)));
      });
    });

    describe('uploads', () => {
      it('creates an empty upload and appends chunks at the right offsets', async () => {
        const id = newId();
        assert.equal(await store.uploadSize(id), undefined);
        await store.createUpload(id);
        assert.equal(await store.uploadSize(id), 0);
        assert.equal(await store.appendUpload(id, 0, source(Buffer.from('abc'), Buffer.from('def'))), 6);
        assert.equal(await store.uploadSize(id), 6);
        assert.equal(await store.appendUpload(id, 6, source(Buffer.from('ghij'))), 10);
        assert.equal(await store.uploadSize(id), 10);
        assert.equal((await uploadContent(id)).toString(), 'abcdefghij');
      });

      it('keeps uploads apart', async () => {
        const a = newId();
        const b = newId();
        await store.createUpload(a);
        await store.createUpload(b);
        await store.appendUpload(a, 0, source(Buffer.from('aaa')));
        await store.appendUpload(b, 0, source(Buffer.from('b')));
        assert.equal((await uploadContent(a)).toString(), 'aaa');
        assert.equal((await uploadContent(b)).toString(), 'b');
      });

      it('refuses a chunk at the wrong offset and writes nothing', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('12345')));
        for (const offset of [0, 4, 6, 100]) {
          await assert.rejects(store.appendUpload(id, offset, source(Buffer.from('XX'))), (error: unknown) => {
            assert.ok(error instanceof OffsetMismatchError);
            assert.equal(error.actual, 5);
            return true;
          });
        }
        assert.equal(await store.uploadSize(id), 5);
        assert.equal((await uploadContent(id)).toString(), '12345');
      });

      it('stops past maxBytes with SizeLimitError and truncates back to the offset', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('0123456789')), 25);
        await assert.rejects(store.appendUpload(id, 10, patternStream(10, 64 * 1024), 25), SizeLimitError);
        assert.equal(await store.uploadSize(id), 10);
        assert.equal((await uploadContent(id)).toString(), '0123456789');
        // Exactly up to the limit is fine.
        assert.equal(await store.appendUpload(id, 10, source(Buffer.alloc(15, 0x61)), 25), 25);
        await assert.rejects(store.appendUpload(id, 25, source(Buffer.from('z')), 25), SizeLimitError);
        assert.equal(await store.uploadSize(id), 25);
      });

      it('a large chunk over the limit leaves nothing behind', async () => {
        const id = newId();
        await store.createUpload(id);
        await assert.rejects(store.appendUpload(id, 0, patternStream(0, 4 * MiB), 3 * MiB), SizeLimitError);
        assert.equal(await store.uploadSize(id), 0);
      });

      it('a source stream failing midway leaves the upload at its previous size', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('before')));
        const failure = new Error('client went away');
        await assert.rejects(store.appendUpload(id, 6, failingStream(2 * MiB, failure)), (error: unknown) => error === failure);
        assert.equal(await store.uploadSize(id), 6);
        assert.equal((await uploadContent(id)).toString(), 'before');
        // Data written after the failure settles must not appear either.
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(await store.uploadSize(id), 6);
        // The upload goes on from where it was.
        assert.equal(await store.appendUpload(id, 6, source(Buffer.from(' after'))), 12);
        assert.equal((await uploadContent(id)).toString(), 'before after');
      });

      it('a source failing immediately leaves the upload untouched', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('abc')));
        const failure = new Error('boom');
        const broken = new Readable({
          read() {
            this.destroy(failure);
          },
        });
        await assert.rejects(store.appendUpload(id, 3, broken), (error: unknown) => error === failure);
        assert.equal(await store.uploadSize(id), 3);
      });

      it('refuses an unknown upload with NotFoundError', async () => {
        await assert.rejects(store.appendUpload('no-such-upload', 1, source(Buffer.from('x'))), NotFoundError);
        await assert.rejects(store.readUpload('no-such-upload'), NotFoundError);
        await assert.rejects(store.commitUpload('no-such-upload', sha256(Buffer.from('x'))), NotFoundError);
        assert.equal(await store.uploadSize('no-such-upload'), undefined);
        assert.equal(await store.stat(sha256(Buffer.from('x'))), undefined);
      });

      it('a first chunk creates an upload that was never created, and it commits', async () => {
        const id = newId();
        const bytes = Buffer.from('first chunk creates');
        assert.equal(await store.appendUpload(id, 0, source(bytes.subarray(0, 5))), 5);
        assert.equal(await store.uploadSize(id), 5);
        await assert.rejects(store.appendUpload(id, 0, source(Buffer.from('again'))), OffsetMismatchError, 'offset 0 of an existing upload is checked');
        assert.equal(await store.appendUpload(id, 5, source(bytes.subarray(5))), bytes.length);
        await store.commitUpload(id, sha256(bytes));
        assert.ok((await collect(await store.read(sha256(bytes)))).equals(bytes));
        assert.equal(await store.uploadSize(id), undefined, 'the upload is gone once committed');
      });

      it('never resolves an upload id outside the store', async () => {
        for (const id of ['../escape', '../../etc/passwd', 'a/b', '', '.', '..']) {
          assert.equal(await store.uploadSize(id), undefined, JSON.stringify(id));
          await store.deleteUpload(id);
          await assert.rejects(store.readUpload(id), JSON.stringify(id));
          await assert.rejects(store.appendUpload(id, 0, source(Buffer.from('x'))), JSON.stringify(id));
        }
      });

      it('of two chunks racing for the same offset, exactly one is written', async () => {
        for (let round = 0; round < 10; round++) {
          const id = newId();
          await store.createUpload(id);
          await store.appendUpload(id, 0, source(Buffer.from('head')));
          const a = patternStream(0, 300_000);
          const b = source(Buffer.alloc(100_000, 0x62));
          const results = await Promise.allSettled([store.appendUpload(id, 4, a), store.appendUpload(id, 4, b)]);
          const won = results.filter((r) => r.status === 'fulfilled');
          assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
          const lost = results.find((r) => r.status === 'rejected');
          assert.ok(lost?.reason instanceof OffsetMismatchError);
          const content = await uploadContent(id);
          const size = (won[0] as PromiseFulfilledResult<number>).value;
          assert.equal(content.length, size);
          assert.equal(await store.uploadSize(id), size);
          const expected = size === 300_004 ? Buffer.concat([Buffer.from('head'), patternChunk(0, 300_000)]) : Buffer.concat([Buffer.from('head'), Buffer.alloc(100_000, 0x62)]);
          assert.ok(content.equals(expected), `round ${round}: the winner's bytes only`);
        }
      });

      it('commitUpload makes the blob readable and removes the upload', async () => {
        const id = newId();
        const bytes = Buffer.from('committed content');
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(bytes.subarray(0, 4)));
        await store.appendUpload(id, 4, source(bytes.subarray(4)));
        const digest = sha256(bytes);
        await store.commitUpload(id, digest);
        assert.ok((await collect(await store.read(digest))).equals(bytes));
        assert.equal(await store.uploadSize(id), undefined);
        await assert.rejects(store.readUpload(id));
        assert.deepEqual(await store.listUploads(new Date(Date.now() + 60_000)), []);
      });

      it('commitUpload over an existing blob keeps the blob and discards the upload', async () => {
        const bytes = Buffer.from('the same content twice');
        const digest = await putBlob(bytes);
        const reader = await store.read(digest);
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(bytes));
        await store.commitUpload(id, digest);
        assert.equal(await store.uploadSize(id), undefined);
        assert.deepEqual(await store.stat(digest), { size: bytes.length });
        assert.ok((await collect(await store.read(digest))).equals(bytes));
        assert.ok((await collect(reader)).equals(bytes), 'a reader opened before the commit still reads the blob');
      });

      it('truncateUpload cuts partial data back, never extends it, and refuses an unknown upload', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('0123456789')));
        await store.truncateUpload(id, 4);
        assert.equal(await store.uploadSize(id), 4);
        assert.equal((await uploadContent(id)).toString(), '0123');
        await store.truncateUpload(id, 8);
        assert.equal(await store.uploadSize(id), 4, 'a larger size changes nothing');
        assert.equal(await store.appendUpload(id, 4, source(Buffer.from('ab'))), 6, 'appending continues at the cut');
        assert.equal((await uploadContent(id)).toString(), '0123ab');
        await assert.rejects(store.truncateUpload(newId(), 0), NotFoundError);
      });

      it('deleteUpload discards the data and is idempotent', async () => {
        const id = newId();
        await store.createUpload(id);
        await store.appendUpload(id, 0, source(Buffer.from('data')));
        await store.deleteUpload(id);
        assert.equal(await store.uploadSize(id), undefined);
        await store.deleteUpload(id);
        await store.deleteUpload('never-created');
        await assert.rejects(store.appendUpload(id, 4, source(Buffer.from('x'))), NotFoundError, 'the data after offset 4 is gone');
      });

      it('listUploads lists uploads written before the cut-off', async () => {
        assert.deepEqual(await store.listUploads(new Date(Date.now() + 60_000)), []);
        const a = newId();
        const b = newId();
        const gone = newId();
        await store.createUpload(a);
        await store.createUpload(b);
        await store.createUpload(gone);
        await store.appendUpload(b, 0, source(Buffer.from('x')));
        await store.deleteUpload(gone);
        assert.deepEqual((await store.listUploads(new Date(Date.now() + 60_000))).sort(), [a, b].sort());
        assert.deepEqual(await store.listUploads(new Date(Date.now() - 60_000)), []);
      });
    });
  });
}
