import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBlobStoreContract } from '../../src/registry/storage/contract/blob-store.contract.ts';
import { FsBlobStore, writeBufferBytes } from '../../src/registry/storage/fs/fs-blob-store.ts';

runBlobStoreContract('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'portcullis-fs-blobs-'));
  const store = new FsBlobStore(root);
  await store.init();
  return { store, cleanup: () => rm(root, { recursive: true, force: true }) };
});

test('file write buffers: 1 MiB each for up to 8 concurrent chunks, about 8 MiB together for more, never under 64 KiB', () => {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  assert.equal(writeBufferBytes(1), 1 * MiB);
  assert.equal(writeBufferBytes(8), 1 * MiB);
  for (const writing of [9, 32, 100]) {
    const each = writeBufferBytes(writing);
    assert.ok(each < 1 * MiB && each * writing <= 8 * MiB && each * writing > 7 * MiB, `${writing} chunks: ${each} bytes each`);
  }
  assert.equal(writeBufferBytes(10_000), 64 * KiB);
});
