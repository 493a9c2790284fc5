import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runMetadataStoreContract } from '../../src/registry/storage/contract/metadata-store.contract.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';

let dir: string;
let counter = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-sqlite-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

runMetadataStoreContract('sqlite (file)', async (clock) => {
  const path = join(dir, `metadata-${++counter}.db`);
  const store = new SqlMetadataStore(new SqliteDriver(path), { now: clock.now });
  return {
    store,
    openAnother: async () => new SqlMetadataStore(new SqliteDriver(path), { now: clock.now }),
    cleanup: async () => {
      await store.close();
      for (const suffix of ['', '-wal', '-shm']) await rm(path + suffix, { force: true });
    },
  };
});
