/**
 * Runs the MetadataStore contract against a real PostgreSQL server.
 *
 * Server: PORTCULLIS_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres. Each run
 * creates a fresh database `portcullis_test_<random>` (dropped afterwards) and each test gets its
 * own schema in it, so tests start from an empty, un-migrated database.
 *
 * An unreachable server skips the suite locally but FAILS it when CI=true.
 */
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import pg from 'pg';
import { runMetadataStoreContract } from '../../src/registry/storage/contract/metadata-store.contract.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';

const serverUrl = process.env.PORTCULLIS_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const database = `portcullis_test_${randomBytes(6).toString('hex')}`;

function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable PORTCULLIS_TEST_POSTGRES_URL)';
  }
}

function urlFor(databaseName: string, schema?: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${databaseName}`;
  if (schema) url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

let admin: pg.Client | undefined;
let unreachable: unknown;
try {
  admin = await connect(serverUrl);
} catch (error) {
  unreachable = error;
}

if (!admin) {
  const message = `PostgreSQL unreachable at ${redacted(serverUrl)}: ${(unreachable as Error)?.message ?? unreachable}. Start it or set PORTCULLIS_TEST_POSTGRES_URL.`;
  if (process.env.CI === 'true') {
    test('PostgreSQL is reachable (required when CI=true)', () => {
      throw new Error(message);
    });
  } else {
    test('MetadataStore contract: postgres', { skip: message }, () => undefined);
  }
} else {
  const server = admin;
  // A linguistic collation where the server supports one (PostgreSQL 15+ with ICU), so that the
  // listing tests prove byte order "whatever the database locale"; else the server default.
  try {
    await server.query(`CREATE DATABASE ${database} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
  } catch {
    await server.query(`CREATE DATABASE ${database}`);
  }
  const testDb = await connect(urlFor(database));
  let schemas = 0;

  after(async () => {
    await testDb.end().catch(() => undefined);
    // FORCE (PostgreSQL 13+) also ends connections a failed test may have leaked.
    await server.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await server.end();
  });

  runMetadataStoreContract('postgres', async (clock) => {
    const schema = `contract_${++schemas}`;
    await testDb.query(`CREATE SCHEMA ${schema}`);
    const open = () => new SqlMetadataStore(new PostgresDriver({ connectionString: urlFor(database, schema) }), { now: clock.now });
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
