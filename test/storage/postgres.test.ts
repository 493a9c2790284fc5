/**
 * Runs the MetadataStore contract against a real PostgreSQL server (see test/support/postgres.ts
 * for which one). Each run creates a fresh database (dropped afterwards) and each test gets its
 * own schema in it, so tests start from an empty, un-migrated database.
 *
 * An unreachable server skips the suite locally but FAILS it when CI=true.
 */
import { after, test } from 'node:test';
import { runMetadataStoreContract } from '../../src/registry/storage/contract/metadata-store.contract.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { connectPostgres, createTestDatabase, postgresRequired, postgresUnavailable, postgresUrlFor } from '../support/postgres.ts';

const unavailable = await postgresUnavailable();

if (unavailable) {
  if (postgresRequired) {
    test('PostgreSQL is reachable (required when CI=true)', () => {
      throw new Error(unavailable);
    });
  } else {
    test('MetadataStore contract: postgres', { skip: unavailable }, () => undefined);
  }
} else {
  const database = await createTestDatabase({ collation: 'icu' });
  const testDb = await connectPostgres(database.url);
  let schemas = 0;

  after(async () => {
    await testDb.end().catch(() => undefined);
    await database.drop();
  });

  runMetadataStoreContract('postgres', async (clock) => {
    const schema = `contract_${++schemas}`;
    await testDb.query(`CREATE SCHEMA ${schema}`);
    const open = () => new SqlMetadataStore(new PostgresDriver({ connectionString: postgresUrlFor(database.name, schema) }), { now: clock.now });
    const store = open();
    return {
      store,
      openAnother: async () => open(),
      cleanup: async () => {
        await store.close();
        await testDb.query(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  });
}
