/**
 * Garbage-collection scenario, Portcullis only (distribution collects garbage only offline, in
 * read-only mode). Fills a fresh registry with orphaned blobs, runs `portcullis gc` against its
 * data directory while pushes continue, then checks that every accepted image is intact.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { runOps } from './lib/load.ts';
import {
  type Client,
  type SmallImage,
  closeClient,
  getManifest,
  headBlob,
  makeClient,
  makeSmallImage,
  pushSmallBlob,
  pushSmallImage,
  putManifest,
} from './lib/oci.ts';
import type { Options } from './lib/options.ts';
import { log, stopChild, trackChild } from './lib/procs.ts';
import { PORTCULLIS_BIN, type Server, type TargetConfig, startPortcullis } from './lib/targets.ts';

export interface GcReport {
  status: 'ok' | 'failed' | 'not-run';
  reason?: string;
  orphansRequested: number;
  orphansCreated: number;
  createMs: number;
  gcMs: number;
  gcExit?: number | string;
  keepers: number;
  pushesDuringGc: number;
  pushesFailed: number;
  firstPushError?: string;
  /**
   * Pushes that HEADed an orphan (200), skipped its upload as clients do, and then had their
   * manifest refused because gc removed the blob meanwhile. A real client's push fails there;
   * the benchmark retries once with the blob uploaded to keep going.
   */
  reuseRefused: number;
  firstReuseRefusal?: string;
  imagesChecked: number;
  imagesBroken: number;
  firstBroken?: string;
  orphanSample: number;
  orphanSampleRemoved: number;
  gcOutputTail: string;
  /** The first line gc printed that starts with "gc:". */
  gcSummary?: string;
}

interface Accepted {
  repo: string;
  tag: string;
  blobs: string[];
}

const ORPHAN_REPO = 'gc/orphans';

interface Orphan {
  data: Buffer;
  digest: string;
}

export async function runGcScenario(options: Options, targetConfig: TargetConfig): Promise<GcReport> {
  const s = options.sizes;
  const report: GcReport = {
    status: 'not-run',
    orphansRequested: s.gcBlobs,
    orphansCreated: 0,
    createMs: 0,
    gcMs: 0,
    keepers: 0,
    pushesDuringGc: 0,
    pushesFailed: 0,
    reuseRefused: 0,
    imagesChecked: 0,
    imagesBroken: 0,
    orphanSample: 0,
    orphanSampleRemoved: 0,
    gcOutputTail: '',
  };
  // The server and the gc run share the grace period of unreferenced blobs.
  const graceEnv = { PORTCULLIS_GC_BLOB_GRACE_SECONDS: String(options.gcGraceSeconds) };
  let server: Server;
  try {
    server = await startPortcullis({ ...targetConfig, portcullisEnv: { ...targetConfig.portcullisEnv, ...graceEnv } });
  } catch (error) {
    report.reason = (error as Error).message.split('\n')[0];
    return report;
  }
  const client = makeClient(server.url, 8);
  const accepted: Accepted[] = [];
  try {
    // Images that must survive.
    const keep = await runOps({ count: 20, concurrency: 4, maxMs: s.setupMaxMs }, async (i) => {
      const image = makeSmallImage(3, 16 * 1024);
      await pushSmallImage(client, 'gc/keep', image, `k${i}`);
      accepted.push({ repo: 'gc/keep', tag: `k${i}`, blobs: blobsOf(image) });
    });
    if (keep.failed) throw new Error(`pushing the images to keep failed: ${keep.firstError?.message}`);
    report.keepers = accepted.length;

    // Orphans: blobs no manifest references.
    log(`gc: creating ${s.gcBlobs} orphaned blobs`);
    const orphans: Orphan[] = [];
    let t0 = performance.now();
    let lastLog = t0;
    const create = await runOps({ count: s.gcBlobs, concurrency: 8, maxMs: s.gcTimeoutMs }, async () => {
      const data = randomBytes(256);
      orphans.push({ data, digest: await pushSmallBlob(client, ORPHAN_REPO, data) });
      if (performance.now() - lastLog > 15_000) {
        lastLog = performance.now();
        log(`gc: ${orphans.length} orphans created`);
      }
    });
    report.createMs = performance.now() - t0;
    report.orphansCreated = orphans.length;
    if (create.failed) throw new Error(`creating orphans failed: ${create.firstError?.message}`);
    log(`gc: ${orphans.length} orphans created in ${(report.createMs / 1000).toFixed(1)} s`);
    // Pushes during gc reuse orphans in random order, so some meet gc's frontier.
    for (let i = orphans.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [orphans[i], orphans[j]] = [orphans[j]!, orphans[i]!];
    }
    // Let the newest orphan outlive the grace period, so gc may delete every orphan.
    const waitMs = options.gcGraceSeconds * 1000 + 1_000;
    log(`gc: waiting ${waitMs / 1000} s for the grace period (${options.gcGraceSeconds} s) to pass`);
    await sleep(waitMs);

    // The gc run, with pushes going on.
    const args = [PORTCULLIS_BIN, ...options.gcArgs.map((a) => a.replaceAll('{dataDir}', server.dataDir))];
    log(`gc: running node ${args.slice(1).join(' ')}`);
    const gc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PORTCULLIS_LOG_LEVEL: 'error', ...process.env, ...graceEnv } });
    trackChild(gc);
    let output = '';
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_192);
    };
    gc.stdout.on('data', onData);
    gc.stderr.on('data', onData);
    t0 = performance.now();
    let running = true;
    const exited = new Promise<number | string>((resolve) => {
      gc.once('exit', (code, signal) => {
        running = false;
        resolve(code ?? signal ?? 'unknown');
      });
      gc.once('error', (error) => {
        running = false;
        resolve(`spawn error: ${error.message}`);
      });
    });
    const killer = setTimeout(() => {
      log(`gc: still running after ${s.gcTimeoutMs / 1000} s, stopping it`);
      void stopChild(gc);
    }, s.gcTimeoutMs);

    let pushIndex = 0;
    let orphanIndex = 0;
    const pusher = async () => {
      const maxPushes = 1_000_000;
      while (running && pushIndex < maxPushes) {
        const i = pushIndex++;
        report.pushesDuringGc++;
        try {
          if (i % 2 === 1 && orphanIndex < orphans.length) {
            accepted.push(await pushReusingOrphan(client, orphans[orphanIndex++]!, i, report));
          } else {
            const image = makeSmallImage(3, 16 * 1024);
            await pushSmallImage(client, 'gc/during', image, `d${i}`);
            accepted.push({ repo: 'gc/during', tag: `d${i}`, blobs: blobsOf(image) });
          }
        } catch (error) {
          report.pushesFailed++;
          report.firstPushError ??= (error as Error).message;
          await sleep(10);
        }
      }
    };
    const pushers = Promise.all([pusher(), pusher()]);
    report.gcExit = await exited;
    report.gcMs = performance.now() - t0;
    clearTimeout(killer);
    await pushers;
    report.gcOutputTail = output.trim().split('\n').slice(-15).join('\n');
    const summary = /^gc:.*$/m.exec(output)?.[0];
    if (summary) report.gcSummary = summary;
    log(`gc: exited ${report.gcExit} after ${(report.gcMs / 1000).toFixed(1)} s; ${report.pushesDuringGc} pushes meanwhile, ${report.pushesFailed} failed`);

    if (report.gcExit !== 0) {
      const unavailable = /unknown (command|subcommand)|not a command|usage:|no such command|invalid command/i.test(output) && report.gcMs < 10_000;
      report.status = unavailable ? 'not-run' : 'failed';
      report.reason = unavailable ? `the gc command is not available yet (exit ${report.gcExit})` : `gc exited with ${report.gcExit}`;
    }

    // Every accepted image must still be complete.
    const check = await runOps({ count: accepted.length, concurrency: 8, maxMs: s.setupMaxMs, stopOnError: false }, async (i) => {
      const image = accepted[i]!;
      const res = await getManifest(client, image.repo, image.tag);
      if (res.status !== 200) throw new Error(`${image.repo}:${image.tag} manifest: HTTP ${res.status}`);
      for (const digest of image.blobs) {
        const status = await headBlob(client, image.repo, digest);
        if (status !== 200) throw new Error(`${image.repo}:${image.tag} blob ${digest.slice(0, 19)}: HTTP ${status}`);
      }
    });
    report.imagesChecked = accepted.length;
    report.imagesBroken = check.failed;
    if (check.firstError) report.firstBroken = check.firstError.message;

    // How many of the orphans nobody reused are gone (informational: gc may keep recent blobs).
    const unused = orphans.slice(orphanIndex).map((o) => o.digest);
    const sample = Array.from({ length: Math.min(200, unused.length) }, (_, k) => unused[Math.floor((k * unused.length) / Math.min(200, unused.length))]!);
    for (const digest of sample) if ((await headBlob(client, ORPHAN_REPO, digest)) === 404) report.orphanSampleRemoved++;
    report.orphanSample = sample.length;

    if (report.gcExit === 0) {
      const problems = [
        report.pushesFailed ? `${report.pushesFailed} push(es) failed during gc` : '',
        report.reuseRefused ? `${report.reuseRefused} manifest(s) refused after HEAD had reported their blob present` : '',
        report.imagesBroken ? `${report.imagesBroken} accepted image(s) broken after gc` : '',
      ].filter(Boolean);
      report.status = problems.length ? 'failed' : 'ok';
      if (problems.length) report.reason = problems.join('; ');
    }
  } catch (error) {
    report.status = 'failed';
    report.reason = (error as Error).message;
  } finally {
    closeClient(client);
    await server.stop();
  }
  return report;
}

function blobsOf(image: SmallImage): string[] {
  return [...image.layers.map((l) => l.digest), image.config.digest];
}

/**
 * What a client does when a layer may already exist: HEAD it and skip the upload when present,
 * push the config and the manifest. If gc removed the blob in between and the manifest is
 * refused, upload the blob and retry once (counted in reuseRefused; a second refusal throws).
 */
async function pushReusingOrphan(client: Client, orphan: Orphan, i: number, report: GcReport): Promise<Accepted> {
  const image = makeSmallImage(1, 16 * 1024, [{ digest: orphan.digest, size: orphan.data.length }]);
  const tag = `r${i}`;
  if ((await headBlob(client, ORPHAN_REPO, orphan.digest)) !== 200) await pushSmallBlob(client, ORPHAN_REPO, orphan.data, orphan.digest);
  for (const layer of image.layers) await pushSmallBlob(client, ORPHAN_REPO, layer.data, layer.digest);
  await pushSmallBlob(client, ORPHAN_REPO, image.config.data, image.config.digest);
  try {
    await putManifest(client, ORPHAN_REPO, tag, image.manifest);
  } catch (error) {
    report.reuseRefused++;
    report.firstReuseRefusal ??= `${orphan.digest}: ${(error as Error).message}`;
    await pushSmallBlob(client, ORPHAN_REPO, orphan.data, orphan.digest);
    await putManifest(client, ORPHAN_REPO, tag, image.manifest);
  }
  return { repo: ORPHAN_REPO, tag, blobs: [...blobsOf(image), orphan.digest] };
}
