/**
 * OIDC login end to end against a real OpenID provider (`oidc-provider`) started by the test:
 * the authorization code flow with PKCE driven over HTTP through the provider's login and consent
 * pages, group -> project role mapping, the admin group, denied users (no mapped group, e-mail
 * domain, disabled), replayed and foreign callbacks, group changes at the provider taking effect
 * at the next token issuance without a new login, the device flow through `portcullis login
 * --oidc` yielding a personal access token used by skopeo, and no secret in the logs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { buildImage, randomFile, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { type ClientEnvironment, createClientEnvironment, makeTempDir, removeDir, requireTools, run } from '../acceptance/helpers/tools.ts';
import { type AuthRegistry, admin, claims, ok, pushImage, startAuthRegistry } from './helpers.ts';
import { createPkce, OidcError, OidcProviderClient } from '../../src/registry/auth/oidc/provider-client.ts';
import { Browser, type LoginProvider, startLoginProvider } from './oidc-login-provider.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

describe('OIDC login against a real OpenID provider', () => {
  let provider: LoginProvider;
  let registry: AuthRegistry;
  let work: string;
  /** Every secret the test saw: none may appear in the registry's output. */
  const secrets: string[] = [];

  before(async () => {
    provider = await startLoginProvider({
      alice: { username: 'alice', email: 'alice@example.com', groups: ['team-a-devs', 'unrelated'] },
      bob: { username: 'bob', email: 'bob@example.com', groups: ['readers-qa'] },
      carol: { username: 'carol', email: 'carol@example.com', groups: ['registry-admins'] },
      mallory: { username: 'mallory', email: 'mallory@example.com', groups: ['unrelated'] },
      eve: { username: 'eve', email: 'eve@elsewhere.test', groups: ['team-a-devs'] },
      frank: { username: 'frank', email: 'frank@example.com', groups: ['team-a-devs'] },
      dave: { username: 'dave', email: 'dave@example.com', groups: ['team-a-devs'] },
      grace: { username: 'grace', email: 'grace@example.com', groups: ['team-a-devs'] },
      henry: { username: 'henry', email: 'henry@example.com', groups: ['team-a-devs'] },
      ivan: { username: 'ivan', email: 'ivan@example.com', groups: ['team-a-devs'] },
      judy: { username: 'judy', email: 'judy@example.com', groups: ['team-a-devs'] },
      pat: { username: 'pat', email: 'pat@example.com', groups: ['team-a-devs'] },
    });
    secrets.push(provider.clientSecret);
    work = await makeTempDir('oidc-login');
    const configFile = join(work, 'config.yaml');
    await writeFile(
      configFile,
      [
        'auth:',
        '  revalidateSeconds: 1',
        '  oidc:',
        '    providers:',
        '      - name: corp',
        '        displayName: Corp SSO',
        `        issuer: ${provider.issuer}`,
        `        clientId: ${provider.clientId}`,
        `        clientSecret: ${provider.clientSecret}`,
        '        groupsCacheSeconds: 0',
        '        requireMappedGroup: true',
        '        allowedEmailDomains: [example.com]',
        '        adminGroups: [registry-admins]',
        '        groupMappings:',
        '          - { group: team-a-devs, project: team-a, role: developer }',
        '          - { group: "readers-*", project: team-a, role: reader }',
        '          - { group: team-a-devs, project: shared, role: developer, repositories: ["shared/team-a/**"] }',
        '      - name: public',
        `        issuer: ${provider.issuer}`,
        `        clientId: ${provider.publicClientId}`,
        '        groupsCacheSeconds: 0',
        '        groupMappings:',
        '          - { group: team-a-devs, project: team-a, role: developer }',
        '      - name: strict',
        `        issuer: ${provider.issuer}`,
        `        clientId: ${provider.clientId}`,
        `        clientSecret: ${provider.clientSecret}`,
        '        autoOnboard: false',
        '        groupMappings:',
        '          - { group: team-a-devs, project: team-a, role: developer }',
        '',
      ].join('\n'),
    );
    registry = await startAuthRegistry({ PORTCULLIS_LOG_LEVEL: 'debug' }, { configFile });
    await provider.configure(`${registry.url}/auth/oidc/callback`);
    for (const name of ['team-a', 'team-b', 'shared']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
  });

  after(async () => {
    await registry?.close();
    await provider?.close();
    await removeDir(work);
  });

  /** The browser login; returns the final page at the registry. */
  async function browserLogin(login: string, browser = new Browser(), providerName = 'corp'): Promise<{ browser: Browser; status: number; html: string; url: string }> {
    const start = await browser.follow(`${registry.url}/auth/oidc/login?provider=${providerName}`);
    assert.ok(start.url.startsWith(provider.issuer), `expected a redirect to the provider, got ${start.url}`);
    const authorize = new URL(browser.visited.find((url) => url.startsWith(`${provider.issuer}/auth?`))!);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorize.searchParams.get('nonce') && authorize.searchParams.get('state'));
    const end = await browser.signIn(start, provider.issuer, login);
    for (const url of browser.visited) {
      const code = new URL(url).searchParams.get('code');
      if (code) secrets.push(code);
    }
    return { browser, status: end.response.status, html: await end.response.text(), url: end.url };
  }

  /** Creates a personal access token through the session page's form. */
  async function tokenFromPage(browser: Browser, html: string, url: string): Promise<string> {
    const created = await browser.submit(html, url, { name: `t${Math.random().toString(36).slice(2, 8)}`, days: '1' });
    const page = await created.response.text();
    assert.equal(created.response.status, 201, page);
    const secret = /(pcp_[A-Za-z0-9_-]+)/.exec(page)?.[1];
    assert.ok(secret, page);
    secrets.push(secret);
    return secret;
  }

  async function tokenAccess(username: string, password: string, scope: string): Promise<{ status: number; actions: string[] }> {
    const response = await registry.fetch(`/auth/token?service=portcullis&scope=${encodeURIComponent(scope)}`, { headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
    const body = (await response.json()) as { token?: string };
    if (response.status !== 200) return { status: response.status, actions: [] };
    return { status: 200, actions: (claims(body.token!).access as Array<{ actions: string[] }>)[0]?.actions ?? [] };
  }

  test('the provider list names the configured provider', async () => {
    const response = await registry.fetch('/auth/oidc/providers');
    assert.deepEqual(((await response.json()) as { providers: unknown[] }).providers, [
      { name: 'corp', displayName: 'Corp SSO', login: '/auth/oidc/login?provider=corp' },
      { name: 'public', displayName: 'public', login: '/auth/oidc/login?provider=public' },
      { name: 'strict', displayName: 'strict', login: '/auth/oidc/login?provider=strict' },
    ]);
  });

  test('a first login creates the user (source oidc, no password) with the mapped project roles; the token it creates pushes to team-a', async () => {
    const { browser, status, html, url } = await browserLogin('alice');
    assert.equal(status, 200, html);
    assert.match(html, /Logged in as alice/);
    assert.match(html, /team-a-devs/);
    assert.match(html, /team-a/);
    const user = await ok(registry.api('GET', '/users/alice', { auth: admin }));
    assert.equal(user.source, 'oidc');
    assert.equal(user.systemAdmin, false);
    assert.equal(user.email, 'alice@example.com');
    const pat = await tokenFromPage(browser, html, url);
    const access = await tokenAccess('alice', pat, 'repository:team-a/app:pull,push');
    assert.deepEqual(access.actions.sort(), ['pull', 'push']);
    const token = await registry.token(['repository:team-a/app:pull,push'], { username: 'alice', password: pat });
    assert.equal((await pushImage(registry, 'team-a/app', 'v1', token)).status, 201);
    // The mapping's repository pattern narrows the role in `shared`.
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:shared/team-a/tool:pull,push')).actions.sort(), ['pull', 'push']);
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:shared/other:pull,push')).actions, []);
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:team-b/app:pull,push')).actions, []);
    // No local password: the password grant is refused.
    assert.equal((await tokenAccess('alice', 'Some-password-123', 'repository:team-a/app:pull')).status, 401);
  });

  test('a user whose group maps to reader pulls from team-a but cannot push', async () => {
    const { browser, status, html, url } = await browserLogin('bob');
    assert.equal(status, 200, html);
    const pat = await tokenFromPage(browser, html, url);
    assert.deepEqual((await tokenAccess('bob', pat, 'repository:team-a/app:pull,push')).actions, ['pull']);
    const token = await registry.token(['repository:team-a/app:pull,push'], { username: 'bob', password: pat });
    assert.notEqual((await pushImage(registry, 'team-a/bob', 'v1', token)).status, 201);
  });

  test('a member of the admin group is a system administrator', async () => {
    const { browser, status, html, url } = await browserLogin('carol');
    assert.equal(status, 200, html);
    assert.match(html, /system administrator/);
    assert.equal((await ok(registry.api('GET', '/users/carol', { auth: admin }))).systemAdmin, true);
    const pat = await tokenFromPage(browser, html, url);
    assert.deepEqual((await tokenAccess('carol', pat, 'repository:team-b/app:pull,push,delete')).actions.sort(), ['delete', 'pull', 'push']);
  });

  test('denied: no mapped group, or an e-mail domain not allowed; no user is created and auth.failed is logged', async () => {
    const mallory = await browserLogin('mallory');
    assert.equal(mallory.status, 403);
    assert.match(mallory.html, /no group that has access/);
    const eve = await browserLogin('eve');
    assert.equal(eve.status, 403);
    assert.match(eve.html, /e-mail domain is not allowed/);
    for (const name of ['mallory', 'eve']) assert.equal((await registry.api('GET', `/users/${name}`, { auth: admin })).status, 404);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = registry.output().split('\n').filter((line) => line.includes('authentication failed') && line.includes('"method":"oidc"'));
    assert.ok(lines.some((line) => line.includes('"username":"mallory"') && line.includes('no group')), lines.join('\n'));
    assert.ok(lines.some((line) => line.includes('"username":"eve"') && line.includes('e-mail domain')), lines.join('\n'));
  });

  test('denied: a user disabled in the registry cannot log in, and their token stops working', async () => {
    const first = await browserLogin('frank');
    assert.equal(first.status, 200, first.html);
    const pat = await tokenFromPage(first.browser, first.html, first.url);
    await ok(registry.api('PATCH', '/users/frank', { auth: admin, body: { disabled: true } }));
    const again = await browserLogin('frank');
    assert.equal(again.status, 403);
    assert.match(again.html, /disabled/);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await tokenAccess('frank', pat, 'repository:team-a/app:pull')).status, 401);
  });

  test('a public client (no secret, PKCE only): login, and group checks through rotating refresh tokens', async () => {
    const { browser, status, html, url } = await browserLogin('pat', new Browser(), 'public');
    assert.equal(status, 200, html);
    const token = await tokenFromPage(browser, html, url);
    for (let round = 0; round < 3; round++) {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.deepEqual((await tokenAccess('pat', token, 'repository:team-a/app:pull,push')).actions.sort(), ['pull', 'push'], `round ${round}`);
    }
    provider.accounts.get('pat')!.groups = [];
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.deepEqual((await tokenAccess('pat', token, 'repository:team-a/app:pull,push')).actions, []);
  });

  test('onboarding: a user created in advance with source oidc is linked at first login; a local user of that name is never taken over; without auto-onboarding unknown users are refused', async () => {
    await ok(registry.api('POST', '/users', { auth: admin, body: { name: 'grace', source: 'oidc' } }));
    assert.equal((await registry.api('POST', '/users', { auth: admin, body: { name: 'kim', source: 'oidc', password: 'Some-password-123456' } })).status, 400);
    const grace = await browserLogin('grace', new Browser(), 'strict');
    assert.equal(grace.status, 200, grace.html);
    assert.match(grace.html, /Logged in as grace/);
    const ivan = await browserLogin('ivan', new Browser(), 'strict');
    assert.equal(ivan.status, 403);
    assert.match(ivan.html, /not registered here/);
    assert.equal((await registry.api('GET', '/users/ivan', { auth: admin })).status, 404);
    await ok(registry.api('POST', '/users', { auth: admin, body: { name: 'henry', password: 'Local-pw-98765-xyz' } }));
    const henry = await browserLogin('henry');
    assert.equal(henry.status, 403);
    assert.match(henry.html, /belongs to a local user/);
    assert.equal((await ok(registry.api('GET', '/users/henry', { auth: admin }))).source, 'local');
  });

  test('portcullis admin user create --oidc makes a user without password, of source oidc', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number; output: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, 'admin', ...args, '--data-dir', registry.dataDir], { env: { ...process.env, PORTCULLIS_AUTH_MODE: 'token' }, stdio: ['pipe', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk));
        child.stdin.end('');
        child.on('exit', (code) => resolve({ code: code ?? -1, output }));
      });
    const created = await cli('user', 'create', 'zed', '--oidc');
    assert.equal(created.code, 0, created.output);
    assert.doesNotMatch(created.output, /password:/);
    const user = await ok(registry.api('GET', '/users/zed', { auth: admin }));
    assert.equal(user.source, 'oidc');
    assert.notEqual((await cli('user', 'create', 'zed2', '--oidc', '--password-stdin')).code, 0);
  });

  test("ID tokens issued by the provider: accepted as issued; refused with another nonce, for another client (audience), tampered, or once expired", async () => {
    const client = new OidcProviderClient({ issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret });
    const pkce = createPkce();
    const redirectUri = `${registry.url}/auth/oidc/callback`;
    const browser = new Browser();
    const start = await browser.follow(await client.authorizationUrl({ redirectUri, scope: 'openid profile groups', state: 'st', nonce: 'the-nonce', codeChallenge: pkce.challenge }));
    const atCallback = await browser.signIn(start, provider.issuer, 'judy', (url) => url.startsWith(redirectUri));
    const code = new URL(atCallback.url).searchParams.get('code')!;
    assert.ok(code, atCallback.url);
    const tokens = await client.exchangeCode({ code, redirectUri, codeVerifier: pkce.verifier });
    assert.ok(tokens.id_token);
    secrets.push(code, tokens.id_token!, tokens.access_token);
    assert.equal((await client.verifyIdToken(tokens.id_token!, { nonce: 'the-nonce' })).sub, 'judy');
    const refused = async (promise: Promise<unknown>, pattern: RegExp) => assert.rejects(promise, (error: Error) => error instanceof OidcError && error.code === 'invalid_token' && pattern.test(error.message));
    await refused(client.verifyIdToken(tokens.id_token!, { nonce: 'another-nonce' }), /nonce/);
    await refused(new OidcProviderClient({ issuer: provider.issuer, clientId: 'another-client' }).verifyIdToken(tokens.id_token!, { nonce: 'the-nonce' }), /aud/);
    const [header, payload, signature] = tokens.id_token!.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: 'carol' })).toString('base64url');
    await refused(client.verifyIdToken(`${header}.${forged}.${signature}`, { nonce: 'the-nonce' }), /signature/);
    const later = new OidcProviderClient({ issuer: provider.issuer, clientId: provider.clientId, now: () => Date.now() + 3 * 3600_000 });
    await refused(later.verifyIdToken(tokens.id_token!, { nonce: 'the-nonce' }), /expired/);
    // The same code cannot be exchanged twice.
    await assert.rejects(client.exchangeCode({ code, redirectUri, codeVerifier: pkce.verifier }), (error: Error) => error instanceof OidcError && error.code === 'grant_refused');
  });

  test('a replayed callback, and a callback in a browser that did not start the login, are refused', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${registry.url}/auth/oidc/login?provider=corp`);
    const atCallback = await browser.signIn(start, provider.issuer, 'alice');
    await atCallback.response.text();
    const callback = browser.visited.find((url) => url.startsWith(`${registry.url}/auth/oidc/callback`))!;
    secrets.push(new URL(callback).searchParams.get('code')!);
    const replay = await browser.request(callback);
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /unknown, was already used or expired/);
    // A login started and completed at the provider by someone else, whose callback is planted in this browser (login CSRF).
    const attacker = new Browser();
    const atCallbackPrefix = (url: string) => url.startsWith(`${registry.url}/auth/oidc/callback`);
    const started = await attacker.signIn(await attacker.follow(`${registry.url}/auth/oidc/login?provider=corp`), provider.issuer, 'bob', atCallbackPrefix);
    assert.ok(atCallbackPrefix(started.url), started.url);
    secrets.push(new URL(started.url).searchParams.get('code')!);
    const victim = new Browser();
    const planted = await victim.request(started.url);
    assert.equal(planted.status, 400);
    assert.match(await planted.text(), /started in another browser/);
  });

  test('group changes at the provider (roles, admin group) apply at the next token issuance, without a new login; a user removed at the provider is refused', async () => {
    const { browser, status, html, url } = await browserLogin('alice');
    assert.equal(status, 200, html);
    const pat = await tokenFromPage(browser, html, url);
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:team-a/app:pull,push')).actions.sort(), ['pull', 'push']);
    provider.accounts.get('alice')!.groups = ['readers-dev'];
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:team-a/app:pull,push')).actions, ['pull']);
    const token = await registry.token(['repository:team-a/app:pull,push'], { username: 'alice', password: pat });
    assert.notEqual((await pushImage(registry, 'team-a/app', 'v2', token)).status, 201);
    // Back in the group: the role returns, again without a login.
    provider.accounts.get('alice')!.groups = ['team-a-devs'];
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.deepEqual((await tokenAccess('alice', pat, 'repository:team-a/app:pull,push')).actions.sort(), ['pull', 'push']);
    // The admin group likewise: carol stops being a system administrator.
    const carol = await browserLogin('carol');
    const carolPat = await tokenFromPage(carol.browser, carol.html, carol.url);
    assert.deepEqual((await tokenAccess('carol', carolPat, 'repository:team-b/app:pull,push')).actions.sort(), ['pull', 'push']);
    provider.accounts.get('carol')!.groups = ['readers-ops'];
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.deepEqual((await tokenAccess('carol', carolPat, 'repository:team-b/app:pull,push')).actions, []);
    assert.deepEqual((await tokenAccess('carol', carolPat, 'repository:team-a/app:pull,push')).actions, ['pull']);
    assert.equal((await ok(registry.api('GET', '/users/carol', { auth: admin }))).systemAdmin, false);
    // Removed at the provider: the refresh is refused, so is the token.
    provider.accounts.delete('alice');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await tokenAccess('alice', pat, 'repository:team-a/app:pull')).status, 401);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.match(registry.output(), /"username":"alice".*(refused to refresh|no usable refresh token)/);
  });

  test('portcullis login --oidc (device flow) yields a personal access token that skopeo uses', async (t) => {
    const authfile = join(work, 'auth.json');
    const child = spawn(process.execPath, [bin, 'login', '--oidc', '--provider', 'corp', '--authfile', authfile, '--print-token', registry.host], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    const verification = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk;
        const match = /open (\S+)/.exec(stderr);
        if (match) resolve(match[1]!);
      });
      child.on('exit', () => reject(new Error(`login exited early: ${stderr}`)));
    });
    // The user opens the page, confirms the code, signs in and consents.
    const browser = new Browser();
    const page = await browser.follow(verification);
    const confirmed = await browser.submit(await page.response.text(), page.url);
    const done = await browser.signIn(confirmed, provider.issuer, 'dave');
    assert.match(await done.response.text(), /Sign-in Success|success/i);
    assert.equal(await exited, 0, stderr);
    const pat = stdout.trim();
    assert.match(pat, /^pcp_/);
    secrets.push(pat);
    assert.match(stderr, /Logged in to .* as dave/);
    const stored = JSON.parse(await readFile(authfile, 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(stored.auths[registry.host]!.auth, 'base64').toString(), `dave:${pat}`);
    assert.deepEqual((await tokenAccess('dave', pat, 'repository:team-a/cli:pull,push')).actions.sort(), ['pull', 'push']);
    if (!requireTools(t, 'skopeo')) return;
    const clients: ClientEnvironment = await createClientEnvironment(registry.host);
    try {
      const layout = join(work, 'layout');
      await writeOciLayout(layout, { src: buildImage({ layers: [[randomFile('hello.txt', 64)]] }) });
      await run('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', '--dest-creds', `dave:${pat}`, `oci:${layout}:src`, `docker://${registry.host}/team-a/cli:v1`], { env: clients.env });
      const inspected = JSON.parse((await run('skopeo', [...clients.skopeo, 'inspect', '--tls-verify=false', '--authfile', authfile, `docker://${registry.host}/team-a/cli:v1`], { env: clients.env })).stdout) as { Digest: string };
      assert.match(inspected.Digest, /^sha256:/);
    } finally {
      await clients.cleanup();
    }
  });

  test('portcullis login --oidc --browser: loopback callback, a one-time code redeemed with the PKCE verifier', async () => {
    const authfile = join(work, 'auth-browser.json');
    const child = spawn(process.execPath, [bin, 'login', '--oidc', '--browser', '--provider', 'corp', '--authfile', authfile, '--print-token', registry.host], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    const loginUrl = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk;
        const match = /open (\S+) in a browser/.exec(stderr);
        if (match) resolve(match[1]!);
      });
      child.on('exit', () => reject(new Error(`login exited early: ${stderr}`)));
    });
    const browser = new Browser();
    const loopbackPrefix = /cli_port=(\d+)/.exec(loginUrl)![1]!;
    const done = await browser.signIn(await browser.follow(loginUrl), provider.issuer, 'dave');
    assert.equal(done.response.status, 200);
    assert.match(await done.response.text(), /you can close this window/);
    assert.ok(done.url.startsWith(`http://127.0.0.1:${loopbackPrefix}/callback?code=`), done.url);
    assert.equal(await exited, 0, stderr);
    const pat = stdout.trim();
    assert.match(pat, /^pcp_/);
    secrets.push(pat, new URL(done.url).searchParams.get('code')!);
    assert.deepEqual((await tokenAccess('dave', pat, 'repository:team-a/cli:pull,push')).actions.sort(), ['pull', 'push']);
    // The code was single use, and a code without the right verifier is refused.
    const replay = await registry.fetch('/auth/oidc/cli/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: new URL(done.url).searchParams.get('code'), code_verifier: 'x'.repeat(43) }) });
    assert.equal(replay.status, 400);
    const bad = await registry.fetch('/auth/oidc/login?provider=corp&cli_port=80&cli_challenge=short');
    assert.equal(bad.status, 400);
  });

  test('the device poll before approval answers authorization_pending; an unknown handle expired_token', async () => {
    const start = await registry.fetch('/auth/oidc/device', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ provider: 'corp' }) });
    const device = (await start.json()) as { handle: string; user_code: string };
    assert.equal(start.status, 200);
    secrets.push(device.handle);
    const poll = async (handle: string) => {
      const response = await registry.fetch('/auth/oidc/device/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ handle }) });
      return { status: response.status, body: (await response.json()) as { error: string } };
    };
    assert.deepEqual(await poll(device.handle).then((r) => [r.status, r.body.error]), [400, 'authorization_pending']);
    assert.deepEqual(await poll('nonsense').then((r) => [r.status, r.body.error]), [400, 'expired_token']);
    const unknown = await registry.fetch('/auth/oidc/device', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ provider: 'nope' }) });
    assert.equal(unknown.status, 400);
  });

  test('/api/v1: providers with their discovery status (no secret), linked accounts, unlinking denies until the next login', async () => {
    const providers = await registry.api('GET', '/oidc/providers', { auth: admin });
    assert.equal(providers.status, 200);
    assert.equal(providers.body[0].name, 'corp');
    assert.deepEqual(providers.body[0].discovery, { ok: true, deviceFlow: true });
    assert.equal(providers.body[0].confidential, true);
    assert.ok(!JSON.stringify(providers.body).includes(provider.clientSecret));
    const bob = await browserLogin('bob');
    const pat = await tokenFromPage(bob.browser, bob.html, bob.url);
    assert.equal((await registry.api('GET', '/oidc/providers', { auth: { username: 'bob', password: pat } })).status, 403);
    const links = await ok(registry.api('GET', '/users/bob/oidc', { auth: admin }));
    assert.deepEqual(links.map((link: { provider: string; subject: string; groups: string[]; refreshable: boolean }) => [link.provider, link.subject, link.groups, link.refreshable]), [['corp', 'bob', ['readers-qa'], true]]);
    assert.equal((await registry.api('DELETE', '/users/bob/oidc/corp', { auth: admin })).status, 204);
    assert.equal((await registry.api('DELETE', '/users/bob/oidc/corp', { auth: admin })).status, 404);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await tokenAccess('bob', pat, 'repository:team-a/app:pull')).status, 401);
    const again = await browserLogin('bob');
    assert.equal(again.status, 200, again.html);
    assert.deepEqual((await tokenAccess('bob', pat, 'repository:team-a/app:pull')).actions, ['pull']);
  });

  test('no secret (client secret, codes, personal access tokens, device handles) in the registry output', () => {
    const output = registry.output();
    assert.ok(secrets.length >= 8, `collected ${secrets.length} secrets`);
    for (const secret of secrets) assert.ok(!output.includes(secret), `a secret appears in the log: ${secret.slice(0, 8)}...`);
  });
});
