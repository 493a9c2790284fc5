/**
 * Matching rules on synthetic records (each a rule of the OSV evaluation or of distro scoping) and
 * on the fixture Go records against toolchain versions checked by hand against their ranges.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixturesSkip, scannerFixtures } from '../../../../test/scanner/vuln-fixtures.ts';
import type { Inventory, InventoryPackage, PackageKind } from '../model.ts';
import { VulnDatabase } from '../vulndb/database.ts';
import { importPath } from '../vulndb/import.ts';
import { parseOsvValue } from '../vulndb/osv.ts';
import { Matcher, matchInventory } from './matcher.ts';

function dbOf(records: object[]): VulnDatabase {
  const db = new VulnDatabase();
  db.replaceSource(
    { source: 'test', kind: 'directory', importedAt: new Date(0).toISOString(), contentHash: 'x', records: records.length, withdrawn: 0, rejected: 0 },
    records.map((r, i) => ({ record: parseOsvValue({ modified: '2024-01-01T00:00:00Z', ...r }), digest: String(i) })),
  );
  return db;
}

function p(kind: PackageKind, name: string, version: string, extra: Partial<InventoryPackage> = {}): InventoryPackage {
  return { kind, name, version, purl: `pkg:x/${name}@${version}`, path: '/x', ...extra };
}

const ids = (inv: Inventory, db: VulnDatabase): string[] => matchInventory(db, inv).map((f) => f.id).sort();

describe('matcher rules', () => {
  test('OSV evaluation: introduced/fixed, last_affected, limit, versions[] only, multiple intervals', () => {
    const db = dbOf([
      { id: 'R-1', affected: [{ package: { ecosystem: 'npm', name: 'a' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { fixed: '1.0.2' }, { introduced: '3.0.0' }, { fixed: '3.2.5' }] }] }] },
      { id: 'R-2', affected: [{ package: { ecosystem: 'npm', name: 'a' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '2.1.214' }] }] }] },
      { id: 'R-3', affected: [{ package: { ecosystem: 'npm', name: 'a' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { limit: '1.5.0' }] }] }] },
      { id: 'R-4', affected: [{ package: { ecosystem: 'npm', name: 'a' }, versions: ['9.9.9'] }] },
    ]);
    const at = (v: string): string[] => ids({ packages: [p('npm', 'a', v)] }, db);
    assert.deepEqual(at('0.9.0'), ['R-2', 'R-3']);
    assert.deepEqual(at('1.0.0'), ['R-1', 'R-2', 'R-3']);
    assert.deepEqual(at('1.0.2'), ['R-2', 'R-3']);
    assert.deepEqual(at('2.1.214'), ['R-2']);
    assert.deepEqual(at('2.1.215'), []);
    assert.deepEqual(at('3.2.4'), ['R-1']);
    assert.deepEqual(at('3.2.5'), []);
    assert.deepEqual(at('9.9.9'), ['R-4']);
    const f = matchInventory(db, { packages: [p('npm', 'a', '3.1.0')] })[0]!;
    assert.deepEqual(f.fixedVersions, ['3.2.5']);
    const la = matchInventory(db, { packages: [p('npm', 'a', '2.0.0')] }).find((x) => x.id === 'R-2')!;
    assert.equal(la.fixAvailable, false);
  });

  test('withdrawn records never match; MAL records are critical', () => {
    const db = dbOf([
      { id: 'GHSA-w', withdrawn: '2024-02-01T00:00:00Z', affected: [{ package: { ecosystem: 'npm', name: 'b' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }] },
      { id: 'MAL-2024-7', affected: [{ package: { ecosystem: 'npm', name: 'b' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }] },
    ]);
    const f = matchInventory(db, { packages: [p('npm', 'b', '1.0.0')] });
    assert.equal(f.length, 1);
    assert.equal(f[0]!.id, 'MAL-2024-7');
    assert.equal(f[0]!.severity, 'critical');
    assert.equal(f[0]!.malicious, true);
    assert.equal(f[0]!.fixAvailable, false);
  });

  test('aliases are de-duplicated per package; the ecosystem-native id leads', () => {
    const rng = [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.0' }] }];
    const db = dbOf([
      { id: 'GHSA-aaaa-bbbb-cccc', aliases: ['CVE-2020-1'], severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }], affected: [{ package: { ecosystem: 'PyPI', name: 'Flask' }, ranges: rng }] },
      { id: 'PYSEC-2020-1', aliases: ['CVE-2020-1', 'GHSA-aaaa-bbbb-cccc'], affected: [{ package: { ecosystem: 'PyPI', name: 'flask' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.9' }] }] }] },
      { id: 'PYSEC-2020-2', aliases: ['CVE-2020-2'], affected: [{ package: { ecosystem: 'PyPI', name: 'flask' }, ranges: rng }] },
    ]);
    const f = matchInventory(db, { packages: [p('python', 'Flask', '1.0')] });
    assert.deepEqual(f.map((x) => x.id).sort(), ['PYSEC-2020-1', 'PYSEC-2020-2']);
    const merged = f.find((x) => x.id === 'PYSEC-2020-1')!;
    assert.deepEqual(merged.aliases.sort(), ['CVE-2020-1', 'GHSA-aaaa-bbbb-cccc']);
    assert.deepEqual(merged.fixedVersions.sort(), ['1.9', '2.0']);
    assert.equal(merged.severity, 'critical'); // the GHSA copy's CVSS 9.8
    assert.deepEqual(merged.cves, ['CVE-2020-1']);
  });

  test('OS scoping: own release only, Pro never for a plain image, release-less Debian applies, unknown release matches nothing', () => {
    const ev = [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.0-1' }] }];
    const db = dbOf([
      { id: 'USN-1', affected: [{ package: { ecosystem: 'Ubuntu:22.04:LTS', name: 'src' }, ranges: ev }] },
      { id: 'USN-2', affected: [{ package: { ecosystem: 'Ubuntu:Pro:22.04:LTS', name: 'src' }, ranges: ev }] },
      { id: 'USN-3', affected: [{ package: { ecosystem: 'Ubuntu:20.04:LTS', name: 'src' }, ranges: ev }] },
      { id: 'DSA-1', affected: [{ package: { ecosystem: 'Debian:12', name: 'src' }, ranges: ev }] },
      { id: 'DSA-2', affected: [{ package: { ecosystem: 'Debian', name: 'src' }, ranges: ev }] },
      { id: 'DSA-3', affected: [{ package: { ecosystem: 'Debian:11', name: 'src' }, ranges: ev }] },
      { id: 'GHSA-npm', affected: [{ package: { ecosystem: 'npm', name: 'src' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }] },
    ]);
    const deb = p('dpkg', 'bin', '1.0-1', { sourceName: 'src' });
    assert.deepEqual(ids({ os: { id: 'ubuntu', versionId: '22.04' }, packages: [deb] }, db), ['USN-1']);
    assert.deepEqual(ids({ os: { id: 'ubuntu', versionId: '22.04', osvEcosystem: 'Ubuntu:22.04:LTS' }, packages: [deb] }, db), ['USN-1']);
    assert.deepEqual(ids({ os: { id: 'debian', versionId: '12.4' }, packages: [deb] }, db), ['DSA-1', 'DSA-2']);
    assert.deepEqual(ids({ os: { id: 'debian', codename: 'bullseye' }, packages: [deb] }, db), ['DSA-2', 'DSA-3']);
    assert.deepEqual(ids({ os: { id: 'debian' }, packages: [deb] }, db), []);
    assert.deepEqual(ids({ packages: [deb] }, db), []);
    // By source name only: the binary name is not what Debian keys advisories by.
    assert.deepEqual(ids({ os: { id: 'debian', versionId: '12' }, packages: [p('dpkg', 'src', '1.0-1', { sourceName: 'other' })] }, db), []);
  });

  test('dpkg epochs: a separate epoch field joins the version; Source: (version) wins', () => {
    const db = dbOf([{ id: 'DSA-9', affected: [{ package: { ecosystem: 'Debian:12', name: 's' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.0-2' }] }] }] }]);
    const os = { id: 'debian', versionId: '12' };
    assert.deepEqual(ids({ os, packages: [p('dpkg', 'b', '1.0-1', { sourceName: 's', epoch: 1 })] }, db), ['DSA-9']);
    assert.deepEqual(ids({ os, packages: [p('dpkg', 'b', '1.0-3', { sourceName: 's', epoch: 1 })] }, db), []);
    // Without the epoch 1.0-3 < 1:1.0-2.
    assert.deepEqual(ids({ os, packages: [p('dpkg', 'b', '1.0-3', { sourceName: 's' })] }, db), ['DSA-9']);
    assert.deepEqual(ids({ os, packages: [p('dpkg', 'b', '1:9.0', { sourceName: 's', sourceVersion: '1:1.0-1' })] }, db), ['DSA-9']);
  });

  test('rpm distros: source and binary names, epoch', () => {
    const db = dbOf([
      { id: 'ALSA-1', affected: [{ package: { ecosystem: 'AlmaLinux:9', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:3.0.7-25.el9_3' }] }] }] },
      { id: 'RHSA-1', affected: [{ package: { ecosystem: 'Red Hat:enterprise_linux:9::baseos', name: 'openssl-libs' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:3.0.7-25.el9_3' }] }] }] },
    ]);
    const pkg = p('rpm', 'openssl-libs', '3.0.7-24.el9', { sourceName: 'openssl', epoch: 1 });
    assert.deepEqual(ids({ os: { id: 'almalinux', versionId: '9.3' }, packages: [pkg] }, db), ['ALSA-1']);
    assert.deepEqual(ids({ os: { id: 'rhel', versionId: '9.3' }, packages: [pkg] }, db), ['RHSA-1']);
    assert.deepEqual(ids({ os: { id: 'rhel', versionId: '8.9' }, packages: [pkg] }, db), []);
  });

  test('hostile versions and names never crash matching', () => {
    const db = dbOf([{ id: 'X-1', affected: [{ package: { ecosystem: 'Maven', name: 'g:a' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.0' }] }] }] }]);
    for (const v of ['', '-', '...', '1-'.repeat(5000), '\u0000', '💥', 'v', '9'.repeat(400)]) {
      assert.doesNotThrow(() => matchInventory(db, { packages: [p('java', 'g:a', v)] }), v.slice(0, 20));
    }
  });

  test('cached results follow database changes', () => {
    const db = dbOf([]);
    const m = new Matcher(db);
    const inv = { packages: [p('npm', 'late', '1.0.0')] };
    assert.deepEqual(m.match(inv), []);
    db.replaceSource(
      { source: 'later', kind: 'directory', importedAt: new Date(1).toISOString(), contentHash: 'y', records: 1, withdrawn: 0, rejected: 0 },
      [{ record: parseOsvValue({ id: 'GHSA-late', modified: '2024-01-01T00:00:00Z', affected: [{ package: { ecosystem: 'npm', name: 'late' }, versions: ['1.0.0'] }] }), digest: 'z' }],
    );
    assert.deepEqual(m.match(inv).map((f) => f.id), ['GHSA-late']);
  });

  test('Go: stdlib from the toolchain version and modules, against the fixture records', { skip: fixturesSkip() }, async () => {
    const db = new VulnDatabase();
    await importPath(db, join(scannerFixtures(), 'osv', 'Go'));
    // By hand from the records' SEMVER ranges: go1.22.1 is past the 1.22.1 fixes (2598, 2599, 2600,
    // 2609, 2610) and before 1.22.2 (2687), 1.22.3 (2824), 1.22.4 (2887, 2888), 1.22.5 (2963), and the
    // [0, 1.22.7) interval of 3105-3107.
    const std = (v: string): string[] => ids({ packages: [p('go-stdlib', 'stdlib', v)] }, db);
    assert.deepEqual(std('go1.22.1'), ['GO-2024-2687', 'GO-2024-2824', 'GO-2024-2887', 'GO-2024-2888', 'GO-2024-2963', 'GO-2024-3105', 'GO-2024-3106', 'GO-2024-3107']);
    // go1.21.8: fixed for 2598-2610 (fixed 1.21.8), not in 2824 (introduced 1.22.0-0).
    assert.deepEqual(std('go1.21.8'), ['GO-2024-2687', 'GO-2024-2887', 'GO-2024-2888', 'GO-2024-2963', 'GO-2024-3105', 'GO-2024-3106', 'GO-2024-3107']);
    assert.deepEqual(std('go1.23.1'), []);
    assert.deepEqual(std('go1.22rc1'), ['GO-2024-2598', 'GO-2024-2599', 'GO-2024-2600', 'GO-2024-2609', 'GO-2024-2610', 'GO-2024-2687', 'GO-2024-2824', 'GO-2024-2887', 'GO-2024-2888', 'GO-2024-2963', 'GO-2024-3105', 'GO-2024-3106', 'GO-2024-3107']);
    assert.deepEqual(ids({ packages: [p('go-module', 'golang.org/x/net', 'v0.22.0')] }, db), ['GO-2024-2687']);
    assert.deepEqual(ids({ packages: [p('go-module', 'golang.org/x/net', 'v0.23.0')] }, db), []);
    const f = matchInventory(db, { packages: [p('go-stdlib', 'stdlib', 'go1.22.1')] }).find((x) => x.id === 'GO-2024-3105')!;
    assert.deepEqual(f.fixedVersions, ['1.22.7']);
    assert.deepEqual(f.cves, ['CVE-2024-34155']);
  });
});
