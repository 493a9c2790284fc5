/**
 * `admission.external.action: verify` against real external registries on loopback: the CNCF
 * distribution registry (`docker-registry`, anonymous) and a second Portcullis with token
 * authentication (the 401 Bearer challenge answered with configured credentials). Images are
 * pushed over the distribution API and signed with `portcullis sign --key` (cosign's `.sig` tag);
 * AdmissionReview v1 requests go to /admission/validate and /admission/mutate over HTTP.
 * Without docker-registry the suite skips, except under CI=true where it fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Server, startDistribution } from '../../bench/lib/targets.ts';
import { admin, type AuthRegistry, ok, pushImage, startAuthRegistry } from '../auth/helpers.ts';
import { ExternalVerifier, loadExternalVerifySettings } from '../../src/registry/admission/external.ts';
import { parseImageReference } from '../../src/registry/admission/reference.ts';
import { applyJsonPatch, review, workloadObject } from './fixtures.ts';
import { type AdmissionHarness, startAdmissionRegistry } from './helpers.ts';

const DISTRIBUTION_BIN = process.env['DISTRIBUTION_REGISTRY_BIN'] ?? '/usr/bin/docker-registry';
const available = existsSync(DISTRIBUTION_BIN);
if (!available && process.env['CI'] === 'true') throw new Error(`${DISTRIBUTION_BIN} is missing: CI must run the external-registry admission tests (apt-get install docker-registry)`);

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: cluster-policy, project: global, version: 1 }
rules:
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [admission] }
  - { name: linux, kind: cel, expression: 'image.platform.os in ["linux", ""]', points: [admission] }
  - { name: owner, kind: required-labels, labels: [owner], mode: warn, points: [admission] }
  # need scan data: not evaluated for external images
  - { name: vulns, kind: max-severity, severity: high, points: [admission] }
  - { name: scanned, kind: cel, expression: 'scan.status == "complete"', points: [admission] }
`;

function run(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, env, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Pushes blobs and a manifest to a registry without authentication (distribution, chunkless two-step upload). */
async function push(base: string, repo: string, reference: string, manifest: Buffer, mediaType: string, blobs: Buffer[] = []): Promise<string> {
  for (const blob of blobs) {
    const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202, await start.text());
    const location = new URL(start.headers.get('location')!, base);
    location.searchParams.set('digest', sha256(blob));
    const put = await fetch(location, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 201, await put.text());
  }
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: manifest, headers: { 'content-type': mediaType } });
  assert.equal(res.status, 201, await res.text());
  return sha256(manifest);
}

/** A one-layer image (unique content, label owner) pushed under `tag`; `annotations` may make the manifest large. */
async function pushImageTo(base: string, repo: string, tag: string, annotations: Record<string, string> = {}, os = 'linux'): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os, created: '2026-01-01T00:00:00Z', config: { Labels: { owner: 'vendor' } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.from(`layer ${repo} ${tag} ${Math.random()}`);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  }));
  return push(base, repo, tag, manifest, MANIFEST, [config, layer]);
}

const pod = (name: string, ...images: string[]) => review(workloadObject('Pod', name, 'prod', { containers: images.map((image, i) => ({ name: `c${i}`, image })) }));

/** A TCP server that accepts connections and never answers (a hung registry). */
async function blackHole(): Promise<{ host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((s) => void sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { host: `127.0.0.1:${port}`, close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }) };
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `127.0.0.1:${port}`;
}

describe('admission: external images verified against their registry', { skip: available ? false : `${DISTRIBUTION_BIN} is not installed` }, () => {
  let dir: string;
  let dist: Server;
  let ext: string; // host:port of the distribution registry
  let auth: AuthRegistry;
  let hung: Awaited<ReturnType<typeof blackHole>>;
  let down: string;
  let h: AdmissionHarness;
  let warn: AdmissionHarness;
  const d: Record<string, string> = {};
  let stopped = false;
  let verifyConfig: any;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-admission-external-'));
    dist = await startDistribution({ tmpParent: tmpdir(), distributionBin: DISTRIBUTION_BIN, portcullisArgs: [], portcullisEnv: {} });
    ext = new URL(dist.url).host;
    auth = await startAuthRegistry({ PORTCULLIS_SCANNER_ENABLED: 'false' });
    hung = await blackHole();
    down = await closedPort();

    // Keys and signatures made with the CLI, as a publisher would (cosign-compatible .sig tags).
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [auth.host]: { auth: Buffer.from(`${admin.username}:${admin.password}`).toString('base64') } } }));
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), REGISTRY_AUTH_FILE: authFile, COSIGN_PASSWORD: 'external test password' };
    const cli = async (...args: string[]) => {
      const r = await run(args, env, dir);
      assert.equal(r.code, 0, `portcullis ${args.join(' ')}: ${r.stderr}`);
    };
    await cli('key', 'generate');
    await cli('key', 'generate', '--output-key-prefix', 'other');

    d['signed'] = await pushImageTo(dist.url, 'vendor/app', '1.0');
    d['unsigned'] = await pushImageTo(dist.url, 'vendor/app', 'unsigned');
    d['wrongkey'] = await pushImageTo(dist.url, 'vendor/app', 'wrongkey');
    d['big'] = await pushImageTo(dist.url, 'vendor/app', 'big', { 'org.example.padding': 'x'.repeat(100 * 1024) });
    d['latest'] = await pushImageTo(dist.url, 'vendor/app', 'latest');
    d['windows'] = await pushImageTo(dist.url, 'vendor/app', 'windows', {}, 'windows');
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/app@${d['latest']}`);
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/app@${d['windows']}`);
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/app@${d['signed']}`);
    await cli('sign', '--key', 'other.key', `${ext}/vendor/app@${d['wrongkey']}`);
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/app@${d['big']}`);
    // A multi-platform index whose platform images are signed, not the index itself.
    const amd = await pushImageTo(dist.url, 'vendor/multi', 'amd64');
    const arm = await pushImageTo(dist.url, 'vendor/multi', 'arm64');
    const armUnsigned = await pushImageTo(dist.url, 'vendor/multi', 'arm64-unsigned');
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/multi@${amd}`);
    await cli('sign', '--key', 'cosign.key', `${ext}/vendor/multi@${arm}`);
    const index = (children: Array<[string, string]>) => Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: INDEX,
      manifests: children.map(([digest, architecture]) => ({ mediaType: MANIFEST, digest, size: 0, platform: { os: 'linux', architecture } })),
    }));
    const sizes = async (children: Array<[string, string]>) => {
      const doc = JSON.parse(index(children).toString()) as { manifests: Array<{ digest: string; size: number }> };
      for (const m of doc.manifests) m.size = Number((await fetch(`${dist.url}/v2/vendor/multi/manifests/${m.digest}`, { method: 'HEAD', headers: { accept: MANIFEST } })).headers.get('content-length'));
      return Buffer.from(JSON.stringify(doc));
    };
    d['index'] = await push(dist.url, 'vendor/multi', '2.0', await sizes([[amd, 'amd64'], [arm, 'arm64']]), INDEX);
    d['index-partial'] = await push(dist.url, 'vendor/multi', '2.0-partial', await sizes([[amd, 'amd64'], [armUnsigned, 'arm64']]), INDEX);

    // The token-auth registry: an image in a private project, signed through the CLI with the auth file.
    await ok(auth.api('POST', '/projects', { auth: admin, body: { name: 'private' } }));
    const token = await auth.token(['repository:private/app:pull,push'], admin);
    const pushed = await pushImage(auth, 'private/app', 'v1', token);
    assert.equal(pushed.status, 201);
    d['private'] = pushed.digest;
    await cli('sign', '--key', 'cosign.key', `${auth.host}/private/app@${d['private']}`);

    const pub = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await writeFile(join(dir, 'trust.yaml'), JSON.stringify({ requireSignature: true, keys: [{ name: 'vendor-release', publicKey: pub }] }));
    await writeFile(join(dir, 'password'), `${admin.password}\n`, { mode: 0o600 });
    const verify = verifyConfig = {
      registries: [`${ext}/vendor/*`, `${auth.host}/private/*`, `${hung.host}/*`, `${down}/*`],
      trustPolicyFile: join(dir, 'trust.yaml'),
      hosts: [
        { host: ext, plainHttp: true },
        { host: auth.host, plainHttp: true, username: admin.username, passwordFile: join(dir, 'password') },
        { host: hung.host, plainHttp: true },
        { host: down, plainHttp: true },
      ],
      timeoutMs: 1000,
      maxManifestBytes: 64 * 1024,
    };
    h = await startAdmissionRegistry(POLICY, [
      { path: ['admission', 'external'], value: { action: 'verify', allow: ['registry.k8s.io/*'], verify } },
    ]);
    warn = await startAdmissionRegistry(POLICY, [
      { path: ['admission', 'external'], value: { action: 'verify', allow: [], verify: { ...verify, mode: 'warn', requireDigest: true } } },
    ]);
  });

  after(async () => {
    await h?.close();
    await warn?.close();
    await hung?.close();
    await auth?.close();
    if (!stopped) await dist?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a signed image by tag is allowed, and mutate pins the tag to the digest it verified', async () => {
    const image = `${ext}/vendor/app:1.0`;
    const t0 = performance.now();
    const mutated = await h.call('mutate', pod('signed', image));
    process.stdout.write(`# cold external verification (mutate, 1 container, by tag): ${(performance.now() - t0).toFixed(1)} ms\n`);
    assert.equal(mutated.status, 200);
    assert.equal(mutated.body.response.allowed, true);
    assert.equal(mutated.body.response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(mutated.body.response.patch, 'base64').toString('utf8'));
    assert.deepEqual(patch, [{ op: 'replace', path: '/spec/containers/0/image', value: `${image}@${d['signed']}` }]);
    const object = (pod('signed', image).request as { object: Record<string, unknown> }).object;
    const pinnedPod = applyJsonPatch(object, patch) as Record<string, unknown>;
    const validated = await h.call('validate', review(pinnedPod));
    assert.equal(validated.body.response.allowed, true, JSON.stringify(validated.body.response.status));
    const byTag = await h.call('validate', pod('signed', image));
    assert.equal(byTag.body.response.allowed, true, JSON.stringify(byTag.body.response.status));
    assert.deepEqual(byTag.body.response.warnings ?? [], [], 'the owner label was read from the image config; scan rules are not evaluated');
  });

  it('an unsigned image is denied, naming the image, the registry and what is missing', async () => {
    const res = await h.call('validate', pod('unsigned', `${ext}/vendor/app:unsigned`));
    assert.equal(res.status, 200);
    const r = res.body.response;
    assert.equal(r.allowed, false);
    assert.equal(r.status.code, 403);
    assert.match(r.status.message, new RegExp(`container c0: ${ext}/vendor/app:unsigned \\(${d['unsigned']}\\) from ${ext} failed external verification: signature unsigned: no signature`));
  });

  it('an image signed with another key is denied', async () => {
    const r = (await h.call('validate', pod('wrongkey', `${ext}/vendor/app@${d['wrongkey']}`))).body.response;
    assert.equal(r.allowed, false);
    assert.match(r.status.message, /failed external verification: signature failed/);
    assert.doesNotMatch(r.status.message, /signature verified/);
  });

  it('a manifest larger than maxManifestBytes is denied even when signed', async () => {
    const r = (await h.call('validate', pod('big', `${ext}/vendor/app@${d['big']}`))).body.response;
    assert.equal(r.allowed, false);
    assert.match(r.status.message, /cannot verify with .*: manifest sha256:[a-f0-9]{64} is \d+ bytes, more than admission.external.verify.maxManifestBytes \(65536\)/);
  });

  it("the policy's rules that need no scan apply to external images, and the decision is published", async () => {
    for (const image of [`${ext}/vendor/app:latest`, `${ext}/vendor/app`]) {
      const r = (await h.call('validate', pod('latest', image))).body.response;
      assert.equal(r.allowed, false, image);
      assert.match(r.status.message, new RegExp(`${image.replace(/[.]/g, '\\.')} denied by policy cluster-policy v1: rule no-latest`));
    }
    const windows = (await h.call('validate', pod('win', `${ext}/vendor/app:windows`))).body.response;
    assert.equal(windows.allowed, false);
    assert.match(windows.status.message, /rule linux/);
    assert.doesNotMatch(windows.status.message, /rule (vulns|scanned)/);
    const event = h.events.find((e) => e.type === 'policy.decision' && e.repository === `${ext}/vendor/app` && e.digest === d['windows']);
    assert.ok(event && event.type === 'policy.decision');
    assert.equal(event.outcome, 'denied');
    assert.deepEqual(event.rules.map((r) => r.rule), ['linux']);
  });

  it('an unknown tag is denied', async () => {
    const r = (await h.call('validate', pod('missing', `${ext}/vendor/app:nope`))).body.response;
    assert.equal(r.allowed, false);
    assert.match(r.status.message, /tag nope is not in .*vendor\/app/);
  });

  it('an index verifies when every platform image is signed, and is denied when one is not', async () => {
    const good = (await h.call('validate', pod('multi', `${ext}/vendor/multi:2.0`))).body.response;
    assert.equal(good.allowed, true, JSON.stringify(good.status));
    assert.match(good.warnings[0], /multi:2.0: rule owner/, 'an index has no config labels');
    const mutated = (await h.call('mutate', pod('multi', `${ext}/vendor/multi:2.0`))).body.response;
    assert.equal(JSON.parse(Buffer.from(mutated.patch, 'base64').toString())[0].value, `${ext}/vendor/multi:2.0@${d['index']}`);
    const partial = (await h.call('validate', pod('multi', `${ext}/vendor/multi:2.0-partial`))).body.response;
    assert.equal(partial.allowed, false);
    assert.match(partial.status.message, /not every platform manifest is verified: platform linux\/arm64 sha256:/);
  });

  it('the Bearer challenge of a token-auth registry is answered with the configured credentials', async () => {
    const r = (await h.call('validate', pod('private', `${auth.host}/private/app:v1`))).body.response;
    assert.equal(r.allowed, true, JSON.stringify(r.status));
    const unsigned = await pushImage(auth, 'private/app', 'v2', await auth.token(['repository:private/app:pull,push'], admin));
    const denied = (await h.call('validate', pod('private', `${auth.host}/private/app@${unsigned.digest}`))).body.response;
    assert.equal(denied.allowed, false);
    assert.match(denied.status.message, /signature unsigned/);
    assert.doesNotMatch(denied.status.message, new RegExp(admin.password.replace(/[^A-Za-z0-9]/g, '.')));
    // Without the credentials the same image cannot be read: the flow above did authenticate.
    const settings = await loadExternalVerifySettings({ mode: 'enforce', requireDigest: false, maxBlobBytes: 1 << 20, maxArtifacts: 16, maxPlatforms: 16, ...verifyConfig, hosts: [{ host: auth.host, plainHttp: true }] });
    const anonymous = await new ExternalVerifier(settings).verify(parseImageReference(`${auth.host}/private/app:v1`), () => undefined);
    assert.equal(anonymous.error, true);
    assert.match(anonymous.problems[0]!, /cannot verify with .*(401|403|UNAUTHORIZED|DENIED)/);
  });

  it('fails closed: a registry that is down, or does not answer within timeoutMs, denies', async () => {
    const refused = (await h.call('validate', pod('down', `${down}/vendor/app:1.0`))).body.response;
    assert.equal(refused.allowed, false);
    assert.match(refused.status.message, new RegExp(`cannot verify with ${down}: .*ECONNREFUSED`));
    const started = Date.now();
    const hanging = (await h.call('validate', pod('hung', `${hung.host}/vendor/app:1.0`))).body.response;
    assert.equal(hanging.allowed, false);
    assert.match(hanging.status.message, /no answer within 1000 ms \(admission.external.verify.timeoutMs\)/);
    assert.ok(Date.now() - started < 3000, 'the deadline bounds the review');
    const mutated = (await h.call('mutate', pod('down', `${down}/vendor/app:1.0`))).body.response;
    assert.equal(mutated.allowed, true);
    assert.equal(mutated.patch, undefined, 'nothing to pin when the tag could not be resolved');
  });

  it('registries outside verify.registries are denied without a request; allow globs still allow', async () => {
    const r = (await h.call('validate', pod('other', 'ghcr.io/someone/tool:1'))).body.response;
    assert.equal(r.allowed, false);
    assert.match(r.status.message, /ghcr.io\/someone\/tool is not in admission.external.verify.registries/);
    const allowed = (await h.call('validate', pod('k8s', 'registry.k8s.io/pause:3.10'))).body.response;
    assert.equal(allowed.allowed, true);
    assert.equal((await h.call('mutate', pod('k8s', 'registry.k8s.io/pause:3.10'))).body.response.patch, undefined);
  });

  it('warn mode allows with warnings (unsigned, not pinned by digest, unreachable)', async () => {
    const r = (await warn.call('validate', pod('w', `${ext}/vendor/app:unsigned`, `${down}/vendor/app@${d['signed']}`))).body.response;
    assert.equal(r.allowed, true);
    assert.equal(r.warnings.length, 2);
    assert.match(r.warnings[0], /admission.external.verify.requireDigest: write the image with its digest .* \(admission.external.verify.mode warn\)/);
    assert.match(r.warnings[1], /cannot verify with/);
  });

  // Last: stops the distribution registry.
  it('verdicts are cached per digest and tag: with the registry stopped, verified images still pass, others are denied', async () => {
    const image = `${ext}/vendor/app@${d['signed']}`;
    await h.call('validate', pod('cache', image));
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) assert.equal((await h.call('validate', pod('cache', image))).body.response.allowed, true);
    process.stdout.write(`# cached external review (1 container): ${((performance.now() - t0) / 20).toFixed(2)} ms on average\n`);
    await dist.stop();
    stopped = true;
    assert.equal((await h.call('validate', pod('cache', image))).body.response.allowed, true);
    assert.equal((await h.call('validate', pod('cache', `${ext}/vendor/app:1.0`))).body.response.allowed, true);
    const uncached = (await h.call('validate', pod('cache', `${ext}/vendor/app:never-asked`))).body.response;
    assert.equal(uncached.allowed, false);
    assert.match(uncached.status.message, /cannot verify with .*ECONNREFUSED/);
  });
});
