/**
 * The authorisation matrix, table-driven and end to end over HTTP: every kind of caller ×
 * every action × a private and a public project, each cell one request through the real token
 * flow (or the management API), expecting allow or deny - and for a deny the right answer:
 * 401 for anonymous callers (logging in may help), 403 DENIED for known ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AuthRegistry, type Credentials, admin, createUser, ok, pushImage, startAuthRegistry } from './helpers.ts';

type Caller = 'anonymous' | 'reader' | 'developer' | 'maintainer' | 'project admin' | 'system admin' | 'robot' | 'project robot (private project: pull, push)' | 'token (maintainer, pull only)' | 'outsider';
type Operation = 'pull' | 'push' | 'retag' | 'delete' | 'tag list' | 'catalog' | 'list members' | 'add member' | 'create robot';
type Visibility = 'private' | 'public';

const Y = true;
const N = false;
/** expected[caller][operation] = [private project, public project] */
const expected: Record<Caller, Record<Operation, [boolean, boolean]>> = {
  anonymous: { pull: [N, Y], push: [N, N], retag: [N, N], delete: [N, N], 'tag list': [N, Y], catalog: [N, Y], 'list members': [N, Y], 'add member': [N, N], 'create robot': [N, N] },
  outsider: { pull: [N, Y], push: [N, N], retag: [N, N], delete: [N, N], 'tag list': [N, Y], catalog: [N, Y], 'list members': [N, Y], 'add member': [N, N], 'create robot': [N, N] },
  reader: { pull: [Y, Y], push: [N, N], retag: [N, N], delete: [N, N], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [Y, Y], 'add member': [N, N], 'create robot': [N, N] },
  developer: { pull: [Y, Y], push: [Y, Y], retag: [N, N], delete: [N, N], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [Y, Y], 'add member': [N, N], 'create robot': [N, N] },
  maintainer: { pull: [Y, Y], push: [Y, Y], retag: [Y, Y], delete: [Y, Y], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [Y, Y], 'add member': [N, N], 'create robot': [N, N] },
  'project admin': { pull: [Y, Y], push: [Y, Y], retag: [Y, Y], delete: [Y, Y], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [Y, Y], 'add member': [Y, Y], 'create robot': [Y, Y] },
  'system admin': { pull: [Y, Y], push: [Y, Y], retag: [Y, Y], delete: [Y, Y], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [Y, Y], 'add member': [Y, Y], 'create robot': [Y, Y] },
  robot: { pull: [Y, Y], push: [Y, Y], retag: [N, N], delete: [N, N], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [N, Y], 'add member': [N, N], 'create robot': [N, N] },
  // A project robot of the private project: its grant never reaches the other project beyond what anybody may do there.
  'project robot (private project: pull, push)': { pull: [Y, Y], push: [Y, N], retag: [N, N], delete: [N, N], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [N, Y], 'add member': [N, N], 'create robot': [N, N] },
  'token (maintainer, pull only)': { pull: [Y, Y], push: [N, N], retag: [N, N], delete: [N, N], 'tag list': [Y, Y], catalog: [Y, Y], 'list members': [N, Y], 'add member': [N, N], 'create robot': [N, N] },
};

const projects: Record<Visibility, string> = { private: 'priv', public: 'pub' };

describe('authorisation matrix', () => {
  let registry: AuthRegistry;
  const credentials = new Map<Caller, Credentials | undefined>();
  let counter = 0;

  before(async () => {
    registry = await startAuthRegistry();
    for (const [visibility, name] of Object.entries(projects)) await ok(registry.api('POST', '/projects', { auth: admin, body: { name, visibility } }));
    const roles: Array<[Caller, string]> = [
      ['reader', 'reader'],
      ['developer', 'developer'],
      ['maintainer', 'maintainer'],
      ['project admin', 'admin'],
    ];
    for (const [caller, role] of roles) {
      const user = await createUser(registry, role === 'admin' ? 'padmin' : role);
      credentials.set(caller, user);
      for (const project of Object.values(projects)) await ok(registry.api('POST', `/projects/${project}/members`, { auth: admin, body: { user: user.username, role } }));
    }
    credentials.set('outsider', await createUser(registry, 'outsider'));
    credentials.set('system admin', admin);
    credentials.set('anonymous', undefined);
    const robot = await ok(registry.api('POST', '/robots', { auth: admin, body: { name: 'matrix', grants: [{ repositories: ['priv/**', 'pub/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    credentials.set('robot', { username: robot.robot.name, password: robot.secret });
    const projectRobot = await ok(registry.api('POST', `/projects/${projects.private}/robots`, { auth: admin, body: { name: 'matrix', grants: [{ repositories: [`${projects.private}/**`], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    credentials.set('project robot (private project: pull, push)', { username: projectRobot.robot.name, password: projectRobot.secret });
    const maintainer = credentials.get('maintainer')!;
    const pat = await ok(registry.api('POST', '/users/maintainer/tokens', { auth: maintainer, body: { name: 'ci', grants: [{ repositories: ['priv/**', 'pub/**'], actions: ['pull'] }], expiresInDays: 1 } }));
    credentials.set('token (maintainer, pull only)', { username: 'maintainer', password: pat.secret });
    const adminToken = await registry.token(['repository:priv/app:push', 'repository:pub/app:push'], admin);
    for (const project of Object.values(projects)) assert.equal((await pushImage(registry, `${project}/app`, 'v1', adminToken)).status, 201);
  });

  after(() => registry?.close());

  /** Performs `operation` as `caller`; returns the HTTP status (and whether the catalog showed the project). */
  async function perform(caller: Caller, operation: Operation, project: string): Promise<{ allowed: boolean; status: number }> {
    const auth = credentials.get(caller);
    const bearer = async (scope: string) => ({ authorization: `Bearer ${await registry.token([scope], auth)}` });
    const status = async (path: string, init: RequestInit) => {
      const res = await registry.fetch(path, init);
      await res.arrayBuffer();
      return res.status;
    };
    const accept = 'application/vnd.oci.image.manifest.v1+json';
    let code: number;
    switch (operation) {
      case 'pull':
        code = await status(`/v2/${project}/app/manifests/v1`, { headers: { ...(await bearer(`repository:${project}/app:pull`)), accept } });
        break;
      case 'tag list':
        code = await status(`/v2/${project}/app/tags/list`, { headers: await bearer(`repository:${project}/app:pull`) });
        break;
      case 'push':
        code = await status(`/v2/${project}/app/blobs/uploads/`, { method: 'POST', headers: await bearer(`repository:${project}/app:pull,push`) });
        break;
      case 'retag': {
        // v1 and v2 pushed by the system administrator; the caller moves v1 to v2's manifest.
        const repository = `${project}/rt${++counter}`;
        const adminPush = await registry.token([`repository:${repository}:push`], admin);
        assert.equal((await pushImage(registry, repository, 'v1', adminPush)).status, 201);
        const second = await pushImage(registry, repository, 'v2', adminPush);
        assert.equal(second.status, 201);
        code = await status(`/v2/${repository}/manifests/v1`, {
          method: 'PUT',
          headers: { ...(await bearer(`repository:${repository}:pull,push`)), 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          body: second.manifest,
        });
        break;
      }
      case 'delete': {
        // A fresh image per cell, pushed by the system administrator, so that allowed deletes do not interfere.
        const repository = `${project}/del${++counter}`;
        const pushed = await pushImage(registry, repository, 'v1', await registry.token([`repository:${repository}:push`], admin));
        assert.equal(pushed.status, 201);
        code = await status(`/v2/${repository}/manifests/${pushed.digest}`, { method: 'DELETE', headers: await bearer(`repository:${repository}:delete`) });
        break;
      }
      case 'catalog': {
        const res = await registry.fetch('/v2/_catalog', { headers: await bearer('registry:catalog:*') });
        assert.equal(res.status, 200, 'the catalog itself is open to every caller');
        const { repositories } = (await res.json()) as { repositories: string[] };
        return { allowed: repositories.includes(`${project}/app`), status: 200 };
      }
      case 'list members':
        code = (await registry.api('GET', `/projects/${project}/members`, { auth })).status;
        break;
      case 'add member':
        code = (await registry.api('POST', `/projects/${project}/members`, { auth, body: { group: `g${++counter}`, role: 'reader' } })).status;
        break;
      case 'create robot':
        code = (await registry.api('POST', `/projects/${project}/robots`, { auth, body: { name: `r${++counter}`, grants: [{ repositories: [`${project}/**`], actions: ['pull'] }], expiresInDays: 1 } })).status;
        break;
    }
    return { allowed: code >= 200 && code < 300, status: code };
  }

  for (const [caller, row] of Object.entries(expected) as Array<[Caller, Record<Operation, [boolean, boolean]>]>) {
    for (const [operation, [onPrivate, onPublic]] of Object.entries(row) as Array<[Operation, [boolean, boolean]]>) {
      for (const [visibility, allowed] of [['private', onPrivate], ['public', onPublic]] as Array<[Visibility, boolean]>) {
        test(`${caller} × ${operation} × ${visibility}: ${allowed ? 'allowed' : 'denied'}`, async () => {
          const result = await perform(caller, operation, projects[visibility]);
          assert.equal(result.allowed, allowed, `status ${result.status}`);
          if (!allowed && operation !== 'catalog') assert.equal(result.status, caller === 'anonymous' ? 401 : 403, 'anonymous callers are asked to log in; known callers are denied');
        });
      }
    }
  }
});
