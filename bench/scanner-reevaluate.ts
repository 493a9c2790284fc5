/**
 * Re-evaluation benchmark through the real store: N stored inventories (default 10,000) in the
 * scanner's database, then a vulnerability-data change, then `ScanService.rematch()` as the worker
 * runs it — pages of compact match inputs read from SQL, matched, fingerprints compared, changed
 * findings written in one transaction per page, one event per changed image. No layer is read.
 *
 * Inventories are made of real package names and versions (the scanner fixtures' expected package
 * lists: Ubuntu/Debian dpkg, Alpine apk, Mariner rpm, npm, PyPI, Maven, RubyGems, crates.io), each
 * image an OS base plus 20-100 language packages with some versions bumped so images differ. The
 * database holds the fixture OSV records plus synthetic ones over the same names.
 *
 *   npx node bench/scanner-reevaluate.ts [--inventories N] [--records N] [--postgres URL] [--profile DIR]
 *
 * `--profile DIR` writes a V8 CPU profile of each re-evaluation pass (`changed.cpuprofile`,
 * `unchanged.cpuprofile`: only the pass, not the seeding) for Chrome DevTools or `--cpu-prof` tooling.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EventBus } from '../src/registry/events/bus.ts';
import { evaluate, matchInputOf } from '../src/registry/scanner/evaluation.ts';
import { ExemptionStore } from '../src/registry/scanner/exemptions.ts';
import { JobQueue } from '../src/registry/scanner/jobs.ts';
import type { Inventory, InventoryPackage } from '../src/registry/scanner/model.ts';
import { ScanService } from '../src/registry/scanner/service.ts';
import { ScanStore } from '../src/registry/scanner/store.ts';
import { VulnData } from '../src/registry/scanner/vulndata.ts';
import { languageEcosystem, osEcosystemSelector } from '../src/registry/scanner/vulndb/ecosystems.ts';
import { importPath } from '../src/registry/scanner/vulndb/import.ts';
import { parseOsvValue } from '../src/registry/scanner/vulndb/osv.ts';
import { PostgresDriver } from '../src/registry/storage/postgres/postgres-driver.ts';
import type { BlobStore, MetadataStore } from '../src/registry/storage/ports.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';
import { fixtureInventories } from '../test/scanner/fixture-inventories.ts';
import { scannerFixtures } from '../test/scanner/vuln-fixtures.ts';

const { values } = parseArgs({ options: { inventories: { type: 'string', default: '10000' }, records: { type: 'string', default: '20000' }, postgres: { type: 'string' }, profile: { type: 'string' } } });
const N = Number(values.inventories);
const RECORDS = Number(values.records);
const root = scannerFixtures();

let seed = 7;
const rnd = (n: number) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const bump = (v: string) => v.replace(/([0-9]+)(?!.*[0-9])/, (d) => String(Number(d) + 1 + rnd(3)));

const named = fixtureInventories(root);
const bases = named.filter((n) => n.inventory.os && osEcosystemSelector(n.inventory.os) && n.inventory.packages.length > 0).map((n) => n.inventory);
const lang = named.flatMap((n) => n.inventory.packages.filter((p) => languageEcosystem(p.kind)));
const targets = [
  ...bases.flatMap((b) => b.packages.map((p) => ({ ecosystem: osEcosystemSelector(b.os)!.ecosystem, name: p.sourceName ?? p.name, version: p.sourceVersion ?? p.version }))),
  ...lang.map((p) => ({ ecosystem: languageEcosystem(p.kind)!, name: p.name, version: p.version })),
];
let aliasBase = 1_000_000;
function synthetic(prefix: string, count: number, hitPercent: number) {
  const base = (aliasBase += 1_000_000);
  return Array.from({ length: count }, (_, i) => {
    const t = targets[rnd(targets.length)]!;
    const hit = rnd(100) < hitPercent;
    return {
      record: parseOsvValue({
        id: `${prefix}-${i}`,
        modified: '2024-01-01T00:00:00Z',
        aliases: [`CVE-2099-${base + i}`],
        severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
        affected: [{ package: { ecosystem: t.ecosystem, name: hit ? t.name : `${t.name}-x${i}` }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: rnd(2) ? bump(t.version) : t.version }] }] }],
      }),
      digest: `${prefix}${i}`,
    };
  });
}
const source = (name: string, records: number) => ({ source: name, kind: 'directory' as const, importedAt: new Date().toISOString(), contentHash: `${name}-${Date.now()}`, records, withdrawn: 0, rejected: 0 });

const work = await mkdtemp(join(tmpdir(), 'portcullis-bench-reeval-'));
const driver = values.postgres ? new PostgresDriver({ connectionString: values.postgres, max: 4 }) : new SqliteDriver(join(work, 'scanner.sqlite'));
const store = new ScanStore(driver);
await store.migrate();
const vulns = await VulnData.open(work);
await importPath(vulns.db, join(root, 'osv'));
vulns.db.replaceSource(source('synthetic', RECORDS), synthetic('SYN', RECORDS, 5));

console.log(`seeding ${N} inventories (${values.postgres ? 'PostgreSQL' : 'SQLite'})...`);
const t0 = performance.now();
let packages = 0;
for (let i = 0; i < N; i++) {
  const base = bases[rnd(bases.length)]!;
  const pk: InventoryPackage[] = base.packages.map((p) => (rnd(5) === 0 ? { ...p, version: bump(p.version), ...(p.sourceVersion ? { sourceVersion: bump(p.sourceVersion) } : {}) } : p));
  for (let k = 20 + rnd(80); k > 0; k--) {
    const p = lang[rnd(lang.length)]!;
    pk.push(rnd(5) === 0 ? { ...p, version: bump(p.version) } : p);
  }
  packages += pk.length;
  const inventory: Inventory = { packages: pk, ...(base.os ? { os: base.os } : {}) };
  const layers = [{ digest: `sha256:${'1'.repeat(64)}`, diffId: `sha256:${'0'.repeat(63)}1` }];
  const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
  await store.recordImage(`bench/image-${i % 100}`, digest, 'application/vnd.oci.image.manifest.v1+json', Date.now());
  await store.saveScan(digest, { scannerVersion: '1', os: inventory.os, inventory: { packages: [] }, matchInput: matchInputOf(inventory, layers), secrets: [], configFindings: [], evaluation: evaluate(vulns.matcher, inventory, vulns.identity()) }, Date.now());
}
const sample = await store.refsOf([`sha256:${'0'.repeat(64)}`, `sha256:${'1'.padStart(64, '0')}`, `sha256:${'2'.padStart(64, '0')}`]);
console.log(`  findings per image (first three): ${[...sample.values()].map((r) => (r.match(/[,:]/g) ?? []).length).join(', ')}`);
console.log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${packages} packages, database ${vulns.db.size} records`);

const events = new EventBus();
let changedEvents = 0;
events.subscribe('scan.findings.changed', () => void changedEvents++);
const service = new ScanService(
  { store, jobs: new JobQueue(driver), exemptions: new ExemptionStore(driver), vulns, meta: {} as MetadataStore, blobs: {} as BlobStore, events },
  { concurrency: 1, pollIntervalMs: 1000, leaseSeconds: 60, maxAttempts: 1, retryInitialMs: 1000, retryMaxMs: 1000, limits: {}, maxAgeSeconds: 86_400, reloadIntervalSeconds: 0, rematchPageSize: 500, sbom: { attach: false, formats: [] }, exemptions: { maxDays: 365, warnDays: 14 }, rescanOnUpgrade: false },
);

/** Runs `fn`, with a CPU profile of it written to `<--profile>/<name>.cpuprofile` when asked. */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!values.profile) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    await mkdir(values.profile, { recursive: true });
    await writeFile(join(values.profile, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

// 1. New data that touches installed packages (1,000 new records, 20% of them on real names).
vulns.db.replaceSource(source('update-1', 1000), synthetic('NEW', 1000, 20));
let cpu = process.cpuUsage();
const a = await profiled('changed', () => service.rematch());
const cpuA = process.cpuUsage(cpu);
await new Promise((r) => setImmediate(r));
console.log(`re-evaluation after an import touching installed packages: ${(a.durationMs / 1000).toFixed(2)} s for ${a.evaluated} inventories, ${a.changed} changed (${changedEvents} events); CPU ${((cpuA.user + cpuA.system) / 1e6).toFixed(2)} s`);
// 2. New data about packages nobody has: every image evaluated, none rewritten.
vulns.db.replaceSource(source('update-2', 1000), synthetic('OTHER', 1000, 0));
cpu = process.cpuUsage();
const b = await profiled('unchanged', () => service.rematch());
const cpuB = process.cpuUsage(cpu);
console.log(`re-evaluation after an import touching nothing installed: ${(b.durationMs / 1000).toFixed(2)} s for ${b.evaluated} inventories, ${b.changed} changed; CPU ${((cpuB.user + cpuB.system) / 1e6).toFixed(2)} s`);
console.log(`target: 10,000 inventories in under 10 s — ${Math.max(a.durationMs, b.durationMs) < 10_000 * (N / 10_000) ? 'met' : 'NOT met'}`);
await store.close();
await rm(work, { recursive: true, force: true });
