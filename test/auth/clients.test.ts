/**
 * Real clients through the Docker token flow: `podman login` + push + pull and `skopeo --creds`
 * with a robot account and with a personal access token; denials for a pull-only robot,
 * anonymous access to a private project, and a wrong password; anonymous pulls from a public
 * project. A missing tool skips locally and fails under CI=true.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildahScratchImage } from '../acceptance/helpers/buildah.ts';
import { buildImage, randomFile, readOciLayout, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { type ClientEnvironment, createClientEnvironment, makeTempDir, removeDir, requireTools, run, runExpectFailure, runRaw } from '../acceptance/helpers/tools.ts';
import { type AuthRegistry, type Credentials, admin, createUser, ok, startAuthRegistry } from './helpers.ts';

describe('podman and skopeo through the token flow', () => {
  let registry: AuthRegistry;
  let clients: ClientEnvironment;
  let work: string;
  let robot: Credentials;
  let pullOnlyRobot: Credentials;
  let pat: Credentials;
  let counter = 0;

  before(async () => {
    registry = await startAuthRegistry();
    clients = await createClientEnvironment(registry.host);
    work = await makeTempDir('auth-clients');
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'ci' } }));
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'library', visibility: 'public' } }));
    const builder = await ok(registry.api('POST', '/projects/ci/robots', { auth: admin, body: { name: 'builder', grants: [{ repositories: ['ci/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    robot = { username: builder.robot.name, password: builder.secret };
    const reader = await ok(registry.api('POST', '/projects/ci/robots', { auth: admin, body: { name: 'reader', grants: [{ repositories: ['ci/**'], actions: ['pull'] }], expiresInDays: 1 } }));
    pullOnlyRobot = { username: reader.robot.name, password: reader.secret };
    const dev = await createUser(registry, 'dev');
    await ok(registry.api('POST', '/projects/ci/members', { auth: admin, body: { user: 'dev', role: 'developer' } }));
    await ok(registry.api('POST', '/projects/library/members', { auth: admin, body: { user: 'dev', role: 'developer' } }));
    const token = await ok(registry.api('POST', '/users/dev/tokens', { auth: dev, body: { name: 'laptop', grants: [{ repositories: ['ci/**', 'library/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    pat = { username: 'dev', password: token.secret };
  });

  after(async () => {
    await registry?.close();
    await clients?.cleanup();
    await removeDir(work);
  });

  const podman = (...args: string[]) => run('podman', [...clients.podman, ...args], { env: clients.env });
  const skopeo = (...args: string[]) => run('skopeo', [...clients.skopeo, ...args], { env: clients.env });
  const ref = (repository: string) => `docker://${registry.host}/${repository}`;

  /** podman login with the password on stdin (never on the command line). */
  async function podmanLogin(credentials: Credentials): Promise<void> {
    const { spawn } = await import('node:child_process');
    await new Promise<void>((resolve, reject) => {
      const child = spawn('podman', [...clients.podman, 'login', '--tls-verify=false', '--username', credentials.username, '--password-stdin', registry.host], { env: { ...process.env, ...clients.env } });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`podman login failed (${code}): ${output}`))));
      child.stdin.end(credentials.password);
    });
  }

  async function roundTrip(credentials: Credentials, repository: string): Promise<void> {
    const name = `localhost/auth/img${++counter}:1`;
    const id = await buildahScratchImage(clients, name, [randomFile('app/payload.bin', 64 * 1024)]);
    await podmanLogin(credentials);
    const digestFile = join(work, `push${counter}.digest`);
    await podman('push', '--tls-verify=false', '--digestfile', digestFile, name, `docker://${registry.host}/${repository}`);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    await podman('rmi', name);
    await podman('pull', '--tls-verify=false', `${registry.host}/${repository}`);
    const [image] = JSON.parse((await podman('image', 'inspect', `${registry.host}/${repository}`)).stdout) as Array<{ Id: string; Digest: string }>;
    assert.equal(image!.Id, id, 'the pulled image is the pushed one');
    assert.equal(image!.Digest, pushed);
    await podman('logout', registry.host);
  }

  test('podman login + push + pull with a robot account', async (t) => {
    if (!requireTools(t, 'podman', 'buildah')) return;
    await roundTrip(robot, 'ci/app:1');
    const robots = await ok(registry.api('GET', '/projects/ci/robots', { auth: admin }));
    const used = robots.find((r: { name: string }) => r.name === robot.username);
    assert.ok(used.lastUsedAt, 'the robot use was recorded');
    assert.equal(used.lastUsedFrom, '127.0.0.1');
  });

  test('podman login + push + pull with a personal access token', async (t) => {
    if (!requireTools(t, 'podman', 'buildah')) return;
    await roundTrip(pat, 'ci/pat-app:1');
  });

  test('skopeo --creds: copy in and out with a robot account and with a personal access token', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = buildImage({ layers: [[randomFile('data/a.bin', 8 * 1024)], [randomFile('data/b.bin', 32 * 1024)]] });
    const layout = join(work, `layout${++counter}`);
    await writeOciLayout(layout, { src: image });
    for (const [credentials, repository] of [[robot, 'ci/skopeo-robot:v1'], [pat, 'library/skopeo-pat:v1']] as const) {
      const creds = `${credentials.username}:${credentials.password}`;
      await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${layout}:src`, ref(repository));
      const out = join(work, `out${++counter}`);
      await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds, ref(repository), `oci:${out}:back`);
      const back = await readOciLayout(out, 'back');
      assert.equal(back.descriptor.digest, image.manifest.descriptor.digest, repository);
      const inspected = JSON.parse((await skopeo('inspect', '--tls-verify=false', '--creds', creds, ref(repository))).stdout) as { Digest: string };
      assert.equal(inspected.Digest, image.manifest.descriptor.digest);
    }
    // The public project is readable without credentials; the private one is not.
    const anonymous = JSON.parse((await skopeo('inspect', '--tls-verify=false', '--no-creds', ref('library/skopeo-pat:v1'))).stdout) as { Digest: string };
    assert.equal(anonymous.Digest, image.manifest.descriptor.digest);
    const denied = await runExpectFailure('skopeo', [...clients.skopeo, 'inspect', '--tls-verify=false', '--no-creds', ref('ci/skopeo-robot:v1')], { env: clients.env });
    assert.match(denied.stderr, /unauthorized|authentication required/i);
  });

  test('denials: a pull-only robot cannot push; a wrong password cannot log in; tags are listed only with access', async (t) => {
    if (!requireTools(t, 'skopeo', 'podman')) return;
    const image = buildImage({ layers: [[randomFile('data/c.bin', 4 * 1024)]] });
    const layout = join(work, `layout${++counter}`);
    await writeOciLayout(layout, { src: image });
    const pushAttempt = await runExpectFailure('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', '--dest-creds', `${pullOnlyRobot.username}:${pullOnlyRobot.password}`, `oci:${layout}:src`, ref('ci/forbidden:v1')], { env: clients.env });
    assert.match(pushAttempt.stderr, /denied|unauthorized/i);
    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', '--creds', `${pullOnlyRobot.username}:${pullOnlyRobot.password}`, ref('ci/skopeo-robot'))).stdout) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['v1']);
    const badLogin = await runRaw('podman', [...clients.podman, 'login', '--tls-verify=false', '--username', 'dev', '--password', 'not-the-password', registry.host], { env: clients.env });
    assert.notEqual(badLogin.code, 0);
    assert.match(badLogin.stderr, /unauthorized|invalid/i);
  });
});
