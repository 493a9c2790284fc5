/**
 * Workload identity federation end to end: a real OpenID provider (oidc-provider) issues the
 * workloads' JWTs; the registry (a separate process) trusts it through trust rules created with
 * the API. Covers the ways clients present the token (Basic `oidc:<jwt>`, the OAuth2 password
 * grant, RFC 8693 token exchange, skopeo --creds), and the refusals: wrong issuer, wrong audience,
 * expired, subject or claim mismatch, scope beyond the rule (narrowed), another project, unknown
 * key, `alg: none` and HS256 with the public key (hand-signed: the provider never issues them),
 * single use, and a revoked rule (new tokens and issued ones).
 */
import assert from 'node:assert/strict';
import { createPublicKey, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { buildImage, randomFile, readOciLayout, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { type ClientEnvironment, createClientEnvironment, makeTempDir, removeDir, requireTools, run, runExpectFailure } from '../acceptance/helpers/tools.ts';
import { admin, type AuthRegistry, basic, claims, createUser, ok, pushImage, runPortcullis, startAuthRegistry } from './helpers.ts';
import { startTestProvider, type TestProvider } from './oidc-test-provider.ts';

const app = { repository: 'org/app', ref: 'refs/heads/main' };

describe('workload identity federation with a real OpenID provider', () => {
  let provider: TestProvider;
  let other: TestProvider;
  let untrusted: TestProvider;
  let rotating: TestProvider;
  let registry: AuthRegistry;
  let work: string;
  let ruleId: string;
  let configFile: string;

  before(async () => {
    provider = await startTestProvider([
      { clientId: 'ci-app', claims: app },
      { clientId: 'ci-app-feature', claims: { ...app, ref: 'refs/heads/feature' } },
      { clientId: 'ci-other', claims: app },
      { clientId: 'ci-app-aud', audience: 'someone-else', claims: app },
      { clientId: 'ci-app-short', ttl: 1, claims: app },
      { clientId: 'ci-app-release', claims: { ...app, ref: 'refs/tags/v1' } },
      { clientId: 'system:serviceaccount:build:pusher', claims: { 'kubernetes.io': { namespace: 'build', serviceaccount: { name: 'pusher' } } } },
    ]);
    other = await startTestProvider([{ clientId: 'ci-app', claims: app }]);
    untrusted = await startTestProvider([{ clientId: 'ci-app', claims: app }]);
    rotating = await startTestProvider([{ clientId: 'ci-app', ttl: 600, claims: app }]);
    work = await makeTempDir('federation');
    configFile = join(work, 'config.yaml');
    await writeFile(
      configFile,
      JSON.stringify({
        auth: {
          revalidateSeconds: 1,
          federation: { issuers: [{ issuer: provider.issuer }, { issuer: other.issuer }, { issuer: rotating.issuer }], clockSkewSeconds: 1 },
        },
        edge: { trustedNetworks: [], logins: { freeFailures: 1000 } },
        gc: { intervalSeconds: 0 },
        audit: { api: { enabled: true } },
      }),
    );
    registry = await startAuthRegistry({}, { configFile });
    for (const name of ['team', 'other']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
    const rule = await ok(
      registry.api('POST', '/projects/team/trust-rules', {
        auth: admin,
        body: { name: 'app-main', issuer: provider.issuer, subject: 'ci-app*', claims: { repository: 'org/app', ref: ['refs/heads/main', 'refs/tags/*'] }, grants: [{ repositories: ['team/app', 'team/app/**'], actions: ['pull', 'push'] }], maxLifetimeSeconds: 120 },
      }),
    );
    ruleId = rule.id;
    await ok(
      registry.api('POST', '/projects/team/trust-rules', {
        auth: admin,
        body: { name: 'k8s-pusher', issuer: provider.issuer, subject: 'system:serviceaccount:build:*', claims: { 'kubernetes.io/namespace': 'build', 'kubernetes.io/serviceaccount/name': 'pusher' }, grants: [{ repositories: ['team/k8s'], actions: ['pull', 'push'] }] },
      }),
    );
  });

  after(async () => {
    await registry?.close();
    await Promise.all([provider?.close(), other?.close(), untrusted?.close(), rotating?.close()]);
    await removeDir(work);
  });

  /** GET /auth/token with Basic `oidc:<jwt>`. */
  async function exchange(jwt: string, scopes: string[], username = 'oidc') {
    const query = new URLSearchParams({ service: 'portcullis' });
    for (const scope of scopes) query.append('scope', scope);
    const res = await registry.fetch(`/auth/token?${query}`, { headers: { authorization: basic({ username, password: jwt }) } });
    return { status: res.status, body: (await res.json()) as any };
  }

  const accessOf = (token: string) => claims(token).access as Array<{ type: string; name: string; actions: string[] }>;

  test('a matching token pushes and pulls in its repositories; the registry token names the workload and is short-lived', async () => {
    const jwt = await provider.token('ci-app');
    const { status, body } = await exchange(jwt, ['repository:team/app:pull,push']);
    assert.equal(status, 200, JSON.stringify(body));
    const payload = claims(body.token);
    assert.equal(payload.sub, `workload:${provider.issuer}#ci-app`);
    assert.deepEqual(accessOf(body.token), [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
    assert.ok(body.expires_in <= 120 && body.expires_in > 100, `lifetime capped by the rule: ${body.expires_in}`);
    assert.equal(body.refresh_token, undefined);
    const pushed = await pushImage(registry, 'team/app', 'v1', body.token);
    assert.equal(pushed.status, 201);
    const pulled = await registry.fetch('/v2/team/app/manifests/v1', { headers: { authorization: `Bearer ${body.token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(pulled.status, 200);
    assert.equal(pulled.headers.get('docker-content-digest'), pushed.digest);
    // The audit log records the push as the workload (name and how it authenticated).
    let records = '';
    for (let i = 0; i < 30 && !records.includes('manifest.pushed'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      records = JSON.stringify((await registry.api('GET', `/audit?actor=${encodeURIComponent(payload.sub)}`, { auth: admin })).body);
    }
    assert.match(records, /manifest\.pushed/);
    assert.ok(records.includes(`"name":"workload:${provider.issuer}#ci-app"`) && records.includes('"auth":"workload"'), records.slice(0, 500));
    // `$oidc` works as the user name too; a Kubernetes-style token with nested claims matches its rule.
    assert.equal((await exchange(jwt, ['repository:team/app:pull'], '$oidc')).status, 200);
    const k8s = await exchange(await provider.token('system:serviceaccount:build:pusher'), ['repository:team/k8s:push,pull', 'repository:team/app:pull']);
    assert.deepEqual(accessOf(k8s.body.token), [{ type: 'repository', name: 'team/k8s', actions: ['pull', 'push'] }]);
  });

  test('the OAuth2 POST form: password grant with the reserved user name, and RFC 8693 token exchange', async () => {
    const jwt = await provider.token('ci-app-release');
    const post = (form: Record<string, string>) => registry.fetch('/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const password = await post({ grant_type: 'password', username: 'oidc', password: jwt, service: 'portcullis', scope: 'repository:team/app:pull', access_type: 'offline' });
    assert.equal(password.status, 200, JSON.stringify(password.body));
    assert.equal(password.body.scope, 'repository:team/app:pull');
    assert.equal(password.body.refresh_token, undefined, 'workloads get no refresh token');
    const exchanged = await post({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', service: 'portcullis', scope: 'repository:team/app:pull,push' });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.issued_token_type, 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(exchanged.body.token_type, 'Bearer');
    assert.equal(exchanged.body.scope, 'repository:team/app:pull,push');
    const badType = await post({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' });
    assert.deepEqual([badType.status, badType.body.error], [400, 'invalid_request']);
    const badAudience = await post({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', audience: 'another-registry' });
    assert.deepEqual([badAudience.status, badAudience.body.error], [400, 'invalid_target']);
    const forged = await post({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: `${jwt}x`, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    assert.deepEqual([forged.status, forged.body.error], [400, 'invalid_grant']);
  });

  test('refused: wrong issuer, wrong audience, expired, subject or claim mismatch', async () => {
    const refused = async (jwt: string, why: string) => {
      const { status, body } = await exchange(jwt, ['repository:team/app:pull']);
      assert.equal(status, 401, `${why}: ${JSON.stringify(body)}`);
      assert.equal(body.errors[0].code, 'UNAUTHORIZED', why);
    };
    await refused(await untrusted.token('ci-app'), 'an issuer that is not configured');
    await refused(await other.token('ci-app'), 'a configured issuer without a rule for this token');
    await refused(await provider.token('ci-app-aud'), 'another audience');
    await refused(await provider.token('ci-other'), 'a subject outside the pattern');
    await refused(await provider.token('ci-app-feature'), 'a claim (ref) not allowed by the rule');
    const short = await provider.token('ci-app-short');
    await new Promise((resolve) => setTimeout(resolve, 2600));
    await refused(short, 'expired (beyond the leeway)');
    await refused('not-a-jwt', 'garbage');
    // The failure is logged with its reason, never with the token.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.match(registry.output(), /authentication failed/);
    assert.match(registry.output(), /no trust rule matches ci-other/);
    assert.ok(!registry.output().includes(short.split('.')[2]!), 'no token in the log');
  });

  test('tokens the provider would never issue: an attacker key (unknown kid), alg none, HS256 with the public key', async () => {
    const base = { ...app, iss: provider.issuer, sub: 'ci-app', aud: 'portcullis' };
    const attacker = await generateKeyPair('RS256');
    const forgedKid = await new SignJWT(base).setProtectedHeader({ alg: 'RS256', kid: 'attacker' }).setIssuedAt().setExpirationTime('5m').sign(attacker.privateKey);
    const forgedSameKid = await new SignJWT(base).setProtectedHeader({ alg: 'RS256', kid: provider.publicJwk.kid }).setIssuedAt().setExpirationTime('5m').sign(attacker.privateKey);
    const none = new UnsecuredJWT(base).setIssuedAt().setExpirationTime('5m').encode();
    const publicPem = createPublicKey({ key: provider.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const hs256 = await new SignJWT(base).setProtectedHeader({ alg: 'HS256', kid: provider.publicJwk.kid }).setIssuedAt().setExpirationTime('5m').sign(Buffer.from(publicPem));
    for (const [jwt, why] of [[forgedKid, 'unknown kid'], [forgedSameKid, 'wrong signature'], [none, 'alg none'], [hs256, 'HS256 with the public key']] as const) {
      const { status } = await exchange(jwt, ['repository:team/app:pull']);
      assert.equal(status, 401, why);
    }
  });

  test('scope beyond the rule is narrowed, never escalated; another project is refused', async () => {
    const jwt = await provider.token('ci-app');
    const { body } = await exchange(jwt, ['repository:team/app:pull,push,delete', 'repository:team/secret:pull', 'repository:other/app:pull,push', 'repository:team/app:*']);
    const granted = accessOf(body.token);
    assert.ok(granted.length > 0);
    for (const entry of granted) assert.deepEqual(entry, { type: 'repository', name: 'team/app', actions: ['pull', 'push'] }, 'only what the rule grants, of what was asked');
    const deleteAttempt = await registry.fetch('/v2/team/app/manifests/v1', { method: 'DELETE', headers: { authorization: `Bearer ${body.token}` } });
    assert.ok([401, 403].includes(deleteAttempt.status));
    const otherProject = await pushImage(registry, 'other/app', 'v1', body.token);
    assert.ok([401, 403].includes(otherProject.status), `push into another project: ${otherProject.status}`);
    // A project admin cannot write a rule granting another project's repositories.
    const outside = await registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { name: 'sneaky', issuer: provider.issuer, subject: 'ci-app', grants: [{ repositories: ['other/**'], actions: ['push'] }] } });
    assert.equal(outside.status, 400);
  });

  test('skopeo --creds oidc:<jwt> copies in and out', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const clients: ClientEnvironment = await createClientEnvironment(registry.host);
    try {
      const image = buildImage({ layers: [[randomFile('data/a.bin', 8 * 1024)]] });
      const layout = join(work, 'layout');
      await writeOciLayout(layout, { src: image });
      const creds = `oidc:${await provider.token('ci-app')}`;
      await run('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${layout}:src`, `docker://${registry.host}/team/app/skopeo:v1`], { env: clients.env });
      const out = join(work, 'out');
      await run('skopeo', [...clients.skopeo, 'copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${registry.host}/team/app/skopeo:v1`, `oci:${out}:back`], { env: clients.env });
      assert.equal((await readOciLayout(out, 'back')).descriptor.digest, image.manifest.descriptor.digest);
      const denied = await runExpectFailure('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${layout}:src`, `docker://${registry.host}/other/app:v1`], { env: clients.env });
      assert.match(denied.stderr, /denied|unauthorized|forbidden/i);
    } finally {
      await clients.cleanup();
    }
  });

  test('trust-rule API: project admins only, configured issuers only, no catch-all subjects, in the OpenAPI document', async () => {
    const dev = await createUser(registry, `dev-${randomBytes(3).toString('hex')}`);
    await ok(registry.api('POST', '/projects/team/members', { auth: admin, body: { user: dev.username, role: 'developer' } }));
    const body = { name: 'x', issuer: provider.issuer, subject: 'ci-app', grants: [{ repositories: ['team/app'], actions: ['pull'] }] };
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { auth: dev, body })).status, 403);
    assert.equal((await registry.api('GET', '/projects/team/trust-rules', { auth: dev })).status, 403);
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { body })).status, 401);
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { ...body, issuer: untrusted.issuer } })).status, 400);
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { ...body, subject: '**' } })).status, 400);
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { ...body, claims: { sub: 'x' } } })).status, 400);
    assert.equal((await registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { ...body, name: 'app-main' } })).status, 409);
    const list = await ok(registry.api('GET', '/projects/team/trust-rules', { auth: admin }));
    assert.deepEqual(list.map((r: { name: string }) => r.name), ['app-main', 'k8s-pusher']);
    const document = await ok(registry.api('GET', '/openapi.json'));
    assert.ok(document.paths['/api/v1/projects/{project}/trust-rules'].post);
    assert.ok(document.paths['/api/v1/projects/{project}/robots/{id}/certificate'].post);
  });

  test('portcullis admin trust-rule create | list | revoke work on the stores directly', async () => {
    const cli = (...args: string[]) => runPortcullis(['admin', ...args, '--config', configFile, '--data-dir', registry.dataDir]);
    const created = await cli('trust-rule', 'create', 'from-cli', '--project', 'team', '--issuer', provider.issuer, '--subject', 'ci-app', '--claim', 'ref=refs/heads/main', '--grant', 'pull=team/cli');
    assert.equal(created.code, 0, created.stderr);
    const id = /id ([0-9a-f-]{36})/.exec(created.stdout)?.[1];
    assert.ok(id, created.stdout);
    const jwt = await provider.token('ci-app');
    assert.deepEqual(accessOf((await exchange(jwt, ['repository:team/cli:pull,push'])).body.token), [{ type: 'repository', name: 'team/cli', actions: ['pull'] }]);
    assert.match((await cli('trust-rule', 'list', '--project', 'team')).stdout, /from-cli/);
    const broad = await cli('trust-rule', 'create', 'broad', '--project', 'team', '--issuer', provider.issuer, '--subject', '**', '--grant', 'pull=team/cli');
    assert.equal(broad.code, 1);
    assert.match(broad.stderr, /too broad/);
    assert.equal((await cli('trust-rule', 'revoke', id!, '--project', 'team')).code, 0);
    assert.deepEqual(accessOf((await exchange(jwt, ['repository:team/cli:pull'])).body.token), []);
  });

  test('key rotation at the issuer: the new key is fetched on its first unknown kid (after the 30 s cooldown), the withdrawn one stops working', async () => {
    await ok(registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { name: 'rotating', issuer: rotating.issuer, subject: 'ci-app', grants: [{ repositories: ['team/rotating'], actions: ['pull'] }] } }));
    const before = await rotating.token('ci-app');
    assert.equal((await exchange(before, ['repository:team/rotating:pull'])).status, 200, 'the key set is fetched and cached');
    const fetchedAt = Date.now();
    await rotating.rotate();
    const after = await rotating.token('ci-app');
    assert.notEqual(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid, JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid);
    // Within the cooldown an unknown kid does not make the registry refetch (random kids cannot
    // hammer the issuer); afterwards the first token with the new kid triggers one refetch.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, fetchedAt + 31_000 - Date.now())));
    assert.equal((await exchange(after, ['repository:team/rotating:pull'])).status, 200, 'the rotated key is picked up');
    assert.equal((await exchange(before, ['repository:team/rotating:pull'])).status, 401, 'the withdrawn key no longer verifies');
  });

  test('single-use rules accept each token once', async () => {
    const rule = await ok(registry.api('POST', '/projects/team/trust-rules', { auth: admin, body: { name: 'once', issuer: other.issuer, subject: 'ci-app', grants: [{ repositories: ['team/once'], actions: ['pull'] }], singleUse: true } }));
    const jwt = await other.token('ci-app');
    assert.equal((await exchange(jwt, ['repository:team/once:pull'])).status, 200);
    assert.equal((await exchange(jwt, ['repository:team/once:pull'])).status, 401, 'replayed');
    assert.equal((await exchange(await other.token('ci-app'), ['repository:team/once:pull'])).status, 200, 'a fresh token works');
    await ok(registry.api('DELETE', `/projects/team/trust-rules/${rule.id}`, { auth: admin }));
  });

  test('a revoked rule issues nothing more, and the registry tokens it issued stop working', async () => {
    const { body } = await exchange(await provider.token('ci-app'), ['repository:team/app:pull']);
    const pull = () => registry.fetch('/v2/team/app/tags/list', { headers: { authorization: `Bearer ${body.token}` } }).then((r) => r.status);
    assert.equal(await pull(), 200);
    const revoked = await ok(registry.api('POST', `/projects/team/trust-rules/${ruleId}/revoke`, { auth: admin }));
    assert.ok(revoked.revokedAt);
    assert.equal((await exchange(await provider.token('ci-app'), ['repository:team/app:pull'])).status, 401);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(await pull(), 401, 'revalidation withdraws the issued token');
    const audit = await ok(registry.api('GET', '/projects/team/trust-rules', { auth: admin }));
    assert.ok(audit.find((r: { id: string }) => r.id === ruleId).revokedAt);
  });
});
