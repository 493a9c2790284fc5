import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteDriver } from '../storage/sqlite/sqlite-driver.ts';
import { RegistryTokens, TokenError, tokenAllows } from './registry-tokens.ts';
import { SigningKeys } from './signing-keys.ts';
import { SqlAccessStore } from './store/sql-access-store.ts';

const DAY = 86_400_000;

async function setup() {
  const clock = { t: Date.UTC(2026, 0, 1) };
  const now = () => clock.t;
  const driver = new SqliteDriver(':memory:');
  const store = new SqlAccessStore(driver, { now });
  await store.migrate();
  const replica = (reloadMs = 60_000) => {
    const keys = new SigningKeys(store, { rotationMs: 30 * DAY, retainMs: 310_000, reloadMs, now });
    const tokens = new RegistryTokens(keys, { issuer: 'portcullis', service: 'portcullis', ttlSeconds: 300, clockToleranceSeconds: 10, now });
    return { keys, tokens };
  };
  return { clock, store, driver, replica };
}

const principal = { kind: 'user' as const, id: 'u1', credential: { kind: 'password' as const } };
const access = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];

test('rotation without downtime: old tokens stay valid until they expire, then the old key goes', async () => {
  const { clock, driver, replica } = await setup();
  const { keys, tokens } = replica();
  await keys.maintain();
  const first = keys.signingKey().kid;
  clock.t += 30 * DAY - 100_000;
  const old = await tokens.issue('alice', principal, access); // signed 100 s before the rotation
  clock.t += 100_000;
  await keys.maintain();
  const second = keys.signingKey().kid;
  assert.notEqual(second, first, 'rotated');
  assert.deepEqual(keys.jwks().keys.map((k) => k.kid), [second, first], 'both published during the overlap');
  clock.t += 150_000;
  const verified = await tokens.verify(old.token);
  assert.ok(tokenAllows(verified, 'repository', 'team/app', 'pull'), 'a token of the replaced key is still valid');
  clock.t += 161_000;
  await keys.maintain();
  assert.deepEqual(keys.jwks().keys.map((k) => k.kid), [second], 'the replaced key is pruned once its tokens expired');
  const fresh = await tokens.issue('alice', principal, access);
  assert.ok(await tokens.verify(fresh.token));
  await driver.close();
});

test('a key created by another replica is accepted at once (reload on unknown kid)', async () => {
  const { clock, driver, replica } = await setup();
  const a = replica();
  const b = replica();
  await a.keys.maintain();
  await b.keys.maintain();
  assert.equal(a.keys.signingKey().kid, b.keys.signingKey().kid, 'replicas share the key');
  clock.t += 30 * DAY;
  await a.keys.maintain();
  await b.keys.maintain();
  assert.equal(a.keys.jwks().keys.length, 2, 'two replicas rotating at once create one new key');
  clock.t += 31 * DAY;
  await a.keys.maintain(); // a rotates again; b has not seen the new key yet
  clock.t += 2000;
  const token = await a.tokens.issue('alice', principal, access);
  assert.notEqual(a.keys.signingKey().kid, b.keys.signingKey().kid);
  assert.ok(await b.tokens.verify(token.token), 'b reloads the key set for an unknown kid');
  await driver.close();
});

test('verification: cached, expiry honoured also from the cache, garbage refused', async () => {
  const { clock, driver, replica } = await setup();
  const { keys, tokens } = replica();
  await keys.maintain();
  const issued = await tokens.issue('alice', principal, access);
  assert.equal(issued.expiresIn, 300);
  const first = await tokens.verify(issued.token);
  assert.equal(await tokens.verify(issued.token), first, 'second verification comes from the cache');
  clock.t += 311_000;
  await assert.rejects(tokens.verify(issued.token), TokenError);
  await assert.rejects(tokens.verify(issued.token), TokenError);
  for (const garbage of ['', 'a.b.c', 'x'.repeat(20_000), `${issued.token}x`]) await assert.rejects(tokens.verify(garbage), TokenError, garbage.slice(0, 20));
  await driver.close();
});
