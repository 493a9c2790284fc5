/**
 * The DeploymentStore contract (deployment records and grace windows) in memory, on SQLite and on
 * PostgreSQL (a fresh database per suite; skipped when unreachable, failed when CI=true).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { type DeploymentStore, MemoryDeploymentStore, SqlDeploymentStore } from '../../src/registry/admission/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const key = { cluster: 'c1', namespace: 'prod', workloadKind: 'Deployment', workloadName: 'web' };

function contract(name: string, open: () => Promise<{ store: DeploymentStore; cleanup(): Promise<void> }>) {
  describe(`DeploymentStore: ${name}`, () => {
    let store: DeploymentStore;
    let cleanup: () => Promise<void>;
    before(async () => ({ store, cleanup } = await open()));
    after(() => cleanup());

    it('records first and last seen per container and digest; refreshes without moving first seen', async () => {
      await store.record([
        { ...key, container: 'app', digest: d('a'), repository: 'team/app', image: 'r/team/app:1' },
        { ...key, container: 'sidecar', digest: d('b'), repository: 'team_x/proxy', image: 'r/team_x/proxy:1' },
      ], new Date(1000));
      await store.record([{ ...key, container: 'app', digest: d('a'), repository: 'team/app', image: 'r/team/app:1@x' }], new Date(5000));
      const rows = await store.list({ digest: d('a'), limit: 10 });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.firstSeen.getTime(), 1000);
      assert.equal(rows[0]!.lastSeen.getTime(), 5000);
      assert.equal(rows[0]!.image, 'r/team/app:1@x');
      await store.record([{ ...key, namespace: 'dev', container: 'app', digest: d('a'), repository: 'team/app', image: 'x' }], new Date(3000));
      assert.deepEqual((await store.list({ repository: 'team/app', limit: 10 })).map((r) => r.namespace), ['prod', 'dev'], 'most recently seen first');
      assert.deepEqual((await store.list({ namespace: 'prod', limit: 10 })).map((r) => r.container).sort(), ['app', 'sidecar']);
      assert.equal((await store.list({ namespace: 'prod', limit: 1 })).length, 1);
    });

    it('filters by the projects a caller may read (a "_" in a name is not a wildcard)', async () => {
      assert.deepEqual((await store.list({ namespace: 'prod', projects: ['team'], limit: 10 })).map((r) => r.repository), ['team/app']);
      assert.deepEqual((await store.list({ namespace: 'prod', projects: ['team_x'], limit: 10 })).map((r) => r.repository), ['team_x/proxy']);
      assert.deepEqual(await store.list({ namespace: 'prod', projects: ['teamax'], limit: 10 }), []);
      assert.deepEqual(await store.list({ namespace: 'prod', projects: [], limit: 10 }), []);
    });

    it('knows when a workload first ran a digest, and whether a digest is deployed', async () => {
      const first = await store.firstAdmitted(key, [d('a'), d('b'), d('c')]);
      assert.deepEqual([...first.entries()].map(([k, v]) => [k, v.getTime()]).sort(), [[d('a'), 1000], [d('b'), 1000]]);
      assert.equal((await store.firstAdmitted({ ...key, workloadName: 'other' }, [d('a')])).size, 0);
      assert.equal(await store.isDeployed(d('a')), true);
      assert.equal(await store.isDeployed(d('c')), false);
    });

    it('opens a grace window once, keeps the first opening, closes it', async () => {
      const w = { digest: d('a'), project: 'team', rule: 'vulns', openedAt: new Date(10_000), reason: 'CVE-1 is critical' };
      assert.equal((await store.openGrace(w)).opened, true);
      const again = await store.openGrace({ ...w, openedAt: new Date(20_000), reason: 'later' });
      assert.equal(again.opened, false);
      assert.equal(again.window.openedAt.getTime(), 10_000);
      assert.equal(again.window.reason, 'CVE-1 is critical');
      assert.equal((await store.grace(d('a'), 'team', 'vulns'))?.openedAt.getTime(), 10_000);
      await store.closeGrace(d('a'), 'team', ['vulns']);
      assert.equal(await store.grace(d('a'), 'team', 'vulns'), undefined);
      assert.equal((await store.openGrace({ ...w, openedAt: new Date(30_000) })).window.openedAt.getTime(), 30_000);
    });
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-deployments-'));
});
after(() => rm(dir, { recursive: true, force: true }));

contract('memory', async () => ({ store: new MemoryDeploymentStore(), cleanup: async () => undefined }));
contract('sqlite', async () => {
  const driver = new SqliteDriver(join(dir, 'meta.sqlite'));
  await new SqlMetadataStore(driver).migrate();
  return { store: new SqlDeploymentStore(driver), cleanup: () => driver.close() };
});

const unavailable = await postgresUnavailable();
if (unavailable) {
  if (postgresRequired) test('PostgreSQL is reachable (required when CI=true)', () => { throw new Error(unavailable); });
  else test('DeploymentStore: postgres', { skip: unavailable }, () => undefined);
} else {
  contract('postgres', async () => {
    const database = await createTestDatabase();
    const driver = new PostgresDriver({ connectionString: database.url, max: 2 });
    await new SqlMetadataStore(driver).migrate();
    return { store: new SqlDeploymentStore(driver), cleanup: async () => { await driver.close(); await database.drop(); } };
  });
}
