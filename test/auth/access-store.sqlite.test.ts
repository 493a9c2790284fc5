import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runAccessStoreContract } from '../../src/registry/auth/store/access-store.contract.ts';
import { SqlAccessStore } from '../../src/registry/auth/store/sql-access-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';

let dir: string;
let counter = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-access-sqlite-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

runAccessStoreContract('sqlite (file)', async (clock) => {
  const path = join(dir, `access-${++counter}.db`);
  const driver = new SqliteDriver(path);
  return {
    store: new SqlAccessStore(driver, { now: clock.now }),
    openAnother: async () => {
      const other = new SqliteDriver(path);
      return { store: new SqlAccessStore(other, { now: clock.now }), close: () => other.close() };
    },
    cleanup: async () => {
      await driver.close();
      for (const suffix of ['', '-wal', '-shm']) await rm(path + suffix, { force: true });
    },
  };
});
