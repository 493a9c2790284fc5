/**
 * The AccessStore contract. Every backend runs this suite from its own test file:
 *
 * ```ts
 * runAccessStoreContract('sqlite', async (clock) => ({ store, cleanup, openAnother }));
 * ```
 *
 * `makeStore` returns a store over a fresh, EMPTY and UN-MIGRATED database whose notion of
 * "now" is `clock.now()`; the suite calls `migrate()`. `openAnother` opens a second store (own
 * connection) over the same database.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { AccessStore, NewUser } from './ports.ts';

export interface AccessTestClock {
  now(): number;
  advance(ms: number): void;
}

export interface AccessStoreHarness {
  store: AccessStore;
  cleanup(): Promise<void>;
  openAnother?(): Promise<{ store: AccessStore; close(): Promise<void> }>;
}

const START = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

function newUser(name: string, extra: Partial<NewUser> = {}): NewUser {
  return { id: randomUUID(), name, passwordHash: '$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA', systemAdmin: false, canCreateProjects: false, email: undefined, source: 'local', ...extra };
}

export function runAccessStoreContract(name: string, makeStore: (clock: AccessTestClock) => Promise<AccessStoreHarness>): void {
  describe(`AccessStore contract: ${name}`, () => {
    let clock: AccessTestClock;
    let harness: AccessStoreHarness;
    let store: AccessStore;

    beforeEach(async () => {
      let t = START;
      clock = { now: () => t, advance: (ms) => (t += ms) };
      harness = await makeStore(clock);
      store = harness.store;
      await store.migrate();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    it('migrates idempotently, also from a second connection at the same time', async () => {
      await store.migrate();
      if (!harness.openAnother) return;
      const other = await harness.openAnother();
      try {
        await Promise.all([store.migrate(), other.store.migrate()]);
        assert.equal(await other.store.countUsers(), 0);
      } finally {
        await other.close();
      }
    });

    it('creates, reads, lists, updates and deletes projects', async () => {
      assert.equal(await store.createProject({ name: 'team-b', visibility: 'private', createdBy: 'admin' }), true);
      assert.equal(await store.createProject({ name: 'team-a', visibility: 'public', createdBy: undefined }), true);
      assert.equal(await store.createProject({ name: 'team-a', visibility: 'private', createdBy: 'x' }), false, 'names are unique');
      const a = await store.getProject('team-a');
      assert.deepEqual(a, { name: 'team-a', visibility: 'public', createdAt: new Date(START), createdBy: undefined });
      assert.deepEqual((await store.listProjects(10)).map((p) => p.name), ['team-a', 'team-b']);
      assert.deepEqual((await store.listProjects(1, 'team-a')).map((p) => p.name), ['team-b']);
      assert.equal(await store.setProjectVisibility('team-b', 'public'), true);
      assert.equal((await store.getProject('team-b'))?.visibility, 'public');
      assert.equal(await store.setProjectVisibility('nope', 'public'), false);
      assert.equal(await store.deleteProject('team-b'), true);
      assert.equal(await store.deleteProject('team-b'), false);
      assert.equal(await store.getProject('team-b'), undefined);
    });

    it('creates users with unique names; updates move passwordChangedAt only with the password', async () => {
      const alice = newUser('alice', { email: 'alice@example.test' });
      assert.equal(await store.createUser(alice), true);
      assert.equal(await store.createUser(newUser('alice')), false);
      assert.equal(await store.countUsers(), 1);
      const stored = await store.getUser(alice.id);
      assert.equal(stored?.name, 'alice');
      assert.equal(stored?.email, 'alice@example.test');
      assert.equal(stored?.disabled, false);
      assert.equal(stored?.systemAdmin, false);
      assert.deepEqual(await store.getUserByName('alice'), stored);
      clock.advance(1000);
      assert.equal(await store.updateUser(alice.id, { systemAdmin: true, canCreateProjects: true, disabled: true, email: null }), true);
      let updated = (await store.getUser(alice.id))!;
      assert.equal(updated.systemAdmin, true);
      assert.equal(updated.canCreateProjects, true);
      assert.equal(updated.disabled, true);
      assert.equal(updated.email, undefined);
      assert.equal(updated.passwordChangedAt.getTime(), START);
      assert.equal(updated.updatedAt.getTime(), START + 1000);
      clock.advance(1000);
      await store.updateUser(alice.id, { passwordHash: '$argon2id$new' });
      updated = (await store.getUser(alice.id))!;
      assert.equal(updated.passwordHash, '$argon2id$new');
      assert.equal(updated.passwordChangedAt.getTime(), START + 2000);
      assert.equal(await store.updateUser(randomUUID(), { disabled: true }), false);
      await store.createUser(newUser('bob'));
      assert.deepEqual((await store.listUsers(10)).map((u) => u.name), ['alice', 'bob']);
      assert.deepEqual((await store.listUsers(10, 'alice')).map((u) => u.name), ['bob']);
    });

    it('grants roles to users and groups, narrowed by patterns; one grant per principal and role', async () => {
      const alice = newUser('alice');
      await store.createUser(alice);
      await store.createProject({ name: 'team-a', visibility: 'private', createdBy: undefined });
      await store.createProject({ name: 'team-b', visibility: 'private', createdBy: undefined });
      const id1 = await store.putMember({ project: 'team-a', principalKind: 'user', principal: alice.id, role: 'reader', repositories: undefined });
      const id2 = await store.putMember({ project: 'team-a', principalKind: 'user', principal: alice.id, role: 'developer', repositories: ['team-a/app/**'] });
      const again = await store.putMember({ project: 'team-a', principalKind: 'user', principal: alice.id, role: 'developer', repositories: ['team-a/web'] });
      assert.equal(again, id2, 'same principal and role: the grant is updated');
      assert.notEqual(id1, id2);
      await store.putMember({ project: 'team-b', principalKind: 'group', principal: 'ops', role: 'maintainer', repositories: undefined });
      const members = await store.listMembers('team-a');
      assert.deepEqual(
        members.map((m) => [m.principalKind, m.principalName, m.role, m.repositories]),
        [
          ['user', 'alice', 'developer', ['team-a/web']],
          ['user', 'alice', 'reader', undefined],
        ],
      );
      assert.deepEqual(
        (await store.rolesOf('team-a', alice.id, [])).sort((x, y) => x.role.localeCompare(y.role)),
        [
          { role: 'developer', repositories: ['team-a/web'] },
          { role: 'reader', repositories: undefined },
        ],
      );
      assert.deepEqual(await store.rolesOf('team-b', alice.id, []), []);
      assert.deepEqual(await store.rolesOf('team-b', alice.id, ['ops', 'dev']), [{ role: 'maintainer', repositories: undefined }]);
      assert.deepEqual(await store.projectsOf(alice.id, []), ['team-a']);
      assert.deepEqual(await store.projectsOf(alice.id, ['ops']), ['team-a', 'team-b']);
      assert.equal(await store.removeMember('team-b', id1), false, 'a grant is removed only from its own project');
      assert.equal(await store.removeMember('team-a', id1), true);
      assert.deepEqual((await store.listMembers('team-a')).map((m) => m.role), ['developer']);
    });

    it('deleting a user removes its memberships, tokens and refresh tokens', async () => {
      const alice = newUser('alice');
      await store.createUser(alice);
      await store.createProject({ name: 'team-a', visibility: 'private', createdBy: undefined });
      await store.putMember({ project: 'team-a', principalKind: 'user', principal: alice.id, role: 'admin', repositories: undefined });
      await store.createToken({ id: 'aaaaaaaaaaaaaaaa', userId: alice.id, name: 'laptop', grants: [], management: false, secretHash: 'h', expiresAt: new Date(START + DAY) });
      await store.createRefreshToken({ id: 'bbbbbbbbbbbbbbbb', subjectKind: 'user', subjectId: alice.id, credential: '{"kind":"password"}', service: 's', secretHash: 'h', expiresAt: new Date(START + DAY) });
      assert.equal(await store.deleteUser(alice.id), true);
      assert.equal(await store.getUser(alice.id), undefined);
      assert.deepEqual(await store.listMembers('team-a'), []);
      assert.equal(await store.getToken('aaaaaaaaaaaaaaaa'), undefined);
      assert.equal(await store.getRefreshToken('bbbbbbbbbbbbbbbb'), undefined);
      assert.equal(await store.deleteUser(alice.id), false);
    });

    it('stores robots with grants and expiry; revocation is idempotent; use is recorded', async () => {
      await store.createProject({ name: 'team-a', visibility: 'private', createdBy: undefined });
      const robot = {
        id: '0123456789abcdef',
        name: 'robot$team-a+ci',
        project: 'team-a',
        description: 'CI pushes',
        grants: [{ repositories: ['team-a/app/**'], actions: ['pull' as const, 'push' as const] }],
        secretHash: 'f'.repeat(64),
        expiresAt: new Date(START + 30 * DAY),
        createdBy: 'alice',
      };
      assert.equal(await store.createRobot(robot), true);
      assert.equal(await store.createRobot({ ...robot, id: 'fedcba9876543210' }), false, 'robot names are unique');
      await store.createRobot({ ...robot, id: '1111111111111111', name: 'robot$mirror', project: undefined, description: undefined });
      const stored = (await store.getRobot(robot.id))!;
      assert.deepEqual(stored.grants, robot.grants);
      assert.equal(stored.project, 'team-a');
      assert.equal(stored.expiresAt.getTime(), START + 30 * DAY);
      assert.equal(stored.revokedAt, undefined);
      assert.equal(stored.lastUsedAt, undefined);
      assert.deepEqual((await store.listRobots('team-a')).map((r) => r.name), ['robot$team-a+ci']);
      assert.deepEqual((await store.listRobots(undefined)).map((r) => r.name), ['robot$mirror']);
      clock.advance(5000);
      await store.touchRobot(robot.id, '192.0.2.7');
      const used = (await store.getRobot(robot.id))!;
      assert.equal(used.lastUsedAt?.getTime(), START + 5000);
      assert.equal(used.lastUsedFrom, '192.0.2.7');
      assert.equal(await store.revokeRobot(robot.id), true);
      clock.advance(5000);
      assert.equal(await store.revokeRobot(robot.id), true);
      assert.equal((await store.getRobot(robot.id))?.revokedAt?.getTime(), START + 5000, 'the first revocation time stays');
      assert.equal(await store.revokeRobot('2222222222222222'), false);
      assert.equal(await store.deleteProject('team-a'), true);
      assert.equal(await store.getRobot(robot.id), undefined, 'project robots go with their project');
      assert.ok(await store.getRobot('1111111111111111'));
      assert.equal(await store.deleteRobot('1111111111111111'), true);
      assert.equal(await store.deleteRobot('1111111111111111'), false);
    });

    it('stores personal access tokens per user with unique names', async () => {
      const alice = newUser('alice');
      const bob = newUser('bob');
      await store.createUser(alice);
      await store.createUser(bob);
      const token = { id: 'aaaaaaaaaaaaaaaa', userId: alice.id, name: 'laptop', grants: [{ repositories: ['team-a/**'], actions: ['pull' as const] }], management: true, secretHash: 'h', expiresAt: new Date(START + DAY) };
      assert.equal(await store.createToken(token), true);
      assert.equal(await store.createToken({ ...token, id: 'bbbbbbbbbbbbbbbb' }), false);
      assert.equal(await store.createToken({ ...token, id: 'cccccccccccccccc', userId: bob.id }), true);
      const stored = (await store.getToken(token.id))!;
      assert.deepEqual(stored.grants, token.grants);
      assert.equal(stored.management, true);
      assert.deepEqual((await store.listTokens(alice.id)).map((t) => t.id), [token.id]);
      await store.touchToken(token.id, '2001:db8::1');
      assert.equal((await store.getToken(token.id))?.lastUsedFrom, '2001:db8::1');
      assert.equal(await store.revokeToken(token.id), true);
      assert.ok((await store.getToken(token.id))?.revokedAt);
    });

    it('stores, revokes and expires refresh tokens', async () => {
      await store.createRefreshToken({ id: 'aaaaaaaaaaaaaaaa', subjectKind: 'robot', subjectId: 'r1', credential: '{"kind":"robot","id":"r1"}', service: 'portcullis', secretHash: 'h', expiresAt: new Date(START + DAY) });
      await store.createRefreshToken({ id: 'bbbbbbbbbbbbbbbb', subjectKind: 'user', subjectId: 'u1', credential: '{"kind":"password"}', service: 'portcullis', secretHash: 'h', expiresAt: new Date(START + 3 * DAY) });
      const stored = (await store.getRefreshToken('aaaaaaaaaaaaaaaa'))!;
      assert.equal(stored.service, 'portcullis');
      assert.equal(stored.subjectKind, 'robot');
      assert.equal(await store.revokeRefreshToken('aaaaaaaaaaaaaaaa'), true);
      assert.ok((await store.getRefreshToken('aaaaaaaaaaaaaaaa'))?.revokedAt);
      clock.advance(2 * DAY);
      assert.equal(await store.deleteExpiredRefreshTokens(), 1);
      assert.equal(await store.getRefreshToken('aaaaaaaaaaaaaaaa'), undefined);
      assert.ok(await store.getRefreshToken('bbbbbbbbbbbbbbbb'));
    });

    it('keeps signing keys newest first; a concurrent rotation adds one key only', async () => {
      assert.equal(await store.addSigningKey({ kid: 'k1', privateJwk: '{"k":1}', createdAt: new Date(START) }, new Date(START - 1)), true);
      assert.equal(await store.addSigningKey({ kid: 'k2', privateJwk: '{"k":2}', createdAt: new Date(START + DAY) }, new Date(START)), true);
      // A replica that saw only k1 tries to rotate as well: k2 is newer than what it saw.
      assert.equal(await store.addSigningKey({ kid: 'k3', privateJwk: '{"k":3}', createdAt: new Date(START + DAY) }, new Date(START)), false);
      assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid), ['k2', 'k1']);
      assert.equal((await store.listSigningKeys())[0]!.privateJwk, '{"k":2}');
      await store.deleteSigningKey('k1');
      assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid), ['k2']);
    });
  });
}
