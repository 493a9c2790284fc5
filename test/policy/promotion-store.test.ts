/**
 * Promotion records on SQLite and PostgreSQL (metadata migration 6) and in memory: one contract,
 * newest first, filters (project as source or destination, repository, digest, decision), cursor
 * paging without gaps or repeats, a project filter that does not match a longer name.
 * PostgreSQL is skipped when unreachable, except under CI=true.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test } from 'node:test';
import { MemoryPromotionStore, type PromotionStore, SqlPromotionStore } from '../../src/registry/policy/promotion/store.ts';
import type { PromotionRecord } from '../../src/registry/policy/promotion/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function record(n: number, extra: Partial<PromotionRecord> = {}): PromotionRecord {
  return {
    id: `id-${String(n).padStart(3, '0')}`,
    createdAt: new Date(Date.UTC(2026, 10, 1) + Math.floor(n / 2) * 1000), // pairs share a timestamp
    actor: { kind: 'user', name: 'alice' },
    source: { repository: 'staging/app', reference: '1.0' },
    digest: digest(n),
    destination: { repository: n % 3 === 0 ? 'prod/app' : 'prod/web', tag: n % 2 ? '1.0' : undefined },
    decision: n % 4 === 0 ? 'denied' : 'allowed',
    policy: n % 5 === 0 ? undefined : { name: 'p', project: 'prod', version: n, hash: `sha256:${'a'.repeat(64)}` },
    denials: n % 4 === 0 ? ['rule signed: unsigned'] : [],
    attestation: n % 4 === 0 ? undefined : digest(1000 + n),
    copied: [digest(n)],
    ...extra,
  };
}

function contract(name: string, open: () => Promise<{ store: PromotionStore; close(): Promise<void> }>): void {
  describe(`promotion store: ${name}`, () => {
    it('stores, filters and pages newest first', async () => {
      const { store, close } = await open();
      try {
        for (let n = 1; n <= 20; n++) await store.add(record(n));
        await store.add(record(21, { source: { repository: 'prodx/app', reference: 'x' }, destination: { repository: 'prodx/app2', tag: undefined } }));
        const all = await store.list({ project: 'prod', limit: 100 });
        assert.equal(all.items.length, 20, 'prodx is another project');
        assert.equal(all.next, undefined);
        const order = all.items.map((r) => r.id);
        assert.deepEqual(order, [...order].sort().reverse(), 'newest first, then id');
        assert.deepEqual(all.items.find((r) => r.id === 'id-005'), record(5));
        assert.deepEqual(all.items.find((r) => r.id === 'id-004'), record(4));
        assert.equal((await store.list({ project: 'staging', limit: 100 })).items.length, 20, 'the source project sees them too');
        assert.equal((await store.list({ repository: 'prod/app', limit: 100 })).items.length, 6);
        assert.deepEqual((await store.list({ project: 'prod', digest: digest(7), limit: 10 })).items.map((r) => r.id), ['id-007']);
        assert.equal((await store.list({ project: 'prod', decision: 'denied', limit: 100 })).items.length, 5);
        const paged: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.list({ project: 'prod', limit: 3, ...(cursor ? { cursor } : {}) });
          paged.push(...page.items.map((r) => r.id));
          cursor = page.next;
        } while (cursor);
        assert.deepEqual(paged, order, 'no gap or repeat across equal timestamps');
        await assert.rejects(store.list({ project: 'prod', limit: 3, cursor: 'bm9wZQ' }), RangeError);
      } finally {
        await close();
      }
    });
  });
}

contract('memory', async () => ({ store: new MemoryPromotionStore(), close: async () => undefined }));

contract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-promotions-'));
  const driver = new SqliteDriver(join(dir, 'meta.sqlite'));
  const meta = new SqlMetadataStore(driver);
  await meta.migrate();
  return { store: new SqlPromotionStore(driver), close: async () => { await meta.close(); await rm(dir, { recursive: true, force: true }); } };
});

const unavailable = await postgresUnavailable();
if (unavailable && postgresRequired) {
  test('PostgreSQL is reachable (required when CI=true)', () => {
    throw new Error(unavailable);
  });
} else if (unavailable) {
  test('promotion store: postgres', { skip: unavailable }, () => undefined);
} else {
  const database = await createTestDatabase({ collation: 'icu' });
  after(() => database.drop());
  contract('postgres', async () => {
    const driver = new PostgresDriver({ connectionString: database.url });
    const meta = new SqlMetadataStore(driver);
    await meta.migrate();
    await driver.run('DELETE FROM promotions');
    return { store: new SqlPromotionStore(driver), close: () => meta.close() };
  });
}
