/**
 * The management API (/api/v1) in-process (so the test can watch the event bus): the OpenAPI
 * document, users, projects, members, robots and personal access tokens, their rules, the
 * permission checks, and one `access.changed` event per change naming who did what to whom.
 * Every response body is checked against the schema the OpenAPI document publishes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { z } from 'zod';
import * as schemas from '../../src/registry/api/schemas.ts';
import { type Registry, buildRegistry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import type { EventOf } from '../../src/registry/events/bus.ts';
import { ADMIN_PASSWORD, type Credentials, admin, basic } from './helpers.ts';

let registry: Registry;
let dataDir: string;
const events: Array<EventOf<'access.changed'>> = [];

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portcullis-api-'));
  const config = validateConfig({ storage: { dataDir }, gc: { intervalSeconds: 0 }, log: { level: 'silent' }, auth: { mode: 'token', robots: { maxLifetimeDays: 90 } }, audit: { api: { enabled: true } } });
  registry = await buildRegistry(config, { adminPassword: ADMIN_PASSWORD });
  registry.events.subscribe('access.changed', (event) => void events.push(event));
});

after(async () => {
  await registry?.close();
  await rm(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

async function call(method: string, path: string, auth?: Credentials | string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { 'user-agent': 'api-test' };
  if (typeof auth === 'string') headers.authorization = auth;
  else if (auth) headers.authorization = basic(auth);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await registry.app.inject({ method: method as never, url: `/api/v1${path}`, headers, payload: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, headers: res.headers };
}

/** Calls and checks status and, when given, the documented response schema. */
async function expect(status: number, answer: Promise<Answer>, schema?: z.ZodType): Promise<any> {
  const res = await answer;
  assert.equal(res.status, status, JSON.stringify(res.body));
  if (status >= 400) schemas.errorSchema.parse(res.body);
  else if (schema) schema.parse(res.body);
  return res.body;
}

async function lastEvent(): Promise<EventOf<'access.changed'>> {
  await new Promise((r) => setImmediate(r));
  return events[events.length - 1]!;
}

describe('management API', () => {
  const alice: Credentials = { username: 'alice', password: 'first-passphrase-1' };
  const bob: Credentials = { username: 'bob', password: 'second-passphrase-22' };

  test('the OpenAPI document describes every operation', async () => {
    const doc = await expect(200, call('GET', '/openapi.json'));
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.components.securitySchemes.basic);
    const operations = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
    assert.ok(operations.length >= 24, `${operations.length} operations`);
    const ids = new Set<string>();
    for (const { path, method, op } of operations) {
      assert.ok(path.startsWith('/api/v1/'), path);
      assert.ok(op.summary && op.responses && op.operationId, `${method} ${path}`);
      assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      for (const param of path.matchAll(/\{(\w+)\}/g)) assert.ok(op.parameters.some((p: { name: string }) => p.name === param[1]), `${path}: parameter ${param[1]}`);
      // actions without parameters (revoke, the scanner's re-scan) take no body
      if (['post', 'patch'].includes(method) && !path.endsWith('/revoke') && !/\/scans\/\{reference\}$/.test(path)) assert.ok(op.requestBody?.content['application/json'].schema, `${method} ${path} body`);
    }
    const createUser = doc.paths['/api/v1/users'].post.requestBody.content['application/json'].schema;
    assert.deepEqual(createUser.required, ['name']);
    assert.equal(createUser.additionalProperties, false);
  });

  test('users: created by a system administrator, with the password policy; names unique', async () => {
    const created = await expect(201, call('POST', '/users', admin, { name: 'alice', password: alice.password, canCreateProjects: true, email: 'alice@example.test' }), schemas.userSchema);
    assert.deepEqual(created, { name: 'alice', systemAdmin: false, canCreateProjects: true, disabled: false, email: 'alice@example.test', source: 'local', createdAt: created.createdAt });
    const event = await lastEvent();
    assert.equal(event.change, 'user.created');
    assert.deepEqual(event.target, { kind: 'user', name: 'alice' });
    assert.deepEqual(event.origin?.actor, { kind: 'user', name: 'admin', auth: 'password' });
    assert.equal(event.origin?.userAgent, 'api-test');
    await expect(201, call('POST', '/users', admin, { name: 'bob', password: bob.password }));
    await expect(409, call('POST', '/users', admin, { name: 'bob', password: bob.password }));
    await expect(400, call('POST', '/users', admin, { name: 'carol', password: 'short' }));
    await expect(400, call('POST', '/users', admin, { name: 'Carol', password: 'long-enough-pass' }));
    await expect(400, call('POST', '/users', admin, { name: 'robot$x', password: 'long-enough-pass' }));
    await expect(400, call('POST', '/users', admin, { name: 'carol', password: 'long-enough-pass', role: 'god' }), undefined);
    await expect(403, call('POST', '/users', alice, { name: 'carol', password: 'long-enough-pass' }));
    await expect(401, call('POST', '/users', undefined, { name: 'carol', password: 'long-enough-pass' }));
    await expect(401, call('GET', '/users', { username: 'alice', password: 'wrong-password-1' }));
    const list = await expect(200, call('GET', '/users', admin), schemas.userSchema.array());
    assert.deepEqual(list.map((u: { name: string }) => u.name), ['admin', 'alice', 'bob']);
    await expect(403, call('GET', '/users', alice));
    await expect(200, call('GET', '/users/alice', alice), schemas.userSchema);
    await expect(403, call('GET', '/users/bob', alice));
    await expect(200, call('GET', '/me', alice), schemas.whoamiSchema);
  });

  test('users: own password needs the current one; no self-demotion; managed fields need user.manage', async () => {
    await expect(400, call('PATCH', '/users/bob', bob, { password: 'changed-passphrase-3' }));
    await expect(400, call('PATCH', '/users/bob', bob, { password: 'changed-passphrase-3', currentPassword: 'wrong-one-12345' }));
    await expect(200, call('PATCH', '/users/bob', bob, { password: 'changed-passphrase-3', currentPassword: bob.password }), schemas.userSchema);
    bob.password = 'changed-passphrase-3';
    assert.deepEqual((await lastEvent()).detail, { changed: ['password'] });
    await expect(403, call('PATCH', '/users/bob', bob, { canCreateProjects: true }));
    await expect(403, call('PATCH', '/users/alice', bob, { email: 'x@example.test' }));
    await expect(400, call('PATCH', '/users/admin', admin, { disabled: true }));
    await expect(400, call('DELETE', '/users/admin', admin));
    const disabled = await expect(200, call('PATCH', '/users/bob', admin, { disabled: true }), schemas.userSchema);
    assert.equal(disabled.disabled, true);
    await expect(401, call('GET', '/me', bob));
    await expect(200, call('PATCH', '/users/bob', admin, { disabled: false }));
  });

  test('projects: a user allowed to create projects becomes their admin; visibility; deletion only when empty', async () => {
    const project = await expect(201, call('POST', '/projects', alice, { name: 'team-a' }), schemas.projectSchema);
    assert.deepEqual(project, { name: 'team-a', visibility: 'private', createdAt: project.createdAt, createdBy: 'alice' });
    assert.equal((await lastEvent()).change, 'project.created');
    await expect(403, call('POST', '/projects', bob, { name: 'team-b' }));
    await expect(409, call('POST', '/projects', admin, { name: 'team-a' }));
    await expect(400, call('POST', '/projects', admin, { name: 'team/a' }));
    const members = await expect(200, call('GET', '/projects/team-a/members', alice), schemas.memberSchema.array());
    assert.deepEqual(members.map((m: { name: string; role: string }) => [m.name, m.role]), [['alice', 'admin']]);
    await expect(403, call('GET', '/projects/team-a', bob), undefined);
    assert.deepEqual((await expect(200, call('GET', '/projects', bob))).map((p: { name: string }) => p.name), []);
    await expect(200, call('PATCH', '/projects/team-a', alice, { visibility: 'public' }), schemas.projectSchema);
    assert.deepEqual((await expect(200, call('GET', '/projects', undefined))).map((p: { name: string }) => p.name), ['team-a'], 'public projects are listed to anonymous callers');
    await expect(403, call('PATCH', '/projects/team-a', bob, { visibility: 'private' }));
    await expect(200, call('PATCH', '/projects/team-a', alice, { visibility: 'private' }));
    // A repository in the project blocks its deletion.
    await expect(201, call('POST', '/projects', alice, { name: 'doomed' }));
    const token = await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis&scope=repository:doomed/app:push', headers: { authorization: basic(alice) } });
    const blob = Buffer.from('x');
    const upload = await registry.app.inject({
      method: 'POST',
      url: '/v2/doomed/app/blobs/uploads/?digest=sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881',
      headers: { authorization: `Bearer ${JSON.parse(token.body).token}`, 'content-type': 'application/octet-stream' },
      payload: blob,
    });
    assert.equal(upload.statusCode, 201);
    await expect(409, call('DELETE', '/projects/doomed', alice));
    await expect(201, call('POST', '/projects', alice, { name: 'empty' }));
    await expect(403, call('DELETE', '/projects/empty', bob));
    await expect(204, call('DELETE', '/projects/empty', alice));
    assert.deepEqual((await lastEvent()).target, { kind: 'project', name: 'empty' });
    await expect(403, call('GET', '/projects/empty', alice), undefined);
  });

  test('members: users and groups, roles narrowed to patterns inside the project', async () => {
    const member = await expect(201, call('POST', '/projects/team-a/members', alice, { user: 'bob', role: 'developer', repositories: ['team-a/app/**'] }), schemas.memberSchema);
    assert.deepEqual({ ...member, id: undefined }, { id: undefined, kind: 'user', name: 'bob', role: 'developer', repositories: ['team-a/app/**'] });
    const event = await lastEvent();
    assert.equal(event.change, 'member.added');
    assert.deepEqual(event.target, { kind: 'member', name: 'bob', project: 'team-a' });
    assert.deepEqual(event.origin?.actor, { kind: 'user', name: 'alice', auth: 'password' });
    await expect(201, call('POST', '/projects/team-a/members', alice, { group: 'platform-team', role: 'reader' }), schemas.memberSchema);
    await expect(400, call('POST', '/projects/team-a/members', alice, { user: 'bob', role: 'developer', repositories: ['team-b/**'] }));
    await expect(400, call('POST', '/projects/team-a/members', alice, { user: 'bob', role: 'developer', repositories: ['team-a/a**'] }));
    await expect(400, call('POST', '/projects/team-a/members', alice, { user: 'bob', group: 'x', role: 'reader' }));
    await expect(400, call('POST', '/projects/team-a/members', alice, { user: 'bob', role: 'owner' }));
    await expect(404, call('POST', '/projects/team-a/members', alice, { user: 'nobody', role: 'reader' }));
    await expect(403, call('POST', '/projects/team-a/members', bob, { user: 'bob', role: 'admin' }), undefined);
    // bob can now see the project, and push only below team-a/app.
    await expect(200, call('GET', '/projects/team-a', bob), schemas.projectSchema);
    const token = await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis&scope=repository:team-a/app/api:push&scope=repository:team-a/web:pull,push', headers: { authorization: basic(bob) } });
    const access = JSON.parse(Buffer.from(JSON.parse(token.body).token.split('.')[1], 'base64url').toString()).access;
    assert.deepEqual(access, [{ type: 'repository', name: 'team-a/app/api', actions: ['push'] }]);
    const list = await expect(200, call('GET', '/projects/team-a/members', bob), schemas.memberSchema.array());
    await expect(204, call('DELETE', `/projects/team-a/members/${member.id}`, alice));
    await expect(404, call('DELETE', `/projects/team-a/members/${member.id}`, alice));
    assert.equal(list.length, 3);
  });

  test('robots: mandatory bounded expiry, grants inside the project, secret shown once, revocation, system robots', async () => {
    const body = { name: 'ci', description: 'pushes from CI', grants: [{ repositories: ['team-a/**'], actions: ['pull', 'push'] }] };
    await expect(400, call('POST', '/projects/team-a/robots', alice, body));
    await expect(400, call('POST', '/projects/team-a/robots', alice, { ...body, expiresInDays: 91 }));
    await expect(400, call('POST', '/projects/team-a/robots', alice, { ...body, expiresAt: '2001-01-01T00:00:00Z' }));
    await expect(400, call('POST', '/projects/team-a/robots', alice, { ...body, grants: [{ repositories: ['other/**'], actions: ['pull'] }], expiresInDays: 30 }));
    await expect(400, call('POST', '/projects/team-a/robots', alice, { ...body, grants: [{ repositories: ['team-a/**'], actions: ['admin'] }], expiresInDays: 30 }));
    await expect(400, call('POST', '/projects/team-a/robots', alice, { ...body, grants: [], expiresInDays: 30 }));
    const created = await expect(201, call('POST', '/projects/team-a/robots', alice, { ...body, expiresInDays: 30 }), schemas.createdRobotSchema);
    assert.equal(created.robot.name, 'robot$team-a+ci');
    assert.equal(created.robot.createdBy, 'alice');
    assert.match(created.secret, /^pcr_/);
    const event = await lastEvent();
    assert.equal(event.change, 'robot.created');
    assert.deepEqual(event.target, { kind: 'robot', name: 'robot$team-a+ci', project: 'team-a' });
    assert.ok(!JSON.stringify(event).includes(created.secret.slice(22)), 'the secret is not in the event');
    await expect(409, call('POST', '/projects/team-a/robots', alice, { ...body, expiresInDays: 30 }));
    const list = await expect(200, call('GET', '/projects/team-a/robots', alice), schemas.robotSchema.array());
    assert.equal(list.length, 1);
    assert.ok(!JSON.stringify(list).includes(created.secret.slice(22)), 'the secret is never shown again');
    await expect(403, call('GET', '/projects/team-a/robots', bob));
    // The robot uses its secret; last use is recorded.
    const token = await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis&scope=repository:team-a/app:pull', headers: { authorization: basic({ username: created.robot.name, password: created.secret }), 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(token.statusCode, 200);
    await new Promise((r) => setTimeout(r, 50));
    const used = (await expect(200, call('GET', '/projects/team-a/robots', alice), schemas.robotSchema.array()))[0];
    assert.ok(used.lastUsedAt);
    assert.equal(used.lastUsedFrom, '127.0.0.1');
    const revoked = await expect(200, call('POST', `/projects/team-a/robots/${created.robot.id}/revoke`, alice), schemas.robotSchema);
    assert.ok(revoked.revokedAt);
    assert.equal((await lastEvent()).change, 'robot.revoked');
    await expect(404, call('POST', `/robots/${created.robot.id}/revoke`, admin), undefined);
    await expect(204, call('DELETE', `/projects/team-a/robots/${created.robot.id}`, alice));
    // System robots: system administrators only, grants across projects.
    await expect(403, call('POST', '/robots', alice, { name: 'mirror', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 1 }));
    const system = await expect(201, call('POST', '/robots', admin, { name: 'mirror', grants: [{ repositories: ['team-a/**', 'doomed/**'], actions: ['pull'] }], expiresInDays: 1 }), schemas.createdRobotSchema);
    assert.equal(system.robot.name, 'robot$mirror');
    assert.equal(system.robot.project, undefined);
    await expect(200, call('GET', '/robots', admin), schemas.robotSchema.array());
  });

  test('personal access tokens: created by their owner, scoped, management only when asked for', async () => {
    await expect(403, call('POST', '/users/alice/tokens', bob, { name: 'x', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 1 }));
    await expect(400, call('POST', '/users/bob/tokens', bob, { name: 'x', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }] }));
    const plain = await expect(201, call('POST', '/users/bob/tokens', bob, { name: 'podman', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 30 }), schemas.createdTokenSchema);
    const managing = await expect(201, call('POST', '/users/bob/tokens', bob, { name: 'api', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], management: true, expiresInDays: 30 }), schemas.createdTokenSchema);
    assert.match(plain.secret, /^pcp_/);
    assert.equal((await lastEvent()).change, 'token.created');
    await expect(409, call('POST', '/users/bob/tokens', bob, { name: 'podman', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 30 }));
    // A token without `management` cannot use the API, not even to mint more tokens.
    await expect(403, call('GET', '/users/bob/tokens', { username: 'bob', password: plain.secret }));
    await expect(403, call('POST', '/users/bob/tokens', { username: 'bob', password: plain.secret }, { name: 'more', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 1 }));
    const list = await expect(200, call('GET', '/users/bob/tokens', { username: 'bob', password: managing.secret }), schemas.tokenSchema.array());
    assert.deepEqual(list.map((t: { name: string }) => t.name), ['api', 'podman']);
    await expect(200, call('GET', '/users/bob/tokens', admin), schemas.tokenSchema.array());
    await expect(403, call('GET', '/users/bob/tokens', alice));
    await expect(403, call('POST', `/users/bob/tokens/${plain.token.id}/revoke`, alice));
    const revoked = await expect(200, call('POST', `/users/bob/tokens/${plain.token.id}/revoke`, bob), schemas.tokenSchema);
    assert.ok(revoked.revokedAt);
    await expect(404, call('POST', `/users/alice/tokens/${plain.token.id}/revoke`, admin));
  });

  test('registry tokens authenticate API calls too; robots never administer', async () => {
    const token = JSON.parse((await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis', headers: { authorization: basic(alice) } })).body).token;
    const me = await expect(200, call('GET', '/me', `Bearer ${token}`), schemas.whoamiSchema);
    assert.equal(me.name, 'alice');
    await expect(401, call('GET', '/me', 'Bearer not-a-token'));
    const robot = await expect(201, call('POST', '/projects/team-a/robots', alice, { name: 'ops', grants: [{ repositories: ['team-a/**'], actions: ['pull', 'push', 'delete'] }], expiresInDays: 1 }));
    await expect(403, call('GET', '/projects/team-a/members', { username: robot.robot.name, password: robot.secret }));
    await expect(403, call('POST', '/projects/team-a/robots', { username: robot.robot.name, password: robot.secret }, { name: 'spawn', grants: [{ repositories: ['team-a/**'], actions: ['pull'] }], expiresInDays: 1 }));
  });

  test('the audit API is for system administrators; records name the actor and how it authenticated', async () => {
    const anonymousAnswer = await registry.app.inject({ method: 'GET', url: '/api/v1/audit' });
    assert.equal(anonymousAnswer.statusCode, 401);
    assert.match(String(anonymousAnswer.headers['www-authenticate']), /^Basic /);
    assert.equal((await registry.app.inject({ method: 'GET', url: '/api/v1/audit', headers: { authorization: basic(alice) } })).statusCode, 403);
    const aliceToken = JSON.parse((await registry.app.inject({ method: 'GET', url: '/auth/token?service=portcullis', headers: { authorization: basic(alice) } })).body).token;
    assert.equal((await registry.app.inject({ method: 'GET', url: '/api/v1/audit', headers: { authorization: `Bearer ${aliceToken}` } })).statusCode, 403);
    await new Promise((r) => setTimeout(r, 400));
    const res = await registry.app.inject({ method: 'GET', url: '/api/v1/audit?actor=alice', headers: { authorization: basic(admin) } });
    assert.equal(res.statusCode, 200, res.body);
    const records = JSON.stringify(JSON.parse(res.body));
    assert.match(records, /"name":"alice"/);
    assert.match(records, /"auth":"password"/);
  });

  test('deleting a user removes memberships and tokens; events name actor and target', async () => {
    await expect(201, call('POST', '/projects/team-a/members', alice, { user: 'bob', role: 'reader' }));
    await expect(204, call('DELETE', '/users/bob', admin));
    const event = await lastEvent();
    assert.equal(event.change, 'user.deleted');
    assert.deepEqual(event.origin?.actor, { kind: 'user', name: 'admin', auth: 'password' });
    const members = await expect(200, call('GET', '/projects/team-a/members', alice), schemas.memberSchema.array());
    assert.ok(!members.some((m: { name: string }) => m.name === 'bob'));
    await expect(404, call('GET', '/users/bob', admin));
    assert.ok(events.every((e) => e.origin === undefined || e.origin.actor.kind !== 'anonymous'), 'every change has an authenticated actor');
  });
});
