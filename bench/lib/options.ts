/**
 * Command-line options and environment variables of `npm run bench`.
 */
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { MiB } from './oci.ts';
import type { TargetName } from './targets.ts';

export const HELP = `Usage: npm run bench -- [options]     (or: node bench/run.ts [options])

Benchmarks Portcullis against the reference registry (CNCF distribution 2.8.2,
/usr/bin/docker-registry), interleaving the two, and prints a markdown table.

Options (environment variable in brackets):
  --quick               small sizes and short runs, for smoke tests      [BENCH_QUICK=1]
  --rounds N            samples per registry and scenario (default 2)    [BENCH_ROUNDS]
  --only LIST           comma-separated scenario ids or prefixes         [BENCH_ONLY]
  --skip LIST           scenarios to leave out                           [BENCH_SKIP]
  --targets LIST        portcullis,distribution (default both)           [BENCH_TARGETS]
  --gc-blobs N          orphaned blobs created for the gc scenario       [BENCH_GC_BLOBS]
                        (default 100000, quick 2000)
  --json FILE           also write every sample as JSON                  [BENCH_JSON]
  --keep                keep the temporary data directories              [BENCH_KEEP=1]
  --help                this text

Other environment variables:
  BENCH_DIR              parent of the temporary data directories (default: the OS temp dir)
  BENCH_DISTRIBUTION_BIN reference registry binary (default /usr/bin/docker-registry)
  BENCH_PORTCULLIS_ARGS  extra arguments for 'portcullis serve' (space-separated)
  BENCH_GC_ARGS          arguments of the gc run, {dataDir} is replaced
                         (default: "gc --data-dir {dataDir}")
  BENCH_GC_TIMEOUT_S     bound on the gc run (default 1800, quick 300)
  BENCH_GC_GRACE_S       grace period of unreferenced blobs for the gc scenario, given to
                         server and gc as PORTCULLIS_GC_BLOB_GRACE_SECONDS (default 10);
                         gc starts once the newest orphan is older than that

Scenario ids: push-c1 push-c4 chunked pull-c1 pull-c8 images manifests tags catalog rss gc
`;

export interface Sizes {
  blobSize: number;
  pushBlobsC1: number;
  pushBlobsC4: number;
  chunkSize: number;
  chunkedBlobs: number;
  pullBlobs: number;
  pullsC1: number;
  pullsC8: number;
  images: number;
  manifestDurationMs: number;
  manifestWarmupMs: number;
  tags: number;
  tagListMs: number;
  repos: number;
  catalogPageSize: number;
  catalogWalkMs: number;
  rssBlobUnit: number;
  rssBlobRepeat: number;
  gcBlobs: number;
  gcTimeoutMs: number;
  /** Bound on one timed sample (no new operation starts after it). */
  sampleMaxMs: number;
  /** Bound on an untimed setup step. */
  setupMaxMs: number;
}

export interface Options {
  quick: boolean;
  rounds: number;
  only: string[];
  skip: string[];
  targets: TargetName[];
  json?: string;
  keep: boolean;
  tmpParent: string;
  distributionBin: string;
  portcullisArgs: string[];
  gcArgs: string[];
  gcGraceSeconds: number;
  sizes: Sizes;
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      skip: { type: 'string' },
      targets: { type: 'string' },
      'gc-blobs': { type: 'string' },
      json: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const quick = values.quick ?? truthy(env.BENCH_QUICK);
  const rounds = positiveInt(values.rounds ?? env.BENCH_ROUNDS, 'rounds') ?? 2;
  const targets = list(values.targets ?? env.BENCH_TARGETS);
  for (const t of targets) if (t !== 'portcullis' && t !== 'distribution') throw new Error(`unknown target ${t}`);
  const gcBlobs = positiveInt(values['gc-blobs'] ?? env.BENCH_GC_BLOBS, 'gc-blobs') ?? (quick ? 2_000 : 100_000);
  const gcTimeoutS = positiveInt(env.BENCH_GC_TIMEOUT_S, 'BENCH_GC_TIMEOUT_S') ?? (quick ? 300 : 1_800);
  const sizes: Sizes = quick
    ? {
        blobSize: 16 * MiB,
        pushBlobsC1: 3,
        pushBlobsC4: 8,
        chunkSize: 8 * MiB,
        chunkedBlobs: 3,
        pullBlobs: 4,
        pullsC1: 4,
        pullsC8: 16,
        images: 24,
        manifestDurationMs: 1_000,
        manifestWarmupMs: 200,
        tags: 100,
        tagListMs: 800,
        repos: 100,
        catalogPageSize: 20,
        catalogWalkMs: 800,
        rssBlobUnit: 16 * MiB,
        rssBlobRepeat: 8,
        gcBlobs,
        gcTimeoutMs: gcTimeoutS * 1000,
        sampleMaxMs: 30_000,
        setupMaxMs: 120_000,
      }
    : {
        blobSize: 64 * MiB,
        pushBlobsC1: 8,
        pushBlobsC4: 16,
        chunkSize: 8 * MiB,
        chunkedBlobs: 8,
        pullBlobs: 8,
        pullsC1: 32,
        pullsC8: 32,
        images: 200,
        manifestDurationMs: 5_000,
        manifestWarmupMs: 500,
        tags: 1_000,
        tagListMs: 3_000,
        repos: 1_000,
        catalogPageSize: 100,
        catalogWalkMs: 5_000,
        rssBlobUnit: 64 * MiB,
        rssBlobRepeat: 16,
        gcBlobs,
        gcTimeoutMs: gcTimeoutS * 1000,
        sampleMaxMs: 120_000,
        setupMaxMs: 600_000,
      };
  const json = values.json ?? env.BENCH_JSON;
  return {
    quick,
    rounds,
    only: list(values.only ?? env.BENCH_ONLY),
    skip: list(values.skip ?? env.BENCH_SKIP),
    targets: targets.length ? (targets as TargetName[]) : ['portcullis', 'distribution'],
    ...(json ? { json } : {}),
    keep: values.keep ?? truthy(env.BENCH_KEEP),
    tmpParent: env.BENCH_DIR || tmpdir(),
    distributionBin: env.BENCH_DISTRIBUTION_BIN || '/usr/bin/docker-registry',
    portcullisArgs: (env.BENCH_PORTCULLIS_ARGS ?? '').split(/\s+/).filter(Boolean),
    gcArgs: (env.BENCH_GC_ARGS || 'gc --data-dir {dataDir}').split(/\s+/).filter(Boolean),
    gcGraceSeconds: env.BENCH_GC_GRACE_S === '0' ? 0 : (positiveInt(env.BENCH_GC_GRACE_S, 'BENCH_GC_GRACE_S') ?? 10),
    sizes,
  };
}

/** Whether scenario `id` is selected by --only/--skip (exact id or prefix such as "push"). */
export function selected(options: Options, id: string): boolean {
  const matches = (pattern: string) => id === pattern || id.startsWith(`${pattern}-`);
  if (options.skip.some(matches)) return false;
  return options.only.length === 0 || options.only.some(matches);
}
