/**
 * OIDC benchmark, Portcullis only: what re-reading an OIDC user's groups at token issuance costs.
 *
 * A real OpenID provider (`oidc-provider`, in this process) and one registry with the
 * verified-credential cache off (`auth.credentialCacheSeconds: 0`, so every token request checks
 * the personal access token), two providers over the same issuer: `cached` (groupsCacheSeconds 60:
 * the groups recorded at the last check are reused) and `live` (groupsCacheSeconds 0: a refresh
 * grant plus a userinfo call at the provider for every token request). Token issuance with 1 and
 * 16 connections for a local user's token, an OIDC user's token through `cached`, and through
 * `live` (with 16 connections, concurrent requests of one user share one refresh).
 *
 *   node bench/oidc.ts [--duration-ms 5000]
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Browser, startLoginProvider } from '../test/auth/oidc-login-provider.ts';
import { request } from './lib/http.ts';
import { type LoadResult, loadTest } from './lib/load.ts';
import { closeClient, makeClient } from './lib/oci.ts';
import { log } from './lib/procs.ts';
import { type Server, startPortcullis } from './lib/targets.ts';

const { values } = parseArgs({ options: { 'duration-ms': { type: 'string', default: '5000' } } });
const durationMs = Number(values['duration-ms']);
const adminPassword = `bench-${randomBytes(12).toString('base64url')}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function api(server: Server, method: string, path: string, body: unknown, auth = basic('admin', adminPassword)): Promise<any> {
  const res = await fetch(new URL(`/api/v1${path}`, server.url), { method, headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function tokenLoad(server: Server, authorization: string, connections: number): Promise<LoadResult> {
  const client = makeClient(server.url, connections);
  try {
    const url = new URL(`/auth/token?service=portcullis&scope=${encodeURIComponent('repository:team-a/app:pull,push')}`, client.base);
    const op = async () => {
      const res = await request({ method: 'GET', url, agent: client.agent, headers: { authorization }, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`token: HTTP ${res.status}`);
    };
    await loadTest({ connections, durationMs: 1000, maxRequests: 100_000 }, op);
    return await loadTest({ connections, durationMs, maxRequests: 1_000_000 }, op);
  } finally {
    closeClient(client);
  }
}

/** Logs `login` in through `providerName` in a browser and creates a personal access token on the page. */
async function oidcToken(server: Server, issuer: string, providerName: string, login: string): Promise<string> {
  const browser = new Browser();
  const start = await browser.follow(`${server.url}/auth/oidc/login?provider=${providerName}`);
  const page = await browser.signIn(start, issuer, login);
  const html = await page.response.text();
  if (page.response.status !== 200) throw new Error(`login of ${login}: ${page.response.status} ${html.slice(0, 300)}`);
  const created = await browser.submit(html, page.url, { name: 'bench', days: '1' });
  const secret = /(pcp_[A-Za-z0-9_-]+)/.exec(await created.response.text())?.[1];
  if (!secret) throw new Error(`no token for ${login}`);
  return secret;
}

const provider = await startLoginProvider({
  alice: { username: 'alice', email: 'alice@example.com', groups: ['team-a-devs'] },
  bob: { username: 'bob', email: 'bob@example.com', groups: ['team-a-devs'] },
});
const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp(join(tmpdir(), 'bench-oidc-')));
const configFile = join(dir, 'config.yaml');
const providerYaml = (name: string, cacheSeconds: number) =>
  [`      - name: ${name}`, `        issuer: ${provider.issuer}`, `        clientId: ${provider.clientId}`, `        clientSecret: ${provider.clientSecret}`, `        groupsCacheSeconds: ${cacheSeconds}`, '        groupMappings:', '          - { group: team-a-devs, project: team-a, role: developer }'].join('\n');
await writeFile(configFile, ['auth:', '  mode: token', '  credentialCacheSeconds: 0', '  oidc:', '    providers:', providerYaml('cached', 60), providerYaml('live', 0), ''].join('\n'));
const server = await startPortcullis({ tmpParent: tmpdir(), distributionBin: '', portcullisArgs: ['--config', configFile], portcullisEnv: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_ADMIN_PASSWORD: adminPassword, PORTCULLIS_SCANNER_ENABLED: 'false' } });
try {
  await provider.configure(`${server.url}/auth/oidc/callback`);
  await api(server, 'POST', '/projects', { name: 'team-a' });
  const localPassword = `Pw-${randomBytes(9).toString('base64url')}`;
  await api(server, 'POST', '/users', { name: 'local', password: localPassword });
  await api(server, 'POST', '/projects/team-a/members', { user: 'local', role: 'developer' });
  // A user's tokens are created by that user.
  const local = (await api(server, 'POST', '/users/local/tokens', { name: 'bench', grants: [{ repositories: ['team-a/**'], actions: ['pull', 'push'] }], expiresInDays: 1 }, basic('local', localPassword))).secret as string;
  const cached = await oidcToken(server, provider.issuer, 'cached', 'alice');
  const live = await oidcToken(server, provider.issuer, 'live', 'bob');
  const rows: Array<[string, number, LoadResult]> = [];
  for (const connections of [1, 16]) for (const [label, auth] of [
    ['local user, personal access token', basic('local', local)],
    ['OIDC user, groupsCacheSeconds 60 (groups from the database)', basic('alice', cached)],
    ['OIDC user, groupsCacheSeconds 0 (refresh grant + userinfo per token)', basic('bob', live)],
  ] as const) {
    log(`tokens, ${connections} connection(s): ${label}`);
    rows.push([label, connections, await tokenLoad(server, auth, connections)]);
  }
  console.log('| token issuance (credential cache off) | connections | tokens/s | p50 ms | p99 ms | failed |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [label, connections, result] of rows) console.log(`| ${label} | ${connections} | ${result.reqPerSec.toFixed(0)} | ${result.p50Ms.toFixed(1)} | ${result.p99Ms.toFixed(1)} | ${result.failed} |`);
} finally {
  await server.stop();
  await provider.close();
  await import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true }));
}
