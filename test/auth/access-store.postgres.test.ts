/**
 * The AccessStore contract on a real PostgreSQL server (a fresh database per test, see
 * test/support/postgres.ts). An unreachable server skips the suite locally but FAILS it when CI=true.
 */
import { test } from 'node:test';
import { runAccessStoreContract } from '../../src/registry/auth/store/access-store.contract.ts';
import { SqlAccessStore } from '../../src/registry/auth/store/sql-access-store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const unavailable = await postgresUnavailable();

if (unavailable) {
  if (postgresRequired) {
    test('PostgreSQL is reachable (required when CI=true)', () => {
      throw new Error(unavailable);
    });
  } else {
    test('AccessStore contract: postgres', { skip: unavailable }, () => undefined);
  }
} else {
  runAccessStoreContract('postgres', async (clock) => {
    const database = await createTestDatabase();
    const driver = new PostgresDriver({ connectionString: database.url, max: 4 });
    return {
      store: new SqlAccessStore(driver, { now: clock.now }),
      openAnother: async () => {
        const other = new PostgresDriver({ connectionString: database.url, max: 2 });
        return { store: new SqlAccessStore(other, { now: clock.now }), close: () => other.close() };
      },
      cleanup: async () => {
        await driver.close();
        await database.drop();
      },
    };
  });
}
