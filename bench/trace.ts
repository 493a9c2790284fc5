/**
 * Traceability query latency on a seeded store (the issue's goal: under one second for 10,000
 * images). The store is seeded through the trace module's own writers (TraceStore, as the bus
 * recorders write it) and the admission module's deployment store, in the metadata database:
 *
 * - 10,000 images (default) in 500 repositories of 100 projects, each on one of 20 base images
 *   (1-3 layers) plus 2 layers of its own, so every image has a layer-prefix base relation;
 * - build sources: OCI annotations naming one of 2,000 commits (5 images per commit), and for half
 *   of the images a verified SLSA provenance fact as well;
 * - findings: 20 per image from a pool of 5,000 vulnerabilities, each under two ids (CVE + GHSA),
 *   and one vulnerability (CVE-2026-0001) in every image of 4 bases: about 2,000 images;
 * - 5,000 deployment records in 3 clusters and 20 namespaces.
 *
 * Deployments are read as the registry wires them: batched reads of the admission table.
 * Queries go through the HTTP routes (Fastify inject: routing, validation, JSON), as an
 * administrator (everything visible) and as a reader of one project (the permission filter
 * drops almost everything), each repeated `--rounds` times; the report gives median and p95.
 *
 *   node bench/trace.ts [--images N] [--rounds N] [--postgres SERVER-URL]
 *
 * With --postgres, a fresh database is created on that server and dropped afterwards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import pg from 'pg';
import { SqlDeploymentStore } from '../src/registry/admission/store.ts';
import { registryErrorHandler } from '../src/registry/distribution/http.ts';
import { EventBus } from '../src/registry/events/bus.ts';
import { PostgresDriver } from '../src/registry/storage/postgres/postgres-driver.ts';
import type { BlobStore } from '../src/registry/storage/ports.ts';
import type { SqlDriver } from '../src/registry/storage/sql/driver.ts';
import { SqlMetadataStore } from '../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';
import { chainIds } from '../src/registry/trace/facts.ts';
import { registerTraceRoutes, type TraceVisibility } from '../src/registry/trace/http.ts';
import { deploymentSourceOf } from '../src/registry/trace/sources.ts';
import { TraceService } from '../src/registry/trace/service.ts';
import { TraceStore } from '../src/registry/trace/store.ts';

const { values } = parseArgs({ options: { images: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '30' }, postgres: { type: 'string' } } });
const N = Number(values.images);
const ROUNDS = Number(values.rounds);
const log = (s: string) => process.stderr.write(`${s}\n`);

let seed = 11;
// the high bits of the LCG: its low bits repeat with a short period
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return Math.floor((seed / 2 ** 31) * n);
};
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const commitOf = (i: number) => createHash('sha1').update(`commit ${i}`).digest('hex');

async function openDriver(): Promise<{ driver: SqlDriver; label: string; cleanup: () => Promise<void> }> {
  if (!values.postgres) {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-trace-'));
    return { driver: new SqliteDriver(join(dir, 'metadata.sqlite')), label: 'SQLite', cleanup: () => rm(dir, { recursive: true, force: true }) };
  }
  const name = `portcullis_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: values.postgres });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(values.postgres);
  url.pathname = `/${name}`;
  const driver = new PostgresDriver({ connectionString: url.toString(), max: 10 });
  return {
    driver,
    label: 'PostgreSQL',
    cleanup: async () => {
      const c = new pg.Client({ connectionString: values.postgres });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function main(): Promise<void> {
  const { driver, label, cleanup } = await openDriver();
  const meta = new SqlMetadataStore(driver);
  await meta.migrate();
  const store = new TraceStore(driver);
  const deploymentStore = new SqlDeploymentStore(driver);

  log(`seeding ${N} images (${label})...`);
  const started = performance.now();
  const bases = Array.from({ length: 20 }, (_, b) => {
    const diffIds = Array.from({ length: 1 + (b % 3) }, (_, l) => sha(`base ${b} layer ${l}`));
    return { repository: `base/os-${b}`, digest: sha(`base manifest ${b}`), diffIds };
  });
  for (const b of bases) {
    const chains = chainIds(b.diffIds);
    await store.recordImage(
      { image: { repository: b.repository, digest: b.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', configDigest: sha(`config ${b.digest}`), layers: chains.length, topChain: chains.at(-1), created: undefined, pushedAt: Date.now() }, prefixChains: chains.slice(0, -1), sources: [], annotatedBase: undefined, children: [] },
      Date.now(),
    );
  }
  const images: Array<{ repository: string; digest: string; base: number }> = [];
  const uses = new Map<string, number>();
  const vulns = Array.from({ length: 5000 }, (_, v) => ({ cve: `CVE-2025-${String(10000 + v)}`, ghsa: `GHSA-${v.toString(36).padStart(4, '0')}-bench-0000` }));
  for (let i = 0; i < N; i++) {
    const project = `p${i % 100}`;
    const repository = `${project}/app-${Math.floor(i / 100) % 5}`;
    const digest = sha(`image ${i}`);
    const base = i % bases.length;
    const chains = chainIds([...bases[base]!.diffIds, sha(`image ${i} layer a`), sha(`image ${i} layer b`)]);
    const commit = commitOf(Math.floor(i / 5));
    await store.recordImage(
      {
        image: { repository, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', configDigest: sha(`config ${i}`), layers: chains.length, topChain: chains.at(-1), created: '2026-11-01T00:00:00Z', pushedAt: Date.now() },
        prefixChains: chains.slice(0, -1),
        sources: [{ how: 'annotation', ref: '', sourceRepository: `github.com/acme/${repository.replace('/', '-')}`, sourceUri: `https://github.com/acme/${repository.replace('/', '-')}`, commit, builder: undefined, buildType: undefined, created: '2026-11-01T00:00:00Z', verified: false }],
        annotatedBase: undefined,
        children: [],
      },
      Date.now(),
    );
    if (i % 2 === 0) {
      await store.setProvenance(repository, digest, [{ how: 'provenance', ref: `${sha(`att ${i}`)} https://slsa.dev/provenance/v1`, sourceRepository: `github.com/acme/${repository.replace('/', '-')}`, sourceUri: undefined, commit, builder: 'https://github.com/actions/runner/github-hosted', buildType: 'https://actions.github.io/buildtypes/workflow/v1', created: undefined, verified: true }], Date.now());
      await store.setVerdict({ repository, digest, verdict: 'verified', signers: ['key ci'], attestations: ['https://slsa.dev/provenance/v1'], policyVersion: 1, verifiedAt: Date.now() });
    }
    const rows = [];
    for (let f = 0; f < 20; f++) {
      const v = vulns[rand(vulns.length)]!;
      uses.set(v.cve, (uses.get(v.cve) ?? 0) + 1);
      const pkg = `pkg-${rand(300)}`;
      for (const id of [v.cve, v.ghsa]) rows.push({ vulnerability: id.toUpperCase(), package: pkg, installedVersion: '1.0.0', severity: ['critical', 'high', 'medium', 'low'][rand(4)]!, fixAvailable: rand(2) === 0, findingId: v.ghsa });
    }
    if (base < 4) rows.push({ vulnerability: 'CVE-2026-0001', package: 'openssl', installedVersion: '3.0.1', severity: 'critical', fixAvailable: true, findingId: 'CVE-2026-0001' });
    await store.setFindings(digest, rows);
    images.push({ repository, digest, base });
    if ((i + 1) % 2000 === 0) log(`  ${i + 1} images (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }
  // the sample image of the queries below runs in 3 workloads
  const sampleIndex = Math.min(1201, images.length - 99);
  for (let k = 0; k < 5000; k++) {
    const image = k < 3 ? images[sampleIndex]! : images[rand(images.length)]!;
    await deploymentStore.record(
      [{ cluster: `cluster-${k % 3}`, namespace: `ns-${k % 20}`, workloadKind: 'Deployment', workloadName: `w-${k}`, container: 'app', digest: image.digest, repository: image.repository, image: `registry.example.com/${image.repository}@${image.digest}` }],
      new Date(Date.now() - rand(86_400_000)),
    );
  }
  log(`seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const trace = new TraceService({ store, meta, blobs: {} as BlobStore, events: new EventBus(), deployments: deploymentSourceOf(deploymentStore) }, { maxResults: 1000 });
  const app = Fastify({ logger: false });
  app.setErrorHandler(registryErrorHandler);
  // "admin" sees everything; "reader" reads project p1 only (the filter runs per repository)
  const visibility: TraceVisibility = async (request) => ({ canRead: request.headers['x-as'] === 'reader' ? async (r) => r.startsWith('p1/') : async () => true, anonymous: false });
  await registerTraceRoutes(app, { trace, visibility });
  await app.ready();

  // an image of project p1, which the reader can read
  const sample = images[sampleIndex]!;
  const commit = commitOf(Math.floor(sampleIndex / 5));
  // the least used vulnerability that is used at all
  const rare = [...uses].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]!;
  const affected = images.filter((i) => i.base < 4).length.toLocaleString('en-US');
  const onBase = images.filter((i) => i.base === 3).length.toLocaleString('en-US');
  const queries: Array<[string, string]> = [
    ['graph of one digest (sources, bases, signatures, findings, deployments)', `/api/v1/trace/${sample.digest}`],
    [`graph of a base image (${onBase} images built on it)`, `/api/v1/trace/${bases[3]!.digest}`],
    ['images built from a commit (full id)', `/api/v1/trace/images?commit=${commit}`],
    ['images built from a commit (8-digit abbreviation)', `/api/v1/trace/images?commit=${commit.slice(0, 8)}`],
    ['where a commit runs (deployments)', `/api/v1/trace/deployments?commit=${commit}&verified=true`],
    ['where a digest runs', `/api/v1/trace/deployments?digest=${sample.digest}`],
    [`running workloads affected by a CVE in ${affected} images`, '/api/v1/trace/deployments?vulnerability=CVE-2026-0001'],
    [`running workloads affected by a rarer CVE (in ${rare[1]} images)`, `/api/v1/trace/deployments?vulnerability=${rare[0]}`],
    [`images with a CVE in ${affected} images (1,000 listed at most)`, '/api/v1/trace/images?vulnerability=CVE-2026-0001'],
  ];
  const results: string[] = [];
  for (const as of ['admin', 'reader']) {
    for (const [name, url] of queries) {
      const times: number[] = [];
      let answer: any;
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        const res = await app.inject({ method: 'GET', url, headers: { 'x-as': as } });
        times.push(performance.now() - t0);
        // the reader cannot read the base images' project: answered like an unknown digest
        if (res.statusCode !== 200 && !(res.statusCode === 404 && as === 'reader')) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`);
        answer = res.json();
      }
      const size = answer.errors
        ? '404 (not readable)'
        : answer.digest
          ? `graph: ${answer.derived.length} built on it, ${answer.deployments.length} deployments`
          : answer.deployments
            ? `${answer.images.length} images${answer.truncated ? ' (truncated)' : ''}, ${answer.deployments.length} deployments`
            : `${answer.images.length} images${answer.truncated ? ' (truncated)' : ''}`;
      results.push(`| ${label} | ${as} | ${name} | ${size} | ${percentile(times, 0.5).toFixed(1)} | ${percentile(times, 0.95).toFixed(1)} |`);
      log(results.at(-1)!);
    }
  }
  console.log(`\n${N.toLocaleString('en-US')} images, ${label}, ${ROUNDS} rounds per query\n`);
  console.log('| Backend | Caller | Query | Answer | Median ms | p95 ms |');
  console.log('|---|---|---|---|---:|---:|');
  for (const r of results) console.log(r);
  await app.close();
  await driver.close();
  await cleanup();
}

await main();
