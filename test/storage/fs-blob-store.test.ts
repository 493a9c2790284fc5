import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBlobStoreContract } from '../../src/registry/storage/contract/blob-store.contract.ts';
import { FsBlobStore } from '../../src/registry/storage/fs/fs-blob-store.ts';

runBlobStoreContract('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'portcullis-fs-blobs-'));
  const store = new FsBlobStore(root);
  await store.init();
  return { store, cleanup: () => rm(root, { recursive: true, force: true }) };
});
