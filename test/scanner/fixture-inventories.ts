/**
 * Inventories built from the fixtures' `expected/` package lists (what a correct inventory stage
 * finds in each package database), so matching can be tested against every real OSV record without
 * depending on the parsers. Each inventory carries the OS the fixtures README / matches-os.json
 * states for it (or none where the fixture does not say).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Inventory, InventoryPackage, OperatingSystem, PackageKind } from '../../src/registry/scanner/model.ts';

export interface NamedInventory {
  name: string;
  inventory: Inventory;
}

type Json = Record<string, unknown>;

function read(root: string, rel: string): Json {
  return JSON.parse(readFileSync(join(root, 'expected', rel), 'utf8')) as Json;
}

function pkg(kind: PackageKind, name: string, version: string, path: string, extra: Partial<InventoryPackage> = {}): InventoryPackage {
  return { kind, name, version, purl: `pkg:generic/${encodeURIComponent(name)}@${encodeURIComponent(version)}`, path, layerDiffId: `sha256:${'0'.repeat(63)}1`, ...extra };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

export function fixtureInventories(root: string): NamedInventory[] {
  const out: NamedInventory[] = [];
  const dpkg = (file: string, os: OperatingSystem | undefined): void => {
    const d = read(root, `pkgdb/${file}`);
    const packages = (d.packages as Json[])
      .filter((p) => p.installed !== false && str(p.name) && str(p.version))
      .map((p) => {
        const extra: Partial<InventoryPackage> = {};
        const sn = str(p.source_name);
        const sv = str(p.source_version);
        if (sn) extra.sourceName = sn;
        if (sv) extra.sourceVersion = sv;
        return pkg('dpkg', str(p.name)!, str(p.version)!, '/var/lib/dpkg/status', extra);
      });
    const inventory: Inventory = { packages };
    if (os) inventory.os = os;
    out.push({ name: file, inventory });
  };
  dpkg('dpkg-ubuntu-18.04-trivy-valid.json', { id: 'ubuntu', versionId: '18.04', codename: 'bionic', prettyName: 'Ubuntu 18.04.1 LTS' });
  dpkg('dpkg-trivy-corrupted.json', { id: 'ubuntu' }); // release unknown: OS packages cannot be matched
  // Releases read from the package sets (deb12u1 libc6, bookworm-era accountsservice, buster apt 1.8.2, bullseye sqlite 3.34.1).
  dpkg('dpkg-scalibr-valid.json', { id: 'debian', versionId: '12' });
  dpkg('dpkg-syft-status.d.json', { id: 'debian', versionId: '12' });
  dpkg('dpkg-syft-coverage.json', { id: 'debian', versionId: '10' });
  dpkg('dpkg-syft-distroless.json', { id: 'debian', versionId: '11' });

  const apk = (file: string, versionId: string): void => {
    const d = read(root, `pkgdb/${file}`);
    const packages = (d.packages as Json[])
      .filter((p) => str(p.name) && str(p.version))
      .map((p) => {
        const extra: Partial<InventoryPackage> = {};
        const o = str(p.origin);
        if (o) extra.sourceName = o;
        return pkg('apk', str(p.name)!, str(p.version)!, '/lib/apk/db/installed', extra);
      });
    out.push({ name: file, inventory: { os: { id: 'alpine', versionId }, packages } });
  };
  apk('apk-alpine-3.x-trivy.json', '3.4.6'); // matches-os.json: Alpine 3.4-era
  apk('apk-scalibr-installed.json', '3.18.4');
  apk('apk-syft-multiple-2.json', '3.16.2');

  const rpmPackages = (list: Json[]): InventoryPackage[] =>
    list.map((p) => {
      const extra: Partial<InventoryPackage> = {};
      const srpm = str(p.sourcerpm);
      if (srpm) extra.sourceName = srpm.replace(/-[^-]+-[^-]+\.src\.rpm$/, '');
      if (typeof p.epoch === 'number') extra.epoch = p.epoch;
      return pkg('rpm', str(p.name)!, `${str(p.version)}-${str(p.release)}`, '/var/lib/rpm', extra);
    });
  const mariner = read(root, 'pkgdb/rpm-sqlite-cbl-mariner-2.0.json');
  out.push({ name: 'rpm-sqlite-cbl-mariner-2.0', inventory: { os: { id: 'mariner', versionId: '2.0' }, packages: rpmPackages(mariner.packages as Json[]) } });
  for (const f of read(root, 'pkgdb/rpm-bdb.json').fixtures as Json[]) {
    out.push({ name: str(f.fixture)!, inventory: { os: { id: 'rhel', versionId: '8.8' }, packages: rpmPackages(f.packages as Json[]) } });
  }

  const py = read(root, 'lang/python-site-packages.json');
  out.push({ name: 'python-site-packages', inventory: { packages: (py.packages as Json[]).map((p) => pkg('python', str(p.name)!, str(p.version)!, str(p.path)!)) } });

  const happy = read(root, 'lang/npm-trivy-happy.json');
  out.push({
    name: 'npm-trivy-happy',
    inventory: {
      packages: [
        ...(happy.lockfile_packages as Json[]).map((p) => pkg('npm', str(p.name)!, str(p.version)!, str(happy.lockfile)!)),
        ...(happy.node_modules_packages as Json[]).map((p) => pkg('npm', str(p.name)!, str(p.version)!, str(p.path)!)),
      ],
    },
  });
  for (const l of read(root, 'lang/npm-lockfiles.json').lockfiles as Json[]) {
    const packages = (l.packages as Json[]).filter((p) => str(p.name) && str(p.version)).map((p) => pkg('npm', str(p.name)!, str(p.version)!, str(l.lockfile)!));
    out.push({ name: str(l.lockfile)!, inventory: { packages } });
  }

  for (const j of read(root, 'lang/java-jars.json').jars as Json[]) {
    // The README: heuristic and test.jar identities need an online lookup; no OSV assertions on them.
    if (j.offline_note !== undefined) continue;
    const packages = (j.packages as Json[]).filter((p) => str(p.name) && str(p.version)).map((p) => pkg('java', str(p.name)!, str(p.version)!, str(j.jar)!));
    out.push({ name: str(j.jar)!, inventory: { packages } });
  }

  const gems = read(root, 'lang/ruby-gemspecs.json');
  out.push({
    name: 'ruby-gemspecs',
    inventory: { packages: (gems.gemspecs as Json[]).filter((g) => str(g.name) && str(g.version)).map((g) => pkg('gem', str(g.name)!, str(g.version)!, str(g.path)!)) },
  });

  for (const l of read(root, 'lang/rust-cargo.json').lockfiles as Json[]) {
    const packages = (l.packages as Json[])
      .filter((p) => typeof p.source === 'string' && (p.source as string).startsWith('registry+'))
      .map((p) => pkg('cargo', str(p.name)!, str(p.version)!, str(l.lockfile)!));
    out.push({ name: str(l.lockfile)!, inventory: { packages } });
  }
  return out;
}
