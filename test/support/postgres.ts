/**
 * PostgreSQL for tests. Server: PORTCULLIS_TEST_POSTGRES_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres. Every user gets a fresh database
 * `portcullis_test_<random>` (dropped afterwards), so runs never see each other's data.
 *
 * Suites needing PostgreSQL skip when it is unreachable, except when CI=true: then they fail.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const postgresServerUrl = process.env.PORTCULLIS_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

/** Unreachable PostgreSQL must fail the run rather than skip it. */
export const postgresRequired = process.env.CI === 'true';

export function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable PORTCULLIS_TEST_POSTGRES_URL)';
  }
}

/** `postgresServerUrl` pointing at another database (and optionally a schema). */
export function postgresUrlFor(databaseName: string, schema?: string): string {
  const url = new URL(postgresServerUrl);
  url.pathname = `/${databaseName}`;
  if (schema) url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

export async function connectPostgres(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Why PostgreSQL cannot be used, or undefined when it can. */
export async function postgresUnavailable(): Promise<string | undefined> {
  try {
    const client = await connectPostgres(postgresServerUrl);
    await client.end();
    return undefined;
  } catch (error) {
    return `PostgreSQL unreachable at ${redacted(postgresServerUrl)}: ${(error as Error)?.message ?? error}. Start it or set PORTCULLIS_TEST_POSTGRES_URL.`;
  }
}

export interface TestDatabase {
  name: string;
  /** Connection string of the new database. */
  url: string;
  /** Drops the database, ending any connection left to it. */
  drop(): Promise<void>;
}

/** Creates an empty database; rejects when the server is unreachable. */
export async function createTestDatabase(options: { collation?: 'icu' } = {}): Promise<TestDatabase> {
  const admin = await connectPostgres(postgresServerUrl);
  const name = `portcullis_test_${randomBytes(6).toString('hex')}`;
  try {
    if (options.collation === 'icu') {
      // A linguistic collation where the server supports one (PostgreSQL 15+ with ICU), so that
      // listing tests prove byte order "whatever the database locale"; else the server default.
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
      } catch {
        await admin.query(`CREATE DATABASE ${name}`);
      }
    } else {
      await admin.query(`CREATE DATABASE ${name}`);
    }
  } finally {
    await admin.end();
  }
  return {
    name,
    url: postgresUrlFor(name),
    drop: async () => {
      const client = await connectPostgres(postgresServerUrl);
      try {
        // FORCE (PostgreSQL 13+) also ends connections a killed process or failed test leaked.
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
