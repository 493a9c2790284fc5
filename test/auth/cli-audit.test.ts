/**
 * `portcullis admin` changes are audited: every change made by the CLI is a record in the audit
 * log with the actor `cli:<os user>`, also while a server on the same data directory writes its
 * own records into the same chain (the store serialises appends on the chain head), which
 * `portcullis audit verify` then proves intact. Read-only commands write nothing; a failed
 * command records nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';
import { basic, newPassword, runPortcullis } from './helpers.ts';

interface Record {
  actor: { kind: string; name?: string; auth?: string };
  action: string;
  details?: { change?: string; target?: { kind: string; name: string } };
}

describe('portcullis admin: audited changes', () => {
  let dataDir: string;
  let registry: RunningRegistry | undefined;
  const cliActor = `cli:${userInfo().username}`;
  const rootPassword = newPassword();

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-admin-audit-'));
  });

  after(async () => {
    await registry?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const admin = (args: string[], stdin?: string) => runPortcullis(['admin', ...args, '--data-dir', dataDir], stdin);
  async function records(): Promise<Record[]> {
    const query = await runPortcullis(['audit', 'query', '--data-dir', dataDir, '--action', 'access.*', '--limit', '500', '--order', 'asc', '--json']);
    assert.equal(query.code, 0, query.stderr);
    return (JSON.parse(query.stdout) as { records: Record[] }).records;
  }

  test('each change is one record with the actor cli:<os user>; listing and failures record nothing', async () => {
    for (const [args, stdin] of [
      [['user', 'create', 'root', '--system-admin', '--password-stdin'], `${rootPassword}\n`],
      [['project', 'create', 'team']],
      [['member', 'add', 'team', '--group', 'devs', '--role', 'developer']],
      [['robot', 'create', 'builder', '--project', 'team', '--grant', 'pull=team/**', '--expires-in-days', '7']],
      [['project', 'networks', 'team', '--allow', '10.0.0.0/8']],
    ] as Array<[string[], string?]>) {
      const result = await admin(args, stdin);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
    assert.equal((await admin(['user', 'list'])).code, 0);
    const failed = await admin(['project', 'create', 'team']);
    assert.notEqual(failed.code, 0, 'the project exists');
    const written = await records();
    assert.deepEqual(
      written.map((record) => [record.actor.kind, record.actor.name, record.details?.change, record.details?.target?.name]),
      [
        ['cli', cliActor, 'user.created', 'root'],
        ['cli', cliActor, 'project.created', 'team'],
        ['cli', cliActor, 'member.added', 'devs'],
        ['cli', cliActor, 'robot.created', 'robot$team+builder'],
        ['cli', cliActor, 'project.networks.updated', 'team'],
      ],
    );
    assert.ok(written.every((record) => record.actor.auth === 'local'));
    assert.ok(!JSON.stringify(written).includes(rootPassword), 'no secret in the records');
  });

  test('next to a running server writing the same chain: both writers recorded, the chain verifies', async () => {
    registry = await startRegistry({ dataDir, env: { PORTCULLIS_AUTH_MODE: 'token' } });
    const root = basic({ username: 'root', password: rootPassword });
    const api = (method: string, path: string, body: unknown) => fetch(`${registry!.url}/api/v1${path}`, { method, headers: { authorization: root, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // Interleaved: API changes by the server and CLI changes, at the same time.
    const results = await Promise.all([
      ...[1, 2, 3].map((i) => api('POST', '/projects', { name: `api-${i}` }).then((res) => res.status)),
      ...[1, 2, 3].map((i) => admin(['project', 'create', `cli-${i}`]).then((res) => (res.code === 0 ? 201 : res.stderr))),
    ]);
    assert.deepEqual(results, [201, 201, 201, 201, 201, 201]);
    await registry.stop();
    registry = undefined;
    const created = (await records()).filter((record) => record.details?.change === 'project.created');
    const by = (prefix: string) => created.filter((record) => record.details!.target!.name.startsWith(prefix)).map((record) => [record.actor.kind, record.actor.name]);
    assert.deepEqual(by('cli-'), [['cli', cliActor], ['cli', cliActor], ['cli', cliActor]]);
    assert.deepEqual(by('api-'), [['user', 'root'], ['user', 'root'], ['user', 'root']]);
    const verify = await runPortcullis(['audit', 'verify', '--data-dir', dataDir, '--json']);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
  });
});
