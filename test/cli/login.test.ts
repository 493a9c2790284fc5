/**
 * `portcullis login` / `logout` against a registry process with token authentication: credentials
 * checked before they are stored, stored where podman keeps them (REGISTRY_AUTH_FILE,
 * XDG_RUNTIME_DIR, ~/.config/containers) with mode 0600 and other entries kept, used by skopeo and
 * by `portcullis scan`, and removed again by logout.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { buildImage, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { createClientEnvironment, requireTools, run, runExpectFailure } from '../acceptance/helpers/tools.ts';
import { ADMIN_PASSWORD, admin, basic } from '../auth/helpers.ts';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

function portcullis(args: string[], env: Record<string, string>, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_') && !['REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'DOCKER_CONFIG', 'HOME'].includes(k)) clean[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...clean, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

describe('portcullis login and logout', () => {
  let registry: RunningRegistry;
  let host: string;
  let home: string;

  before(async () => {
    registry = await startRegistry({ env: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: ADMIN_PASSWORD, PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_SCANNER_POLL_INTERVAL_MS: '100' } });
    host = new URL(registry.url).host;
    home = await mkdtemp(join(tmpdir(), 'portcullis-login-'));
    const res = await fetch(new URL('/api/v1/projects', registry.url), { method: 'POST', headers: { authorization: basic(admin), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'team' }) });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await registry?.stop();
    await rm(registry?.dataDir ?? '/nonexistent', { recursive: true, force: true });
    await rm(home, { recursive: true, force: true });
  });

  test('a wrong password is refused and stores nothing; the right one is stored (0600, other entries kept)', async () => {
    const authFile = join(home, 'explicit', 'auth.json');
    await mkdir(join(home, 'explicit'));
    await writeFile(authFile, JSON.stringify({ auths: { 'other.example:5000': { auth: 'b3RoZXI6c2VjcmV0' } }, credHelpers: { 'gcr.io': 'gcloud' } }));
    const env = { HOME: home, REGISTRY_AUTH_FILE: authFile };
    const wrong = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], env, 'not-the-password\n');
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /refused the credentials of admin/);
    assert.ok(!(JSON.parse(await readFile(authFile, 'utf8')).auths[host]));

    const ok = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], env, `${ADMIN_PASSWORD}\n`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /Login Succeeded/);
    assert.ok(!ok.stderr.includes(ADMIN_PASSWORD) && !ok.stdout.includes(ADMIN_PASSWORD));
    const doc = JSON.parse(await readFile(authFile, 'utf8'));
    assert.equal(Buffer.from(doc.auths[host].auth, 'base64').toString(), `admin:${ADMIN_PASSWORD}`);
    assert.equal(doc.auths['other.example:5000'].auth, 'b3RoZXI6c2VjcmV0');
    assert.deepEqual(doc.credHelpers, { 'gcr.io': 'gcloud' });
    assert.equal((await stat(authFile)).mode & 0o777, 0o600);

    // Usage errors.
    assert.equal((await portcullis(['login', host, '--password-stdin'], env, 'x')).code, 2);
    assert.equal((await portcullis(['login', host, '-u', 'admin'], env)).code, 2, 'no terminal to ask on');
    assert.equal((await portcullis(['login'], env)).code, 2);
    // A broken auth file is never overwritten.
    await writeFile(join(home, 'broken.json'), '{"auths": ');
    const broken = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], { HOME: home, REGISTRY_AUTH_FILE: join(home, 'broken.json') }, ADMIN_PASSWORD);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /not a valid auth file/);
    assert.equal(await readFile(join(home, 'broken.json'), 'utf8'), '{"auths": ');
  });

  test('where podman keeps it: XDG_RUNTIME_DIR, else ~/.config/containers/auth.json', async () => {
    const runtime = join(home, 'run');
    const r1 = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], { HOME: home, XDG_RUNTIME_DIR: runtime }, ADMIN_PASSWORD);
    assert.equal(r1.code, 0, r1.stderr);
    assert.ok(JSON.parse(await readFile(join(runtime, 'containers', 'auth.json'), 'utf8')).auths[host]);
    const r2 = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], { HOME: home }, ADMIN_PASSWORD);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(JSON.parse(await readFile(join(home, '.config', 'containers', 'auth.json'), 'utf8')).auths[host]);
  });

  test('skopeo pushes with the stored login; portcullis scan reads the report with it; logout removes it', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const authFile = join(home, 'tools', 'auth.json');
    const env = { HOME: home, REGISTRY_AUTH_FILE: authFile };
    const login = await portcullis(['login', host, '-u', 'admin', '--password-stdin'], env, ADMIN_PASSWORD);
    assert.equal(login.code, 0, login.stderr);
    const clients = await createClientEnvironment(host);
    try {
      const layout = join(home, 'layout');
      await writeOciLayout(layout, { v1: buildImage({ layers: [[{ path: 'etc/os-release', content: Buffer.from('ID=alpine\nVERSION_ID=3.19.1\n') }]] }) });
      const toolsEnv = { ...clients.env, REGISTRY_AUTH_FILE: authFile };
      await run('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${host}/team/app:v1`], { env: toolsEnv });

      const scan = await portcullis(['scan', `${host}/team/app:v1`, '--format', 'json', '--wait-seconds', '60'], env);
      assert.equal(scan.code, 0, scan.stderr);
      const report = JSON.parse(scan.stdout);
      assert.equal(report.status, 'complete');
      assert.equal(report.os.id, 'alpine');

      const out = await portcullis(['logout', host], env);
      assert.equal(out.code, 0, out.stderr);
      assert.ok(!JSON.parse(await readFile(authFile, 'utf8')).auths[host]);
      assert.equal((await portcullis(['logout', host], env)).code, 1, 'not logged in any more');
      const denied = await portcullis(['scan', `${host}/team/app:v1`, '--format', 'json'], env);
      assert.equal(denied.code, 3);
      assert.match(denied.stderr, /401/);
      await runExpectFailure('skopeo', [...clients.skopeo, 'inspect', '--tls-verify=false', `docker://${host}/team/app:v1`], { env: toolsEnv });
    } finally {
      await clients.cleanup();
    }
  });
});
