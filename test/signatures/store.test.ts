/**
 * The SignatureStore contract on SQLite (a file per test, migrated by the metadata store), in
 * memory, and on PostgreSQL (a fresh database per test; skipped when unreachable, failed when CI=true).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSignatureStoreContract } from '../../src/registry/signatures/store.contract.ts';
import { MemorySignatureStore, SqlSignatureStore } from '../../src/registry/signatures/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

let dir: string;
let counter = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-sigstore-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

runSignatureStoreContract('memory', async () => ({ store: new MemorySignatureStore(), cleanup: async () => undefined }));

runSignatureStoreContract('sqlite', async () => {
  const path = join(dir, `meta-${++counter}.sqlite`);
  const driver = new SqliteDriver(path);
  await new SqlMetadataStore(driver).migrate();
  return { store: new SqlSignatureStore(driver), cleanup: () => driver.close() };
});

const unavailable = await postgresUnavailable();
if (unavailable) {
  if (postgresRequired) {
    test('PostgreSQL is reachable (required when CI=true)', () => {
      throw new Error(unavailable);
    });
  } else {
    test('SignatureStore contract: postgres', { skip: unavailable }, () => undefined);
  }
} else {
  runSignatureStoreContract('postgres', async () => {
    const database = await createTestDatabase();
    const driver = new PostgresDriver({ connectionString: database.url, max: 2 });
    await new SqlMetadataStore(driver).migrate();
    return {
      store: new SqlSignatureStore(driver),
      cleanup: async () => {
        await driver.close();
        await database.drop();
      },
    };
  });
}
