/**
 * `portcullis key generate | sign | attest | verify` end to end against a running registry with
 * token authentication (credentials from $REGISTRY_AUTH_FILE, the Docker token flow), checked with
 * independent tools: `skopeo inspect` reads the `.sig` tag, `openssl dgst -verify` checks the
 * signature over the payload with cosign.pub, the payload names the digest skopeo reports; then the
 * registry's API verdict under a trust policy, tampering, a wrong key, attestations, referrers,
 * cosign's own encrypted key, and enforcement on pull.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cosignSignatureManifest, cosignTag, importCosignPrivateKey } from '../../src/registry/signatures/signing.ts';
import { admin, type AuthRegistry, ok, pushImage, startAuthRegistry } from '../auth/helpers.ts';
import { MemoryBlobs, containersImageLayers, cosignSigManifest, read, trustedRootWithFulcio } from './fixtures.ts';
import { digestOf } from '../../src/registry/signatures/util.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: 120_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('portcullis CLI against a running registry (token auth)', () => {
  let registry: AuthRegistry;
  let dir: string;
  let authFile: string;
  let env: Record<string, string>;
  let image: { digest: string; manifest: Buffer };
  let ref: string;
  const cli = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [bin, ...args], { cwd: dir, env: { ...env, ...extra } });
  const skopeo = (args: string[]) => run('skopeo', [...args.slice(0, 1), '--tls-verify=false', '--authfile', authFile, ...args.slice(1)], { env });

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_SCANNER_ENABLED: 'false' });
    dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-sign-'));
    // credentials as podman login writes them; no other auth file is consulted (HOME, XDG_* point here)
    authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${admin.username}:${admin.password}`).toString('base64') } } }));
    env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), REGISTRY_AUTH_FILE: authFile, COSIGN_PASSWORD: 'correct horse battery staple' };
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'ci' } }));
    const token = await registry.token(['repository:ci/app:pull,push'], admin);
    const pushed = await pushImage(registry, 'ci/app', 'v1', token);
    assert.equal(pushed.status, 201);
    image = pushed;
    ref = `${registry.host}/ci/app:v1`;
  });
  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('key generate writes an encrypted cosign.key (0600) and cosign.pub', async () => {
    const r = await cli(['key', 'generate']);
    assert.equal(r.code, 0, r.stderr);
    const key = await readFile(join(dir, 'cosign.key'), 'utf8');
    assert.match(key, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----/);
    assert.equal((await stat(join(dir, 'cosign.key'))).mode & 0o777, 0o600);
    assert.match(await readFile(join(dir, 'cosign.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
    const again = await cli(['key', 'generate']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /cosign.key exists/);
    const pair = importCosignPrivateKey(key, env['COSIGN_PASSWORD']!);
    assert.equal(pair.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const noPassword = await run(process.execPath, [bin, 'key', 'generate', '--output-key-prefix', 'nopw'], { cwd: dir, env: { ...env, COSIGN_PASSWORD: '' } });
    assert.equal(noPassword.code, 0, 'an empty COSIGN_PASSWORD is a password (as in cosign)');
    const { COSIGN_PASSWORD: _unset, ...withoutPassword } = env;
    const noTerminal = await run(process.execPath, [bin, 'sign', `${registry.host}/ci/app:v1`, '--key', 'cosign.key'], { cwd: dir, env: withoutPassword });
    assert.equal(noTerminal.code, 1);
    assert.match(noTerminal.stderr, /COSIGN_PASSWORD is not set and there is no terminal/);
    const usage = await cli(['sign', ref]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--key is required/);
  });

  test('sign resolves the tag, signs the digest; skopeo reads the .sig; openssl verifies it with cosign.pub', async () => {
    const r = await cli(['sign', ref, '--key', 'cosign.key']);
    assert.equal(r.code, 0, r.stderr);
    const sigTag = cosignTag(image.digest, 'sig');
    assert.equal(r.stdout.trim(), `${registry.host}/ci/app:${sigTag}`);
    assert.match(r.stderr, /is a tag; signing its digest sha256:/);

    // independent: the digest skopeo computes for the image
    const inspected = await skopeo(['inspect', `docker://${ref}`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(JSON.parse(inspected.stdout).Digest, image.digest);
    // the .sig tag as skopeo sees it
    const sig = await skopeo(['inspect', '--raw', `docker://${registry.host}/ci/app:${sigTag}`]);
    assert.equal(sig.code, 0, sig.stderr);
    const manifest = JSON.parse(sig.stdout) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[]; config: { mediaType: string } };
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(manifest.layers.length, 1);
    const layer = manifest.layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const plain = await skopeo(['inspect', `docker://${registry.host}/ci/app:${sigTag}`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(JSON.parse(plain.stdout).Layers, [layer.digest]);

    // the payload (skopeo copies the tag to a directory) and the signature annotation
    const out = join(dir, 'sigdir');
    const copied = await skopeo(['copy', `docker://${registry.host}/ci/app:${sigTag}`, `dir:${out}`]);
    assert.equal(copied.code, 0, copied.stderr);
    const payloadFile = join(out, layer.digest.slice('sha256:'.length));
    const payload = JSON.parse(await readFile(payloadFile, 'utf8')) as { critical: { image: { 'docker-manifest-digest': string }; type: string; identity: { 'docker-reference': string } } };
    assert.equal(payload.critical.image['docker-manifest-digest'], image.digest, 'the payload names the digest, not the tag');
    assert.equal(payload.critical.type, 'cosign container image signature');
    assert.equal(payload.critical.identity['docker-reference'], `${registry.host}/ci/app`);
    const sigFile = join(dir, 'sig.der');
    await writeFile(sigFile, Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
    const verified = await run('openssl', ['dgst', '-sha256', '-verify', join(dir, 'cosign.pub'), '-signature', sigFile, payloadFile]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /Verified OK/);
  });

  test('verify: with cosign.pub it passes; with another key it fails with the reason', async () => {
    const r = await cli(['verify', ref, '--key', 'cosign.pub']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /signature verifies with key cosign.pub/);
    const json = await cli(['verify', ref, '--key', 'cosign.pub', '--output', 'json']);
    const result = JSON.parse(json.stdout) as { verdict: string; digest: string };
    assert.equal(result.verdict, 'verified');
    assert.equal(result.digest, image.digest);

    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(join(dir, 'other.pub'), other.publicKey.export({ type: 'spki', format: 'pem' }));
    const wrong = await cli(['verify', ref, '--key', 'other.pub']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /is not verified: no valid signature \(signature does not verify with any trusted key\)/);
  });

  test('the registry agrees: API verdict under a trust policy with cosign.pub', async () => {
    const pub = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await ok(registry.api('PUT', '/projects/ci/trust-policy', { auth: admin, body: { policy: { keys: [{ name: 'ci-key', publicKey: pub }] } } }));
    const s = await registry.api('GET', `/repositories/ci/app/manifests/${image.digest}/signatures`, { auth: admin });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.verdict, 'verified');
    assert.equal(s.body.signatures[0].signer.keyName, 'ci-key');
  });

  test('tampering with the payload is detected by portcullis verify, openssl and the API', async () => {
    const other = await pushImage(registry, 'ci/app', 'v2', await registry.token(['repository:ci/app:pull,push'], admin));
    const signed = await cli(['sign', `${registry.host}/ci/app:v2`, '--key', 'cosign.key']);
    assert.equal(signed.code, 0, signed.stderr);
    // rewrite the payload (same signature annotation) and push the .sig again, as an attacker with push rights could
    const token = await registry.token(['repository:ci/app:pull,push'], admin);
    const auth = { authorization: `Bearer ${token}` };
    const tag = cosignTag(other.digest, 'sig');
    const m = JSON.parse(Buffer.from(await (await registry.fetch(`/v2/ci/app/manifests/${tag}`, { headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer()).toString()) as { layers: any[] };
    const layer = m.layers[0];
    const original = Buffer.from(await (await registry.fetch(`/v2/ci/app/blobs/${layer.digest}`, { headers: auth })).arrayBuffer());
    const tampered = Buffer.from(original.toString().replace('"optional":null', '"optional":{"approved":"yes"}'));
    assert.notEqual(tampered.toString(), original.toString());
    const { createHash } = await import('node:crypto');
    const tamperedDigest = `sha256:${createHash('sha256').update(tampered).digest('hex')}`;
    await registry.fetch(`/v2/ci/app/blobs/uploads/?digest=${tamperedDigest}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: tampered });
    const { manifest, config } = cosignSignatureManifest([{ ...layer, digest: tamperedDigest, size: tampered.length }]);
    await registry.fetch(`/v2/ci/app/blobs/uploads/?digest=sha256:${createHash('sha256').update(config).digest('hex')}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: config });
    const put = await registry.fetch(`/v2/ci/app/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    assert.equal(put.status, 201);

    const r = await cli(['verify', `${registry.host}/ci/app:v2`, '--key', 'cosign.pub']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /signature does not verify with any trusted key/);
    const payloadFile = join(dir, 'tampered.json');
    await writeFile(payloadFile, tampered);
    const sigFile = join(dir, 'tampered.sig');
    await writeFile(sigFile, Buffer.from(layer.annotations['dev.cosignproject.cosign/signature'], 'base64'));
    const openssl = await run('openssl', ['dgst', '-sha256', '-verify', join(dir, 'cosign.pub'), '-signature', sigFile, payloadFile]);
    assert.notEqual(openssl.code, 0);
    assert.match(openssl.stdout, /Verification failure/);
    await new Promise((res) => setTimeout(res, 200));
    const s = await registry.api('GET', `/repositories/ci/app/manifests/${other.digest}/signatures`, { auth: admin });
    assert.equal(s.body.verdict, 'failed');
    assert.equal(s.body.signatures[0].reason, 'signature does not verify with any trusted key');
  });

  test('attest: an SLSA provenance in .att verifies with --type and satisfies a policy requirement', async () => {
    const predicate = { builder: { id: 'https://ci.example.com/builder@v1' }, buildType: 'https://example.com/build/v1', invocation: { configSource: { uri: 'git+https://git.example.com/ci/app@refs/heads/main', digest: { sha1: 'a'.repeat(40) } } } };
    await writeFile(join(dir, 'provenance.json'), JSON.stringify(predicate));
    const r = await cli(['attest', ref, '--key', 'cosign.key', '--predicate', 'provenance.json', '--type', 'slsaprovenance']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${registry.host}/ci/app:${cosignTag(image.digest, 'att')}`);
    const att = await skopeo(['inspect', '--raw', `docker://${r.stdout.trim()}`]);
    assert.equal(att.code, 0, att.stderr);
    const layer = (JSON.parse(att.stdout) as { layers: { mediaType: string; annotations: Record<string, string> }[] }).layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.dsse.envelope.v1+json');
    assert.equal(layer.annotations['predicateType'], 'https://slsa.dev/provenance/v0.2');
    const v = await cli(['verify', ref, '--key', 'cosign.pub', '--type', 'slsaprovenance']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /https:\/\/slsa.dev\/provenance\/v0.2: /);
    const missing = await cli(['verify', ref, '--key', 'cosign.pub', '--type', 'cyclonedx']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /attestation cyclonedx: sha256:[a-f0-9]{64}: predicate type https:\/\/slsa.dev\/provenance\/v0.2 is not cyclonedx/);

    const pub = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await ok(registry.api('PUT', '/projects/ci/trust-policy', { auth: admin, body: { policy: { keys: [{ name: 'ci-key', publicKey: pub }], requiredAttestations: [{ predicateType: 'slsaprovenance', builderId: 'https://ci.example.com/builder@v1', sourceRepository: 'git.example.com/ci/app', signerKeys: ['ci-key'] }] } } }));
    const s = await registry.api('GET', `/repositories/ci/app/manifests/${image.digest}/signatures`, { auth: admin });
    assert.equal(s.body.verdict, 'verified', JSON.stringify(s.body.missing));
    assert.equal(s.body.requirements[0].ok, true);
    assert.equal(s.body.attestations[0].facts.builderId, 'https://ci.example.com/builder@v1');
  });

  test('sign --referrer: an OCI 1.1 referrer, listed by the Referrers API, verifying too', async () => {
    const token = await registry.token(['repository:ci/ref:pull,push'], admin);
    const img = await pushImage(registry, 'ci/ref', 'v1', token);
    const r = await cli(['sign', `${registry.host}/ci/ref@${img.digest}`, '--key', 'cosign.key', '--referrer']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /is a tag/);
    const referrerDigest = r.stdout.trim().split('@')[1];
    const list = await registry.fetch(`/v2/ci/ref/referrers/${img.digest}`, { headers: { authorization: `Bearer ${token}` } });
    const index = (await list.json()) as { manifests: { digest: string; artifactType: string }[] };
    assert.deepEqual(index.manifests.map((m) => [m.digest, m.artifactType]), [[referrerDigest, 'application/vnd.dev.cosign.artifact.sig.v1+json']]);
    assert.equal((await registry.fetch(`/v2/ci/ref/manifests/${cosignTag(img.digest, 'sig')}`, { headers: { authorization: `Bearer ${token}` } })).status, 404, 'no tag-scheme signature');
    const v = await cli(['verify', `${registry.host}/ci/ref@${img.digest}`, '--key', 'cosign.pub']);
    assert.equal(v.code, 0, v.stderr);
  });

  test("cosign's own encrypted key (cosign generate-key-pair output) signs; a wrong password is refused", async () => {
    await writeFile(join(dir, 'real-cosign.key'), read('cosign-key/cosign/encrypted-sigstore.key'));
    const pub = createPublicKey(importCosignPrivateKey(read('cosign-key/cosign/encrypted-sigstore.key'), 'hello').privateKey).export({ type: 'spki', format: 'pem' });
    await writeFile(join(dir, 'real-cosign.pub'), pub);
    const wrong = await cli(['sign', ref, '--key', 'real-cosign.key'], { COSIGN_PASSWORD: 'nope' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /wrong password/);
    const r = await cli(['sign', ref, '--key', 'real-cosign.key'], { COSIGN_PASSWORD: 'hello' });
    assert.equal(r.code, 0, r.stderr);
    const sig = await skopeo(['inspect', '--raw', `docker://${r.stdout.trim()}`]);
    assert.equal((JSON.parse(sig.stdout) as { layers: unknown[] }).layers.length, 2, 'appended to the existing .sig, as cosign does');
    const v = await cli(['verify', ref, '--key', 'real-cosign.pub']);
    assert.equal(v.code, 0, v.stderr);
  });

  test('keyless verify: a real cosign keyless signature (Fulcio + Rekor) with --certificate-identity and --trusted-root', async () => {
    const c = (JSON.parse(read('cases.json').toString()) as { cases: { id: string; files: Record<string, string>; signatures?: Record<string, unknown>[]; subject: Record<string, string>; verify_with: Record<string, string> }[] }).cases.find((x) => x.id === 'containers-image/dir-img-cosign-fulcio-rekor-valid')!;
    const token = await registry.token(['repository:ci/keyless:pull,push'], admin);
    const auth = { authorization: `Bearer ${token}` };
    const blobs = new MemoryBlobs();
    const manifest = cosignSigManifest(blobs, containersImageLayers(c));
    for (const [d, b] of blobs.blobs) {
      if (d === digestOf(manifest)) continue;
      const res = await registry.fetch(`/v2/ci/keyless/blobs/uploads/?digest=${d}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: b });
      assert.equal(res.status, 201);
    }
    const imageDigest = c.subject['image_manifest_sha256']!;
    const put = await registry.fetch(`/v2/ci/keyless/manifests/${cosignTag(imageDigest, 'sig')}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    assert.equal(put.status, 201);
    // the image itself is not in the fixture (its layers are not): verify what is attached to its digest
    await writeFile(join(dir, 'trusted_root.json'), JSON.stringify(trustedRootWithFulcio(read(c.verify_with['fulcio_ca']!).toString())));
    const target = `${registry.host}/ci/keyless@${imageDigest}`;
    const keyless = ['--certificate-oidc-issuer', 'https://github.com/login/oauth', '--trusted-root', 'trusted_root.json'];
    const v = await cli(['verify', target, '--certificate-identity', 'mitr@redhat.com', ...keyless]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stderr, /is not in the registry; verifying what is attached to the digest/);
    assert.match(v.stdout, /signature by mitr@redhat.com \(https:\/\/github.com\/login\/oauth\), logged in Rekor/);
    const wrongId = await cli(['verify', target, '--certificate-identity', 'someone@example.com', ...keyless]);
    assert.equal(wrongId.code, 1);
    assert.match(wrongId.stderr, /someone@example.com/);
    const noRoot = await cli(['verify', target, '--certificate-identity', 'mitr@redhat.com', '--certificate-oidc-issuer', 'https://github.com/login/oauth']);
    assert.equal(noRoot.code, 2);
    assert.match(noRoot.stderr, /needs --trusted-root/);
  });

  test('enforcement: with "require a valid signature to pull", skopeo pulls the signed image and is denied an unsigned one', async () => {
    const pub = await readFile(join(dir, 'cosign.pub'), 'utf8');
    await ok(registry.api('PUT', '/projects/ci/trust-policy', { auth: admin, body: { requireSignatureToPull: true, policy: { keys: [{ name: 'ci-key', publicKey: pub }] } } }));
    const good = await skopeo(['inspect', '--raw', `docker://${ref}`]);
    assert.equal(good.code, 0, good.stderr);
    const token = await registry.token(['repository:ci/app:pull,push'], admin);
    const unsigned = await pushImage(registry, 'ci/app', 'unsigned', token);
    assert.equal(unsigned.status, 201);
    const denied = await skopeo(['inspect', '--raw', `docker://${registry.host}/ci/app:unsigned`]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /requires a valid signature to pull.*no signature/);
    const sigStillReadable = await skopeo(['inspect', '--raw', `docker://${registry.host}/ci/app:${cosignTag(image.digest, 'sig')}`]);
    assert.equal(sigStillReadable.code, 0, 'signature artifacts stay pullable');
    const v = await cli(['verify', ref, '--key', 'cosign.pub']);
    assert.equal(v.code, 0, 'and portcullis verify still works');
  });
});
