/**
 * The federation store (trust rules, single-use token ids, robot certificate bindings) on SQLite
 * and on a real PostgreSQL server: migration 3 of the access track, cascades with the project and
 * the robot, replay detection across two connections.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqlFederationStore } from '../../src/registry/auth/federation/store.ts';
import { SqlAccessStore } from '../../src/registry/auth/store/sql-access-store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const rule = (project: string, name: string) => ({
  id: randomUUID(),
  project,
  name,
  description: undefined,
  issuer: 'https://token.actions.githubusercontent.com',
  audience: 'portcullis',
  subject: 'repo:org/app:ref:refs/heads/main',
  claims: { repository: ['org/app'] },
  grants: [{ repositories: [`${project}/app`], actions: ['pull' as const, 'push' as const] }],
  maxLifetimeSeconds: 300,
  singleUse: false,
  createdBy: 'admin',
});

async function contract(open: () => Promise<{ driver: SqlDriver; another: () => Promise<SqlDriver>; cleanup: () => Promise<void> }>) {
  const { driver, another, cleanup } = await open();
  try {
    const access = new SqlAccessStore(driver);
    await access.migrate();
    const store = new SqlFederationStore(driver);
    await access.createProject({ name: 'team', visibility: 'private', createdBy: undefined });
    const first = rule('team', 'main');
    assert.equal(await store.createTrustRule(first), true);
    assert.equal(await store.createTrustRule({ ...rule('team', 'main') }), false, 'names are unique per project');
    const read = await store.getTrustRule(first.id);
    assert.deepEqual({ ...read, createdAt: undefined }, { ...first, project: 'team', revokedAt: undefined, createdAt: undefined });
    assert.deepEqual((await store.activeTrustRules(first.issuer)).map((r) => r.id), [first.id]);
    assert.equal(await store.revokeTrustRule(first.id), true);
    assert.deepEqual(await store.activeTrustRules(first.issuer), []);
    assert.ok((await store.getTrustRule(first.id))?.revokedAt);

    // Replay detection holds across connections (replicas).
    const expires = new Date(Date.now() + 60_000);
    const other = await another();
    try {
      assert.equal(await store.useTokenId('https://issuer', 'jti-1', expires), true);
      assert.equal(await new SqlFederationStore(other).useTokenId('https://issuer', 'jti-1', expires), false);
      assert.equal(await store.useTokenId('https://another', 'jti-1', expires), true, 'ids are per issuer');
    } finally {
      await other.close();
    }

    // Certificate bindings: lookup by key, subject or SAN; re-binding replaces; gone with the robot.
    await access.createRobot({ id: 'r1', name: 'robot$team+ci', project: 'team', description: undefined, grants: [], secretHash: 'x', expiresAt: new Date(Date.now() + 86_400_000), createdBy: undefined });
    await store.putRobotCertificate('r1', { spkiSha256: 'a'.repeat(64), subject: undefined, san: undefined, certificateOnly: false });
    await store.putRobotCertificate('r1', { spkiSha256: undefined, subject: 'CN=ci', san: 'DNS:ci.example', certificateOnly: true });
    const found = await store.robotCertificatesFor({ spkiSha256: 'b'.repeat(64), subject: 'CN=other', sans: ['DNS:ci.example'] });
    assert.deepEqual(found.map((b) => [b.robotId, b.subject, b.certificateOnly, b.spkiSha256]), [['r1', 'CN=ci', true, undefined]]);
    assert.deepEqual(await store.robotCertificatesFor({ spkiSha256: 'a'.repeat(64), subject: 'CN=x', sans: [] }), [], 'the old binding was replaced');
    await access.deleteRobot('r1');
    assert.equal(await store.getRobotCertificate('r1'), undefined);

    // Deleting the project deletes its rules (a new project of that name inherits no trust).
    await store.createTrustRule(rule('team', 'second'));
    assert.equal(await access.deleteProject('team'), true);
    assert.deepEqual(await store.listTrustRules('team'), []);
  } finally {
    await cleanup();
  }
}

describe('federation store', () => {
  test('SQLite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-federation-'));
    const path = join(dir, 'access.db');
    await contract(async () => ({ driver: new SqliteDriver(path), another: async () => new SqliteDriver(path), cleanup: () => rm(dir, { recursive: true, force: true }) }));
  });

  test('PostgreSQL', async (t) => {
    const unavailable = await postgresUnavailable();
    if (unavailable) {
      if (postgresRequired) throw new Error(unavailable);
      t.skip(unavailable);
      return;
    }
    const database = await createTestDatabase();
    const driver = new PostgresDriver({ connectionString: database.url, max: 2 });
    await contract(async () => ({
      driver,
      another: async () => new PostgresDriver({ connectionString: database.url, max: 1 }),
      cleanup: async () => {
        await driver.close();
        await database.drop();
      },
    }));
  });
});
