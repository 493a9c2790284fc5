import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Action, type Identity, type Role, type UserIdentity, anonymous, projectActions, repositoryActions } from './identity.ts';
import { type ProjectFacts, type Resource, allowedScopeActions, authorize, rolePermissions } from './permissions.ts';

const user = (extra: Partial<UserIdentity> = {}): UserIdentity => ({
  kind: 'user',
  id: 'u1',
  name: 'alice',
  systemAdmin: false,
  canCreateProjects: false,
  groups: [],
  restriction: undefined,
  credential: { kind: 'password' },
  ...extra,
});
const facts = (visibility: 'private' | 'public', roles: ProjectFacts['roles'] = []): ProjectFacts => ({ name: 'team', visibility, roles });
const repo: Resource = { kind: 'repository', name: 'team/app' };
const project: Resource = { kind: 'project', name: 'team' };

test('the role table: each role allows exactly its actions, on repositories and on the project', () => {
  const expected: Record<Role, Action[]> = {
    reader: ['pull', 'project.read'],
    developer: ['pull', 'push', 'project.read'],
    maintainer: ['pull', 'push', 'delete', 'retag', 'promote', 'project.read'],
    admin: ['pull', 'push', 'delete', 'retag', 'promote', 'project.read', 'project.update', 'project.delete', 'member.manage', 'robot.manage'],
  };
  for (const [role, actions] of Object.entries(expected) as Array<[Role, Action[]]>) {
    assert.deepEqual([...rolePermissions[role]].sort(), [...actions].sort(), role);
    const f = facts('private', [{ role, repositories: undefined }]);
    for (const action of repositoryActions) assert.equal(authorize(user(), action, repo, f), actions.includes(action), `${role} ${action}`);
    for (const action of projectActions) assert.equal(authorize(user(), action, project, f), actions.includes(action), `${role} ${action}`);
  }
});

test('actions only apply to their kind of resource', () => {
  const f = facts('private', [{ role: 'admin', repositories: undefined }]);
  assert.equal(authorize(user(), 'pull', project, f), false);
  assert.equal(authorize(user(), 'member.manage', repo, f), false);
  assert.equal(authorize(user({ systemAdmin: true }), 'project.read', repo, f), false);
});

test('public projects: pull and project.read for everyone, nothing else', () => {
  const robot: Identity = { kind: 'robot', id: 'r', name: 'robot$x', project: 'other', grants: [], credential: { kind: 'robot', id: 'r' } };
  for (const identity of [anonymous, user(), robot, user({ restriction: { grants: [], management: false } })]) {
    assert.equal(authorize(identity, 'pull', repo, facts('public')), true, identity.kind);
    assert.equal(authorize(identity, 'project.read', project, facts('public')), true, identity.kind);
    assert.equal(authorize(identity, 'push', repo, facts('public')), false, identity.kind);
    assert.equal(authorize(identity, 'pull', repo, facts('private')), false, identity.kind);
  }
});

test('nothing happens in a project that does not exist (or whose facts are for another project)', () => {
  assert.equal(authorize(user({ systemAdmin: true }), 'push', repo, undefined), false);
  assert.equal(authorize(user({ systemAdmin: true }), 'pull', { kind: 'repository', name: 'other/app' }, facts('public')), false);
  assert.equal(authorize(user({ systemAdmin: true }), 'push', repo, facts('private')), true);
});

test('grants narrowed by patterns allow repository actions on matching repositories and project.read only', () => {
  const f = facts('private', [
    { role: 'reader', repositories: undefined },
    { role: 'admin', repositories: ['team/app/**'] },
  ]);
  assert.equal(authorize(user(), 'push', repo, f), true);
  assert.equal(authorize(user(), 'delete', { kind: 'repository', name: 'team/app/api' }, f), true);
  assert.equal(authorize(user(), 'push', { kind: 'repository', name: 'team/web' }, f), false);
  assert.equal(authorize(user(), 'pull', { kind: 'repository', name: 'team/web' }, f), true);
  assert.equal(authorize(user(), 'member.manage', project, f), false, 'a narrowed admin grant never administers the project');
  assert.equal(authorize(user(), 'project.read', project, facts('private', [{ role: 'reader', repositories: ['team/x'] }])), true);
});

test('robots and workloads can do exactly what their grants list, within their project', () => {
  const grants = [{ repositories: ['team/app'], actions: ['pull' as const, 'push' as const] }];
  const projectRobot: Identity = { kind: 'robot', id: 'r', name: 'robot$team+ci', project: 'team', grants, credential: { kind: 'robot', id: 'r' } };
  assert.deepEqual(allowedScopeActions(projectRobot, 'team/app', facts('private')), ['pull', 'push']);
  assert.deepEqual(allowedScopeActions(projectRobot, 'team/web', facts('private')), []);
  assert.equal(authorize(projectRobot, 'project.read', project, facts('private', [{ role: 'admin', repositories: undefined }])), false, 'robots have no roles');
  const escaping: Identity = { ...projectRobot, project: 'other' } as Identity;
  assert.deepEqual(allowedScopeActions(escaping, 'team/app', facts('private')), [], "a project robot's grants never reach outside its project");
  assert.equal(authorize(projectRobot, 'retag', repo, facts('private')), false, 'moving tags needs retag in the grant');
  const retagger: Identity = { ...projectRobot, grants: [{ repositories: ['team/app'], actions: ['push', 'retag'] }] } as Identity;
  assert.equal(authorize(retagger, 'retag', repo, facts('private')), true);
  assert.deepEqual(allowedScopeActions(retagger, 'team/app', facts('private')), ['push'], 'retag is not a Docker scope action');
  const workload: Identity = { kind: 'workload', issuer: 'https://ci', subject: 'repo:x', name: 'workload', project: undefined, grants, credential: { kind: 'anonymous' } };
  assert.deepEqual(allowedScopeActions(workload, 'team/app', facts('private')), ['pull', 'push']);
  for (const action of ['catalog', 'project.create', 'user.manage', 'account.manage'] as const) {
    assert.equal(authorize(projectRobot, action, { kind: 'system' }, undefined), action === 'catalog', action);
  }
});

test('a restricted user (personal access token) needs both the role and the restriction', () => {
  const f = facts('private', [{ role: 'maintainer', repositories: undefined }]);
  const pat = user({ restriction: { grants: [{ repositories: ['team/**'], actions: ['pull'] }], management: false } });
  assert.deepEqual(allowedScopeActions(pat, 'team/app', f), ['pull']);
  const wide = user({ restriction: { grants: [{ repositories: ['team/**'], actions: ['pull', 'push', 'delete'] }], management: false } });
  assert.deepEqual(allowedScopeActions(wide, 'team/app', facts('private', [{ role: 'reader', repositories: undefined }])), ['pull'], 'a token never exceeds its user');
  const adminPat = user({ systemAdmin: true, restriction: { grants: [{ repositories: ['team/app'], actions: ['pull'] }], management: false } });
  assert.deepEqual(allowedScopeActions(adminPat, 'team/app', f), ['pull']);
  assert.equal(authorize(adminPat, 'user.manage', { kind: 'system' }, undefined), false, 'no management without the management flag');
  assert.equal(authorize(adminPat, 'member.manage', project, f), false);
  const managing = user({ systemAdmin: true, restriction: { grants: [], management: true } });
  assert.equal(authorize(managing, 'user.manage', { kind: 'system' }, undefined), true);
});

test('system actions', () => {
  const cases: Array<[Identity, Action, boolean]> = [
    [anonymous, 'catalog', true],
    [anonymous, 'account.manage', false],
    [anonymous, 'project.create', false],
    [user(), 'account.manage', true],
    [user(), 'project.create', false],
    [user({ canCreateProjects: true }), 'project.create', true],
    [user({ canCreateProjects: true }), 'user.manage', false],
    [user({ systemAdmin: true }), 'user.manage', true],
    [user({ systemAdmin: true }), 'system.robot.manage', true],
    [user(), 'system.robot.manage', false],
    [user({ systemAdmin: true }), 'audit.read', true],
    [user({ canCreateProjects: true }), 'audit.read', false],
    [user({ systemAdmin: true, restriction: { grants: [], management: false } }), 'audit.read', false],
  ];
  for (const [identity, action, expected] of cases) assert.equal(authorize(identity, action, { kind: 'system' }, undefined), expected, `${identity.kind} ${action}`);
});
