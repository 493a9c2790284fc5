/**
 * Re-evaluation benchmark: re-match 10,000 stored inventories against the vulnerability database,
 * as happens after every database import (no layer is read). Inventories are synthetic but made of
 * real package names and versions from the scanner fixtures (Ubuntu/Debian dpkg, Alpine apk,
 * CBL-Mariner rpm, npm, PyPI, Maven, RubyGems, crates.io), each image a random mix with some
 * versions bumped so that images differ; the database holds the real fixture OSV records plus
 * synthetic records over the same and other package names (default 50,000 records).
 *
 *   npx node bench/scanner-rematch.ts [--inventories N] [--records N] [--fixtures DIR]
 *
 * Prints the time of a cold pass (fresh matcher: what a database change costs) and a warm pass.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fixtureInventories } from '../test/scanner/fixture-inventories.ts';
import { scannerFixtures } from '../test/scanner/vuln-fixtures.ts';
import type { Inventory, InventoryPackage } from '../src/registry/scanner/model.ts';
import { VulnDatabase } from '../src/registry/scanner/vulndb/database.ts';
import { importPath } from '../src/registry/scanner/vulndb/import.ts';
import { parseOsvValue } from '../src/registry/scanner/vulndb/osv.ts';
import { Matcher } from '../src/registry/scanner/matching/matcher.ts';
import { languageEcosystem, osEcosystemSelector } from '../src/registry/scanner/vulndb/ecosystems.ts';

const { values } = parseArgs({
  options: {
    inventories: { type: 'string', default: '10000' },
    records: { type: 'string', default: '50000' },
    fixtures: { type: 'string' },
  },
});
const N_INV = Number(values.inventories);
const N_REC = Number(values.records);
const root = values.fixtures ?? scannerFixtures();

let seed = 42;
function rnd(n: number): number {
  // xorshift32: deterministic runs
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

/** Bumps the last number in a version (1.2.3 -> 1.2.4), keeping its scheme's shape. */
function bump(v: string): string {
  return v.replace(/([0-9]+)(?!.*[0-9])/, (d) => String(Number(d) + 1 + rnd(3)));
}

interface PoolImage {
  os: Inventory['os'];
  packages: InventoryPackage[];
}

const named = fixtureInventories(root);
const osImages: PoolImage[] = named.filter((n) => n.inventory.os && osEcosystemSelector(n.inventory.os) && n.inventory.packages.length > 0).map((n) => ({ os: n.inventory.os, packages: n.inventory.packages }));
const langPackages = named.flatMap((n) => n.inventory.packages.filter((p) => languageEcosystem(p.kind)));

const db = new VulnDatabase();
await importPath(db, join(root, 'osv'));

// Synthetic records: 5% over (ecosystem, name) pairs that appear in the inventories (a few per
// package, like a distro's CVE history), the rest over other names in the same ecosystems.
const targets: { ecosystem: string; name: string; version: string }[] = [];
for (const img of osImages) {
  const eco = osEcosystemSelector(img.os)!.ecosystem;
  for (const p of img.packages) targets.push({ ecosystem: eco, name: p.sourceName ?? p.name, version: p.sourceVersion ?? p.version });
}
for (const p of langPackages) targets.push({ ecosystem: languageEcosystem(p.kind)!, name: p.name, version: p.version });
const synthetic = [];
for (let i = 0; i < N_REC; i++) {
  const t = targets[rnd(targets.length)]!;
  const mine = rnd(100) < 5;
  const fixed = rnd(2) === 0 ? bump(t.version) : t.version;
  synthetic.push({
    record: parseOsvValue({
      id: `SYN-${i}`,
      modified: '2024-01-01T00:00:00Z',
      aliases: [`CVE-2099-${i}`],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
      affected: [{ package: { ecosystem: t.ecosystem, name: mine ? t.name : `${t.name}-other-${i}` }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed }] }] }],
    }),
    digest: String(i),
  });
}
db.replaceSource({ source: 'synthetic', kind: 'directory', importedAt: new Date().toISOString(), contentHash: 'synthetic', records: N_REC, withdrawn: 0, rejected: 0 }, synthetic);

// 10,000 images: an OS base plus language packages; ~20% of versions bumped per image.
const inventories: Inventory[] = [];
for (let i = 0; i < N_INV; i++) {
  const base = osImages[rnd(osImages.length)]!;
  const packages: InventoryPackage[] = [];
  for (const p of base.packages) packages.push(rnd(5) === 0 ? { ...p, version: bump(p.version), ...(p.sourceVersion ? { sourceVersion: bump(p.sourceVersion) } : {}) } : p);
  const extra = 20 + rnd(80);
  for (let k = 0; k < extra; k++) {
    const p = langPackages[rnd(langPackages.length)]!;
    packages.push(rnd(5) === 0 ? { ...p, version: bump(p.version) } : p);
  }
  const inv: Inventory = { packages };
  if (base.os) inv.os = base.os;
  inventories.push(inv);
}
const totalPackages = inventories.reduce((s, inv) => s + inv.packages.length, 0);

/** Re-evaluation as the scanner does it: findings grouped per package as shared templates. */
function pass(matcher: Matcher): { ms: number; findings: number } {
  const t0 = performance.now();
  let findings = 0;
  for (const inv of inventories) for (const g of matcher.matchGrouped(inv)) findings += g.findings.length;
  return { ms: performance.now() - t0, findings };
}

/** Full materialisation of every finding object (what a report of every image would cost). */
function materialized(matcher: Matcher): number {
  const t0 = performance.now();
  for (const inv of inventories) matcher.match(inv);
  return performance.now() - t0;
}

const cold = pass(new Matcher(db));
const warmMatcher = new Matcher(db);
pass(warmMatcher);
const warm = pass(warmMatcher);
const full = materialized(new Matcher(db));
console.log(`scanner re-match: ${N_INV} inventories (${totalPackages} packages), database ${db.size} records`);
console.log(`  cold (after a database change): ${(cold.ms / 1000).toFixed(2)} s, ${cold.findings} findings, ${Math.round((totalPackages / cold.ms) * 1000)} packages/s`);
console.log(`  warm (cache filled):            ${(warm.ms / 1000).toFixed(2)} s`);
console.log(`  cold, every finding materialised as its own object: ${(full / 1000).toFixed(2)} s`);
console.log(`  target: under 10 s — ${cold.ms < 10_000 ? 'met' : 'NOT met'}`);
