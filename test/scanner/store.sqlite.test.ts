/** The scanner store suite on SQLite (two connections to one file stand for two replicas). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanStore } from '../../src/registry/scanner/store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { runScanStoreSuite } from './store.suite.ts';

runScanStoreSuite('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-scanstore-'));
  const file = join(dir, 'scanner.sqlite');
  const store = new ScanStore(new SqliteDriver(file));
  await store.migrate();
  return {
    store,
    other: async () => {
      const s = new ScanStore(new SqliteDriver(file));
      await s.migrate();
      return s;
    },
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
