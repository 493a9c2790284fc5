/**
 * Workload identity federation benchmark, Portcullis only: what a token request with a workload's
 * OIDC token costs against one with a robot secret.
 *
 * A real OpenID provider (`oidc-provider`, in this process) issues an RS256 JWT access token for a
 * workload; the registry (a separate process) trusts the provider through one project trust rule.
 * Token issuance with 16 connections: a robot secret (the credential cache makes it a map lookup),
 * the workload token as Basic `oidc:<jwt>` (every request verifies the RS256 signature with the
 * cached JWKS, reads the issuer's rules from the database and matches them), and the same through
 * the RFC 8693 token exchange (POST form).
 *
 *   node bench/federation.ts [--duration-ms 5000]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startTestProvider } from '../test/auth/oidc-test-provider.ts';
import { request } from './lib/http.ts';
import { type LoadResult, loadTest } from './lib/load.ts';
import { closeClient, makeClient } from './lib/oci.ts';
import { log } from './lib/procs.ts';
import { type Server, startPortcullis } from './lib/targets.ts';

const { values } = parseArgs({ options: { 'duration-ms': { type: 'string', default: '5000' } } });
const durationMs = Number(values['duration-ms']);
const adminPassword = `bench-${randomBytes(12).toString('base64url')}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const scope = 'repository:team-a/app:pull,push';

async function api(server: Server, method: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(new URL(`/api/v1${path}`, server.url), { method, headers: { authorization: basic('admin', adminPassword), 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function tokenLoad(server: Server, send: { authorization?: string; form?: string }): Promise<LoadResult> {
  const client = makeClient(server.url, 16);
  try {
    const url = new URL(send.form ? '/auth/token' : `/auth/token?service=portcullis&scope=${encodeURIComponent(scope)}`, client.base);
    const op = async () => {
      const res = send.form
        ? await request({ method: 'POST', url, agent: client.agent, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(send.form), read: 'drain', timeoutMs: 30_000 })
        : await request({ method: 'GET', url, agent: client.agent, headers: { authorization: send.authorization! }, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`token: HTTP ${res.status}`);
    };
    await loadTest({ connections: 16, durationMs: 1000, maxRequests: 100_000 }, op);
    return await loadTest({ connections: 16, durationMs, maxRequests: 1_000_000 }, op);
  } finally {
    closeClient(client);
  }
}

const provider = await startTestProvider([{ clientId: 'ci-app', ttl: 3600, claims: { repository: 'org/app', ref: 'refs/heads/main' } }]);
const dir = await mkdtemp(join(tmpdir(), 'bench-federation-'));
const configFile = join(dir, 'config.yaml');
await writeFile(configFile, JSON.stringify({ auth: { federation: { issuers: [{ issuer: provider.issuer }] } } }));
const server = await startPortcullis({ tmpParent: tmpdir(), distributionBin: '', portcullisArgs: ['--config', configFile], portcullisEnv: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_ADMIN_PASSWORD: adminPassword, PORTCULLIS_SCANNER_ENABLED: 'false' } });
try {
  await api(server, 'POST', '/projects', { name: 'team-a' });
  const robot = await api(server, 'POST', '/projects/team-a/robots', { name: 'ci', grants: [{ repositories: ['team-a/**'], actions: ['pull', 'push'] }], expiresInDays: 1 });
  await api(server, 'POST', '/projects/team-a/trust-rules', { name: 'app', issuer: provider.issuer, subject: 'ci-app', claims: { repository: 'org/app', ref: 'refs/heads/main' }, grants: [{ repositories: ['team-a/**'], actions: ['pull', 'push'] }] });
  const jwt = await provider.token('ci-app');
  const rows: Array<[string, LoadResult]> = [];
  for (const [label, send] of [
    ['robot secret (credential cache)', { authorization: basic(robot.robot.name, robot.secret) }],
    ['workload OIDC token, Basic oidc:<jwt>', { authorization: basic('oidc', jwt) }],
    ['workload OIDC token, RFC 8693 token exchange', { form: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', service: 'portcullis', scope }).toString() }],
  ] as const) {
    log(`tokens: ${label}`);
    rows.push([label, await tokenLoad(server, send)]);
  }
  console.log('| token issuance (16 connections) | tokens/s | p50 ms | p99 ms | failed |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [label, result] of rows) console.log(`| ${label} | ${result.reqPerSec.toFixed(0)} | ${result.p50Ms.toFixed(1)} | ${result.p99Ms.toFixed(1)} | ${result.failed} |`);
} finally {
  await server.stop();
  await provider.close();
  await rm(dir, { recursive: true, force: true });
}
