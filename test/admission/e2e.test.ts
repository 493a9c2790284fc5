/**
 * End to end with real clients against a registry process with token auth: an image built with
 * umoci and pushed with skopeo, unsigned -> the admission webhook denies it and a reader's pull
 * is denied, both with the reason -> `portcullis key generate` + `portcullis sign` -> admission
 * allows it, the mutating webhook pins the tag, the deployment is recorded and listed through
 * the API (project read permission), and the reader can pull.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { admin, type AuthRegistry, type Credentials, createUser, ok, startAuthRegistry } from '../auth/helpers.ts';
import { review, workloadObject } from './fixtures.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const TOKEN = 'e2e-admission-token-7c1f0a9b2d';
const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: ci-policy, project: ci }
rules:
  - { name: signed-to-run, kind: signature-required, points: [admission] }
  - name: signed-to-pull
    kind: cel
    expression: 'signatures.verdict == "verified" || request.who.name == "admin"'
    points: [pull]
    message: unsigned images are served to the release account only
`;

function run(file: string, args: string[], env: Record<string, string>, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, cwd, timeout: 120_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}

for (const tool of ['skopeo', 'umoci']) {
  const found = await run('sh', ['-c', `command -v ${tool}`], { PATH: process.env['PATH'] ?? '/usr/bin:/bin' });
  if (found.code !== 0 && process.env['CI'] === 'true') throw new Error(`${tool} is required for the admission end-to-end test`);
}

describe('admission end to end: skopeo push, deny unsigned, sign, allow, record', () => {
  let registry: AuthRegistry;
  let dir: string;
  let env: Record<string, string>;
  let reader: Credentials;
  let digest: string;
  let ref: string;
  const authFile = (who: Credentials) => join(dir, `auth-${who.username}.json`);
  const skopeo = (who: Credentials, args: string[]) => run('skopeo', [args[0]!, '--authfile', authFile(who), ...args.slice(1)], env);
  const webhook = async (which: 'validate' | 'mutate', body: unknown) => {
    const res = await registry.fetch(`/admission/${which}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    return ((await res.json()) as { response: { allowed: boolean; status?: { message: string }; patch?: string; warnings?: string[] } }).response;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-admission-e2e-'));
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    await writeFile(join(dir, 'token'), TOKEN);
    registry = await startAuthRegistry({
      PORTCULLIS_SCANNER_ENABLED: 'false',
      PORTCULLIS_POLICY_FILES: JSON.stringify([join(dir, 'policy.yaml')]),
      PORTCULLIS_ADMISSION_ENABLED: 'true',
      PORTCULLIS_ADMISSION_CLUSTER_NAME: 'e2e',
      PORTCULLIS_ADMISSION_AUTH_TOKEN_FILE: join(dir, 'token'),
    });
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), REGISTRY_AUTH_FILE: authFile(admin), COSIGN_PASSWORD: 'admission e2e' };
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'ci' } }));
    reader = await createUser(registry, 'deployer');
    await ok(registry.api('POST', '/projects/ci/members', { auth: admin, body: { user: 'deployer', role: 'reader' } }));
    for (const who of [admin, reader]) await writeFile(authFile(who), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${who.username}:${who.password}`).toString('base64') } } }));
    // an image built by umoci, pushed by skopeo
    const layout = join(dir, 'layout');
    for (const args of [['init', '--layout', layout], ['new', '--image', `${layout}:v1`], ['config', '--image', `${layout}:v1`, '--config.label', 'org.opencontainers.image.source=https://git.example.com/ci/app']]) {
      const r = await run('umoci', args, env);
      assert.equal(r.code, 0, r.stderr);
    }
    ref = `${registry.host}/ci/app:v1`;
    const pushed = await skopeo(admin, ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${ref}`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const inspected = await skopeo(admin, ['inspect', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    digest = JSON.parse(inspected.stdout).Digest;
    const keys = await run(process.execPath, [bin, 'key', 'generate'], env, dir);
    assert.equal(keys.code, 0, keys.stderr);
    const pub = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await ok(registry.api('PUT', '/projects/ci/trust-policy', { auth: admin, body: { policy: { keys: [{ name: 'ci-key', publicKey: pub }] } } }));
  });
  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const deployment = () => review(workloadObject('Deployment', 'app', 'prod', { containers: [{ name: 'app', image: ref }] }));

  test('unsigned: admission denied and a reader\'s pull denied, both naming the rule', async () => {
    const denied = await webhook('validate', deployment());
    assert.equal(denied.allowed, false);
    assert.match(denied.status!.message, new RegExp(`container app: ${ref.replace(/[.:/]/g, '\\$&')} denied by policy ci-policy v1: rule signed-to-run: signature verdict is unsigned`));
    const pull = await skopeo(reader, ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
    assert.notEqual(pull.code, 0);
    assert.match(pull.stderr, /denied by policy ci-policy v1: rule signed-to-pull: unsigned images are served to the release account only/);
    const list = await ok(registry.api('GET', `/deployments?digest=${digest}`, { auth: admin }));
    assert.deepEqual(list.deployments, [], 'a denial records nothing');
  });

  test('signed with portcullis sign: admission allows, the tag is pinned, the deployment recorded; the reader can pull', async () => {
    const signed = await run(process.execPath, [bin, 'sign', ref, '--key', 'cosign.key'], env, dir);
    assert.equal(signed.code, 0, signed.stderr);
    // the registry verifies the new signature on push; admission sees the verdict once it is published
    let allowed;
    for (let i = 0; i < 100; i++) {
      allowed = await webhook('validate', deployment());
      if (allowed.allowed) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(allowed?.allowed, true, JSON.stringify(allowed));
    const mutated = await webhook('mutate', deployment());
    assert.deepEqual(JSON.parse(Buffer.from(mutated.patch!, 'base64').toString()), [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: `${ref}@${digest}` }]);
    const records = await ok(registry.api('GET', `/deployments?digest=${digest}`, { auth: reader }));
    assert.equal(records.deployments.length, 1);
    assert.deepEqual({ ...records.deployments[0], firstSeen: undefined, lastSeen: undefined }, {
      cluster: 'e2e', namespace: 'prod', workload: { kind: 'Deployment', name: 'app' }, container: 'app', repository: 'ci/app', digest, image: ref, firstSeen: undefined, lastSeen: undefined,
    });
    const anonymous = await registry.api('GET', '/deployments?repository=ci/app');
    assert.equal(anonymous.status, 401);
    const stranger = await createUser(registry, 'stranger');
    assert.equal((await registry.api('GET', '/deployments?repository=ci/app', { auth: stranger })).status, 403);
    const pull = await skopeo(reader, ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
    assert.equal(pull.code, 0, pull.stderr);
  });
});
