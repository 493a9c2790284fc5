/**
 * The scanner store suite on PostgreSQL: each test gets its own schema in a fresh database, and a
 * second pool stands for another replica. Unreachable PostgreSQL skips locally, fails under CI=true.
 */
import { after, test } from 'node:test';
import { ScanStore } from '../../src/registry/scanner/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { connectPostgres, createTestDatabase, postgresRequired, postgresUnavailable, postgresUrlFor } from '../support/postgres.ts';
import { runScanStoreSuite } from './store.suite.ts';

const unavailable = await postgresUnavailable();

if (unavailable) {
  if (postgresRequired) {
    test('PostgreSQL is reachable (required when CI=true)', () => {
      throw new Error(unavailable);
    });
  } else {
    test('scanner store: postgres', { skip: unavailable }, () => undefined);
  }
} else {
  const database = await createTestDatabase();
  const admin = await connectPostgres(database.url);
  let schemas = 0;
  after(async () => {
    await admin.end().catch(() => undefined);
    await database.drop();
  });
  runScanStoreSuite('postgres', async () => {
    const schema = `scanner_${++schemas}`;
    await admin.query(`CREATE SCHEMA ${schema}`);
    const url = postgresUrlFor(database.name, schema);
    const store = new ScanStore(new PostgresDriver({ connectionString: url, max: 4 }));
    await store.migrate();
    const others: ScanStore[] = [];
    return {
      store,
      other: async () => {
        const s = new ScanStore(new PostgresDriver({ connectionString: url, max: 4 }));
        others.push(s);
        return s;
      },
      close: async () => {
        await store.close();
        for (const s of others) await s.close().catch(() => undefined);
      },
    };
  });
}
