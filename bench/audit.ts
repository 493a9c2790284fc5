/**
 * `node bench/audit.ts [--rounds N] [--seconds S] [--verify-records N]`: the cost of auditing.
 *
 * 1. Manifest GET by tag, 32 keep-alive connections, Portcullis with the audit log on and off,
 *    interleaved (on off off on ...), fresh server per sample; with auditing on, every request is
 *    a record, and the records written are counted (and checked against drops).
 * 2. With --verify-records N: time of `verifyAuditLog` over N records (written straight into a
 *    SQLite audit store, checkpoints every 10,000).
 *
 * Prints a markdown table on stdout (progress on stderr). Not part of `npm run bench`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadOrCreateSigningKey, loadTrustedKeys } from '../src/registry/audit/keys.ts';
import { fieldsOf } from '../src/registry/audit/record.ts';
import { SqlAuditStore } from '../src/registry/audit/store.ts';
import { verifyAuditLog } from '../src/registry/audit/verify.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';
import { request } from './lib/http.ts';
import { loadTest, median } from './lib/load.ts';
import { MANIFEST_ACCEPT, closeClient, makeClient, makeSmallImage, pushSmallImage } from './lib/oci.ts';
import { cleanupAll, log } from './lib/procs.ts';
import { PORTCULLIS_BIN, type Server, startPortcullis } from './lib/targets.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '4' }, seconds: { type: 'string', default: '10' }, 'verify-records': { type: 'string', default: '0' } } });
const rounds = Number(values.rounds);
const durationMs = Number(values.seconds) * 1000;
const verifyRecords = Number(values['verify-records']);

interface Sample {
  rps: number;
  p99: number;
  requests: number;
  records?: number;
  dropped?: number;
}

function auditCount(server: Server): { records: number; dropped: number } {
  const out = execFileSync(process.execPath, [PORTCULLIS_BIN, 'audit', 'verify', '--data-dir', server.dataDir], { encoding: 'utf8' });
  const records = Number(/OK: (\d+) records/.exec(out)?.[1] ?? NaN);
  const dropped = execFileSync(process.execPath, [PORTCULLIS_BIN, 'audit', 'query', '--data-dir', server.dataDir, '--action', 'audit.dropped', '--json'], { encoding: 'utf8' });
  const total = (JSON.parse(dropped) as { records: Array<{ details: { count: number } }> }).records.reduce((n, r) => n + r.details.count, 0);
  return { records, dropped: total };
}

async function sample(audit: boolean): Promise<Sample> {
  const server = await startPortcullis({ tmpParent: tmpdir(), distributionBin: '', portcullisArgs: [], portcullisEnv: { PORTCULLIS_AUDIT_ENABLED: String(audit) } });
  try {
    const image = makeSmallImage(3, 16 * 1024);
    const setup = makeClient(server.url, 1);
    await pushSmallImage(setup, 'bench/manifests', image, 'latest');
    closeClient(setup);
    const client = makeClient(server.url, 32);
    const url = new URL('/v2/bench/manifests/manifests/latest', client.base);
    const op = async () => {
      const res = await request({ method: 'GET', url, agent: client.agent, headers: { accept: MANIFEST_ACCEPT }, read: 'drain', timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`GET manifest: HTTP ${res.status}`);
    };
    const warm = await loadTest({ connections: 32, durationMs: 3000, maxRequests: 1_000_000 }, op);
    const result = await loadTest({ connections: 32, durationMs, maxRequests: 5_000_000 }, op);
    closeClient(client);
    if (result.failed > 0) throw new Error(`${result.failed} requests failed: ${result.firstError?.message}`);
    const s: Sample = { rps: result.reqPerSec, p99: result.p99Ms, requests: result.requests + warm.requests };
    if (audit) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      Object.assign(s, auditCount(server));
    }
    return s;
  } finally {
    await server.stop();
  }
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

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

try {
  const on: Sample[] = [];
  const off: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const audit of round % 2 === 0 ? [true, false] : [false, true]) {
      log(`round ${round + 1}/${rounds}: audit ${audit ? 'on' : 'off'}`);
      const s = await sample(audit);
      log(`  ${fmt(s.rps)} req/s, p99 ${fmt(s.p99, 2)} ms${audit ? `, ${s.records} records for ${s.requests} requests, ${s.dropped} dropped` : ''}`);
      (audit ? on : off).push(s);
    }
  }
  const lines = [`# Audit cost (${availableParallelism()} CPUs, Node ${process.version}, ${rounds} samples each, ${durationMs / 1000} s per sample)`, ''];
  if (rounds > 0) {
    const rOn = median(on.map((s) => s.rps));
    const rOff = median(off.map((s) => s.rps));
    lines.push('| Manifest GET by tag, 32 connections | audit off | audit on | on/off |', '|---|---:|---:|---:|');
    lines.push(`| req/s (median) | ${fmt(rOff)} | ${fmt(rOn)} | ${fmt(rOn / rOff, 3)} |`);
    lines.push(`| p99 ms (median) | ${fmt(median(off.map((s) => s.p99)), 2)} | ${fmt(median(on.map((s) => s.p99)), 2)} | |`);
    lines.push(`| records written / requests (all samples) | | ${on.reduce((n, s) => n + (s.records ?? 0), 0)} / ${on.reduce((n, s) => n + s.requests, 0)} | dropped: ${on.reduce((n, s) => n + (s.dropped ?? 0), 0)} |`, '');
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
