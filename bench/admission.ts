/**
 * Admission benchmark, Portcullis only (in process, real stores: filesystem + SQLite, real HTTP
 * over loopback with keep-alive):
 *
 * 1. Latency of POST /admission/validate for a Pod with 10 containers (10 images of this
 *    registry, by tag): cold (every verdict cache dropped before each review: image config read,
 *    signature facts, scan facts, evaluation for all 10) and cached (verdicts in memory; still
 *    resolves the 10 tags, reads when the workload first ran each digest and writes the 10
 *    deployment records). p50 / p99 / max over many reviews. The budget: p99 < 20 ms cached.
 * 2. POST /admission/mutate latency (10 tags pinned).
 * 3. Policy evaluations per second: the evaluator alone (`CompiledPolicy.evaluate`) on an
 *    admission input with the benchmark policy (5 rules, 2 of them CEL).
 *
 *   node bench/admission.ts [--reviews 2000] [--evaluations 200000]
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseReview } from '../src/registry/admission/review.ts';
import { buildRegistry } from '../src/registry/app/build-app.ts';
import { environmentVariables, loadConfig } from '../src/registry/config/load.ts';
import { parsePolicy } from '../src/registry/policy/document.ts';
import { CompiledPolicy } from '../src/registry/policy/evaluate.ts';
import { completeInput } from '../src/registry/policy/input.ts';

const { values } = parseArgs({ options: { reviews: { type: 'string', default: '2000' }, evaluations: { type: 'string', default: '200000' } } });
const reviews = Number(values.reviews);
const evaluations = Number(values.evaluations);
const log = (s: string) => process.stderr.write(`${s}\n`);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const TOKEN = 'bench-admission-token-0123456789';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: bench, project: bench }
rules:
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [admission] }
  - { name: owner, kind: required-labels, labels: [owner], mode: warn, points: [admission] }
  - { name: linux, kind: cel, expression: 'image.platform.os == "linux" && image.platform.architecture in ["amd64", "arm64"]', points: [admission] }
  - { name: prod-owner, kind: cel, expression: 'admission.namespace != "prod" || image.labels["owner"] == "team"', points: [admission] }
  - { name: fresh, kind: max-image-age, days: 3650, points: [admission] }
`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `cpuMs`: this process's CPU time for the phase (user + system), per review: the work, whatever the machine's load. */
function summary(name: string, samples: number[], cpuMs: number): string {
  const s = [...samples].sort((a, b) => a - b);
  return `| ${name} | ${samples.length} | ${percentile(s, 50).toFixed(2)} | ${percentile(s, 99).toFixed(2)} | ${s[s.length - 1]!.toFixed(2)} | ${(cpuMs / samples.length).toFixed(2)} |`;
}

/** Runs `n` timed calls; returns the latencies and the CPU time used. */
async function phase(n: number, before: () => void, fn: () => Promise<unknown>): Promise<{ ms: number[]; cpuMs: number }> {
  const ms: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    before();
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpu);
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-admission-'));
  await writeFile(join(dir, 'policy.yaml'), POLICY);
  await writeFile(join(dir, 'token'), TOKEN);
  const known = environmentVariables();
  const env = Object.fromEntries(Object.entries({ PORTCULLIS_SCANNER_ENABLED: 'false', PORTCULLIS_AUDIT_ENABLED: 'false' }).filter(([k]) => known.includes(k)));
  const config = await loadConfig({
    env,
    overrides: [
      { path: ['storage', 'dataDir'], value: join(dir, 'data') },
      { path: ['gc', 'intervalSeconds'], value: 0 },
      { path: ['log', 'level'], value: 'silent' },
      { path: ['auth', 'mode'], value: 'none' },
      { path: ['policy', 'files'], value: [join(dir, 'policy.yaml')] },
      { path: ['admission', 'enabled'], value: true },
      { path: ['admission', 'registryHosts'], value: ['registry.bench:5000'] },
      { path: ['admission', 'auth', 'tokenFile'], value: join(dir, 'token') },
      { path: ['admission', 'cacheSeconds'], value: 3600 },
    ],
  });
  const registry = await buildRegistry(config);
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`;
  try {
    log('pushing 10 images');
    const images: string[] = [];
    for (let i = 0; i < 10; i++) {
      const repo = `bench/svc-${i}`;
      const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: new Date().toISOString(), config: { Labels: { owner: 'team' } }, rootfs: { type: 'layers', diff_ids: [] } }));
      const layer = Buffer.from(`layer ${i}`);
      for (const b of [cfg, layer]) {
        const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: b, headers: { 'content-type': 'application/octet-stream' } });
        if (res.status !== 201) throw new Error(`blob upload: ${res.status}`);
      }
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }] });
      const res = await fetch(`${base}/v2/${repo}/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': MANIFEST } });
      if (res.status !== 201) throw new Error(`manifest: ${res.status}`);
      images.push(`registry.bench:5000/${repo}:v1`);
    }
    const pod = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'prod',
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
        object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-0', namespace: 'prod' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } },
        dryRun: false,
      },
    };
    const body = JSON.stringify(pod);
    const call = async (path: string) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } });
      const json = (await res.json()) as { response: { allowed: boolean } };
      if (!json.response.allowed) throw new Error(`denied: ${JSON.stringify(json)}`);
    };
    const controller = registry.admission!.controller;
    for (let i = 0; i < 200; i++) await call('/admission/validate'); // warm-up (JIT, connections)
    log(`cold: ${reviews} reviews, caches dropped before each`);
    const cold = await phase(reviews, () => controller.invalidate(), () => call('/admission/validate'));
    log(`cached: ${reviews} reviews`);
    const cached = await phase(reviews, () => undefined, () => call('/admission/validate'));
    const mutate = await phase(reviews, () => undefined, () => call('/admission/mutate'));
    // the controller alone (no HTTP, no JSON): what admission itself costs
    const review = parseReview(JSON.parse(body));
    const origin = { clientAddress: '127.0.0.1', userAgent: undefined, requestId: 'bench', actor: { kind: 'anonymous' as const } };
    const direct = await phase(reviews, () => undefined, () => controller.validate(review, { cluster: 'bench', origin }));

    log(`evaluator: ${evaluations} evaluations`);
    console.log(`Load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(', ')} on ${availableParallelism()} CPUs`);
    const policy = new CompiledPolicy(parsePolicy(POLICY));
    const input = completeInput({
      image: { digest: `sha256:${'a'.repeat(64)}`, repository: 'bench/svc-0', tags: ['v1'], platform: { os: 'linux', architecture: 'amd64', variant: '' }, labels: { owner: 'team' }, created: new Date().toISOString() },
      request: { point: 'admission', action: 'admit' },
      admission: { namespace: 'prod', workload: { kind: 'Deployment', name: 'web' }, operation: 'CREATE' },
    });
    for (let i = 0; i < 10_000; i++) policy.evaluate(input);
    const t0 = performance.now();
    for (let i = 0; i < evaluations; i++) if (!policy.evaluate(input).allowed) throw new Error('denied');
    const perSecond = evaluations / ((performance.now() - t0) / 1000);

    console.log('| Admission (10-container Pod) | reviews | p50 ms | p99 ms | max ms | CPU ms/review |');
    console.log('|---|---:|---:|---:|---:|---:|');
    console.log(summary('validate over HTTP, cold (facts gathered for 10 images)', cold.ms, cold.cpuMs));
    console.log(summary('validate over HTTP, cached', cached.ms, cached.cpuMs));
    console.log(summary('mutate over HTTP (10 tags pinned)', mutate.ms, mutate.cpuMs));
    console.log(summary('validate, cached, controller alone (no HTTP)', direct.ms, direct.cpuMs));
    console.log('');
    console.log(`Policy evaluations per second (evaluator alone, 5 rules incl. 2 CEL): ${Math.round(perSecond).toLocaleString('en-US')}`);
    console.log(`Evaluations by the controller during the run (decision-cache misses): ${controller.evaluations}`);
  } finally {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
