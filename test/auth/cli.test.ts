/**
 * `portcullis admin ...` bootstraps users, projects, memberships and robots on the stores; a
 * registry started afterwards on the same data directory honours them (and, since users exist,
 * creates no bootstrap administrator).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startRegistry, type RunningRegistry } from '../support/registry-process.ts';
import { basic, claims, runPortcullis } from './helpers.ts';

const portcullis = runPortcullis;

describe('portcullis admin', () => {
  let dataDir: string;
  let registry: RunningRegistry | undefined;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-admin-cli-'));
  });

  after(async () => {
    await registry?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const admin = (...args: string[]) => portcullis(['admin', ...args, '--data-dir', dataDir]);

  test('bootstraps a user, a project, a membership and a robot that the registry then honours', async () => {
    const user = await admin('user', 'create', 'ops', '--can-create-projects');
    assert.equal(user.code, 0, user.stderr);
    const password = /password: (\S+)/.exec(user.stdout)?.[1];
    assert.ok(password, user.stdout);
    const withStdin = await portcullis(['admin', 'user', 'create', 'root2', '--system-admin', '--password-stdin', '--data-dir', dataDir], 'a-chosen-passphrase-9\n');
    assert.equal(withStdin.code, 0, withStdin.stderr);
    assert.ok(!withStdin.stdout.includes('a-chosen-passphrase-9'), 'a given password is not echoed');
    assert.equal((await admin('project', 'create', 'team')).code, 0);
    const member = await admin('member', 'add', 'team', '--user', 'ops', '--role', 'maintainer', '--repository', 'team/app/**');
    assert.equal(member.code, 0, member.stderr);
    assert.match(member.stdout, /user ops is maintainer in team \(team\/app\/\*\*\)/);
    const robot = await admin('robot', 'create', 'builder', '--project', 'team', '--grant', 'pull,push=team/app,team/web', '--expires-in-days', '7', '--description', 'CI');
    assert.equal(robot.code, 0, robot.stderr);
    const secret = /secret: (\S+)/.exec(robot.stdout)?.[1];
    assert.match(secret ?? '', /^pcr_/);
    assert.match((await admin('project', 'list')).stdout, /team \(private\)/);
    assert.match((await admin('user', 'list')).stdout, /ops\nroot2 \[system admin\]/);

    registry = await startRegistry({ dataDir, env: { PORTCULLIS_AUTH_MODE: 'token' } });
    assert.ok(!registry.output().includes('created the administrator'), 'users exist: no bootstrap administrator');
    const token = async (username: string, secretOrPassword: string, scope: string) => {
      const res = await fetch(`${registry!.url}/auth/token?service=portcullis&scope=${scope}`, { headers: { authorization: basic({ username, password: secretOrPassword }) } });
      assert.equal(res.status, 200);
      return claims(((await res.json()) as { token: string }).token).access;
    };
    assert.deepEqual(await token('robot$team+builder', secret!, 'repository:team/web:pull,push,delete'), [{ type: 'repository', name: 'team/web', actions: ['pull', 'push'] }]);
    assert.deepEqual(await token('ops', password!, 'repository:team/app/x:pull,push,delete'), [{ type: 'repository', name: 'team/app/x', actions: ['pull', 'push', 'delete'] }]);
    assert.deepEqual(await token('ops', password!, 'repository:team/web:pull'), []);
  });

  test('refuses what the API refuses, with a message and exit code 1; usage errors exit 2', async () => {
    const noExpiry = await admin('robot', 'create', 'x', '--project', 'team', '--grant', 'pull=team/**');
    assert.equal(noExpiry.code, 1);
    assert.match(noExpiry.stderr, /expires-in-days/);
    const outside = await admin('robot', 'create', 'x', '--project', 'team', '--grant', 'pull=other/**', '--expires-in-days', '1');
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /outside project/);
    const weak = await portcullis(['admin', 'user', 'create', 'weak', '--password-stdin', '--data-dir', dataDir], 'short');
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /at least 12/);
    assert.equal((await admin('user', 'create', 'ops')).code, 1, 'duplicate');
    assert.equal((await admin('frobnicate')).code, 2);
    assert.equal((await admin('user', 'create', '--nonsense')).code, 2);
    const help = await portcullis(['admin', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /portcullis admin robot create/);
  });
});
