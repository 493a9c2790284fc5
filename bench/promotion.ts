/**
 * Promotion and fleet-simulation benchmark, Portcullis only (in process, real stores: filesystem +
 * SQLite, Fastify `inject`, no network):
 *
 * 1. Promotion of a signed 3-layer image (layers of `--layer-mib` MiB each, a cosign `.sig` tag and
 *    an OCI referrer signature) from `staging` to a fresh `prod` repository each time, through
 *    `POST /api/v1/promotions`, under a destination policy that requires a signature verified with
 *    prod's trust policy. Times per promotion (median, p95): policy evaluation, attestation signing
 *    and the one metadata transaction; no blob bytes are copied, so layer size does not matter.
 * 2. Fleet simulation throughput: `--images` small images (signed every 10th) in one project, a
 *    three-rule candidate (forbidden tags, a CEL rule, signature required) evaluated at push, pull
 *    and admission through `POST /api/v1/policy/simulate`; images/s for a first (cold: signature
 *    verdicts computed and stored) and a second (warm) run.
 *
 *   node bench/promotion.ts [--promotions 50] [--layer-mib 16] [--images 2000]
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildRegistry } from '../src/registry/app/build-app.ts';
import { environmentVariables, loadConfig } from '../src/registry/config/load.ts';
import { cosignSign, cosignSignatureManifest, cosignTag } from '../src/registry/signatures/signing.ts';
import { digestOf } from '../src/registry/signatures/util.ts';

const { values } = parseArgs({ options: { promotions: { type: 'string', default: '50' }, 'layer-mib': { type: 'string', default: '16' }, images: { type: 'string', default: '2000' } } });
const promotions = Number(values.promotions);
const layerBytes = Number(values['layer-mib']) * 1024 * 1024;
const images = Number(values.images);
const log = (s: string) => process.stderr.write(`${s}\n`);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-promotion-'));
  const known = environmentVariables();
  const env = Object.fromEntries(Object.entries({ PORTCULLIS_SCANNER_ENABLED: 'false', PORTCULLIS_AUDIT_ENABLED: 'false' }).filter(([k]) => known.includes(k)));
  const config = await loadConfig({
    env,
    overrides: [
      { path: ['storage', 'dataDir'], value: dir },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      { path: ['signatures', 'cacheSeconds'], value: 3600 },
    ],
  });
  const registry = await buildRegistry(config);
  const inject = async (method: string, url: string, body?: Buffer | string | object, headers: Record<string, string> = {}) => {
    const payload = Buffer.isBuffer(body) || typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body);
    const h = { ...(body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}), ...headers };
    return registry.app.inject({ method: method as 'GET', url, headers: h, ...(payload !== undefined ? { payload } : {}) });
  };
  const pushBlob = async (repo: string, b: Buffer) => {
    const res = await inject('POST', `/v2/${repo}/blobs/uploads/?digest=${digestOf(b)}`, b, { 'content-type': 'application/octet-stream' });
    if (res.statusCode !== 201) throw new Error(`blob push: ${res.statusCode} ${res.body}`);
  };
  const putManifest = async (repo: string, ref: string, m: Buffer) => {
    const res = await inject('PUT', `/v2/${repo}/manifests/${ref}`, m, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    if (res.statusCode !== 201) throw new Error(`manifest PUT ${repo}:${ref}: ${res.statusCode} ${res.body}`);
  };
  const pushImage = async (repo: string, tag: string, layers: Buffer[]) => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: new Date().toISOString(), rootfs: { type: 'layers', diff_ids: layers.map(digestOf) }, config: { Labels: { n: randomBytes(4).toString('hex') } } }));
    for (const b of [config, ...layers]) await pushBlob(repo, b);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(l), size: l.length })) }));
    await putManifest(repo, tag, manifest);
    return digestOf(manifest);
  };
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sign = async (repo: string, digest: string) => {
    const layer = cosignSign(key.privateKey, `bench/${repo}`, digest);
    await pushBlob(repo, layer.payload);
    const sig = cosignSignatureManifest([layer.descriptor]);
    await pushBlob(repo, sig.config);
    await putManifest(repo, cosignTag(digest, 'sig'), sig.manifest);
  };
  const trust = { policy: { keys: [{ name: 'ci', publicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString() }] }, requireSignatureToPull: false };

  try {
    // --- 1. promotion
    for (const project of ['prod', 'fleet']) if ((await inject('PUT', `/api/v1/projects/${project}/trust-policy`, trust)).statusCode >= 300) throw new Error('trust policy');
    const prodPolicy = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: prod, project: prod }\nrules:\n  - { name: signed, kind: signature-required, points: [promotion] }\n  - { name: no-latest, kind: forbidden-tags, tags: [latest] }\n';
    if ((await inject('PUT', '/api/v1/projects/prod/policies', prodPolicy, { 'content-type': 'application/yaml' })).statusCode !== 201) throw new Error('policy');
    const digest = await pushImage('staging/app', '1.0', [randomBytes(layerBytes), randomBytes(layerBytes), randomBytes(layerBytes)]);
    await sign('staging/app', digest);
    await registry.signatures?.idle();
    const times: number[] = [];
    for (let i = 0; i < promotions + 3; i++) {
      const started = performance.now();
      const res = await inject('POST', '/api/v1/promotions', { source: `staging/app@${digest}`, destination: `prod/app-${i}`, tag: '1.0' });
      const ms = performance.now() - started;
      if (res.statusCode !== 201) throw new Error(`promotion: ${res.statusCode} ${res.body}`);
      if (i >= 3) times.push(ms); // the first ones warm up the caches
    }
    log(`promotion of a signed 3-layer image (3 x ${values['layer-mib']} MiB): median ${quantile(times, 0.5).toFixed(2)} ms, p95 ${quantile(times, 0.95).toFixed(2)} ms over ${promotions}`);

    // --- 2. simulation
    const seedStarted = performance.now();
    for (let i = 0; i < images; i++) {
      const d = await pushImage(`fleet/app${i % 20}`, i % 50 === 0 ? 'latest' : `v${i}`, [randomBytes(64)]);
      if (i % 10 === 0) await sign(`fleet/app${i % 20}`, d);
    }
    await registry.signatures?.idle();
    log(`seeded ${images} images in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
    const candidate = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: next, project: fleet }\nrules:\n  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push, pull] }\n  - { name: amd64, kind: cel, expression: \'image.platform.architecture == "amd64" && "n" in image.labels\' }\n  - { name: signed, kind: signature-required, points: [pull, admission] }\n';
    for (const run of ['cold', 'warm']) {
      const started = performance.now();
      const res = await inject('POST', '/api/v1/policy/simulate?limit=0', candidate, { 'content-type': 'application/yaml' });
      const seconds = (performance.now() - started) / 1000;
      if (res.statusCode !== 200) throw new Error(`simulate: ${res.statusCode} ${res.body}`);
      const report = JSON.parse(res.body) as { images: { evaluated: number; skipped: number; denied: number }; summary: string };
      log(`simulate (${run}): ${report.images.evaluated} images (${report.images.skipped} skipped) x 3 points in ${seconds.toFixed(2)} s = ${Math.round(report.images.evaluated / seconds)} images/s; ${report.summary}`);
    }
  } finally {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
