/**
 * The scanner's API under access control (auth.mode token): reports need `pull`, re-scans `push`,
 * exemptions `project.read` to list and `project.update` to manage; anonymous callers get 401
 * with a challenge, others without the permission 403.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Registry, buildRegistry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { ADMIN_PASSWORD, type Credentials, admin, basic } from '../auth/helpers.ts';

describe('scanner API access control', () => {
  let registry: Registry;
  let dataDir: string;
  const users: Record<string, Credentials> = {};
  const call = async (method: string, url: string, who?: Credentials, body?: unknown) => {
    const res = await registry.app.inject({
      method: method as 'GET',
      url,
      headers: { ...(who ? { authorization: basic(who) } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, headers: res.headers, json: () => JSON.parse(res.payload) };
  };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-scanacc-'));
    const config = validateConfig({ storage: { dataDir }, gc: { intervalSeconds: 0 }, log: { level: 'silent' }, auth: { mode: 'token' }, audit: { enabled: false } });
    registry = await buildRegistry(config, { adminPassword: ADMIN_PASSWORD });
    for (const name of ['alice', 'bob', 'carol']) {
      users[name] = { username: name, password: `Pw-${randomUUID()}` };
      assert.equal((await call('POST', '/api/v1/users', admin, { name, password: users[name]!.password })).status, 201);
    }
    assert.equal((await call('POST', '/api/v1/projects', admin, { name: 'team' })).status, 201);
    assert.equal((await call('POST', '/api/v1/projects/team/members', admin, { user: 'alice', role: 'admin' })).status, 201);
    assert.equal((await call('POST', '/api/v1/projects/team/members', admin, { user: 'bob', role: 'reader' })).status, 201);
  });
  after(async () => {
    await registry?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const digest = `sha256:${'a'.repeat(64)}`;
  const exemption = { vulnerability: 'CVE-2024-0001', scope: 'project', project: 'team', owner: 'alice', reason: 'not reachable', expiresAt: new Date(Date.now() + 86_400_000).toISOString() };

  test('reports: anonymous 401 with a challenge, outsiders 403, readers pass (404: nothing pushed)', async () => {
    const anonymous = await call('GET', `/api/v1/repositories/team/app/scans/${digest}`);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic /);
    assert.equal((await call('GET', `/api/v1/repositories/team/app/scans/${digest}`, users.carol)).status, 403);
    assert.equal((await call('GET', `/api/v1/repositories/team/app/scans/${digest}/sbom?format=spdx`, users.carol)).status, 403);
    assert.equal((await call('GET', `/api/v1/repositories/team/app/scans/${digest}`, users.bob)).status, 404);
    assert.equal((await call('GET', `/api/v1/repositories/team/app/scans/v1/sarif`, users.bob)).status, 404);
    assert.equal((await call('POST', `/api/v1/repositories/team/app/scans/${digest}`, users.bob)).status, 403, 're-scan needs push');
    assert.equal((await call('POST', `/api/v1/repositories/team/app/scans/${digest}`, users.alice)).status, 404);
    assert.equal((await call('GET', `/api/v1/repositories/team/app/scans/${digest}`, { username: 'bob', password: 'wrong-password-123' })).status, 401);
  });

  test('exemptions: project admins manage, readers list, outsiders nothing', async () => {
    assert.equal((await call('POST', '/api/v1/exemptions', users.bob, exemption)).status, 403);
    assert.equal((await call('POST', '/api/v1/exemptions', undefined, exemption)).status, 401);
    const created = await call('POST', '/api/v1/exemptions', users.alice, exemption);
    assert.equal(created.status, 201);
    assert.equal(created.json().createdBy, 'alice');
    const id = created.json().id;
    assert.equal((await call('GET', '/api/v1/exemptions?project=team', users.bob)).json().exemptions.length, 1);
    assert.equal((await call('GET', '/api/v1/exemptions?project=team', users.carol)).status, 403);
    assert.equal((await call('GET', `/api/v1/exemptions/${id}`, users.carol)).status, 403);
    assert.equal((await call('DELETE', `/api/v1/exemptions/${id}`, users.bob)).status, 403);
    const revoked = await call('DELETE', `/api/v1/exemptions/${id}`, users.alice);
    assert.equal(revoked.status, 200);
    assert.equal(revoked.json().revokedBy, 'alice');
    assert.equal((await call('GET', `/api/v1/exemptions/${'0'.repeat(8)}`, users.carol)).status, 404);
    assert.equal((await call('GET', `/api/v1/exemptions/${'0'.repeat(8)}`)).status, 401);
  });

  test('database status and scanner counters: any authenticated caller', async () => {
    assert.equal((await call('GET', '/api/v1/vulndb')).status, 401);
    assert.equal((await call('GET', '/api/v1/vulndb', users.carol)).status, 200);
    assert.equal((await call('GET', '/api/v1/scanner', users.carol)).json().version, '1');
  });
});
