/**
 * Who may promote, over HTTP against a registry with token authentication: `pull` on the source,
 * `push` and `promote` on the destination (maintainers and admins of the destination project,
 * robots granted `promote`); 401 for anonymous callers, 403 DENIED otherwise, and a refused
 * caller writes nothing. Listing records needs project.read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, type AuthRegistry, type Credentials, createUser, ok, pushImage, startAuthRegistry } from '../auth/helpers.ts';

type Caller = 'anonymous' | 'promoter' | 'developer both' | 'prod maintainer only' | 'prod reader' | 'system admin' | 'robot with promote' | 'robot without promote';

/** [may promote staging/app -> prod/<caller>, may list prod promotions] */
const expected: Record<Caller, [boolean, boolean]> = {
  anonymous: [false, false],
  promoter: [true, true],
  'developer both': [false, true],
  'prod maintainer only': [false, true],
  'prod reader': [false, true],
  'system admin': [true, true],
  'robot with promote': [true, false],
  'robot without promote': [false, false],
};

describe('promotion permissions', () => {
  let registry: AuthRegistry;
  const credentials = new Map<Caller, Credentials | undefined>();

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_SCANNER_ENABLED: 'false' });
    for (const name of ['staging', 'prod']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
    const member = async (user: string, project: string, role: string) => ok(registry.api('POST', `/projects/${project}/members`, { auth: admin, body: { user, role } }));
    const users: Array<[Caller, string, Array<[string, string]>]> = [
      ['promoter', 'promoter', [['staging', 'developer'], ['prod', 'maintainer']]],
      ['developer both', 'devboth', [['staging', 'developer'], ['prod', 'developer']]],
      ['prod maintainer only', 'prodmaint', [['prod', 'maintainer']]],
      ['prod reader', 'prodreader', [['staging', 'maintainer'], ['prod', 'reader']]],
    ];
    for (const [caller, name, roles] of users) {
      credentials.set(caller, await createUser(registry, name));
      for (const [project, role] of roles) await member(name, project, role);
    }
    credentials.set('anonymous', undefined);
    credentials.set('system admin', admin);
    for (const [caller, actions] of [['robot with promote', ['push', 'promote']], ['robot without promote', ['push']]] as const) {
      const robot = await ok(registry.api('POST', '/robots', { auth: admin, body: { name: caller.replace(/ /g, '-'), grants: [{ repositories: ['staging/**'], actions: ['pull'] }, { repositories: ['prod/**'], actions }], expiresInDays: 1 } }));
      credentials.set(caller, { username: robot.robot.name, password: robot.secret });
    }
    const token = await registry.token(['repository:staging/app:pull,push'], admin);
    assert.equal((await pushImage(registry, 'staging/app', '1.0', token)).status, 201);
  });
  after(() => registry?.close());

  test('moving an existing destination tag to another digest also needs retag', async () => {
    const token = await registry.token(['repository:staging/app:pull,push'], admin);
    assert.equal((await pushImage(registry, 'staging/app', '2.0', token)).status, 201);
    const robot = credentials.get('robot with promote');
    // the robot (push, promote; no retag) put 1.0 at prod/retag; moving it to 2.0's digest is refused
    assert.equal((await registry.api('POST', '/promotions', { auth: robot, body: { source: 'staging/app:1.0', destination: 'prod/retag:stable' } })).status, 201);
    const moved = await registry.api('POST', '/promotions', { auth: robot, body: { source: 'staging/app:2.0', destination: 'prod/retag:stable' } });
    assert.equal(moved.status, 403, JSON.stringify(moved.body));
    assert.match(moved.body.errors[0].message, /retag on prod\/retag is not allowed/);
    assert.equal((await registry.api('POST', '/promotions', { auth: robot, body: { source: 'staging/app:1.0', destination: 'prod/retag:stable' } })).status, 201, 'the same digest again is no retag');
    assert.equal((await registry.api('POST', '/promotions', { auth: credentials.get('promoter'), body: { source: 'staging/app:2.0', destination: 'prod/retag:stable' } })).status, 201, 'a maintainer may retag');
  });

  test('simulation needs project.read on every project it evaluates', async () => {
    const candidate = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: c, project: prod }\nrules: [{ name: r, kind: forbidden-tags, tags: [latest] }]\n';
    const simulate = (auth: Credentials | undefined, query = '') =>
      registry.fetch(`/api/v1/policy/simulate${query}`, { method: 'POST', headers: { 'content-type': 'application/yaml', ...(auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {}) }, body: candidate });
    assert.equal((await simulate(credentials.get('prod reader'))).status, 200);
    assert.equal((await simulate(undefined)).status, 401);
    const outsider = await createUser(registry, 'simoutsider');
    assert.equal((await simulate(outsider)).status, 403);
    const global = candidate.replace('project: prod', 'project: global');
    const res = await registry.fetch('/api/v1/policy/simulate', { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Basic ${Buffer.from(`${credentials.get('prod maintainer only')!.username}:${credentials.get('prod maintainer only')!.password}`).toString('base64')}` }, body: global });
    assert.equal(res.status, 403, 'a global candidate reaches staging, which this caller cannot read');
  });

  for (const [caller, [mayPromote, mayList]] of Object.entries(expected) as Array<[Caller, [boolean, boolean]]>) {
    test(`${caller}: ${mayPromote ? 'may' : 'may not'} promote, ${mayList ? 'may' : 'may not'} list`, async () => {
      const auth = credentials.get(caller);
      const destination = `prod/${caller.replace(/ /g, '-')}`;
      const res = await registry.api('POST', '/promotions', { auth, body: { source: 'staging/app:1.0', destination } });
      if (mayPromote) {
        assert.equal(res.status, 201, JSON.stringify(res.body));
        assert.equal(res.body.destination.repository, destination);
      } else {
        assert.equal(res.status, auth ? 403 : 401, JSON.stringify(res.body));
        assert.equal(res.body.errors[0].code, auth ? 'DENIED' : 'UNAUTHORIZED');
        const tags = await registry.fetch(`/v2/${destination}/tags/list`, { headers: { authorization: `Bearer ${await registry.token([`repository:${destination}:pull`], admin)}` } });
        assert.equal(tags.status, 404, 'nothing was written');
      }
      const list = await registry.api('GET', '/promotions?project=prod', { auth });
      assert.equal(list.status, mayList ? 200 : auth ? 403 : 401, JSON.stringify(list.body));
      if (mayList && mayPromote) assert.ok(list.body.promotions.some((p: { destination: { repository: string }; actor: { name: string } }) => p.destination.repository === destination && p.actor.name === (auth?.username ?? '')));
    });
  }
});
