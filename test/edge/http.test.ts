/**
 * The edge over HTTP: brute-force back-off and lockout at the token endpoint (429, Retry-After,
 * TOOMANYREQUESTS), trusted networks, the same lockout seen by a second instance sharing Redis,
 * rate limits per address and per identity, and IP allow/deny lists honouring trustProxy.
 * Client addresses are set per request through Fastify's inject (`remoteAddress`).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { BruteForceGuard } from '../../src/registry/edge/login-guard.ts';
import { memoryEdgeState } from '../../src/registry/edge/memory-state.ts';
import { NetworkList } from '../../src/registry/edge/networks.ts';
import { redisSkip, redisUrl, uniquePrefix } from './redis.ts';

const password = `Edge-${randomBytes(12).toString('base64url')}`;
const dirs: string[] = [];
const registries: Registry[] = [];

after(async () => {
  for (const registry of registries) await registry.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function start(edge: Record<string, unknown>, server: Record<string, unknown> = {}, loginGuard?: BruteForceGuard): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-edge-'));
  dirs.push(dir);
  const config = validateConfig({
    server: { listen: '127.0.0.1:0', ...server },
    storage: { dataDir: dir },
    log: { level: 'silent' },
    gc: { intervalSeconds: 0 },
    audit: { enabled: false },
    scanner: { enabled: false },
    edge: { trustedNetworks: [], ...edge },
  });
  const registry = await buildRegistry(config, { adminPassword: password, loginGuard });
  registries.push(registry);
  await registry.app.ready();
  return registry;
}

const basic = (username: string, secret: string) => `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}`;

async function login(registry: Registry, remoteAddress: string, secret: string, username = 'admin') {
  const response = await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis', remoteAddress, headers: { authorization: basic(username, secret) } });
  return { status: response.statusCode, retryAfter: response.headers['retry-after'], body: response.json() as { errors?: Array<{ code: string }>; token?: string } };
}

/** Waits for the guard's asynchronous bookkeeping (Redis round trips after a failed login). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

const logins = { freeFailures: 3, baseDelaySeconds: 30, lockoutSeconds: 600 };

describe('brute-force protection at the token endpoint', () => {
  test('free failures, then 429 TOOMANYREQUESTS with Retry-After, even with the right password; other addresses are refused for the locked account', async () => {
    const registry = await start({ logins });
    for (let i = 0; i < 3; i++) assert.equal((await login(registry, '203.0.113.7', 'wrong-password-1')).status, 401);
    await settle();
    const refused = await login(registry, '203.0.113.7', password);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.errors?.[0]?.code, 'TOOMANYREQUESTS');
    assert.ok(Number(refused.retryAfter) > 0 && Number(refused.retryAfter) <= 30, `Retry-After ${refused.retryAfter}`);
    // The account is locked from anywhere (outside the trusted networks)...
    assert.equal((await login(registry, '198.51.100.9', password)).status, 429);
    // ...and the address for any account.
    assert.equal((await login(registry, '203.0.113.7', 'whatever', 'someone-else')).status, 429);
  });

  test('the delay doubles with each failure past the free ones, up to the lockout', async () => {
    // A guard on a clock the test moves, in front of the real token endpoint.
    const clock = { now: Date.now() };
    const guard = new BruteForceGuard(memoryEdgeState().failures, { freeFailures: 2, baseDelayMs: 10_000, maxDelayMs: 60_000, forgetAfterMs: 3_600_000, trusted: new NetworkList([]), now: () => clock.now });
    const registry = await start({}, {}, guard);
    assert.equal((await login(registry, '192.0.2.9', 'wrong-password-2')).status, 401, 'the first failure is free');
    await guard.settled();
    const seen: Array<number | undefined> = [];
    for (let i = 0; i < 5; i++) {
      assert.equal((await login(registry, `192.0.2.${10 + i}`, 'wrong-password-2')).status, 401);
      await guard.settled();
      // Refused before the password is checked (so not counted), even the right one, from anywhere.
      const probe = await login(registry, '192.0.2.200', password);
      seen.push(probe.status === 429 ? Number(probe.retryAfter) : undefined);
      clock.now += 61_000; // past any block: the next failure is counted, not refused
    }
    assert.deepEqual(seen, [10, 20, 40, 60, 60]);
  });

  test('the administrator can always log in from a trusted network', async () => {
    const registry = await start({ logins, trustedNetworks: ['10.0.0.0/8', 'fd00::/8'] });
    for (let i = 0; i < 6; i++) await login(registry, '203.0.113.66', 'guess-' + i);
    await settle();
    assert.equal((await login(registry, '203.0.113.66', password)).status, 429, 'the attacker is locked out');
    assert.equal((await login(registry, '198.51.100.1', password)).status, 429, 'the account is locked for outsiders');
    const trusted = await login(registry, '10.1.2.3', password);
    assert.equal(trusted.status, 200);
    assert.ok(trusted.body.token);
    assert.equal((await login(registry, 'fd00::1', password)).status, 200, 'IPv6 trusted network');
  });

  test('the OAuth2 password grant is guarded too', async () => {
    const registry = await start({ logins });
    const post = (secret: string) =>
      registry.app.inject({ method: 'POST', url: '/auth/token', remoteAddress: '203.0.113.99', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ grant_type: 'password', username: 'admin', password: secret, service: 'portcullis' }).toString() });
    for (let i = 0; i < 3; i++) assert.equal((await post('nope')).statusCode, 400);
    await settle();
    const refused = await post(password);
    assert.equal(refused.statusCode, 429);
    assert.ok(refused.headers['retry-after']);
  });

  test('two instances sharing Redis: failures on one lock the account on the other', async (t) => {
    const skip = await redisSkip();
    if (skip) return t.skip(skip);
    const prefix = uniquePrefix();
    const a = await start({ logins, redisUrl, redisKeyPrefix: prefix });
    const b = await start({ logins, redisUrl, redisKeyPrefix: prefix });
    assert.equal((await login(b, '203.0.113.40', 'wrong-password-3')).status, 401, 'the attacker tries b first');
    for (let i = 0; i < 2; i++) assert.equal((await login(a, '203.0.113.40', 'wrong-password-3')).status, 401);
    await settle();
    const refused = await login(b, '198.51.100.21', password);
    assert.equal(refused.status, 429, 'b refuses the account locked through a');
    assert.equal(refused.body.errors?.[0]?.code, 'TOOMANYREQUESTS');
    assert.equal((await login(b, '203.0.113.40', 'x', 'other-user')).status, 429, 'and the attacking address');
  });
});

describe('rate limits', () => {
  test('per client address: the burst passes, then 429 with Retry-After on /v2/ and the token endpoint; other addresses are unaffected', async () => {
    const registry = await start({ rateLimits: { perAddress: { requestsPerSecond: 0.5, burst: 3 } } });
    const get = (url: string, remoteAddress: string) => registry.app.inject({ method: 'GET', url, remoteAddress });
    for (let i = 0; i < 3; i++) assert.equal((await get('/v2/', '203.0.113.1')).statusCode, 401);
    const limited = await get('/v2/', '203.0.113.1');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().errors[0].code, 'TOOMANYREQUESTS');
    assert.equal(limited.headers['retry-after'], '2');
    assert.equal((await get('/auth/token?service=portcullis', '203.0.113.1')).statusCode, 429);
    assert.equal((await get('/auth/token?service=portcullis', '203.0.113.2')).statusCode, 200);
  });

  test('per identity on /v2/, across addresses', async () => {
    const registry = await start({ rateLimits: { perAddress: { requestsPerSecond: 0 }, perIdentity: { requestsPerSecond: 0.1, burst: 2 } } });
    const token = (await login(registry, '198.51.100.5', password)).body.token!;
    const get = (remoteAddress: string) => registry.app.inject({ method: 'GET', url: '/v2/', remoteAddress, headers: { authorization: `Bearer ${token}` } });
    assert.equal((await get('198.51.100.5')).statusCode, 200);
    assert.equal((await get('198.51.100.6')).statusCode, 200);
    const limited = await get('198.51.100.7');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.headers['retry-after'], '10');
  });

  test('shared through Redis by two instances', async (t) => {
    const skip = await redisSkip();
    if (skip) return t.skip(skip);
    const prefix = uniquePrefix();
    const edge = { redisUrl, redisKeyPrefix: prefix, rateLimits: { perAddress: { requestsPerSecond: 0.1, burst: 2 } } };
    const a = await start(edge);
    const b = await start(edge);
    assert.equal((await a.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '203.0.113.50' })).statusCode, 401);
    assert.equal((await b.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '203.0.113.50' })).statusCode, 401);
    assert.equal((await a.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '203.0.113.50' })).statusCode, 429);
    assert.equal((await b.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '203.0.113.50' })).statusCode, 429);
  });
});

describe('IP allow and deny lists', () => {
  test('deny wins, allow restricts, IPv6 and IPv4-mapped addresses; 403 DENIED', async () => {
    const registry = await start({ allow: ['198.51.100.0/24', '2001:db8::/32'], deny: ['198.51.100.13', '2001:db8:bad::/48'] });
    const status = async (remoteAddress: string) => {
      const response = await registry.app.inject({ method: 'GET', url: '/v2/', remoteAddress });
      if (response.statusCode === 403) assert.equal(response.json().errors[0].code, 'DENIED');
      return response.statusCode;
    };
    assert.equal(await status('198.51.100.12'), 401);
    assert.equal(await status('::ffff:198.51.100.12'), 401);
    assert.equal(await status('198.51.100.13'), 403);
    assert.equal(await status('203.0.113.1'), 403);
    assert.equal(await status('2001:db8::1'), 401);
    assert.equal(await status('2001:db8:bad::1'), 403);
    const token = await registry.app.inject({ method: 'GET', url: '/auth/token', remoteAddress: '203.0.113.1' });
    assert.equal(token.statusCode, 403, 'every route, not only /v2/');
  });

  test('X-Forwarded-For is honoured only with server.trustProxy', async () => {
    const behind = await start({ deny: ['203.0.113.0/24'] }, { trustProxy: true });
    const direct = await start({ deny: ['203.0.113.0/24'] });
    const forwarded = { 'x-forwarded-for': '203.0.113.5' };
    assert.equal((await behind.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '127.0.0.1', headers: forwarded })).statusCode, 403);
    assert.equal((await direct.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '127.0.0.1', headers: forwarded })).statusCode, 401);
  });

  test('the configuration refuses what is not a CIDR block', () => {
    assert.throws(() => validateConfig({ edge: { deny: ['10.0.0.0/33'] } }), /CIDR/);
    assert.throws(() => validateConfig({ edge: { allow: ['example.com'] } }), /CIDR/);
  });
});
