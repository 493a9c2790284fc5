/**
 * Crash tests: SIGKILL during a burst of writes.
 *
 * 1. The audit stack alone (a child process) under durable appends and a flood of observations:
 *    every append that was acknowledged is stored with its content, and the chain verifies.
 * 2. The registry server during concurrent pushes and pulls: after a restart the chain verifies,
 *    every push acknowledged well before the kill (more than the flush interval) is recorded,
 *    and the restarted server continues the same chain.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openAuditStore } from '../../src/registry/app/build-app.ts';
import { loadTrustedKeys } from '../../src/registry/audit/keys.ts';
import type { AuditRecord } from '../../src/registry/audit/record.ts';
import { verifyAuditLog } from '../../src/registry/audit/verify.ts';
import { loadConfig } from '../../src/registry/config/load.ts';
import { startRegistry } from '../support/registry-process.ts';
import { cli, pullManifest, pushImage } from './clients.ts';

const burst = fileURLToPath(new URL('./fixtures/append-burst.ts', import.meta.url));

async function openStore(dataDir: string) {
  const config = await loadConfig({ env: {}, overrides: [{ path: ['storage', 'dataDir'], value: dataDir }] });
  return openAuditStore(config);
}

test('SIGKILL during a burst: every acknowledged durable append survives and the chain verifies', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-audit-crash-'));
  try {
    const acked = new Map<number, string>();
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [burst, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no progress: ${err}`)), 30_000);
        const target = 500 + round * 700;
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk;
          if ((out.match(/\n/g)?.length ?? 0) > target) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGKILL');
      await exited;
      // Lines read after the kill were written before it; a partial last line is ignored.
      for (const line of out.split('\n').slice(0, -1)) {
        const match = /^ack (\d+) (\S+)$/.exec(line);
        if (match) acked.set(Number(match[1]), match[2]!);
      }
    }
    assert.ok(acked.size > 1500, `acknowledged ${acked.size}`);
    const store = await openStore(dataDir);
    try {
      for (const [seq, id] of acked) {
        const record = await store.record(seq);
        assert.equal(record?.requestId, id, `acknowledged record ${seq} (${id})`);
        assert.equal(record?.action, 'auth.failed');
      }
      const keys = await loadTrustedKeys([join(dataDir, 'audit', 'signing-key.pub.pem')]);
      const report = await verifyAuditLog(store, { keys });
      assert.equal(report.ok, true, report.failure?.message);
      assert.ok(report.records >= acked.size);
      const observations = await store.query({ action: 'manifest.pulled', limit: 1 });
      assert.equal(observations.length, 1, 'observations were written between the appends');
    } finally {
      await store.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('SIGKILL of the server during pushes and pulls: the chain verifies after restart and acknowledged pushes are recorded', async () => {
  const registry = await startRegistry({ env: { PORTCULLIS_LOG_LEVEL: 'error' } });
  const pushed: Array<{ digest: string; at: number }> = [];
  let stop = false;
  const workers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        const digest = await pushImage(registry.url, `crash/app${w}`, `t${i}`, `${w}-${i}`);
        pushed.push({ digest, at: Date.now() });
        await pullManifest(registry.url, `crash/app${w}`, `t${i}`);
      } catch {
        if (stop) return; // the server is gone
        throw new Error('request failed before the kill');
      }
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const killedAt = Date.now();
  stop = true;
  await registry.stop('SIGKILL');
  await Promise.all(workers);
  assert.ok(pushed.length > 20, `pushed ${pushed.length}`);

  let result = await cli(['audit', 'verify', '--data-dir', registry.dataDir]);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const restarted = await startRegistry({ dataDir: registry.dataDir, env: { PORTCULLIS_LOG_LEVEL: 'error' } });
  try {
    await pushImage(restarted.url, 'crash/after', 'v1', 'after');
  } finally {
    await restarted.stop();
  }
  result = await cli(['audit', 'verify', '--data-dir', registry.dataDir]);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.doesNotMatch(result.stdout, /not yet signed/, 'a clean stop signs the tail');
  result = await cli(['audit', 'export', '--format', 'jsonl', '--data-dir', registry.dataDir]);
  const records = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
  const recorded = new Set(records.filter((r) => r.action === 'manifest.pushed').map((r) => r.digest));
  // Observations reach the database within the flush interval (200 ms); allow five times that.
  const settled = pushed.filter((p) => p.at < killedAt - 1000);
  assert.ok(settled.length > 10);
  for (const p of settled) assert.ok(recorded.has(p.digest), `push of ${p.digest} acknowledged ${killedAt - p.at} ms before the kill is recorded`);
  assert.ok(records.some((r) => r.repository === 'crash/after'), 'the restarted server continues the chain');
  await rm(registry.dataDir, { recursive: true, force: true });
});
