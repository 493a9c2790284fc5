/**
 * Signature benchmark, Portcullis only (in process, real stores: filesystem + SQLite):
 *
 * 1. What a cached verdict adds to a pull: the pull gate's decision with the verdict in memory
 *    (`SignatureService.pullDecision`, the only work the gate adds), timed per call over many calls;
 *    and manifest GETs through the whole HTTP stack (Fastify inject) in a project that requires a
 *    valid signature against one that does not, rounds alternating, medians compared.
 *    The budget: < 1 ms per pull.
 * 2. Cold verification throughput: `verifyImage` per second for a cosign ECDSA P-256 key signature
 *    and for a keyless sigstore bundle (the real cosign v3 referrer bundle from the fixtures,
 *    Fulcio chain + SCT + Rekor entry); and a full cold verification through the registry (find the
 *    artifacts in the stores, read the blobs, verify, store the verdict).
 *
 *   node bench/signatures.ts [--iterations 20000] [--rounds 5] [--gets 2000]
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildRegistry } from '../src/registry/app/build-app.ts';
import { environmentVariables, loadConfig } from '../src/registry/config/load.ts';
import { compilePolicy, verifyImage } from '../src/registry/signatures/policy.ts';
import { recognize } from '../src/registry/signatures/recognize.ts';
import { cosignSign, cosignSignatureManifest, cosignTag, referrerManifest } from '../src/registry/signatures/signing.ts';
import { digestOf } from '../src/registry/signatures/util.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' }, gets: { type: 'string', default: '2000' } } });
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);
const gets = Number(values.gets);
const FIXTURES = resolve(process.env['PORTCULLIS_FIXTURES'] || 'test/fixtures', 'signatures');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-sig-'));
  const known = environmentVariables();
  const env = Object.fromEntries(Object.entries({ PORTCULLIS_SCANNER_ENABLED: 'false', PORTCULLIS_AUDIT_ENABLED: 'false' }).filter(([k]) => known.includes(k)));
  const config = await loadConfig({
    env,
    overrides: [
      { path: ['storage', 'dataDir'], value: dir },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      // a verdict stays in memory for the whole run (the default is 30 s)
      { path: ['signatures', 'cacheSeconds'], value: 3600 },
    ],
  });
  const registry = await buildRegistry(config);
  const service = registry.signatures!;
  const inject = async (method: string, url: string, body?: Buffer | object, headers: Record<string, string> = {}) => {
    const payload = Buffer.isBuffer(body) ? body : body === undefined ? undefined : JSON.stringify(body);
    const h = { ...headers, ...(body !== undefined && !Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {}) };
    return registry.app.inject({ method: method as 'GET', url, headers: h, ...(payload !== undefined ? { payload } : {}) });
  };
  const pushBlob = async (repo: string, b: Buffer) => {
    const res = await inject('POST', `/v2/${repo}/blobs/uploads/?digest=${digestOf(b)}`, b, { 'content-type': 'application/octet-stream' });
    if (res.statusCode !== 201) throw new Error(`blob: ${res.statusCode}`);
  };
  const putManifest = async (repo: string, ref: string, m: Buffer) => {
    const res = await inject('PUT', `/v2/${repo}/manifests/${ref}`, m, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    if (res.statusCode !== 201) throw new Error(`manifest: ${res.statusCode} ${res.body}`);
    await service.idle();
  };
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const policy = { keys: [{ name: 'bench', publicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString() }] };
  for (const [project, enforce] of [['enforced', true], ['open', false]] as const) {
    const res = await inject('PUT', `/api/v1/projects/${project}/trust-policy`, { policy, requireSignatureToPull: enforce });
    if (res.statusCode !== 201) throw new Error(`policy: ${res.statusCode} ${res.body}`);
  }
  // one image, in both projects, signed in both
  const config1 = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBytes(1024);
  const image = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config1), size: config1.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length }],
    }),
  );
  const digest = digestOf(image);
  const sigLayer = cosignSign(key.privateKey, 'bench/app', digest);
  const sig = cosignSignatureManifest([sigLayer.descriptor]);
  for (const repo of ['enforced/app', 'open/app']) {
    for (const b of [config1, layer, sigLayer.payload, sig.config]) await pushBlob(repo, b);
    await putManifest(repo, 'v1', image);
    await putManifest(repo, cosignTag(digest, 'sig'), sig.manifest);
  }
  const warm = await service.pullDecision('enforced/app', digest);
  if (!warm.allowed) throw new Error(`the signed image is not allowed: ${JSON.stringify(warm)}`);

  // 1a. the gate's work with a cached verdict
  log(`gate decision, cached verdict: ${iterations} calls`);
  for (let i = 0; i < 1000; i++) await service.pullDecision('enforced/app', digest);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await service.pullDecision('enforced/app', digest);
  const gateUs = Number(process.hrtime.bigint() - t0) / 1000 / iterations;

  // 1b. manifest GET through Fastify, enforced vs not, alternating rounds
  const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
  const getRound = async (repo: string) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < gets; i++) {
      const res = await inject('GET', `/v2/${repo}/manifests/v1`, undefined, accept);
      if (res.statusCode !== 200) throw new Error(`GET ${repo}: ${res.statusCode} ${res.body}`);
    }
    return Number(process.hrtime.bigint() - start) / 1e6 / gets;
  };
  await getRound('open/app');
  await getRound('enforced/app');
  const open: number[] = [];
  const enforced: number[] = [];
  for (let r = 0; r < rounds; r++) {
    log(`manifest GET round ${r + 1}/${rounds}`);
    if (r % 2 === 0) {
      open.push(await getRound('open/app'));
      enforced.push(await getRound('enforced/app'));
    } else {
      enforced.push(await getRound('enforced/app'));
      open.push(await getRound('open/app'));
    }
  }

  // 2a. cold verifyImage, ECDSA key
  const blobs = new Map<string, Buffer>([[sigLayer.descriptor.digest, sigLayer.payload]]);
  const fetchBlob = async (d: string) => blobs.get(d)!;
  const art = await recognize(sig.manifest, { fetchBlob, tag: cosignTag(digest, 'sig') });
  const compiled = compilePolicy({ version: 1, ...policy });
  const n1 = Math.max(200, Math.floor(iterations / 10));
  let t = process.hrtime.bigint();
  for (let i = 0; i < n1; i++) if (verifyImage(digest, [art], compiled).verdict !== 'verified') throw new Error('ECDSA verification failed');
  const ecdsaPerSec = n1 / (Number(process.hrtime.bigint() - t) / 1e9);

  // 2b. cold verifyImage, keyless bundle (Fulcio + SCT + Rekor), from the cosign fixture
  const bundle = readFileSync(join(FIXTURES, 'cosign-keyless/cosign/oci-attestation.sigstore.json'));
  const subject = `sha256:${'732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4'}`;
  const ref = referrerManifest('application/vnd.dev.sigstore.bundle.v0.3+json', [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: digestOf(bundle), size: bundle.length }], { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1 });
  blobs.set(digestOf(bundle), bundle);
  const bundleArt = await recognize(ref.manifest, { fetchBlob });
  const identities = [{ subjectRegExp: '.*', issuerRegExp: '.*' }];
  const keyless = compilePolicy({
    version: 1,
    requireSignature: false,
    keyless: { trustedRoot: JSON.parse(readFileSync(join(FIXTURES, 'cosign-keyless/cosign/trusted_root_pgi.json'), 'utf8')) as Record<string, unknown>, identities },
    requiredAttestations: [{ predicateType: 'https://cosign.sigstore.dev/attestation/v1', signerIdentities: identities }],
  });
  const n2 = Math.max(50, Math.floor(iterations / 50));
  t = process.hrtime.bigint();
  for (let i = 0; i < n2; i++) if (verifyImage(subject, [bundleArt], keyless).verdict !== 'verified') throw new Error('bundle verification failed');
  const bundlePerSec = n2 / (Number(process.hrtime.bigint() - t) / 1e9);

  // 2c. cold through the registry: collect from the stores, verify, store the verdict
  const n3 = Math.max(50, Math.floor(iterations / 50));
  t = process.hrtime.bigint();
  for (let i = 0; i < n3; i++) {
    const s = await service.verify('enforced/app', digest, 'api');
    if (s.verdict !== 'verified') throw new Error('registry verification failed');
  }
  const registryPerSec = n3 / (Number(process.hrtime.bigint() - t) / 1e9);

  await registry.close();
  await rm(dir, { recursive: true, force: true });

  const o = median(open);
  const e = median(enforced);
  console.log(`## Signatures (\`node bench/signatures.ts\`)

| measurement | value |
|---|---:|
| pull gate decision, cached verdict (mean of ${iterations}) | ${gateUs.toFixed(2)} µs |
| manifest GET, project without enforcement (median of ${rounds} × ${gets}, inject) | ${o.toFixed(3)} ms |
| manifest GET, "require a valid signature to pull", cached verdict | ${e.toFixed(3)} ms |
| added per pull (difference of medians) | ${(e - o).toFixed(3)} ms |
| cold verifyImage, cosign ECDSA P-256 key signature | ${Math.round(ecdsaPerSec).toLocaleString('en')} /s |
| cold verifyImage, keyless sigstore bundle (Fulcio chain, SCT, Rekor entry) | ${Math.round(bundlePerSec).toLocaleString('en')} /s |
| cold verification through the registry (collect from stores + verify + store verdict), ECDSA | ${Math.round(registryPerSec).toLocaleString('en')} /s |
`);
  if (e - o >= 1) {
    console.error(`FAIL: a cached verdict adds ${(e - o).toFixed(3)} ms to a pull (budget < 1 ms)`);
    process.exitCode = 1;
  }
}

await main();
