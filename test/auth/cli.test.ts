/**
 * `portcullis admin ...` bootstraps users, projects, memberships and robots on the stores; a
 * registry started afterwards on the same data directory honours them (and, since users exist,
 * creates no bootstrap administrator); and it manages what exists (grants, robots, visibility,
 * tokens, users, projects) next to the running registry.
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

  test('manages what exists: grants, robots, visibility, tokens, disabling and deleting users and projects', async () => {
    const ok = async (...args: string[]) => {
      const result = await admin(...args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    const grants = await ok('member', 'list', 'team');
    const grant = /^(\S+) user ops maintainer \(team\/app\/\*\*\)$/m.exec(grants)?.[1];
    assert.ok(grant, grants);
    await ok('member', 'remove', 'team', grant);
    assert.doesNotMatch(await ok('member', 'list', 'team'), /user ops/);
    assert.equal((await admin('member', 'remove', 'team', grant)).code, 1, 'an unknown grant');

    const robots = await ok('robot', 'list', '--project', 'team');
    const robot = /^(\S+) robot\$team\+builder expires /m.exec(robots)?.[1];
    assert.ok(robot, robots);
    await ok('robot', 'delete', robot, '--project', 'team');
    assert.doesNotMatch(await ok('robot', 'list', '--project', 'team'), /builder/);

    assert.match(await ok('project', 'update', 'team', '--public'), /project team is public/);
    assert.match(await ok('project', 'list'), /team \(public\)/);
    assert.equal((await admin('project', 'update', 'team')).code, 1, 'neither --public nor --private');

    // A personal access token made by its owner through the API, listed and revoked by the CLI.
    const password = 'cli-chosen-Passphrase-9731';
    const owner = await portcullis(['admin', 'user', 'create', 'owner', '--password-stdin', '--data-dir', dataDir], password);
    assert.equal(owner.code, 0, owner.stderr);
    const created = await fetch(`${registry!.url}/api/v1/users/owner/tokens`, { method: 'POST', headers: { authorization: basic({ username: 'owner', password }), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'laptop', grants: [{ repositories: ['team/**'], actions: ['pull'] }], expiresInDays: 1 }) });
    assert.equal(created.status, 201, await created.clone().text());
    const tokenId = ((await created.json()) as { token: { id: string } }).token.id;
    assert.match(await ok('token', 'list', 'owner'), new RegExp(`^${tokenId} laptop expires `, 'm'));
    assert.match(await ok('token', 'revoke', 'owner', tokenId), /revoked token laptop of owner/);
    assert.match(await ok('token', 'list', 'owner'), /laptop expires .* \[revoked\]/);

    assert.match(await ok('user', 'disable', 'owner'), /user owner is disabled/);
    assert.match(await ok('user', 'list'), /owner \[disabled\]/);
    assert.match(await ok('user', 'enable', 'owner'), /user owner is enabled/);
    await ok('user', 'delete', 'owner');
    assert.doesNotMatch(await ok('user', 'list'), /owner/);
    await ok('project', 'delete', 'team');
    assert.doesNotMatch(await ok('project', 'list'), /team/);
  });
});
