/**
 * Per-project IP lists on the real databases (SQLite file and PostgreSQL): access-track
 * migration 4, replacing and removing lists, rows going with their project; and the in-memory
 * cache two replicas keep: a change applies at once where it was made and at the next periodic
 * read elsewhere, and checking a request never touches the store. PostgreSQL unreachable: skipped
 * locally, failed when CI=true.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { EventBus } from '../../src/registry/events/bus.ts';
import { ProjectNetworks } from '../../src/registry/auth/networks/project-networks.ts';
import { type ProjectNetworkStore, SqlProjectNetworkStore } from '../../src/registry/auth/networks/store.ts';
import { SqlAccessStore } from '../../src/registry/auth/store/sql-access-store.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

/** Counts the store calls (the request path must make none). */
function counting(store: ProjectNetworkStore): { store: ProjectNetworkStore; calls: () => number } {
  let calls = 0;
  return {
    store: {
      listProjectNetworks: () => (calls++, store.listProjectNetworks()),
      getProjectNetworks: (project) => (calls++, store.getProjectNetworks(project)),
      putProjectNetworks: (project, lists, by) => (calls++, store.putProjectNetworks(project, lists, by)),
    },
    calls: () => calls,
  };
}

function suite(kind: string, open: () => Promise<{ a: SqlDriver; b: SqlDriver; cleanup: () => Promise<void> }>): void {
  describe(`project IP lists: ${kind}`, () => {
    let cleanup: (() => Promise<void>) | undefined;
    after(async () => cleanup?.());

    test('migration 4, replace, remove, cascade with the project; two replicas', async () => {
      const { a, b, cleanup: close } = await open();
      cleanup = close;
      const access = new SqlAccessStore(a);
      await access.migrate();
      await new SqlAccessStore(b).migrate();
      assert.ok(await access.createProject({ name: 'team-a', visibility: 'private', createdBy: undefined }));
      const storeA = new SqlProjectNetworkStore(a);
      await storeA.putProjectNetworks('team-a', { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.6.6.0/24'] }, 'alice');
      const record = await storeA.getProjectNetworks('team-a');
      assert.deepEqual([record?.allow, record?.deny, record?.updatedBy], [['10.0.0.0/8', '2001:db8::/32'], ['10.6.6.0/24'], 'alice']);
      await storeA.putProjectNetworks('team-a', { allow: [], deny: ['10.6.6.0/24'] }, 'bob');
      assert.deepEqual((await storeA.getProjectNetworks('team-a'))?.allow, []);
      await assert.rejects(storeA.putProjectNetworks('no-such-project', { allow: ['10.0.0.0/8'], deny: [] }, undefined), 'a row needs its project');

      // Two replicas: A changes through its cache, B reads at its next refresh.
      const countedA = counting(storeA);
      const countedB = counting(new SqlProjectNetworkStore(b));
      const replicaA = new ProjectNetworks(countedA.store, { refreshMs: 0 });
      const replicaB = new ProjectNetworks(countedB.store, { refreshMs: 0 });
      await replicaA.load();
      await replicaB.load();
      assert.match(replicaB.refusal('team-a', '10.6.6.1') ?? '', /denied network/);
      await replicaA.put('team-a', { allow: ['192.0.2.0/24'], deny: [] }, 'alice');
      assert.equal(replicaA.refusal('team-a', '10.6.6.1')?.includes('not in an allowed network'), true, 'at once on the replica that changed it');
      assert.equal(replicaA.refusal('team-a', '::ffff:192.0.2.8'), undefined);
      assert.match(replicaB.refusal('team-a', '10.6.6.1') ?? '', /denied network/, 'the other replica still has the old lists');
      const before = countedB.calls();
      for (let i = 0; i < 1000; i++) replicaB.refusal('team-a', '192.0.2.8');
      assert.equal(countedB.calls(), before, 'checking requests never queries the store');
      await replicaB.load();
      assert.equal(replicaB.refusal('team-a', '192.0.2.8'), undefined);
      assert.match(replicaB.refusal('team-a', '10.6.6.1') ?? '', /not in an allowed network/);
      assert.equal(replicaB.refusal('other', '10.6.6.1'), undefined, 'projects without lists take any address');
      assert.match(replicaB.refusal('team-a', 'garbage') ?? '', /network rules/, 'an unparseable address is refused where lists exist');

      // Two empty lists remove the row; deleting the project removes its lists.
      await replicaA.put('team-a', { allow: [], deny: [] }, 'alice');
      assert.equal(await storeA.getProjectNetworks('team-a'), undefined);
      await storeA.putProjectNetworks('team-a', { allow: ['10.0.0.0/8'], deny: [] }, 'alice');
      assert.ok(await access.deleteProject('team-a'));
      assert.deepEqual(await storeA.listProjectNetworks(), []);
      await replicaB.load();
      assert.equal(replicaB.refusal('team-a', '203.0.113.1'), undefined, 'a project created again starts without lists');

      // Where the project is deleted, its lists are forgotten at once (the deletion event), not at the next read.
      assert.ok(await access.createProject({ name: 'team-b', visibility: 'private', createdBy: undefined }));
      await replicaA.put('team-b', { allow: [], deny: ['203.0.113.0/24'] }, 'alice');
      const events = new EventBus();
      replicaA.observe(events);
      assert.ok(await access.deleteProject('team-b'));
      events.publish({ type: 'access.changed', at: new Date(), origin: undefined, change: 'project.deleted', target: { kind: 'project', name: 'team-b' } });
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(replicaA.refusal('team-b', '203.0.113.1'), undefined);
    });
  });
}

test('configuration: server.trustProxy takes true/false or a list of proxy networks; the refresh interval is bounded', () => {
  assert.deepEqual(validateConfig({ server: { trustProxy: ['127.0.0.2', 'fd00::/8'] } }).server.trustProxy, ['127.0.0.2', 'fd00::/8']);
  assert.equal(validateConfig({ server: { trustProxy: true } }).server.trustProxy, true);
  assert.throws(() => validateConfig({ server: { trustProxy: ['proxy.example.com'] } }), /CIDR/);
  assert.throws(() => validateConfig({ server: { trustProxy: [] } }));
  assert.equal(validateConfig({}).auth.projectNetworksRefreshSeconds, 5);
  assert.throws(() => validateConfig({ auth: { projectNetworksRefreshSeconds: 0 } }));
});

suite('sqlite (file)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-networks-'));
  const path = join(dir, 'metadata.sqlite');
  const a = new SqliteDriver(path);
  const b = new SqliteDriver(path);
  return {
    a,
    b,
    cleanup: async () => {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const unavailable = await postgresUnavailable();
if (unavailable && postgresRequired) {
  test('PostgreSQL is reachable (required when CI=true)', () => {
    throw new Error(unavailable);
  });
} else if (unavailable) {
  test('project IP lists: postgres', { skip: unavailable }, () => undefined);
} else {
  suite('postgres', async () => {
    const database = await createTestDatabase();
    const a = new PostgresDriver({ connectionString: database.url, max: 2 });
    const b = new PostgresDriver({ connectionString: database.url, max: 2 });
    return {
      a,
      b,
      cleanup: async () => {
        await a.close();
        await b.close();
        await database.drop();
      },
    };
  });
}
