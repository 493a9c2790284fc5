/**
 * OS detection over every `osrelease/` fixture, read from a real layer (so /usr/lib/os-release
 * fallbacks and symlinks take the walker's path). Expected values follow the upstream tests the
 * fixtures come from (aquasecurity/trivy release_test.go and debian_test.go, anchore/syft
 * identify_release_test.go and supplement_release.go); the OSV ecosystem strings follow the OSV
 * schema's ecosystem table.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OperatingSystem } from '../../../src/registry/scanner/model.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { detectOs, osvEcosystemFor, parseOsRelease, parseRedhatRelease } from '../../../src/registry/scanner/inventory/os.ts';
import { dirEntries, fixtures, layer, skipWithoutFixtures } from './helpers.ts';

type Want = Pick<OperatingSystem, 'id' | 'versionId' | 'osvEcosystem' | 'codename'> | undefined;

/** Fixture -> expected OS (and the upstream expectation it follows). */
const EXPECTED: Record<string, Want> = {
  'syft-alpine': { id: 'alpine', versionId: '3.11.6', osvEcosystem: 'Alpine:v3.11' },
  'syft-amazon': { id: 'amzn', versionId: '2' }, // no OSV ecosystem for Amazon Linux
  'syft-arch': { id: 'arch' }, // rolling: no VERSION_ID
  'syft-debian-from-debian_version': { id: 'debian', versionId: '10.8', osvEcosystem: 'Debian:10' }, // syft: VERSION_ID from debian_version
  'syft-debian-from-os-release': { id: 'debian', versionId: '8', osvEcosystem: 'Debian:8' }, // /usr/lib/os-release fallback
  'syft-debian-with-point-release': { id: 'debian', versionId: '13.5', codename: 'trixie', osvEcosystem: 'Debian:13' }, // syft: point release wins
  'syft-mariner': { id: 'mariner', versionId: '1.0', osvEcosystem: 'Mariner:1.0' },
  'syft-sles': { id: 'sles', versionId: '15.2', osvEcosystem: 'SUSE:Linux Enterprise Server 15 SP2' },
  'syft-ubuntu': { id: 'ubuntu', versionId: '20.04', codename: 'focal', osvEcosystem: 'Ubuntu:20.04:LTS' },
  'syft-wolfi': { id: 'wolfi', versionId: '20220914', osvEcosystem: 'Wolfi' },
  'trivy-alma': { id: 'almalinux', versionId: '9.4', osvEcosystem: 'AlmaLinux:9' },
  'trivy-alpine': { id: 'alpine', versionId: '3.15.4', osvEcosystem: 'Alpine:v3.15' }, // trivy release analyzer: Alpine 3.15.4
  'trivy-centos': { id: 'centos', versionId: '7' },
  'trivy-debian-9': { id: 'debian', versionId: '9.8', osvEcosystem: 'Debian:9' }, // trivy: Debian 9.8
  'trivy-debian-sid': { id: 'debian', versionId: 'buster/sid', codename: 'buster' }, // trivy: Debian buster/sid; no OSV release
  'trivy-fedora': { id: 'fedora', versionId: '42' },
  'trivy-no-id': undefined, // trivy: nil
  'trivy-no-version': { id: 'alpine' }, // trivy: nil (no release); we keep the distribution, without an ecosystem
  'trivy-opensuseleap-15.2.1': { id: 'opensuse-leap', versionId: '15.2.1', osvEcosystem: 'openSUSE:Leap 15.2.1' },
  'trivy-oracle': { id: 'ol', versionId: '8.10' },
  'trivy-photon': { id: 'photon', versionId: '4.0', osvEcosystem: 'Photon OS:4.0' },
  'trivy-rhel': { id: 'rhel', versionId: '9.4', osvEcosystem: 'Red Hat:enterprise_linux:9::baseos' },
  'trivy-rocky': { id: 'rocky', versionId: '9.3', osvEcosystem: 'Rocky Linux:9' },
};

function pick(os: OperatingSystem | undefined): Want {
  if (os === undefined) return undefined;
  const out: NonNullable<Want> = { id: os.id };
  if (os.versionId !== undefined) out.versionId = os.versionId;
  if (os.codename !== undefined) out.codename = os.codename;
  if (os.osvEcosystem !== undefined) out.osvEcosystem = os.osvEcosystem;
  return out;
}

describe('OS detection over the osrelease fixtures', { skip: skipWithoutFixtures() }, () => {
  const F = fixtures();
  const dir = F === undefined ? '' : join(F, 'osrelease');
  const names = F !== undefined && existsSync(dir) ? readdirSync(dir).sort() : [];

  it('has an expectation for every fixture (and a fixture for every expectation)', () => {
    assert.ok(names.length > 0, 'osrelease/ is empty');
    assert.deepEqual(names, Object.keys(EXPECTED).sort());
  });

  for (const name of names) {
    it(name, async () => {
      const inv = await inventoryImage([await layer(dirEntries(join(dir, name)))]);
      assert.deepEqual(pick(inv.inventory.os), EXPECTED[name]);
    });
  }

  it('alpine-release alone (trivy alpine analyzer: 3.11.6)', () => {
    assert.deepEqual(pick(detectOs({ alpineRelease: '3.11.6\n' })), { id: 'alpine', versionId: '3.11.6', osvEcosystem: 'Alpine:v3.11' });
  });
});

describe('OS detection rules', () => {
  it('os-release quoting and comments', () => {
    assert.deepEqual(parseOsRelease('# c\nNAME="A \\"B\\""\nID=x # trailing\nV=\'lit $x\'\n\nbad line\n'), { NAME: 'A "B"', ID: 'x', V: 'lit $x' });
  });

  it('Ubuntu: LTS only for LTS releases', () => {
    assert.equal(osvEcosystemFor({ id: 'ubuntu', versionId: '22.04' }, { VERSION: '22.04.4 LTS (Jammy Jellyfish)' }), 'Ubuntu:22.04:LTS');
    assert.equal(osvEcosystemFor({ id: 'ubuntu', versionId: '23.10' }, { VERSION: '23.10 (Mantic Minotaur)' }), 'Ubuntu:23.10');
    assert.equal(osvEcosystemFor({ id: 'ubuntu', versionId: '18.04' }), 'Ubuntu:18.04:LTS');
  });

  it('Ubuntu images carry a debian_version that must not win', () => {
    const os = detectOs({ etcOsRelease: 'ID=ubuntu\nVERSION_ID="22.04"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\n', debianVersion: 'bookworm/sid\n' });
    assert.equal(os?.osvEcosystem, 'Ubuntu:22.04:LTS');
  });

  it('Red Hat family release files for images without os-release', () => {
    assert.deepEqual(parseRedhatRelease('CentOS release 6.10 (Final)\n'), { id: 'centos', versionId: '6.10', prettyName: 'CentOS release 6.10 (Final)' });
    assert.equal(detectOs({ redhatRelease: 'Red Hat Enterprise Linux Server release 7.9 (Maipo)' })?.osvEcosystem, 'Red Hat:enterprise_linux:7::baseos');
    assert.equal(detectOs({ redhatRelease: 'Rocky Linux release 8.9 (Green Obsidian)' })?.osvEcosystem, 'Rocky Linux:8');
    assert.equal(detectOs({ redhatRelease: 'not a release line' }), undefined);
  });

  it('/etc/os-release wins over /usr/lib/os-release', () => {
    assert.equal(detectOs({ etcOsRelease: 'ID=alpine\nVERSION_ID=3.20.0\n', usrLibOsRelease: 'ID=debian\nVERSION_ID=12\n' })?.id, 'alpine');
    assert.equal(detectOs({ etcOsRelease: '', usrLibOsRelease: 'ID=debian\nVERSION_ID=12\n' })?.osvEcosystem, 'Debian:12');
  });
});
