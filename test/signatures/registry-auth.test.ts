/**
 * The signature API under access control (auth.mode token), through the same permission table as
 * the management API: trust policies are written by project administrators (`project.update`) and
 * read by members (`project.read`); signature verdicts need `pull`; anonymous callers get 401 with
 * a challenge, others 403. A registry token (Bearer) works as well as Basic credentials.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { admin, type AuthRegistry, createUser, type Credentials, ok, pushImage, startAuthRegistry } from '../auth/helpers.ts';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const body = { policy: { keys: [{ name: 'ci', publicKey: key }] }, requireSignatureToPull: false };

describe('signature API authorisation', () => {
  let registry: AuthRegistry;
  let owner: Credentials;
  let developer: Credentials;
  let reader: Credentials;
  let outsider: Credentials;
  let digest: string;
  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_SCANNER_ENABLED: 'false' });
    owner = await createUser(registry, 'owner', { canCreateProjects: true });
    developer = await createUser(registry, 'dev');
    reader = await createUser(registry, 'reader');
    outsider = await createUser(registry, 'outsider');
    await ok(registry.api('POST', '/projects', { auth: owner, body: { name: 'team' } }));
    await ok(registry.api('POST', '/projects/team/members', { auth: owner, body: { user: 'dev', role: 'developer' } }));
    await ok(registry.api('POST', '/projects/team/members', { auth: owner, body: { user: 'reader', role: 'reader' } }));
    const pushed = await pushImage(registry, 'team/app', 'v1', await registry.token(['repository:team/app:pull,push'], developer));
    assert.equal(pushed.status, 201);
    digest = pushed.digest;
  });
  after(() => registry.close());

  test('writing a trust policy needs project.update (project admins, system admins)', async () => {
    const anonymous = await registry.api('PUT', '/projects/team/trust-policy', { body });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
    for (const who of [developer, reader, outsider]) {
      const res = await registry.api('PUT', '/projects/team/trust-policy', { auth: who, body });
      assert.equal(res.status, 403, who.username);
      assert.equal(res.body.errors[0].code, 'DENIED');
    }
    const created = await registry.api('PUT', '/projects/team/trust-policy', { auth: owner, body });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.updatedBy, 'owner');
    const replaced = await registry.api('PUT', '/projects/team/trust-policy', { auth: admin, body });
    assert.equal(replaced.status, 200, 'a system administrator may too');
    for (const who of [developer, reader, outsider]) assert.equal((await registry.api('DELETE', '/projects/team/trust-policy', { auth: who })).status, 403);
    assert.equal((await registry.api('PUT', '/projects/nosuch/trust-policy', { auth: admin, body })).status, 403, 'no project, nothing to administer');
  });

  test('reading it needs project.read (members), a bearer token works too', async () => {
    assert.equal((await registry.api('GET', '/projects/team/trust-policy')).status, 401);
    assert.equal((await registry.api('GET', '/projects/team/trust-policy', { auth: outsider })).status, 403);
    for (const who of [reader, developer, owner]) assert.equal((await registry.api('GET', '/projects/team/trust-policy', { auth: who })).status, 200, who.username);
    const token = await registry.token(['repository:team/app:pull'], reader);
    const viaToken = await registry.api('GET', '/projects/team/trust-policy', { auth: token });
    assert.equal(viaToken.status, 200);
    assert.equal(viaToken.body.version, 2);
  });

  test('signature verdicts need pull on the repository', async () => {
    const path = `/repositories/team/app/manifests/${digest}/signatures`;
    assert.equal((await registry.api('GET', path)).status, 401);
    assert.equal((await registry.api('GET', path, { auth: outsider })).status, 403);
    const res = await registry.api('GET', path, { auth: reader });
    assert.equal(res.status, 200);
    assert.equal(res.body.verdict, 'unsigned');
    assert.equal((await registry.api('GET', '/repositories/team/app/manifests/v1/signatures', { auth: reader })).body.digest, digest);
  });

  test('the owner deletes it', async () => {
    assert.equal((await registry.api('DELETE', '/projects/team/trust-policy', { auth: owner })).status, 204);
    assert.equal((await registry.api('GET', '/projects/team/trust-policy', { auth: owner })).status, 404);
  });
});
