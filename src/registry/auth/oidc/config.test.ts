/**
 * The auth.oidc section through the one configuration loader: defaults, and each mistake named
 * by its dotted key with a message saying what is wrong.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../config/load.ts';
import { groupMatches, mappedRoles, usernameFrom } from './service.ts';

async function load(yaml: string) {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-config-'));
  const file = join(dir, 'config.yaml');
  await writeFile(file, yaml);
  return loadConfig({ file, env: {} });
}

const provider = (extra = '') => `auth:\n  oidc:\n    providers:\n      - name: corp\n        issuer: https://id.example.com\n        clientId: portcullis\n        clientSecret: s3cret-value\n${extra}`;

async function refused(yaml: string, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(load(yaml), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('auth.oidc configuration', () => {
  test('defaults: no providers; a provider gets the usual scopes, claims and a 60 s group cache', async () => {
    assert.deepEqual((await loadConfig({ env: {} })).auth.oidc.providers, []);
    const config = await load(provider());
    const corp = config.auth.oidc.providers[0]!;
    assert.deepEqual(corp.scopes, ['openid', 'profile', 'email', 'offline_access', 'groups']);
    assert.equal(corp.usernameClaim, 'preferred_username');
    assert.equal(corp.groupsClaim, 'groups');
    assert.equal(corp.groupsCacheSeconds, 60);
    assert.equal(corp.autoOnboard, true);
  });

  test('an http issuer is refused unless on loopback', async () => {
    await refused(provider().replace('https://id.example.com', 'http://id.example.com'), /auth\.oidc\.providers\.0\.issuer/, /https URL/);
    assert.equal((await load(provider().replace('https://id.example.com', 'http://127.0.0.1:8080'))).auth.oidc.providers[0]!.issuer, 'http://127.0.0.1:8080');
  });

  test('mistakes are named by key', async () => {
    await refused(provider('        clientSecretFile: /run/secret\n'), /clientSecretFile/, /not both/);
    await refused(provider('        scopes: [profile]\n'), /scopes/, /openid/);
    await refused(provider('        requireMappedGroup: true\n'), /requireMappedGroup/, /refuse everyone/);
    await refused(provider('        groupMappings:\n          - { group: devs, project: team-a, role: owner }\n'), /groupMappings\.0\.role/);
    await refused(provider('        groupMappings:\n          - { group: devs, project: team-a, role: developer, repositories: ["team-b/**"] }\n'), /groupMappings\.0\.repositories/, /outside project team-a/);
    await refused(provider('        groupMappings:\n          - { group: devs, project: Team_A, role: developer }\n'), /groupMappings\.0\.project/);
    await refused(provider('        tokenEndpointAuthMethod: client_secret_post\n').replace('        clientSecret: s3cret-value\n', ''), /tokenEndpointAuthMethod/, /needs clientSecret/);
    await refused(provider('        colour: blue\n'), /colour/);
    const twice = `${provider()}      - name: corp\n        issuer: https://other.example.com\n        clientId: x\n`;
    await refused(twice, /providers\.1\.name/, /used twice/);
  });
});

describe('group mappings and user names', () => {
  test('group globs: * any run, ? one character, everything else literal', () => {
    assert.ok(groupMatches('team-*-devs', 'team-a-devs'));
    assert.ok(groupMatches('team-?', 'team-b'));
    assert.ok(!groupMatches('team-?', 'team-bb'));
    assert.ok(!groupMatches('a.b', 'axb'), 'a dot is literal');
    assert.ok(groupMatches('/org/team', '/org/team'));
    assert.ok(!groupMatches('devs', 'devs-extra'));
  });

  test('mapped roles per project, with repository patterns', async () => {
    const config = (await load(provider('        groupMappings:\n          - { group: "ci-*", project: ci, role: maintainer, repositories: ["ci/images/**"] }\n          - { group: devs, project: team-a, role: developer }\n'))).auth.oidc.providers[0]!;
    assert.deepEqual(mappedRoles(config, ['ci-bots'], 'ci'), [{ role: 'maintainer', repositories: ['ci/images/**'] }]);
    assert.deepEqual(mappedRoles(config, ['ci-bots'], 'team-a'), []);
    assert.deepEqual(mappedRoles(config, ['devs'], 'team-a'), [{ role: 'developer', repositories: undefined }]);
  });

  test('user names from claims fit the grammar or are refused', async () => {
    const config = (await load(provider('        usernameClaim: email\n        usernamePrefix: corp-\n'))).auth.oidc.providers[0]!;
    assert.equal(usernameFrom(config, { email: 'Alice.Smith@Example.com' }), 'corp-alice.smith-example.com');
    assert.equal(usernameFrom(config, { email: 42 }), undefined);
    assert.equal(usernameFrom(config, { email: 'x'.repeat(80) }), undefined);
  });
});
