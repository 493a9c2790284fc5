/**
 * Promotion end to end with real clients against `portcullis serve` (token auth, scanner on):
 * skopeo pushes a 3-layer image to `staging`, `portcullis key sign` signs it (tag scheme and
 * referrer), the scanner attaches its SBOMs, `portcullis promote` copies it to `prod` under prod's
 * policy, skopeo pulls it from `prod`, `portcullis verify` verifies it there, and the referrers at
 * the destination list the signature, the SBOMs and the promotion attestation. An unsigned image
 * is refused and nothing appears in prod. Then `portcullis policy explain` and `policy simulate`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildImage, randomFile, readOciLayout, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { requireTools } from '../acceptance/helpers/tools.ts';
import { admin, type AuthRegistry, ok, startAuthRegistry } from '../auth/helpers.ts';
import { waitFor } from '../scanner/support.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

function run(file: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: 120_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const PROD_POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: prod, project: prod }
rules:
  - { name: signed, kind: signature-required, points: [promotion] }
  - { name: promoted, kind: promoted, from: [staging], points: [pull] }
`;

describe('promotion with real clients', () => {
  let registry: AuthRegistry;
  let dir: string;
  let env: Record<string, string>;
  const cli = (args: string[]) => run(process.execPath, [bin, ...args], { cwd: dir, env });
  const skopeo = (args: string[]) => run('skopeo', [args[0]!, '--authfile', join(dir, 'auth.json'), ...args.slice(1)], { env });

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_SCANNER_POLL_INTERVAL_MS: '100', PORTCULLIS_LOG_LEVEL: 'warn' });
    dir = await mkdtemp(join(tmpdir(), 'portcullis-promote-'));
    await writeFile(join(dir, 'auth.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${admin.username}:${admin.password}`).toString('base64') } } }));
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), REGISTRY_AUTH_FILE: join(dir, 'auth.json'), COSIGN_PASSWORD: 'promotion test' };
    for (const name of ['staging', 'prod']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
    const image = (n: number) => buildImage({ layers: [[randomFile('a', 2048)], [randomFile('b', 2048)], [randomFile(`c${n}`, 2048)]], labels: { 'org.example.n': String(n) } });
    await writeOciLayout(join(dir, 'layout'), { signed: image(1), unsigned: image(2), direct: image(3) });
  });
  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('push, sign, SBOM, promote, pull from prod; refused when unsigned; explain; simulate', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const host = registry.host;
    for (const [tag, repo] of [['signed', 'staging/app:1.0'], ['unsigned', 'staging/other:1.0'], ['direct', 'prod/direct:1.0']]) {
      const pushed = await skopeo(['copy', '--dest-tls-verify=false', `oci:${join(dir, 'layout')}:${tag}`, `docker://${host}/${repo}`]);
      assert.equal(pushed.code, 0, pushed.stderr);
    }
    assert.equal((await cli(['key', 'generate'])).code, 0);
    const signed = await cli(['sign', `${host}/staging/app:1.0`, '--key', 'cosign.key', '--tag-scheme', '--referrer']);
    assert.equal(signed.code, 0, signed.stderr);
    const digest = JSON.parse((await skopeo(['inspect', '--tls-verify=false', `docker://${host}/staging/app:1.0`])).stdout).Digest as string;
    // the scanner attaches its SBOMs to the staging image
    const referrersOf = async (repo: string) => ((await (await registry.fetch(`/v2/${repo}/referrers/${digest}`, { headers: { authorization: `Bearer ${await registry.token([`repository:${repo}:pull`], admin)}` } })).json()) as { manifests: Array<{ digest: string; artifactType: string }> }).manifests;
    await waitFor('SBOM referrers in staging', async () => ((await referrersOf('staging/app')).filter((m) => m.artifactType.includes('spdx') || m.artifactType.includes('cyclonedx')).length === 2 ? true : undefined), 60_000);

    const { readFile } = await import('node:fs/promises');
    const publicKey = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await ok(registry.api('PUT', '/projects/prod/trust-policy', { auth: admin, body: { policy: { keys: [{ name: 'ci', publicKey }] } } }));
    const putPolicy = await registry.fetch('/api/v1/projects/prod/policies', { method: 'PUT', headers: { authorization: `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}`, 'content-type': 'application/yaml' }, body: PROD_POLICY });
    assert.equal(putPolicy.status, 201, await putPolicy.text());

    const promoted = await cli(['promote', `${host}/staging/app:1.0`, `${host}/prod/app`]);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.equal(promoted.stdout.trim(), `${host}/prod/app@${digest}`);
    assert.match(promoted.stderr, /no bytes copied\) under policy prod v1/);

    const out = join(dir, 'pulled');
    const pulled = await skopeo(['copy', '--src-tls-verify=false', `docker://${host}/prod/app:1.0`, `oci:${out}:app`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await readOciLayout(out, 'app')).descriptor.digest, digest);
    const verified = await cli(['verify', `${host}/prod/app:1.0`, '--key', 'cosign.pub']);
    assert.equal(verified.code, 0, `the copied signature verifies at the destination: ${verified.stderr}`);
    const types = (await referrersOf('prod/app')).map((m) => m.artifactType).sort();
    assert.ok(types.includes('application/vnd.dev.cosign.artifact.sig.v1+json'), `signature referrer: ${types}`);
    assert.ok(types.includes('application/spdx+json') && types.includes('application/vnd.cyclonedx+json'), `SBOMs: ${types}`);
    assert.ok(types.includes('application/vnd.dev.cosign.artifact.att.v1+json'), `promotion attestation: ${types}`);

    // unsigned: refused, nothing written in prod
    const refused = await cli(['promote', `${host}/staging/other:1.0`, `${host}/prod/other`]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /DENIED: .*rule signed: signature verdict is unsigned/);
    const absent = await skopeo(['inspect', '--tls-verify=false', `docker://${host}/prod/other:1.0`]);
    assert.notEqual(absent.code, 0);
    const tags = await registry.fetch('/v2/prod/other/tags/list', { headers: { authorization: `Bearer ${await registry.token(['repository:prod/other:pull'], admin)}` } });
    assert.equal(tags.status, 404);

    // explain: the promoted image passes at pull, the one pushed straight to prod does not
    const allowed = await cli(['policy', 'explain', `${host}/prod/app:1.0`]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /^ALLOWED prod\/app@sha256:[0-9a-f]{64} at pull by policy prod v1/);
    const direct = await cli(['policy', 'explain', `${host}/prod/direct:1.0`, '--json']);
    assert.equal(direct.code, 1, direct.stderr);
    assert.equal(JSON.parse(direct.stdout).rules.find((r: { rule: string }) => r.rule === 'promoted').outcome, 'fail');
    const unknown = await cli(['policy', 'explain', `${host}/prod/nothing:1.0`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /MANIFEST_UNKNOWN/);

    // simulate a stricter candidate over prod
    await writeFile(join(dir, 'candidate.yaml'), PROD_POLICY.replace('metadata: { name: prod, project: prod }', 'metadata: { name: prod-next, project: prod }') + '  - { name: labelled, kind: required-labels, labels: [org.example.n], points: [pull] }\n  - { name: n1, kind: cel, expression: \'image.labels["org.example.n"] == "1"\', points: [pull] }\n');
    const sim = await cli(['policy', 'simulate', 'candidate.yaml', '--registry', host, '--project', 'prod']);
    assert.equal(sim.code, 1, sim.stderr);
    assert.match(sim.stdout, /1 of 2 images would be denied at pull/);
    assert.match(sim.stdout, /DENIED prod\/direct@sha256:[0-9a-f]{64} \(1\.0\)\n  pull: rule promoted: .*\n  pull: rule n1: expression is false/);
    await writeFile(join(dir, 'bad.yaml'), 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: x }\nrules: [{ name: a, kind: nope }]\n');
    const bad = await cli(['policy', 'simulate', 'bad.yaml', '--registry', host]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /rules\[0\]\.kind/);
  });
});
