/**
 * The webhook store on SQLite and PostgreSQL (a fresh database per suite; skipped when
 * unreachable, failed when CI=true): definitions with name uniqueness and the per-project bound,
 * the delivery queue with leases (two claimers never win the same row; an expired lease is
 * claimable again), attempts, pagination, pruning, and the cascade on delete. Plus the target
 * policy (SSRF) and the dispatcher's back-off.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { webhooksSchema } from '../../src/registry/notifications/config.ts';
import { WebhookDispatcher } from '../../src/registry/notifications/dispatcher.ts';
import { SecretBox, signatureHeader } from '../../src/registry/notifications/secrets.ts';
import { TargetPolicy, TargetRefused } from '../../src/registry/notifications/ssrf.ts';
import { type WebhookRecord, WebhookStore } from '../../src/registry/notifications/store.ts';
import { EventBus } from '../../src/registry/events/bus.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

function hook(project: string, name: string): WebhookRecord {
  return { id: randomUUID(), project, name, url: 'https://example.com/h', events: ['push'], sealedSecret: 'v1:x', enabled: true, createdAt: 1, createdBy: 'alice', updatedAt: 1 };
}

function storeContract(engine: string, open: () => Promise<{ driver: SqlDriver; cleanup(): Promise<void> }>) {
  describe(`webhook store: ${engine}`, () => {
    let store: WebhookStore;
    let cleanup: () => Promise<void>;

    test('migrates twice without harm', async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      store = new WebhookStore(opened.driver);
      await store.migrate();
      await store.migrate();
    });

    test('webhooks: unique names per project, a bound per project, update and delete cascade', async () => {
      const a = hook('team', 'a');
      assert.equal(await store.create(a, 2), 'created');
      assert.equal(await store.create(hook('team', 'a'), 2), 'name-taken');
      assert.equal(await store.create(hook('other', 'a'), 2), 'created');
      assert.equal(await store.create(hook('team', 'b'), 2), 'created');
      assert.equal(await store.create(hook('team', 'c'), 2), 'limit');
      assert.deepEqual((await store.list('team')).map((h) => h.name), ['a', 'b']);
      assert.equal(await store.update({ ...a, name: 'b' }), 'name-taken');
      assert.equal(await store.update({ ...a, events: ['push', 'delete'], enabled: false, updatedAt: 2 }), 'updated');
      const read = await store.get('team', a.id);
      assert.deepEqual(read?.events, ['push', 'delete']);
      assert.equal(read?.enabled, false);
      assert.equal(await store.get('other', a.id), undefined, 'ids are scoped to their project');
      assert.equal(await store.update({ ...a, project: 'other', name: 'zz' }), 'missing');
      await store.enqueue([{ id: randomUUID(), webhookId: a.id, project: 'team', eventType: 'push', eventId: 'e', payload: '{}' }], 10);
      assert.equal(await store.delete('team', a.id), true);
      assert.equal(await store.delete('team', a.id), false);
      assert.deepEqual(await store.deliveries(a.id, { limit: 10 }), []);
    });

    test('deliveries: leases, attempts, pagination, pruning', async () => {
      const h = hook('q', 'h');
      await store.create(h, 10);
      const ids = Array.from({ length: 5 }, () => randomUUID());
      await store.enqueue(ids.map((id, i) => ({ id, webhookId: h.id, project: 'q', eventType: 'push', eventId: `e${i}`, payload: `{"n":${i}}` })), 1000);
      // two claimers at once: every row is won by exactly one
      const [first, second] = await Promise.all([store.claimDue(1000, 5, 5000), store.claimDue(1000, 5, 5000)]);
      const won = [...first!, ...second!].map((d) => d.id).sort();
      assert.deepEqual(won, [...ids].sort());
      assert.deepEqual(await store.claimDue(2000, 5, 6000), [], 'leased rows are not due');
      // an attempt that failed: pending again, due later
      await store.recordAttempt(ids[0]!, { attempt: 1, at: 2000, responseCode: 503, latencyMs: 12, error: 'HTTP 503' }, { status: 'pending', nextAttemptAt: 3000 });
      await store.recordAttempt(ids[1]!, { attempt: 1, at: 2000, responseCode: 204, latencyMs: 5, error: undefined }, { status: 'delivered', nextAttemptAt: 2000 });
      assert.deepEqual(await store.claimDue(2500, 5, 9000), []);
      assert.deepEqual((await store.claimDue(3000, 5, 9000)).map((d) => d.id), [ids[0]]);
      // a lease that expired (a crashed worker) is claimable again
      assert.deepEqual((await store.claimDue(5000, 5, 9000)).map((d) => d.id).sort(), ids.slice(2).sort());
      const detail = await store.delivery(h.id, ids[0]!);
      assert.equal(detail?.delivery.attempts, 1);
      assert.equal(detail?.delivery.responseCode, 503);
      assert.deepEqual(detail?.attempts, [{ attempt: 1, at: 2000, responseCode: 503, latencyMs: 12, error: 'HTTP 503' }]);
      // pages, newest first (same createdAt: by id), with a status filter
      const page1 = await store.deliveries(h.id, { limit: 3 });
      const page2 = await store.deliveries(h.id, { limit: 3, before: { createdAt: page1.at(-1)!.createdAt, id: page1.at(-1)!.id } });
      assert.equal(page1.length, 3);
      assert.equal(page2.length, 2);
      assert.deepEqual([...page1, ...page2].map((d) => d.id).sort(), [...ids].sort());
      assert.deepEqual((await store.deliveries(h.id, { limit: 10, status: 'delivered' })).map((d) => d.id), [ids[1]]);
      assert.deepEqual(await store.counts(), { pending: 4, delivered: 1, failed: 0 });
      await store.release(ids[2]!);
      assert.deepEqual((await store.claimDue(5000, 5, 9000)).map((d) => d.id), [ids[2]]);
      // an attempt finishing after its delivery was deleted leaves nothing behind
      await store.recordAttempt(randomUUID(), { attempt: 1, at: 2000, responseCode: 204, latencyMs: 1, error: undefined }, { status: 'delivered', nextAttemptAt: 2000 });
      assert.deepEqual(await store.counts(), { pending: 4, delivered: 1, failed: 0 });
      // pruning removes finished rows only
      assert.equal(await store.prune(2001), 1);
      assert.equal(await store.delivery(h.id, ids[1]!), undefined);
      assert.equal((await store.deliveries(h.id, { limit: 10 })).length, 4);
    });

    after(async () => {
      await store?.close();
      await cleanup?.();
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'portcullis-webhooks-'));
after(() => rm(dir, { recursive: true, force: true }));
storeContract('sqlite', async () => ({ driver: new SqliteDriver(join(dir, 'webhooks.sqlite')), cleanup: async () => undefined }));

const unavailable = await postgresUnavailable();
if (unavailable) {
  if (postgresRequired) test('PostgreSQL is reachable (required when CI=true)', () => assert.fail(unavailable));
  else test('webhook store: postgres', { skip: unavailable }, () => undefined);
} else {
  storeContract('postgres', async () => {
    const database = await createTestDatabase();
    return { driver: new PostgresDriver({ connectionString: database.url, max: 4 }), cleanup: () => database.drop() };
  });
}

describe('target policy (SSRF)', () => {
  const strict = new TargetPolicy({ allowedNetworks: [], allowHttp: true });

  test('reserved and private addresses are refused; public ones and allowed networks pass', () => {
    for (const address of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fe80::1', 'fd12::1', '::ffff:127.0.0.1', '64:ff9b::a00:1']) {
      assert.ok(strict.refusal(address), address);
    }
    for (const address of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '8.8.8.8']) assert.equal(strict.refusal(address), undefined, address);
    const allowing = new TargetPolicy({ allowedNetworks: ['10.1.0.0/16'], allowHttp: true });
    assert.equal(allowing.refusal('10.1.2.3'), undefined);
    assert.ok(allowing.refusal('10.2.0.1'));
  });

  test('a name resolving to loopback is refused when saved and at connection time (DNS rebinding)', async () => {
    await assert.rejects(strict.check('http://localhost:8080/h'), (error: Error) => error instanceof TargetRefused && /resolves to/.test(error.message));
    const refused = await new Promise<Error | null>((resolve) => strict.lookup()('localhost', {}, (error: Error | null) => resolve(error)));
    assert.ok(refused instanceof TargetRefused);
    // the lookup is the one http.request uses for the connection
    const { request } = await import('node:http');
    const error = await new Promise<Error>((resolve) => {
      const req = request('http://localhost:9/', { lookup: strict.lookup() as never, agent: false }, () => resolve(new Error('connected')));
      req.on('error', resolve);
      req.end();
    });
    assert.ok(error instanceof TargetRefused, String(error));
    await assert.rejects(strict.check('http://does-not-exist.invalid/h'), /does not resolve/);
    assert.throws(() => new TargetPolicy({ allowedNetworks: [], allowHttp: false }).parse('http://example.com/'), /http: targets are not allowed/);
  });
});

describe('secrets and back-off', () => {
  test('sealed secrets round-trip, differ per sealing, and fail with another key', async () => {
    const box = await SecretBox.open(join(dir, 'key'));
    const again = await SecretBox.open(join(dir, 'key'));
    const sealed = box.seal('s3cret-value');
    assert.notEqual(box.seal('s3cret-value'), sealed);
    assert.equal(again.open(sealed), 's3cret-value');
    const other = await SecretBox.open(join(dir, 'other-key'));
    assert.throws(() => other.open(sealed));
    assert.match(signatureHeader('k', 'body', 1700000000), /^t=1700000000,v1=[0-9a-f]{64}$/);
  });

  test('back-off doubles up to the ceiling, jittered within [50%, 100%)', async () => {
    const settings = webhooksSchema.parse({ retryInitialMs: 1000, retryMaxMs: 60_000 });
    const box = await SecretBox.open(join(dir, 'key'));
    const at = (random: number) =>
      new WebhookDispatcher({ store: {} as WebhookStore, events: new EventBus(), box, targets: new TargetPolicy(settings), random: () => random }, settings);
    const low = at(0);
    const high = at(0.999999);
    assert.deepEqual([1, 2, 3, 4, 7, 20].map((n) => low.backoffMs(n)), [500, 1000, 2000, 4000, 30_000, 30_000]);
    assert.deepEqual([1, 2, 3, 4, 7, 20].map((n) => high.backoffMs(n)), [1000, 2000, 4000, 8000, 60_000, 60_000]);
  });
});
