/**
 * Audit store fixtures on SQLite (a temporary directory) and PostgreSQL (a throw-away database,
 * one schema per fixture). PostgreSQL: PORTCULLIS_TEST_POSTGRES_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres; unreachable skips locally, fails when CI=true.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type AuditSigner, type TrustedKeys, loadOrCreateSigningKey, loadTrustedKeys } from '../../src/registry/audit/keys.ts';
import { AuditLog, type AuditLogOptions } from '../../src/registry/audit/log.ts';
import { SqlAuditStore } from '../../src/registry/audit/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';

export interface AuditFixture {
  dir: string;
  store: SqlAuditStore;
  signer: AuditSigner;
  keys: TrustedKeys;
  keyFile: string;
  /** A new log over the fixture's store. */
  log(options?: Partial<AuditLogOptions>): AuditLog;
  /** Another store on the same database (another replica, or the CLI). */
  openStore(): Promise<SqlAuditStore>;
  /** Raw SQL on the database, as an attacker with database access would run it. */
  sql(statement: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  cleanup(): Promise<void>;
}

export type FixtureFactory = () => Promise<AuditFixture>;

export const defaultLogOptions: AuditLogOptions = { maxQueue: 10_000, batchSize: 50, flushIntervalMs: 20, checkpointEveryRecords: 100, checkpointEveryMs: 3_600_000 };

async function fixture(dir: string, openDriver: () => SqlDriver, sql: AuditFixture['sql'], dropDatabase: () => Promise<void>): Promise<AuditFixture> {
  const keyFile = join(dir, 'audit', 'signing-key.pem');
  const signer = await loadOrCreateSigningKey(keyFile);
  const keys = await loadTrustedKeys([signer.publicKeyFile]);
  const stores: SqlAuditStore[] = [];
  const openStore = async () => {
    const store = new SqlAuditStore(openDriver());
    await store.migrate();
    stores.push(store);
    return store;
  };
  const store = await openStore();
  return {
    dir,
    store,
    signer,
    keys,
    keyFile,
    log: (options = {}) => new AuditLog({ store, signer }, { ...defaultLogOptions, ...options }),
    openStore,
    sql,
    async cleanup() {
      for (const s of stores) await s.close().catch(() => undefined);
      await dropDatabase();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const sqliteFixture: FixtureFactory = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-audit-'));
  const path = join(dir, 'audit', 'audit.sqlite');
  await mkdir(join(dir, 'audit'), { recursive: true });
  const raw = new SqliteDriver(path);
  return fixture(
    dir,
    () => new SqliteDriver(path),
    (statement, params) => (/^\s*select/i.test(statement) ? raw.all(statement, params) : raw.run(statement, params).then(() => [])),
    () => raw.close(),
  );
};

export const postgresServerUrl = process.env.PORTCULLIS_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

function urlFor(database: string, schema?: string): string {
  const url = new URL(postgresServerUrl);
  url.pathname = `/${database}`;
  if (schema) url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * A throw-away PostgreSQL database for one test file: `factory` gives each fixture a fresh
 * schema; `drop` removes the database. Returns the reason when the server is unreachable.
 */
export async function postgresFixtures(): Promise<{ factory: FixtureFactory; url: (schema?: string) => string; drop(): Promise<void> } | { unreachable: string }> {
  let admin: pg.Client;
  try {
    admin = await connect(postgresServerUrl);
  } catch (error) {
    return { unreachable: `PostgreSQL unreachable at ${postgresServerUrl.replace(/:[^:@/]*@/, ':***@')}: ${(error as Error).message}` };
  }
  const database = `portcullis_test_${randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${database}`);
  let schemas = 0;
  return {
    url: (schema) => urlFor(database, schema),
    factory: async () => {
      const schema = `audit_${++schemas}`;
      const client = await connect(urlFor(database));
      await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(`SET search_path TO ${schema}`);
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-audit-pg-'));
      return fixture(
        dir,
        () => new PostgresDriver({ connectionString: urlFor(database, schema), max: 4 }),
        async (statement, params) => (await client.query(statement, params)).rows as Array<Record<string, unknown>>,
        async () => {
          await client.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
          await client.end();
        },
      );
    },
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** Registers the suite on PostgreSQL, or a skip (locally) / a failing test (CI=true) when unreachable. */
export async function onPostgres(register: (factory: FixtureFactory) => void, after: (fn: () => Promise<void>) => void, test: (name: string, options: { skip?: string }, fn: () => void) => void): Promise<void> {
  const pgFixtures = await postgresFixtures();
  if ('unreachable' in pgFixtures) {
    if (process.env.CI === 'true') {
      test('PostgreSQL is reachable (required when CI=true)', {}, () => {
        throw new Error(pgFixtures.unreachable);
      });
    } else test('audit on PostgreSQL', { skip: pgFixtures.unreachable }, () => undefined);
    return;
  }
  after(() => pgFixtures.drop());
  register(pgFixtures.factory);
}
