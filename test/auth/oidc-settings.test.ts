/**
 * OIDC settings through /api/v1 against a real OpenID provider (`oidc-provider`, as in
 * oidc-login.test.ts): a system administrator replaces a provider's group -> role mappings and the
 * user's next token has the new role and not the old one, on this replica at once and on a
 * second replica (same database) within auth.revalidateSeconds; admin groups and the onboarding
 * switch likewise; the configuration file's values are the defaults and come back on DELETE;
 * bad bodies get 400 naming the field; secrets cannot be set and are never returned; only system
 * administrators may read or change the settings; each change is audited (access.changed).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, removeDir } from '../acceptance/helpers/tools.ts';
import { startRegistry } from '../support/registry-process.ts';
import { ADMIN_PASSWORD, type AuthRegistry, admin, claims, ok, pushImage, startAuthRegistry } from './helpers.ts';
import { Browser, type LoginProvider, startLoginProvider } from './oidc-login-provider.ts';

describe('OIDC settings through the management API', () => {
  let provider: LoginProvider;
  let registry: AuthRegistry;
  let work: string;
  let configFile: string;
  let alice: { username: string; password: string };

  before(async () => {
    provider = await startLoginProvider({
      alice: { username: 'alice', email: 'alice@example.com', groups: ['team-a-devs'] },
      bob: { username: 'bob', email: 'bob@example.com', groups: ['team-a-devs'] },
    });
    work = await makeTempDir('oidc-settings');
    configFile = join(work, 'config.yaml');
    await writeFile(
      configFile,
      [
        'audit:',
        '  api: { enabled: true }',
        'auth:',
        '  revalidateSeconds: 1',
        '  oidc:',
        '    providers:',
        '      - name: corp',
        `        issuer: ${provider.issuer}`,
        `        clientId: ${provider.clientId}`,
        `        clientSecret: ${provider.clientSecret}`,
        '        groupsCacheSeconds: 0',
        '        adminGroups: [registry-admins]',
        '        groupMappings:',
        '          - { group: team-a-devs, project: team-a, role: developer }',
        '',
      ].join('\n'),
    );
    registry = await startAuthRegistry({}, { configFile });
    await provider.configure(`${registry.url}/auth/oidc/callback`);
    for (const name of ['team-a', 'team-b']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
    alice = { username: 'alice', password: await loginToken('alice') };
  });

  after(async () => {
    await registry?.close();
    await provider?.close();
    await removeDir(work);
  });

  /** Browser login at the provider, then a personal access token from the session page. */
  async function loginToken(login: string): Promise<string> {
    const browser = new Browser();
    const end = await browser.signIn(await browser.follow(`${registry.url}/auth/oidc/login?provider=corp`), provider.issuer, login);
    const html = await end.response.text();
    assert.equal(end.response.status, 200, html);
    const created = await browser.submit(html, end.url, { name: `t${Math.random().toString(36).slice(2, 8)}`, days: '1' });
    const page = await created.response.text();
    assert.equal(created.response.status, 201, page);
    return /(pcp_[A-Za-z0-9_-]+)/.exec(page)![1]!;
  }

  /** The actions a token request grants (the registry at `base`). */
  async function granted(scope: string, base = registry.url): Promise<string[]> {
    const response = await fetch(`${base}/auth/token?service=portcullis&scope=${encodeURIComponent(scope)}`, { headers: { authorization: `Basic ${Buffer.from(`${alice.username}:${alice.password}`).toString('base64')}` } });
    const body = (await response.json()) as { token?: string };
    assert.equal(response.status, 200, JSON.stringify(body));
    return ((claims(body.token!).access as Array<{ actions: string[] }>)[0]?.actions ?? []).sort();
  }

  const path = '/oidc/providers/corp/settings';

  test('GET: the configuration file values are in force and are the defaults', async () => {
    const settings = await ok(registry.api('GET', path, { auth: admin }));
    const file = { groupMappings: [{ group: 'team-a-devs', project: 'team-a', role: 'developer' }], adminGroups: ['registry-admins'], autoOnboard: true };
    assert.deepEqual(settings, { provider: 'corp', ...file, overridden: [], defaults: file });
    assert.equal((await registry.api('GET', '/oidc/providers/nope/settings', { auth: admin })).status, 404);
    // Described in the OpenAPI document, without any secret field in the body.
    const document = (await (await registry.fetch('/api/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>> };
    const described = document.paths['/api/v1/oidc/providers/{provider}/settings']!;
    assert.deepEqual(Object.keys(described).sort(), ['delete', 'get', 'put']);
    assert.deepEqual(Object.keys(described.put!.requestBody!.content['application/json']!.schema.properties).sort(), ['adminGroups', 'autoOnboard', 'groupMappings']);
  });

  test('only system administrators read or change the settings', async () => {
    assert.equal((await registry.api('GET', path, { auth: alice })).status, 403);
    assert.equal((await registry.api('PUT', path, { auth: alice, body: { adminGroups: ['team-a-devs'] } })).status, 403);
    assert.equal((await registry.api('DELETE', path, { auth: alice })).status, 403);
    assert.equal((await registry.api('PUT', path, { body: { autoOnboard: false } })).status, 401);
    assert.deepEqual((await ok(registry.api('GET', path, { auth: admin }))).overridden, []);
  });

  test('bad bodies: 400 INVALID_REQUEST naming the field; secrets and connection settings are configuration-only', async () => {
    const bad = async (body: unknown, pattern: RegExp) => {
      const res = await registry.api('PUT', path, { auth: admin, body });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
      assert.match(res.body.errors[0].message, pattern);
    };
    await bad({ clientSecret: 'new-secret-0123456789' }, /configuration-only.*clientSecret/);
    await bad({ issuer: 'https://evil.example.com' }, /configuration-only.*issuer/);
    await bad({ groupMappings: [{ group: 'x', project: 'team-a', role: 'owner' }] }, /groupMappings\.0\.role/);
    await bad({ groupMappings: [{ group: 'x', project: 'team-a', role: 'reader', repositories: ['team-b/**'] }] }, /groupMappings\.0\.repositories.*outside project team-a/);
    await bad({ groupMappings: [{ group: 'x', project: 'Team A', role: 'reader' }] }, /groupMappings\.0\.project/);
    await bad({ adminGroups: 'registry-admins' }, /adminGroups/);
    await bad({ autoOnboard: 'yes' }, /autoOnboard/);
    const notJson = await registry.fetch(`/api/v1${path}`, { method: 'PUT', headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }, body: '{' });
    assert.equal(notJson.status, 400);
    assert.deepEqual((await ok(registry.api('GET', path, { auth: admin }))).overridden, [], 'nothing was stored');
  });

  test("a mapping changed through the API: the user's next token has the new role and not the old one, here and on another replica", async () => {
    // The personal access token made at login covers team-a/** (the projects of the user then).
    assert.deepEqual(await granted('repository:team-a/app/api:pull,push,delete'), ['pull', 'push']);
    assert.deepEqual(await granted('repository:team-a/other:pull,push'), ['pull', 'push']);
    // A second replica on the same database, started before the change.
    const replica = await startRegistry({ dataDir: registry.dataDir, configFile, env: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_GC_INTERVAL_SECONDS: '0' } });
    try {
      assert.deepEqual(await granted('repository:team-a/other:pull,push', replica.url), ['pull', 'push']);
      const mapping = { group: 'team-a-*', project: 'team-a', role: 'maintainer', repositories: ['team-a/app/**'] };
      const changed = await ok(registry.api('PUT', path, { auth: admin, body: { groupMappings: [mapping] } }));
      assert.deepEqual(changed.overridden, ['groupMappings']);
      assert.equal(changed.updatedBy, 'admin');
      assert.deepEqual(changed.groupMappings, [mapping]);
      assert.deepEqual(changed.adminGroups, ['registry-admins'], 'fields not given keep the configuration file values');
      assert.deepEqual(changed.defaults.groupMappings, [{ group: 'team-a-devs', project: 'team-a', role: 'developer' }]);

      // This replica: at once (the next authentication), without a new login.
      assert.deepEqual(await granted('repository:team-a/other:pull,push'), [], 'the old role (developer on the whole project) is gone');
      assert.deepEqual(await granted('repository:team-a/app/api:pull,push,delete'), ['delete', 'pull', 'push'], 'the new role (maintainer), within its repository pattern');
      const token = await registry.token(['repository:team-a/app/api:pull,push,delete'], alice);
      const pushed = await pushImage(registry, 'team-a/app/api', 'v1', token);
      assert.equal(pushed.status, 201);
      assert.equal((await registry.fetch(`/v2/team-a/app/api/manifests/${pushed.digest}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status, 202, 'maintainers delete');

      // The other replica: within auth.revalidateSeconds (1 s here).
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.deepEqual(await granted('repository:team-a/other:pull,push', replica.url), []);
      assert.deepEqual(await granted('repository:team-a/app/api:pull,push,delete', replica.url), ['delete', 'pull', 'push']);

      // DELETE: back to the configuration file, on both.
      assert.equal((await registry.api('DELETE', path, { auth: admin })).status, 204);
      assert.deepEqual((await ok(registry.api('GET', path, { auth: admin }))).overridden, []);
      assert.deepEqual(await granted('repository:team-a/other:pull,push'), ['pull', 'push']);
      assert.deepEqual(await granted('repository:team-a/app/api:pull,push,delete'), ['pull', 'push']);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.deepEqual(await granted('repository:team-a/other:pull,push', replica.url), ['pull', 'push']);
      assert.deepEqual(await granted('repository:team-a/app/api:pull,push,delete', replica.url), ['pull', 'push']);
    } finally {
      await replica.stop();
    }
  });

  test('admin groups and the onboarding switch through the API', async () => {
    await ok(registry.api('PUT', path, { auth: admin, body: { adminGroups: ['team-a-devs'], autoOnboard: false } }));
    // alice's group is now an admin group: a system administrator at the next token (delete, which developers lack).
    assert.deepEqual(await granted('repository:team-a/any:pull,push,delete'), ['delete', 'pull', 'push']);
    assert.equal((await ok(registry.api('GET', '/users/alice', { auth: admin }))).systemAdmin, true);
    // Unknown users are no longer onboarded.
    const browser = new Browser();
    const end = await browser.signIn(await browser.follow(`${registry.url}/auth/oidc/login?provider=corp`), provider.issuer, 'bob');
    assert.equal(end.response.status, 403);
    assert.match(await end.response.text(), /not registered here/);
    // Back to the file: alice is demoted at her next token, bob is onboarded.
    await ok(registry.api('PUT', path, { auth: admin, body: {} }));
    assert.deepEqual(await granted('repository:team-a/any:pull,push,delete'), ['pull', 'push']);
    assert.equal((await ok(registry.api('GET', '/users/alice', { auth: admin }))).systemAdmin, false);
    assert.match(await loginToken('bob'), /^pcp_/);
  });

  test('no secret in the answers; every change is audited as access.changed by its actor', async () => {
    for (const route of [path, '/oidc/providers']) assert.ok(!JSON.stringify((await ok(registry.api('GET', route, { auth: admin })))).includes(provider.clientSecret), route);
    const audit = await ok(registry.api('GET', '/audit?action=access.changed&limit=100', { auth: admin }));
    const changes = audit.records.filter((record: { details?: { change?: string } }) => record.details?.change === 'oidc.settings.updated');
    assert.equal(changes.length, 4, JSON.stringify(changes));
    for (const record of changes) {
      assert.deepEqual([record.actor.kind, record.actor.name, record.details.target], ['user', 'admin', { kind: 'oidc-provider', name: 'corp' }]);
    }
    const newest = changes[0];
    assert.deepEqual(newest.details.detail.overridden, []);
    assert.ok(changes.some((record: { details: { detail: { groupMappings?: unknown } } }) => record.details.detail.groupMappings !== undefined), 'the new mappings are recorded');
  });
});
