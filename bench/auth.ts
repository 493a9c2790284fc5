/**
 * Access-control benchmark, Portcullis only: what authentication costs.
 *
 * - Token issuance per second at the token endpoint: anonymous, a robot secret, a password
 *   (with the verified-credential cache, as clients that send Basic credentials for every token
 *   request see it) and a password with the cache off (argon2id every time).
 * - Manifest GET by tag, 32 keep-alive connections, with auth.mode none against auth.mode token
 *   (a private repository, a bearer token reused as clients do): rounds alternate between the two
 *   servers, and the medians are compared. The issue's budget: authentication costs less than 15%
 *   of the throughput. Exit code 1 when that is exceeded.
 *
 *   node bench/auth.ts [--duration-ms 5000] [--rounds 3]
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { request } from './lib/http.ts';
import { type LoadResult, loadTest, median } from './lib/load.ts';
import { MANIFEST_ACCEPT, closeClient, makeClient, makeSmallImage } from './lib/oci.ts';
import { log } from './lib/procs.ts';
import { type Server, startPortcullis } from './lib/targets.ts';

const { values } = parseArgs({ options: { 'duration-ms': { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' } } });
const durationMs = Number(values['duration-ms']);
const rounds = Number(values.rounds);
const adminPassword = `bench-${randomBytes(12).toString('base64url')}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function start(env: Record<string, string>): Promise<Server> {
  return startPortcullis({ tmpParent: tmpdir(), distributionBin: '', portcullisArgs: [], portcullisEnv: { PORTCULLIS_GC_INTERVAL_SECONDS: '0', ...env } });
}

async function call(server: Server, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<any> {
  const res = await fetch(new URL(path, server.url), { method, headers, body });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/** Pushes the benchmark image (3 × 16 KiB layers) with optional bearer token. */
async function pushImage(server: Server, repository: string, authorization: string | undefined): Promise<number> {
  const image = makeSmallImage(3, 16 * 1024);
  const auth: Record<string, string> = authorization ? { authorization } : {};
  for (const blob of [image.config, ...image.layers]) {
    await call(server, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { ...auth, 'content-type': 'application/octet-stream' }, blob.data);
  }
  await call(server, 'PUT', `/v2/${repository}/manifests/latest`, { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, image.manifest);
  return image.manifest.length;
}

async function manifestLoad(server: Server, authorization: string | undefined, length: number): Promise<LoadResult> {
  const client = makeClient(server.url, 32);
  try {
    const url = new URL('/v2/bench/app/manifests/latest', client.base);
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT, ...(authorization ? { authorization } : {}) };
    const op = async () => {
      const res = await request({ method: 'GET', url, agent: client.agent, headers, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200 || res.bytes !== length) throw new Error(`GET manifest: HTTP ${res.status}, ${res.bytes} bytes`);
    };
    await loadTest({ connections: 32, durationMs: Math.min(2000, durationMs / 2), maxRequests: 1_000_000 }, op);
    return await loadTest({ connections: 32, durationMs, maxRequests: 2_000_000 }, op);
  } finally {
    closeClient(client);
  }
}

async function tokenLoad(server: Server, headers: Record<string, string>, scope: string): Promise<LoadResult> {
  const client = makeClient(server.url, 16);
  try {
    const url = new URL(`/auth/token?service=portcullis&scope=${encodeURIComponent(scope)}`, client.base);
    const op = async () => {
      const res = await request({ method: 'GET', url, agent: client.agent, headers, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`token: HTTP ${res.status}`);
    };
    await loadTest({ connections: 16, durationMs: 1000, maxRequests: 100_000 }, op);
    return await loadTest({ connections: 16, durationMs, maxRequests: 1_000_000 }, op);
  } finally {
    closeClient(client);
  }
}

function check(what: string, result: LoadResult): number {
  if (result.failed > 0) throw new Error(`${what}: ${result.failed} request(s) failed; first: ${result.firstError?.message}`);
  return result.reqPerSec;
}

const servers: Server[] = [];
try {
  log('starting three registries: auth none, auth token, auth token without the credential cache');
  const open = await start({ PORTCULLIS_AUTH_MODE: 'none' });
  servers.push(open);
  const secured = await start({ PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: adminPassword });
  servers.push(secured);
  const uncached = await start({ PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: adminPassword, PORTCULLIS_AUTH_CREDENTIAL_CACHE_SECONDS: '0' });
  servers.push(uncached);

  const admin = { authorization: basic('admin', adminPassword), 'content-type': 'application/json' };
  const readerPassword = `pw-${randomBytes(9).toString("base64url")}`;
  for (const server of [secured, uncached]) {
    await call(server, 'POST', '/api/v1/projects', admin, JSON.stringify({ name: 'bench' }));
    await call(server, 'POST', '/api/v1/users', admin, JSON.stringify({ name: 'reader', password: readerPassword }));
    await call(server, 'POST', '/api/v1/projects/bench/members', admin, JSON.stringify({ user: 'reader', role: 'reader' }));
  }
  const robot = await call(secured, 'POST', '/api/v1/projects/bench/robots', admin, JSON.stringify({ name: 'bench', grants: [{ repositories: ['bench/**'], actions: ['pull'] }], expiresInDays: 1 }));
  const adminToken = (await call(secured, 'GET', '/auth/token?service=portcullis&scope=repository:bench/app:pull,push', { authorization: basic('admin', adminPassword) })).token as string;
  const length = await pushImage(secured, 'bench/app', `Bearer ${adminToken}`);
  await pushImage(open, 'bench/app', undefined);

  const scope = 'repository:bench/app:pull';
  const issuance: Record<string, number> = {};
  log('token issuance');
  issuance.anonymous = check('anonymous tokens', await tokenLoad(secured, {}, scope));
  issuance.robot = check('robot tokens', await tokenLoad(secured, { authorization: basic(robot.robot.name, robot.secret) }, scope));
  issuance.passwordCached = check('password tokens', await tokenLoad(secured, { authorization: basic('reader', readerPassword) }, scope));
  issuance.passwordArgon2 = check('password tokens, no cache', await tokenLoad(uncached, { authorization: basic('reader', readerPassword) }, scope));

  const off: number[] = [];
  const on: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    // A fresh token per round, as a client would fetch after expiry (the lifetime is 300 s).
    const token = (await call(secured, 'GET', `/auth/token?service=portcullis&scope=${scope}`, { authorization: basic('reader', readerPassword) })).token as string;
    log(`manifest GET round ${round}/${rounds}`);
    off.push(check('manifest GET, auth off', await manifestLoad(open, undefined, length)));
    on.push(check('manifest GET, auth on', await manifestLoad(secured, `Bearer ${token}`, length)));
  }
  const cost = 1 - median(on) / median(off);
  const result = {
    durationMs,
    rounds,
    tokenIssuancePerSec: Object.fromEntries(Object.entries(issuance).map(([k, v]) => [k, Math.round(v)])),
    manifestGetPerSec: { authOff: Math.round(median(off)), authOn: Math.round(median(on)), samplesOff: off.map(Math.round), samplesOn: on.map(Math.round) },
    authCostPercent: Math.round(cost * 1000) / 10,
    budgetPercent: 15,
  };
  console.log(JSON.stringify(result, null, 2));
  if (cost > 0.15) {
    console.error(`authentication costs ${result.authCostPercent}% of manifest GET throughput (budget 15%)`);
    process.exitCode = 1;
  }
} finally {
  for (const server of servers) await server.stop();
}
