/**
 * End-to-end matching over the real fixtures: the whole osv/ directory is imported (JSON and the
 * pypa YAML twins), every fixture inventory is matched, and
 * - every case of expected/matches.json and expected/matches-os.json is reproduced exactly (true
 *   cases found for every binary package of the source, false cases absent), and
 * - no record matches any package beyond the expected true cases ("exactly the packages it should
 *   and no other").
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fixturesSkip, scannerFixtures } from '../../../../test/scanner/vuln-fixtures.ts';
import { fixtureInventories, type NamedInventory } from '../../../../test/scanner/fixture-inventories.ts';
import type { VulnerabilityFinding } from '../model.ts';
import { VulnDatabase } from '../vulndb/database.ts';
import { importPath } from '../vulndb/import.ts';
import { Matcher } from './matcher.ts';

interface Case {
  package: { ecosystem: string; name: string; version: string; binary_packages?: string[]; found_in: string };
  osv: string;
  id: string;
  match: boolean;
}

const normalize = (eco: string, name: string): string => (eco === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name);

/** Key of a (record, package) pair as matches*.json name it: ecosystem, record's package name, compared version. */
function caseKey(eco: string, name: string, version: string, id: string): string {
  return `${eco}|${normalize(eco, name)}|${version}|${id}`;
}

describe('matching the fixture inventories against every fixture OSV record', { skip: fixturesSkip() }, () => {
  let inventories: NamedInventory[];
  let results: { inv: NamedInventory; findings: VulnerabilityFinding[] }[];
  let cases: Case[];
  let osCases: Case[];

  before(async () => {
    const root = scannerFixtures();
    const db = new VulnDatabase();
    const report = await importPath(db, join(root, 'osv'));
    assert.equal(report.rejectedCount, 0, JSON.stringify(report.rejected));
    assert.ok(db.size >= 50, `imported ${db.size} records`);
    inventories = fixtureInventories(root);
    const matcher = new Matcher(db);
    results = inventories.map((inv) => ({ inv, findings: matcher.match(inv.inventory) }));
    cases = (JSON.parse(readFileSync(join(root, 'expected', 'matches.json'), 'utf8')) as { matches: Case[] }).matches;
    osCases = (JSON.parse(readFileSync(join(root, 'expected', 'matches-os.json'), 'utf8')) as { matches: Case[] }).matches;
    assert.ok(cases.length > 0 && osCases.length > 0, 'expected match files are empty');
  });

  const findingKeys = (): Map<string, VulnerabilityFinding[]> => {
    const keys = new Map<string, VulnerabilityFinding[]>();
    for (const { findings } of results) {
      for (const f of findings) {
        const eco = f.ecosystem.startsWith('Alpine:') || f.ecosystem.startsWith('Ubuntu:') || f.ecosystem.startsWith('Debian:') ? f.ecosystem : f.ecosystem;
        for (const id of [f.id, ...f.aliases]) {
          const k = caseKey(eco, f.matchedName, f.installedVersion, id);
          keys.set(k, [...(keys.get(k) ?? []), f]);
        }
      }
    }
    return keys;
  };

  test('language ecosystems: every case of expected/matches.json', () => {
    const keys = findingKeys();
    for (const c of cases) {
      const k = caseKey(c.package.ecosystem, c.package.name, c.package.version, c.id);
      assert.equal(keys.has(k), c.match, `${c.id} vs ${c.package.ecosystem} ${c.package.name}@${c.package.version}: expected match=${c.match}`);
    }
    console.log(`# matches.json: ${cases.length} cases reproduced`);
  });

  test('OS packages: every case of expected/matches-os.json, for each binary package of the source', () => {
    const keys = findingKeys();
    for (const c of osCases) {
      const k = caseKey(c.package.ecosystem, c.package.name, c.package.version, c.id);
      const found = keys.get(k) ?? [];
      assert.equal(found.length > 0, c.match, `${c.id} vs ${c.package.ecosystem} ${c.package.name}@${c.package.version}: expected match=${c.match}`);
      if (c.match) {
        const binaries = new Set(found.map((f) => f.packageName));
        assert.deepEqual([...binaries].sort(), [...(c.package.binary_packages ?? [])].sort(), `${c.id}: binary packages`);
      }
    }
    console.log(`# matches-os.json: ${osCases.length} cases reproduced`);
  });

  test('no record matches anything beyond the expected true cases', () => {
    const allowed = new Set([...cases, ...osCases].filter((c) => c.match).map((c) => caseKey(c.package.ecosystem, c.package.name, c.package.version, c.id)));
    const extra: string[] = [];
    let total = 0;
    for (const { inv, findings } of results) {
      for (const f of findings) {
        total++;
        const ids = [f.id, ...f.aliases];
        if (!ids.some((id) => allowed.has(caseKey(f.ecosystem, f.matchedName, f.installedVersion, id)))) {
          extra.push(`${inv.name}: ${f.id} on ${f.packageName} (${f.ecosystem} ${f.matchedName}@${f.installedVersion})`);
        }
      }
    }
    assert.deepEqual(extra, []);
    assert.ok(total > 0);
    console.log(`# ${total} findings across ${results.length} fixture inventories, none unexpected`);
  });

  test('findings carry severity, score, fix and layer', () => {
    const all = results.flatMap((r) => r.findings);
    const express = all.find((f) => f.id === 'GHSA-qw6h-vgh9-j6wx')!;
    assert.equal(express.severity, 'medium'); // GitHub's MODERATE
    assert.equal(express.severitySource, 'vendor:database_specific');
    assert.equal(express.score, 2.3); // CVSS 4.0 preferred over 3.1's 5.0
    assert.deepEqual(express.fixedVersions, ['4.20.0']);
    assert.equal(express.fixAvailable, true);
    assert.deepEqual(express.cves, ['CVE-2024-43796']);
    assert.ok(express.layerDiffId?.startsWith('sha256:'));

    const musl = all.find((f) => f.id === 'ALPINE-CVE-2025-26519' && f.installedVersion === '1.2.4-r0')!;
    assert.deepEqual(musl.fixedVersions, ['1.2.4-r3']);
    assert.equal(musl.ecosystem, 'Alpine:v3.18');
    assert.equal(musl.score, 7.0);
    assert.equal(musl.severity, 'high');
    assert.deepEqual(musl.cves, ['CVE-2025-26519']);

    const pcre = all.find((f) => f.id === 'USN-5425-1')!;
    assert.equal(pcre.severity, 'low'); // Ubuntu priorities low + negligible, from cves_map
    assert.equal(pcre.severitySource, 'vendor:Ubuntu');
    assert.equal(pcre.score, 7.5);
    assert.deepEqual(pcre.fixedVersions, ['2:8.39-9ubuntu0.1']);
    assert.equal(pcre.installedVersion, '2:8.39-9');

    const xz = all.find((f) => f.id === 'USN-5378-2')!;
    assert.equal(xz.packageName, 'liblzma5');
    assert.equal(xz.matchedName, 'xz-utils');
    assert.equal(xz.installedVersion, '5.1.1alpha+20120614-2');

    const guava = all.filter((f) => f.packageName === 'com.google.guava:guava').map((f) => f.id).sort();
    assert.deepEqual(guava, ['GHSA-5mg8-w23w-74h3', 'GHSA-7g45-4rm6-3mm3']);
    const setuptools = all.find((f) => f.id === 'PYSEC-2022-43012')!;
    assert.deepEqual(setuptools.fixedVersions, ['65.5.1']);
    assert.equal(setuptools.severity, 'unknown'); // the record has no severity at all
  });
});
