/**
 * The OIDC store (access-track migrations 2 and 5) on SQLite and PostgreSQL: identity links with
 * sealed refresh tokens, single-use pending authorizations, sessions, expiry, rows going with their
 * user, and provider settings set through the API. PostgreSQL skips when unreachable, except under CI=true.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqlOidcStore } from '../../src/registry/auth/oidc/store.ts';
import { SqlAccessStore } from '../../src/registry/auth/store/sql-access-store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const unavailable = await postgresUnavailable();

async function open(engine: 'sqlite' | 'postgres'): Promise<{ driver: SqlDriver; cleanup: () => Promise<void> }> {
  if (engine === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'oidc-store-'));
    const driver = new SqliteDriver(join(dir, 'db.sqlite'));
    return { driver, cleanup: async () => { await driver.close(); await rm(dir, { recursive: true, force: true }); } };
  }
  const database = await createTestDatabase();
  const driver = new PostgresDriver({ connectionString: database.url, max: 2 });
  return { driver, cleanup: async () => { await driver.close(); await database.drop(); } };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  const skip = engine === 'postgres' && unavailable && !postgresRequired ? unavailable : false;
  describe(`OIDC store: ${engine}`, { skip }, () => {
    test('links, sealed refresh tokens, single-use pending records, sessions, expiry, cascade', async () => {
      if (engine === 'postgres' && unavailable) throw new Error(unavailable);
      const { driver, cleanup } = await open(engine);
      try {
        let now = Date.now();
        const access = new SqlAccessStore(driver, { now: () => now });
        await access.migrate();
        const store = new SqlOidcStore(driver, { now: () => now });
        store.sealer.setKey('corp', 'client-secret-of-corp');
        const userId = randomUUID();
        assert.ok(await access.createUser({ id: userId, name: 'alice', passwordHash: undefined, systemAdmin: false, canCreateProjects: false, email: undefined, source: 'oidc' }));

        await store.putIdentity({ provider: 'corp', subject: 'sub-1', userId, refreshToken: 'refresh-secret-1', groups: ['a', 'b'] });
        const raw = await driver.all<{ refresh_token: string }>(`SELECT refresh_token FROM oidc_identities`);
        assert.ok(!raw[0]!.refresh_token.includes('refresh-secret-1'), 'the refresh token is stored encrypted');
        let link = await store.getIdentity('corp', 'sub-1');
        assert.equal(link?.refreshToken, 'refresh-secret-1');
        assert.deepEqual(link?.groups, ['a', 'b']);
        // An update without a new refresh token keeps the old one; a new one replaces it.
        now += 1000;
        await store.putIdentity({ provider: 'corp', subject: 'sub-1', userId, refreshToken: undefined, groups: ['c'] });
        link = await store.getIdentity('corp', 'sub-1');
        assert.equal(link?.refreshToken, 'refresh-secret-1');
        assert.deepEqual(link?.groups, ['c']);
        assert.equal(link?.checkedAt.getTime(), now);
        // Another key (client secret rotated) cannot open it: the user must log in again.
        const other = new SqlOidcStore(driver, { now: () => now });
        other.sealer.setKey('corp', 'another-secret');
        assert.equal((await other.getIdentity('corp', 'sub-1'))?.refreshToken, undefined);
        await store.dropRefreshToken('corp', 'sub-1');
        assert.equal((await store.getIdentity('corp', 'sub-1'))?.refreshToken, undefined);
        assert.equal((await store.identitiesOfUser(userId)).length, 1);

        await store.createPending('state-1', { kind: 'login', provider: 'corp', data: { nonce: 'n' }, expiresAt: new Date(now + 60_000) });
        assert.equal(await store.getPending('state-1', 'device'), undefined, 'kinds do not mix');
        assert.deepEqual((await store.takePending('state-1', 'login'))?.data, { nonce: 'n' });
        assert.equal(await store.takePending('state-1', 'login'), undefined, 'single use');
        await store.createPending('state-2', { kind: 'login', provider: 'corp', data: {}, expiresAt: new Date(now + 60_000) });
        const handles = await driver.all<{ id: string }>(`SELECT id FROM oidc_pending`);
        assert.ok(handles.every((row) => row.id !== 'state-2'), 'handles are stored hashed');

        await store.createSession('session-1', { userId, provider: 'corp', csrf: 'x', expiresAt: new Date(now + 60_000) });
        assert.equal((await store.getSession('session-1'))?.userId, userId);
        now += 120_000;
        assert.equal(await store.getSession('session-1'), undefined);
        assert.equal(await store.getPending('state-2', 'login'), undefined);
        assert.equal(await store.deleteExpired(), 2);

        await store.createSession('session-2', { userId, provider: 'corp', csrf: 'x', expiresAt: new Date(now + 60_000) });
        assert.ok(await access.deleteUser(userId));
        assert.equal(await store.getIdentity('corp', 'sub-1'), undefined, 'links go with the user');
        assert.equal(await store.getSession('session-2'), undefined, 'sessions go with the user');
      } finally {
        await cleanup();
      }
    });

    test('provider settings set through the API (migration 5): replaced whole, listed, deleted', async () => {
      if (engine === 'postgres' && unavailable) throw new Error(unavailable);
      const { driver, cleanup } = await open(engine);
      try {
        let now = 1_700_000_000_000;
        await new SqlAccessStore(driver, { now: () => now }).migrate();
        const store = new SqlOidcStore(driver, { now: () => now });
        assert.deepEqual(await store.listSettings(), []);
        const mappings = [{ group: 'devs', project: 'team-a', role: 'developer' as const, repositories: ['team-a/app/**'] }];
        await store.putSettings('corp', { groupMappings: mappings, autoOnboard: false }, 'admin');
        now += 1000;
        await store.putSettings('other', { adminGroups: ['ops'] }, undefined);
        assert.deepEqual(await store.listSettings(), [
          { provider: 'corp', overrides: { groupMappings: mappings, autoOnboard: false }, updatedBy: 'admin', updatedAt: new Date(now - 1000) },
          { provider: 'other', overrides: { adminGroups: ['ops'] }, updatedBy: undefined, updatedAt: new Date(now) },
        ]);
        await store.putSettings('corp', { adminGroups: [] }, 'root');
        assert.deepEqual((await store.listSettings())[0], { provider: 'corp', overrides: { adminGroups: [] }, updatedBy: 'root', updatedAt: new Date(now) });
        assert.equal(await store.deleteSettings('corp'), true);
        assert.equal(await store.deleteSettings('corp'), false);
        assert.deepEqual((await store.listSettings()).map((record) => record.provider), ['other']);
      } finally {
        await cleanup();
      }
    });
  });
}
