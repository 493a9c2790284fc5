/**
 * Package analyzers beyond the fixture expectations: purls, licences, .NET and Composer (no shared
 * fixtures), path selection, deduplication between lockfiles and installed packages.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseComposerInstalled, parseComposerLock } from '../../../src/registry/scanner/inventory/composer.ts';
import { parseDepsJson } from '../../../src/registry/scanner/inventory/dotnet.ts';
import { parseCopyrightLicenses } from '../../../src/registry/scanner/inventory/dpkg.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { isInstalledPackageJson, parseNpmPackageJson } from '../../../src/registry/scanner/inventory/npm.ts';
import { golangPurl, npmPurl, purl } from '../../../src/registry/scanner/inventory/purl.ts';
import { parseRpmHeader, rpmEvr, splitSourceRpm } from '../../../src/registry/scanner/inventory/rpm.ts';
import { layer } from './helpers.ts';

describe('purls', () => {
  it('encodes segments and sorts qualifiers', () => {
    assert.equal(purl('deb', 'debian', 'bsdutils', '1:2.38.1-5+b1', { distro: 'debian-12', arch: 'amd64', upstream: 'util-linux' }), 'pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bb1?arch=amd64&distro=debian-12&upstream=util-linux');
    assert.equal(npmPurl('@babel/parser', '7.23.6'), 'pkg:npm/%40babel/parser@7.23.6');
    assert.equal(golangPurl('github.com/foo/bar/v2', 'v2.1.0'), 'pkg:golang/github.com/foo/bar/v2@v2.1.0');
    assert.equal(purl('maven', 'org.springframework', 'Spring Framework', '2.5.6'), 'pkg:maven/org.springframework/Spring%20Framework@2.5.6');
  });
});

describe('dpkg', () => {
  it('licences from DEP-5 copyright files', async () => {
    assert.deepEqual(parseCopyrightLicenses('Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: LGPL-2.1+\n text\nLicense: GPL-2+\n'), ['GPL-2+', 'LGPL-2.1+']);
    const inv = await inventoryImage([
      await layer([
        { name: 'etc/os-release', content: 'ID=ubuntu\nVERSION_ID="22.04"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\n' },
        { name: 'var/lib/dpkg/status', content: 'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.35-0ubuntu3.6\n' },
        { name: 'usr/share/doc/libc6/copyright', content: 'Files: *\nLicense: LGPL-2.1+\n' },
      ]),
    ]);
    const p = inv.inventory.packages[0]!;
    assert.deepEqual(p.licenses, ['LGPL-2.1+']);
    assert.equal(p.purl, 'pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?arch=amd64&distro=ubuntu-22.04&upstream=glibc');
    assert.equal(p.sourceName, 'glibc');
    assert.equal(inv.inventory.os?.osvEcosystem, 'Ubuntu:22.04:LTS');
  });
});

describe('apk', () => {
  it('purl, origin and attribution across layers', async () => {
    const a = 'P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\nL:MIT\n\n';
    const b = 'P:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nL:Apache-2.0\n\n';
    const l1 = await layer([{ name: 'etc/os-release', content: 'ID=alpine\nVERSION_ID=3.19.1\n' }, { name: 'lib/apk/db/installed', content: a }]);
    const l2 = await layer([{ name: 'lib/apk/db/installed', content: a + b }]);
    const inv = await inventoryImage([l1, l2]);
    const byName = Object.fromEntries(inv.inventory.packages.map((p) => [p.name, p]));
    assert.equal(byName.musl?.layerDiffId, l1.diffId);
    assert.equal(byName.libcrypto3?.layerDiffId, l2.diffId);
    assert.equal(byName.libcrypto3?.sourceName, 'openssl');
    assert.equal(byName.libcrypto3?.purl, 'pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl');
  });
});

describe('rpm', () => {
  it('header blobs, EVR and source RPM names', () => {
    const strings = ['bash', '5.1.8', '6.el9', 'x86_64', 'bash-5.1.8-6.el9.src.rpm'];
    const tags = [1000, 1001, 1002, 1022, 1044];
    const data: Buffer[] = [];
    const index = Buffer.alloc(16 * (tags.length + 1));
    let off = 0;
    tags.forEach((t, i) => {
      index.writeUInt32BE(t, i * 16);
      index.writeUInt32BE(6, i * 16 + 4);
      index.writeUInt32BE(off, i * 16 + 8);
      index.writeUInt32BE(1, i * 16 + 12);
      const b = Buffer.from(`${strings[i]}\0`);
      data.push(b);
      off += b.length;
    });
    while (off % 4 !== 0) {
      data.push(Buffer.alloc(1));
      off++;
    }
    const e = tags.length * 16;
    index.writeUInt32BE(1003, e);
    index.writeUInt32BE(4, e + 4);
    index.writeUInt32BE(off, e + 8);
    index.writeUInt32BE(1, e + 12);
    const epoch = Buffer.alloc(4);
    epoch.writeInt32BE(2);
    data.push(epoch);
    const store = Buffer.concat(data);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(tags.length + 1, 0);
    head.writeUInt32BE(store.length, 4);
    const rec = parseRpmHeader(Buffer.concat([head, index, store]));
    assert.deepEqual(rec, { name: 'bash', version: '5.1.8', release: '6.el9', epoch: 2, arch: 'x86_64', sourceRpm: 'bash-5.1.8-6.el9.src.rpm' });
    assert.equal(rpmEvr(rec), '2:5.1.8-6.el9');
    assert.deepEqual(splitSourceRpm('util-linux-2.32.1-42.el8_8.src.rpm'), { name: 'util-linux', version: '2.32.1', release: '42.el8_8' });
    assert.throws(() => parseRpmHeader(Buffer.concat([head, index])), /blob has/);
  });

  it('reports the SUSE ndb format as unsupported instead of guessing', async () => {
    const inv = await inventoryImage([await layer([{ name: 'usr/lib/sysimage/rpm/Packages.db', content: 'anything' }])]);
    assert.ok(inv.warnings.some((w) => /ndb/.test(w.message)));
  });
});

describe('npm', () => {
  it('recognises installed package.json files only', () => {
    assert.equal(isInstalledPackageJson('app/node_modules/ms/package.json'), true);
    assert.equal(isInstalledPackageJson('app/node_modules/@scope/pkg/package.json'), true);
    assert.equal(isInstalledPackageJson('app/node_modules/a/node_modules/b/package.json'), true);
    assert.equal(isInstalledPackageJson('app/package.json'), false);
    assert.equal(isInstalledPackageJson('app/node_modules/ms/lib/package.json'), false);
    assert.equal(isInstalledPackageJson('app/node_modules/.bin/package.json'), false);
  });

  it('licence shapes', () => {
    assert.deepEqual(parseNpmPackageJson('{"name":"a","version":"1.0.0","license":{"type":"MIT"}}')?.licenses, ['MIT']);
    assert.deepEqual(parseNpmPackageJson('{"name":"a","version":"1.0.0","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}')?.licenses, ['MIT', 'Apache-2.0']);
    assert.equal(parseNpmPackageJson('{"type":"module"}'), undefined);
  });

  it('a lockfile entry that is installed beside it is reported once', async () => {
    const inv = await inventoryImage([
      await layer([
        { name: 'srv/package-lock.json', content: JSON.stringify({ lockfileVersion: 3, packages: { '': { name: 'app' }, 'node_modules/ms': { version: '2.1.3' }, 'node_modules/jest': { version: '29.7.0', dev: true } } }) },
        { name: 'srv/node_modules/ms/package.json', content: '{"name":"ms","version":"2.1.3","license":"MIT"}' },
      ]),
    ]);
    assert.deepEqual(inv.inventory.packages.map((p) => [p.name, p.version, p.path, p.dev ?? false]), [
      ['jest', '29.7.0', '/srv/package-lock.json', true],
      ['ms', '2.1.3', '/srv/node_modules/ms/package.json', false],
    ]);
  });
});

describe('.NET and Composer', () => {
  it('.deps.json: packages, not projects', () => {
    const deps = parseDepsJson(JSON.stringify({ libraries: { 'App/1.0.0': { type: 'project' }, 'Newtonsoft.Json/13.0.1': { type: 'package' }, 'System.Text.Json/8.0.0': { type: 'package' }, 'weird': { type: 'package' } } }));
    assert.deepEqual(deps, [{ name: 'Newtonsoft.Json', version: '13.0.1' }, { name: 'System.Text.Json', version: '8.0.0' }]);
  });

  it('composer.lock and installed.json, deduplicated', async () => {
    const lock = JSON.stringify({ packages: [{ name: 'monolog/monolog', version: '3.5.0', license: ['MIT'] }], 'packages-dev': [{ name: 'phpunit/phpunit', version: '10.5.0' }] });
    assert.deepEqual(parseComposerLock(lock).map((p) => `${p.name}@${p.version}${p.dev ? ' dev' : ''}`), ['monolog/monolog@3.5.0', 'phpunit/phpunit@10.5.0 dev']);
    const installed = JSON.stringify({ packages: [{ name: 'monolog/monolog', version: '3.5.0' }], 'dev-package-names': [] });
    assert.equal(parseComposerInstalled(installed).length, 1);
    const inv = await inventoryImage([await layer([{ name: 'var/www/composer.lock', content: lock }, { name: 'var/www/vendor/composer/installed.json', content: installed }, { name: 'app/bin/App.deps.json', content: JSON.stringify({ libraries: { 'Serilog/3.1.1': { type: 'package' } } }) }])]);
    assert.deepEqual(inv.inventory.packages.map((p) => `${p.kind} ${p.purl}`), ['composer pkg:composer/monolog/monolog@3.5.0', 'composer pkg:composer/phpunit/phpunit@10.5.0', 'nuget pkg:nuget/Serilog@3.1.1']);
  });
});
