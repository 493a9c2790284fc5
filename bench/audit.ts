/**
 * `node bench/audit.ts [--mode pairs|fresh] [--pairs P] [--rounds R] [--seconds S] [--connections C] [--coalesce-ms MS] [--control] [--verify-records N]`:
 * the cost of auditing.
 *
 * 1. Manifest GET by tag against Portcullis with the audit log on and off, interleaved. Besides
 *    req/s it reports the SERVER's CPU time per request (utime + stime of the server process from
 *    /proc/<pid>/stat, all its threads, across each measured window divided by the requests of
 *    that window): on a shared machine req/s follow whatever else runs, while the CPU a request
 *    costs the server moves much less, and the difference on - off is what auditing costs.
 *    After each window the script waits for the audit log's flush interval (and a margin) before
 *    reading the CPU again, so the batch holding a window's last records is counted in it.
 *    - `pairs` (default): `--pairs` pairs of servers (one on, one off), started together (which
 *      one first alternates) and warmed up, then `--rounds` rounds of one window on each,
 *      alternating (on off, off on, ...). One server process can run a few percent slower than
 *      another for no reason of its own (an A/A run with one pair showed it), so the pairs are
 *      fresh and the paired differences of adjacent windows are reported too.
 *    - `fresh`: a fresh server per sample (3 s warm-up each), `--pairs` x `--rounds` samples each.
 *    With auditing on every request is recorded (identical pulls within `--coalesce-ms`, 1000 by
 *    default as in the server's configuration, share one record with a count; 0 gives a record per
 *    pull); the pulls the records stand for are checked against the requests (and
 *    `audit.dropped` records counted). `--control` runs both servers with auditing off (an A/A
 *    run): what it reports as a cost is the method's noise floor on this machine.
 * 2. With --verify-records N: time of `verifyAuditLog` over N records (written straight into a
 *    SQLite audit store, checkpoints every 10,000).
 *
 * Prints a markdown table on stdout (progress on stderr). Not part of `npm run bench`. Defaults
 * (3 pairs, 2 rounds of 4 s, 32 connections) take about 100 s.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { loadOrCreateSigningKey, loadTrustedKeys } from '../src/registry/audit/keys.ts';
import { fieldsOf } from '../src/registry/audit/record.ts';
import { SqlAuditStore } from '../src/registry/audit/store.ts';
import { verifyAuditLog } from '../src/registry/audit/verify.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';
import { request } from './lib/http.ts';
import { loadTest, median } from './lib/load.ts';
import { MANIFEST_ACCEPT, closeClient, makeClient, makeSmallImage, pushSmallImage } from './lib/oci.ts';
import { processCpuUs } from './lib/cpu.ts';
import { cleanupAll, log } from './lib/procs.ts';
import { PORTCULLIS_BIN, type Server, startPortcullis } from './lib/targets.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'pairs' },
    pairs: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    control: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '4' },
    connections: { type: 'string', default: '32' },
    'verify-records': { type: 'string', default: '0' },
    'coalesce-ms': { type: 'string', default: '1000' },
  },
});
const mode = values.mode;
if (mode !== 'pairs' && mode !== 'fresh') throw new Error('--mode is pairs or fresh');
const pairs = Number(values.pairs);
const rounds = Number(values.rounds);
const control = values.control;
const durationMs = Number(values.seconds) * 1000;
const connections = Number(values.connections);
const verifyRecords = Number(values['verify-records']);
/** `audit.pulls.coalesceMs` of the audited server (1000 is the default; 0 records every pull). */
const coalesceMs = Number(values['coalesce-ms']);
/** The pull window, the default `audit.queue.flushIntervalMs` and a margin: a window's last batch is written by then. */
const SETTLE_MS = coalesceMs + 600;

interface Sample {
  rps: number;
  p99: number;
  /** Requests of the measured window. */
  requests: number;
  /** Server CPU time during the window (and the settle time after it), microseconds. */
  cpuUs: number;
}

interface Target {
  audit: boolean;
  server: Server;
  op: () => Promise<void>;
  close: () => void;
  /** Every request sent to it (warm-up included), to check against the records written. */
  sent: number;
}

function auditCount(server: Server): { records: number; pulls: number; dropped: number } {
  const out = execFileSync(process.execPath, [PORTCULLIS_BIN, 'audit', 'verify', '--data-dir', server.dataDir], { encoding: 'utf8' });
  const records = Number(/OK: (\d+) records/.exec(out)?.[1] ?? NaN);
  // Pulls the records stand for: a coalesced record counts `details.count` pulls.
  const db = new DatabaseSync(join(server.dataDir, 'audit', 'audit.sqlite'), { readOnly: true });
  const pulls = Number((db.prepare(`SELECT COALESCE(SUM(COALESCE(json_extract(details, '$.count'), 1)), 0) AS n FROM audit_records WHERE action = 'manifest.pulled'`).get() as { n: number }).n);
  db.close();
  const dropped = execFileSync(process.execPath, [PORTCULLIS_BIN, 'audit', 'query', '--data-dir', server.dataDir, '--action', 'audit.dropped', '--json'], { encoding: 'utf8' });
  const total = (JSON.parse(dropped) as { records: Array<{ details: { count: number } }> }).records.reduce((n, r) => n + r.details.count, 0);
  return { records, pulls, dropped: total };
}

async function startTarget(audit: boolean): Promise<Target> {
  const server = await startPortcullis({ tmpParent: tmpdir(), distributionBin: '', portcullisArgs: [], portcullisEnv: { PORTCULLIS_AUDIT_ENABLED: String(audit && !control), PORTCULLIS_AUDIT_PULLS_COALESCE_MS: String(coalesceMs) } });
  try {
    const setup = makeClient(server.url, 1);
    await pushSmallImage(setup, 'bench/manifests', makeSmallImage(3, 16 * 1024), 'latest');
    closeClient(setup);
    const client = makeClient(server.url, connections);
    const url = new URL('/v2/bench/manifests/manifests/latest', client.base);
    const op = async () => {
      const res = await request({ method: 'GET', url, agent: client.agent, headers: { accept: MANIFEST_ACCEPT }, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`GET manifest: HTTP ${res.status}`);
    };
    return { audit, server, op, close: () => closeClient(client), sent: 0 };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

async function measure(target: Target, ms: number): Promise<Sample> {
  const cpu0 = processCpuUs(target.server.pid);
  const result = await loadTest({ connections, durationMs: ms, maxRequests: 5_000_000 }, target.op);
  target.sent += result.requests + result.failed;
  if (result.failed > 0) throw new Error(`${result.failed} requests failed: ${result.firstError?.message}`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { rps: result.reqPerSec, p99: result.p99Ms, requests: result.requests, cpuUs: processCpuUs(target.server.pid) - cpu0 };
}

async function stopTarget(target: Target): Promise<{ records: number; pulls: number; dropped: number } | undefined> {
  target.close();
  try {
    if (!target.audit || control) return undefined;
    return auditCount(target.server);
  } finally {
    await target.server.stop();
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const perRequest = (s: Sample) => s.cpuUs / s.requests;
const label = (audit: boolean) => (control ? `${audit ? 'A' : 'B'} (audit off)` : `audit ${audit ? 'on' : 'off'}`);

/**
 * Samples of both settings, interleaved; the differences on - off of adjacent windows on the same
 * pair of servers (CPU µs per request); the audit counts of the servers that had it on.
 */
async function runGets(): Promise<{ on: Sample[]; off: Sample[]; differences: number[]; records: number; pulls: number; requests: number; dropped: number }> {
  const on: Sample[] = [];
  const off: Sample[] = [];
  const differences: number[] = [];
  const counts = { records: 0, pulls: 0, requests: 0, dropped: 0 };
  const note = (target: Target, s: Sample, where: string) => {
    log(`${where}, ${label(target.audit)}: ${fmt(s.rps)} req/s, p99 ${fmt(s.p99, 2)} ms, ${fmt(perRequest(s), 1)} µs server CPU per request`);
    (target.audit ? on : off).push(s);
  };
  const tally = async (target: Target) => {
    const count = await stopTarget(target);
    if (!count) return;
    counts.records += count.records;
    counts.pulls += count.pulls;
    counts.requests += target.sent;
    counts.dropped += count.dropped;
  };
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? [true, false] : [false, true];
    if (mode === 'fresh') {
      for (let round = 0; round < rounds; round++) {
        for (const audit of round % 2 === 0 ? order : order.toReversed()) {
          const target = await startTarget(audit);
          try {
            await measure(target, 3000);
            note(target, await measure(target, durationMs), `sample ${pair * rounds + round + 1}/${pairs * rounds}`);
          } finally {
            await tally(target);
          }
        }
      }
      continue;
    }
    const targets: Target[] = [];
    try {
      for (const audit of order) targets.push(await startTarget(audit));
      for (const target of targets) {
        log(`pair ${pair + 1}/${pairs}: warming up (${label(target.audit)})`);
        await measure(target, 3000);
      }
      for (let round = 0; round < rounds; round++) {
        const cpu = { on: 0, off: 0 };
        for (const target of round % 2 === 0 ? targets : targets.toReversed()) {
          const s = await measure(target, durationMs);
          note(target, s, `pair ${pair + 1}/${pairs}, round ${round + 1}/${rounds}`);
          cpu[target.audit ? 'on' : 'off'] = perRequest(s);
        }
        differences.push(cpu.on - cpu.off);
      }
    } finally {
      for (const target of targets) await tally(target);
    }
  }
  return { on, off, differences, ...counts };
}

async function verifyBench(count: number): Promise<{ writeMs: number; verifyMs: number; records: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-audit-verify-'));
  try {
    const signer = await loadOrCreateSigningKey(join(dir, 'key.pem'));
    const store = new SqlAuditStore(new SqliteDriver(join(dir, 'audit.sqlite')));
    await store.migrate();
    const started = performance.now();
    const batch = 5000;
    for (let done = 0; done < count; done += batch) {
      const fields = Array.from({ length: Math.min(batch, count - done) }, (_, i) =>
        fieldsOf(
          {
            actor: { kind: 'user', name: `user${(done + i) % 97}`, auth: 'token' },
            client: `10.0.${(done + i) % 250}.1`,
            userAgent: 'containerd/2.0.0',
            requestId: `req-${done + i}`,
            action: 'manifest.pulled',
            repository: `project${(done + i) % 13}/app`,
            digest: `sha256:${'c'.repeat(64)}`,
            tag: 'v1',
            outcome: 'success',
            details: { mediaType: 'application/vnd.oci.image.manifest.v1+json' },
          },
          Date.now(),
        ),
      );
      await store.append(fields, { signer, everyRecords: 10_000, everyMs: 3_600_000, now: Date.now() });
    }
    const writeMs = performance.now() - started;
    const keys = await loadTrustedKeys([`${join(dir, 'key')}.pub.pem`]);
    const t = performance.now();
    const report = await verifyAuditLog(store, { keys });
    const verifyMs = performance.now() - t;
    if (!report.ok) throw new Error(report.failure?.message);
    await store.close();
    return { writeMs, verifyMs, records: report.records };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

try {
  const what = mode === 'pairs' ? `${pairs} server pairs x ${rounds} rounds` : `${pairs * rounds} fresh servers each`;
  const lines = [`# Audit cost (${availableParallelism()} CPUs, Node ${process.version}, ${what}, ${durationMs / 1000} s per sample, ${connections} connections${control ? ', CONTROL: auditing off on both' : ''})`, ''];
  if (pairs > 0 && rounds > 0) {
    const { on, off, differences, records, pulls, requests, dropped } = await runGets();
    const rOn = median(on.map((s) => s.rps));
    const rOff = median(off.map((s) => s.rps));
    const cOn = median(on.map(perRequest));
    const cOff = median(off.map(perRequest));
    const total = (samples: Sample[]) => samples.reduce((n, s) => n + s.cpuUs, 0) / samples.reduce((n, s) => n + s.requests, 0);
    lines.push(`| Manifest GET by tag | ${label(false)} | ${label(true)} | ratio |`, '|---|---:|---:|---:|');
    lines.push(`| req/s (median) | ${fmt(rOff)} | ${fmt(rOn)} | ${fmt(rOn / rOff, 3)} |`);
    lines.push(`| p99 ms (median) | ${fmt(median(off.map((s) => s.p99)), 2)} | ${fmt(median(on.map((s) => s.p99)), 2)} | |`);
    lines.push(`| server CPU µs per request (median) | ${fmt(cOff, 1)} | ${fmt(cOn, 1)} | ${fmt(cOn / cOff, 3)} |`);
    lines.push(`| server CPU µs per request (all samples) | ${fmt(total(off), 1)} | ${fmt(total(on), 1)} | ${fmt(total(on) / total(off), 3)} |`);
    lines.push(`| per-sample CPU µs per request | ${off.map((s) => fmt(perRequest(s), 0)).join(', ')} | ${on.map((s) => fmt(perRequest(s), 0)).join(', ')} | |`);
    if (differences.length > 0) lines.push(`| paired differences, CPU µs per request (adjacent windows, same pair) | | ${differences.map((d) => fmt(d, 0)).join(', ')} | median ${fmt(median(differences), 1)} |`);
    if (!control) lines.push(`| records written; pulls they record / GET requests (audit on, pulls coalesced over ${coalesceMs} ms) | | ${fmt(records)}; ${fmt(pulls)} / ${fmt(requests)} | dropped: ${dropped} |`);
    lines.push('');
    const cost = differences.length > 0 ? median(differences) : cOn - cOff;
    lines.push(
      `${control ? 'Control (both off): the method reports' : 'Auditing costs'} ${fmt(cost, 1)} µs of server CPU per request (${differences.length > 0 ? 'median of the paired differences' : 'difference of the medians'}; ${fmt(total(on) - total(off), 1)} over all samples), ${fmt((cost / cOff) * 100, 1)}% of a request ${control ? 'of B' : 'without it'}.`,
      '',
    );
  }
  if (verifyRecords > 0) {
    log(`writing ${verifyRecords} records for the verify benchmark`);
    const v = await verifyBench(verifyRecords);
    lines.push(`| audit verify | records | write (batches of 5,000) | verify |`, '|---|---:|---:|---:|');
    lines.push(`| SQLite | ${fmt(v.records)} | ${fmt(v.writeMs / 1000, 1)} s | ${fmt(v.verifyMs / 1000, 1)} s (${fmt(v.records / (v.verifyMs / 1000))} records/s) |`, '');
  }
  console.log(lines.join('\n'));
} finally {
  await cleanupAll();
}
