/**
 * `node bench/audit-records.ts [--records N] [--rounds R] [--anomaly]`: the CPU one audited request
 * adds, in process and without HTTP: N `manifest.pulled` events published on the bus (100 per
 * macrotask, as requests arrive), mapped, queued, hashed into the chain and inserted into a SQLite
 * audit store in batches, until flushed. Prints CPU µs per record (process CPU time, so it does not
 * depend on how loaded the machine is as much as req/s do). `--anomaly` also subscribes the anomaly
 * detector with its default rules, which sees every pull too (whether auditing is on or not).
 * Not part of `npm run bench`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadOrCreateSigningKey } from '../src/registry/audit/keys.ts';
import { AnomalyDetector, anomalySchema } from '../src/registry/anomaly/index.ts';
import { AuditLog } from '../src/registry/audit/log.ts';
import { SqlAuditStore } from '../src/registry/audit/store.ts';
import { EventBus } from '../src/registry/events/bus.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';

const { values } = parseArgs({ options: { records: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '3' }, anomaly: { type: 'boolean', default: false } } });
const records = Number(values.records);
const dir = await mkdtemp(join(tmpdir(), 'bench-audit-records-'));
try {
  const store = new SqlAuditStore(new SqliteDriver(join(dir, 'audit.sqlite')));
  await store.migrate();
  const signer = await loadOrCreateSigningKey(join(dir, 'key.pem'));
  const events = new EventBus();
  // The defaults of config/schema.ts.
  const log = new AuditLog({ store, signer }, { maxQueue: 100_000, batchSize: 1000, flushIntervalMs: 200, checkpointEveryRecords: 10_000, checkpointEveryMs: 60_000 });
  log.subscribe(events);
  const detector = values.anomaly ? new AnomalyDetector({ events }, anomalySchema.parse({})) : undefined;
  detector?.start(0);
  const run = async (n: number) => {
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i += 100) {
      for (let j = 0; j < 100; j++) {
        events.publish({
          type: 'manifest.pulled',
          at: new Date(),
          origin: { clientAddress: '127.0.0.1', userAgent: 'containerd/2.0.0', requestId: `req-${i + j}`, actor: { kind: 'anonymous' } },
          repository: 'bench/manifests',
          digest: `sha256:${'a'.repeat(64)}`,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          tag: 'latest',
        });
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await log.flush();
    await detector?.idle();
    const used = process.cpuUsage(cpu);
    return { cpuUs: (used.user + used.system) / n, wallUs: ((performance.now() - t0) * 1000) / n };
  };
  await run(Math.min(records, 20_000)); // warm-up
  const lines = ['| round | CPU µs per record | wall µs per record |', '|---:|---:|---:|'];
  for (let round = 1; round <= Number(values.rounds); round++) {
    const r = await run(records);
    lines.push(`| ${round} | ${r.cpuUs.toFixed(1)} | ${r.wallUs.toFixed(1)} |`);
  }
  const stats = log.stats();
  await log.close();
  await detector?.stop();
  console.log(`${lines.join('\n')}\n\n${stats.written} records written, ${stats.dropped} dropped, ${stats.batches} batches`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
