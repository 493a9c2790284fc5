/**
 * `node bench/image-cpu.ts [--images N] [--rounds R] [--targets portcullis,distribution]`: the
 * server CPU one small image push costs (3 × 16 KiB layers + config, each POST + PUT, then the
 * manifest PUT; 4 images in parallel, as in `npm run bench`'s images scenario).
 *
 * Images per second on this shared 2-CPU machine swing by 20% and more from one run to the next;
 * the CPU time a server spends per image moves by a few percent, so this is the figure to compare
 * changes to the push path with. CPU is utime + stime from /proc/<pid>/task/<tid>/stat over the
 * timed pushes plus 1.5 s after them (the scanner's and audit log's work that follows a push),
 * per thread name for Portcullis (the event loop is "MainThread"), for the whole process for
 * distribution (whose threads are not told apart). A fresh server per round, warmed up with 100
 * untimed images; rounds alternate between the targets. Prints a markdown table on stdout. Not part
 * of `npm run bench`; the defaults (400 images, 3 rounds) take about a minute per target.
 */
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { threadCpuMs } from './lib/cpu.ts';
import { median, runOps } from './lib/load.ts';
import { closeClient, makeClient, makeSmallImage, pushSmallImage } from './lib/oci.ts';
import { cleanupAll, log } from './lib/procs.ts';
import { type TargetName, startTarget } from './lib/targets.ts';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '3' },
    targets: { type: 'string', default: 'portcullis,distribution' },
  },
});
const images = Number(values.images);
const rounds = Number(values.rounds);
const targets = values.targets.split(',') as TargetName[];
if (!(images > 0 && images <= 100_000 && rounds > 0 && rounds <= 50) || targets.some((t) => t !== 'portcullis' && t !== 'distribution')) {
  console.error('usage: node bench/image-cpu.ts [--images 1..100000] [--rounds 1..50] [--targets portcullis,distribution]');
  process.exit(2);
}

interface Sample {
  imagesPerSecond: number;
  totalMs: number;
  byThread: Map<string, number>;
}

async function sample(target: TargetName): Promise<Sample> {
  const server = await startTarget(target, { tmpParent: tmpdir(), distributionBin: process.env.BENCH_DISTRIBUTION_BIN ?? '/usr/bin/docker-registry', portcullisArgs: [], portcullisEnv: {} });
  const client = makeClient(server.url, 4);
  try {
    const warmup = Array.from({ length: 100 }, () => makeSmallImage(3, 16 * 1024));
    await runOps({ count: warmup.length, concurrency: 4, maxMs: 120_000, stopOnError: true }, (i) => pushSmallImage(client, `warmup/r${i % 16}`, warmup[i]!, `w${i}`));
    const batch = Array.from({ length: images }, () => makeSmallImage(3, 16 * 1024));
    await sleep(1500);
    const before = threadCpuMs(server.pid);
    const started = performance.now();
    const result = await runOps({ count: batch.length, concurrency: 4, maxMs: 600_000, stopOnError: true }, (i) => pushSmallImage(client, `timed/r${i % 16}`, batch[i]!, `t${i}`));
    const seconds = (performance.now() - started) / 1000;
    if (result.failed > 0 || result.capped) throw new Error(`${result.failed} pushes failed on ${target}: ${result.firstError?.message ?? 'time limit reached'}`);
    await sleep(1500);
    const after = threadCpuMs(server.pid);
    const byThread = new Map<string, number>();
    for (const [name, ms] of after) byThread.set(name, (ms - (before.get(name) ?? 0)) / images);
    const totalMs = [...byThread.values()].reduce((sum, ms) => sum + ms, 0);
    return { imagesPerSecond: images / seconds, totalMs, byThread };
  } finally {
    closeClient(client);
    await server.stop();
  }
}

try {
  const samples = new Map<TargetName, Sample[]>(targets.map((t) => [t, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
      const s = await sample(target);
      samples.get(target)!.push(s);
      log(`${target} round ${round}: ${s.imagesPerSecond.toFixed(1)} images/s, ${s.totalMs.toFixed(2)} ms CPU per image`);
    }
  }
  const fmt = (values: number[]) => `${median(values).toFixed(2)} (${values.map((v) => v.toFixed(2)).join(', ')})`;
  const lines = [`# Server CPU per small-image push (${images} images per round, ${rounds} rounds, fresh server each)`, '', '| Target | Measure | Median (samples) |', '|---|---|---|'];
  for (const [target, list] of samples) {
    lines.push(`| ${target} | images/s | ${fmt(list.map((s) => s.imagesPerSecond))} |`);
    lines.push(`| ${target} | CPU ms per image, whole process | ${fmt(list.map((s) => s.totalMs))} |`);
    if (target === 'portcullis') {
      const names = [...new Set(list.flatMap((s) => [...s.byThread.keys()]))].filter((name) => list.some((s) => (s.byThread.get(name) ?? 0) >= 0.01));
      for (const name of names) lines.push(`| ${target} | CPU ms per image, threads named ${name} | ${fmt(list.map((s) => s.byThread.get(name) ?? 0))} |`);
    }
  }
  console.log(lines.join('\n'));
} finally {
  await cleanupAll();
}
