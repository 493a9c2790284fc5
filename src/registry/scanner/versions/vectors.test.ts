/**
 * Hand-written vectors for the schemes without a shared fixture table. Sources:
 * - Maven: apache/maven ComparableVersionTest (VERSIONS_QUALIFIER, VERSIONS_NUMBER, equality,
 *   MNG-5568/6572/6964/7644/7714 cases) and the POM reference's version-order examples; plus the
 *   Guava cases from the fixtures README.
 * - RubyGems: rubygems test_gem_version.rb (test_spaceship, test_semver, hyphen/pre rules).
 * - Go, NuGet, Composer, rpm EVR, apk suffixes: documented behaviour of each tool (see comments).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalMaven, compareMaven } from './maven.ts';
import { compareGem, canonicalGemSegments } from './rubygems.ts';
import { compareGo, compareSemVer, goToolchainToSemVer } from './semver.ts';
import { compareNuGet } from './nuget.ts';
import { compareComposer } from './composer.ts';
import { compareRpm } from './rpm.ts';
import { compareApk } from './apk.ts';
import { compareDpkg } from './dpkg.ts';
import { comparePep440, normalizePypiName } from './pep440.ts';
import { schemeForEcosystem } from './index.ts';

type Cmp = (a: string, b: string) => number;

let counted = 0;

function ascending(cmp: Cmp, list: string[]): void {
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      assert.equal(Math.sign(cmp(list[i]!, list[j]!)), -1, `expected ${list[i]} < ${list[j]}`);
      assert.equal(Math.sign(cmp(list[j]!, list[i]!)), 1, `expected ${list[j]} > ${list[i]}`);
      counted++;
    }
  }
}

function less(cmp: Cmp, pairs: [string, string][]): void {
  for (const [a, b] of pairs) ascending(cmp, [a, b]);
}

function equal(cmp: Cmp, pairs: [string, string][]): void {
  for (const [a, b] of pairs) {
    assert.equal(cmp(a, b), 0, `expected ${a} == ${b}`);
    assert.equal(cmp(b, a), 0, `expected ${b} == ${a}`);
    counted++;
  }
}

describe('Maven ComparableVersion', () => {
  test('qualifier and number orderings (ComparableVersionTest)', () => {
    ascending(compareMaven, [
      '1-alpha2snapshot', '1-alpha2', '1-alpha-123', '1-beta-2', '1-beta123', '1-m2', '1-m11', '1-rc', '1-cr2',
      '1-rc123', '1-SNAPSHOT', '1', '1-sp', '1-sp2', '1-sp123', '1-abc', '1-def', '1-pom-1', '1-1-snapshot',
      '1-1', '1-2', '1-123',
    ]);
    ascending(compareMaven, [
      '2.0', '2.0.a', '2-1', '2.0.2', '2.0.123', '2.1.0', '2.1-a', '2.1b', '2.1-c', '2.1-1', '2.1.0.1', '2.2',
      '2.123', '11.a2', '11.a11', '11.b2', '11.b11', '11.m2', '11.m11', '11', '11.a', '11b', '11c', '11m',
    ]);
  });

  test('equalities', () => {
    equal(compareMaven, [
      ['1', '1'], ['1', '1.0'], ['1', '1.0.0'], ['1.0', '1.0.0'], ['1', '1-0'], ['1', '1.0-0'], ['1.0', '1.0-0'],
      ['1a', '1-a'], ['1a', '1.0-a'], ['1a', '1.0.0-a'], ['1.0a', '1-a'], ['1.0.0a', '1-a'],
      ['1x', '1-x'], ['1x', '1.0-x'], ['1x', '1.0.0-x'], ['1.0x', '1-x'], ['1.0.0x', '1-x'], ['1cr', '1rc'],
      ['1a1', '1-alpha-1'], ['1b2', '1-beta-2'], ['1m3', '1-milestone-3'],
      ['1X', '1x'], ['1A', '1a'], ['1B', '1b'], ['1M', '1m'], ['1Cr', '1Rc'], ['1cR', '1rC'],
      ['1m3', '1Milestone3'], ['1m3', '1MileStone3'], ['1m3', '1MILESTONE3'],
      ['1ga', '1'], ['1release', '1'], ['1final', '1'], ['1GA', '1'], ['1RELeaSE', '1'], ['1FINAL', '1'],
      ['1.0.0-alpha1', '1.0.0-ALPHA1'], ['1.a', '1.A'], ['1-abcdefghijklmnopqrstuvwxyz', '1-ABCDEFGHIJKLMNOPQRSTUVWXYZ'],
      ['0000000000000000001', '1'], ['01', '1'], ['0000000000000000000', '0'], ['00', '0'],
    ]);
    for (const x of ['abc', 'alpha', 'a', 'beta', 'b', 'def', 'milestone', 'm', 'RC']) {
      equal(compareMaven, [[`2-${x}`, `2.0.${x}`], [`2-${x}`, `2.0.0.${x}`], [`2.0.${x}`, `2.0.0.${x}`]]);
      less(compareMaven, [[`1.0.0.${x}1`, `1.0.0-${x}2`]]);
    }
  });

  test('comparisons', () => {
    less(compareMaven, [
      ['1', '2'], ['1.5', '2'], ['1', '2.5'], ['1.0', '1.1'], ['1.1', '1.2'], ['1.0.0', '1.1'], ['1.0.1', '1.1'],
      ['1.1', '1.2.0'], ['1.0-alpha-1', '1.0'], ['1.0-alpha-1', '1.0-alpha-2'], ['1.0-alpha-1', '1.0-beta-1'],
      ['1.0-beta-1', '1.0-SNAPSHOT'], ['1.0-SNAPSHOT', '1.0'], ['1.0-alpha-1-SNAPSHOT', '1.0-alpha-1'],
      ['1.0', '1.0-1'], ['1.0-1', '1.0-2'], ['1.0.0', '1.0-1'], ['2.0-1', '2.0.1'], ['2.0.1-klm', '2.0.1-lmn'],
      ['2.0.1', '2.0.1-xyz'], ['2.0.1', '2.0.1-123'], ['2.0.1-xyz', '2.0.1-123'], ['0.7', '2'], ['0.2', '1.0.7'],
      // MNG-5568
      ['6.1.0rc3', '6.1.0'], ['6.1.0rc3', '6.1H.5-beta'], ['6.1.0', '6.1H.5-beta'],
      // MNG-6572
      ['20190126.230843', '1234567890.12345'], ['1234567890.12345', '123456789012345.1H.5-beta'],
      ['123456789012345.1H.5-beta', '12345678901234567890.1H.5-beta'],
      // MNG-6964
      ['1-0.alpha', '1'], ['1-0.beta', '1'], ['1-0.alpha', '1-0.beta'],
      // MNG-7714
      ['1.0.final-redhat', '1.0-sp1-redhat'], ['1.0.final-redhat', '1.0-sp-1-redhat'], ['1.0.final-redhat', '1.0-sp.1-redhat'],
      // POM reference examples
      ['1', '1.1'], ['1-snapshot', '1'], ['1', '1-sp'], ['1-foo2', '1-foo10'], ['1.foo', '1-1'], ['1-1', '1.1'],
      // (The POM reference's '1-sp-1 < 1-ga-1' predates the 'X-1 is X1' rule of current Maven: no longer true.)
      ['1-ga', '1-sp'], ['1-ga.1', '1-sp.1'], ['1-ga-1', '1-sp-1'],
      // Guava, from the fixtures README and records
      ['29.0-jre', '32.0.0-android'], ['29.0', '29.0-jre'], ['24.1.1-android', '29.0-jre'], ['29.0-android', '29.0-jre'],
      ['11.0', '29.0-jre'], ['1.0', '29.0-jre'], ['29.0-jre', '32.0.0'],
    ]);
    equal(compareMaven, [['1.ga', '1-ga'], ['1-0', '1.0'], ['1-a1', '1-alpha-1']]);
  });

  test('canonical forms', () => {
    assert.equal(canonicalMaven('0.x'), 'x');
    assert.equal(canonicalMaven('0.2'), '0.2');
    assert.equal(canonicalMaven('1.0.0'), '1');
    assert.equal(canonicalMaven('29.0-jre'), '29-jre');
    // hostile input: bounded length, never throws
    assert.equal(typeof compareMaven('1-'.repeat(10000), '1'), 'number');
  });
});

describe('RubyGems Gem::Version', () => {
  test('spaceship and semver-style cases (test_gem_version.rb)', () => {
    equal(compareGem, [['1.0', '1.0.0'], ['', '0'], ['0.beta.1', '0.0.beta.1'], ['1.2.b1', '1.2.b.1'], ['1.9.3', '1.9.3'],
      ['1.0.0.beta.1', '1.0.0-beta.1'], ['1.0.0.rc.1', '1.0.0-rc.1'], ['1.2.3.beta', '1.2.3-beta'], ['1.0.0.beta.1', '1.0.0.pre.beta.1'],
      ['1.0', ' 1.0 '], ['1.2.pre.1', '1.2.0.pre.1.0']]);
    less(compareGem, [['1.0.a', '1.0'], ['0.0.0', '1.8.2'], ['1.8.2.a', '1.8.2'], ['1.8.2.a', '1.8.2.b'], ['1.8.2.a9', '1.8.2.a10'],
      ['0.0.beta', '0.0.beta.1'], ['0.0.beta', '0.beta.1'], ['5.a', '5.0.0.rc2'], ['5.0.0.rc2', '5.x'], ['1.9.2.99', '1.9.3'],
      ['1.9.3', '1.9.3.1'], ['1.0.0-alpha', '1.0.0-alpha.1'], ['1.0.0-alpha.1', '1.0.0-beta.2'], ['1.0.0-beta.2', '1.0.0-beta.11'],
      ['1.0.0-beta.11', '1.0.0-rc.1'], ['1.0.0-rc1', '1.0.0'], ['1.0.0-1', '1'], ['1.0.0-1', '1.0.0.1'], ['1.freeze.test', '1'],
      ['0.0.1.20220404083012', '1.0.0'], ['0.6.63000', '0.7.0'], ['18.0.1', '18.0.2'], ['2.30.1.250000', '2.30.2'],
      // the fixture case: rake 12.3.3 fixed, 13.0.3 installed
      ['12.3.3', '13.0.3']]);
    assert.deepEqual(canonicalGemSegments('1.0.0'), [1n]);
    assert.deepEqual(canonicalGemSegments('1.0.0.a.1.0'), [1n, 'a', 1n]);
    assert.deepEqual(canonicalGemSegments('1.2.3-1'), [1n, 2n, 3n, 'pre', 1n]);
  });
});

describe('Go module and toolchain versions', () => {
  test('v prefix, +incompatible, pseudo-versions, toolchain names', () => {
    equal(compareGo, [['v1.2.3', '1.2.3'], ['v2.0.0+incompatible', '2.0.0'], ['go1.22.1', '1.22.1'], ['go1.22', '1.22.0']]);
    less(compareGo, [
      ['v0.0.0-20191109021931-daa7c04131f5', 'v0.0.1'], ['v0.0.0-20191109021931-daa7c04131f5', 'v0.0.0-20200101000000-aaaaaaaaaaaa'],
      ['1.22.0-0', '1.22.0'], ['1.22.0-0', 'go1.22.0'], ['go1.21.8', '1.22.0-0'], ['go1.22.0', '1.22.1'], ['go1.21rc2', 'go1.21.0'],
      ['v1.9.9', 'v1.10.0'], ['v0.22.0', '0.23.0'],
    ]);
    assert.equal(goToolchainToSemVer('go1.21rc2'), '1.21.0-rc.2');
    assert.equal(goToolchainToSemVer('go1.20beta1'), '1.20.0-beta.1');
  });

  test('semver tolerance', () => {
    less(compareSemVer, [['1.0.0-alpha.1', '1.0.0-alpha.beta'], ['1.2.3-a.5', '1.2.3-a.10'], ['garbage', '0.0.1'], ['5.0.0-alpha.1', '5.0.0-beta.3']]);
    equal(compareSemVer, [['=1.2.3', 'v1.2.3'], ['1.2.3+build.5', '1.2.3'], ['1.2', '1.2.0']]);
    // npm express: 4.16.4 is below the 4.20.0 fix and outside the 5.x range
    less(compareSemVer, [['4.16.4', '4.20.0'], ['4.16.4', '5.0.0-alpha.1'], ['1.18.3', '1.20.3'], ['1.5.5', '1.7.3']]);
  });
});

describe('NuGet', () => {
  test('four parts, case-insensitive labels, metadata ignored', () => {
    equal(compareNuGet, [['1.0', '1.0.0.0'], ['1.0.0-Beta', '1.0.0-beta'], ['1.0.0+build', '1.0.0'], ['1.0.0.0-RC.1', '1.0-rc.1']]);
    less(compareNuGet, [['1.0.0-alpha', '1.0.0'], ['1.0.0-alpha.2', '1.0.0-alpha.10'], ['1.0.0', '1.0.0.1'], ['1.0.0-1', '1.0.0-a'],
      ['4.7.1', '4.7.2'], ['13.0.1', '13.0.3']]);
  });
});

describe('Composer (PHP version_compare)', () => {
  test('special forms and lengths', () => {
    less(compareComposer, [['5.2', '5.2.0'], ['1.0rc1', '1.0'], ['1.0.0-beta2', '1.0.0'], ['1.0-dev', '1.0-alpha'], ['1.0', '1.0pl1'],
      ['1.0.0-alpha', '1.0.0-beta'], ['1.0.0-RC1', '1.0.0-RC2'], ['v2.3.4', '2.3.5'], ['1.0.0-beta', '1.0.0-RC1']]);
    equal(compareComposer, [['v1.2.3', '1.2.3'], ['1.0.0-RC1', '1.0.0rc1'], ['1.0a1', '1.0-alpha1']]);
  });
});

describe('rpm EVR', () => {
  test('epoch, release, tilde and caret', () => {
    less(compareRpm, [['2.0-1', '1:1.0-1'], ['1.0~rc1-1', '1.0-1'], ['1.0-1', '1.0^git1-1'], ['1.0-1.el8', '1.0-2.el8'],
      ['2.32.1-42.el8_8', '2.32.1-43.el8_8'], ['1.1.1k-7.cm2', '1.1.1k-8.cm2'], ['7.76.0-6.cm2', '7.79.1-1.cm2']]);
    equal(compareRpm, [['0:1.0-1', '1.0-1'], ['1.0-1', '1.0']]);
  });
});

describe('apk and dpkg specifics used by the OS fixtures', () => {
  test('apk suffixes and revisions', () => {
    less(compareApk, [['1.2.4-r0', '1.2.4-r3'], ['1.2.4-r3', '1.2.4_git20230717-r5'], ['1.2.3-r0', '1.2.3-r4'], ['0.9.13', '1.1.14-r10'],
      ['1.2.5_rc1', '1.2.5'], ['1.2.5', '1.2.5_p1'], ['1.2.5-r9', '1.2.5-r10']]);
  });
  test('dpkg epochs, tildes, revisions', () => {
    less(compareDpkg, [['1:1.2.11.dfsg-0ubuntu2', '1:1.2.11.dfsg-0ubuntu2.1'], ['0.0~r131-2ubuntu3', '0.0~r131-2ubuntu3.1'],
      ['2:8.39-9', '2:8.39-9ubuntu0.1'], ['5.1.1alpha+20120614-2', '5.2.2-1.3ubuntu0.1'], ['1.0~rc1', '1.0'], ['9:1.0', '10:0.1'],
      ['1.1.0l-1~deb9u5', '1.1.0l-1~deb9u6'], ['2.27-3ubuntu1', '2.35-0ubuntu3.4']]);
    equal(compareDpkg, [['2:3.3.12-3ubuntu1.1', '2:3.3.12-3ubuntu1.1'], ['1.0', '1.0-0'], ['0:1.0', '1.0']]);
  });
});

describe('PEP 440 specifics', () => {
  test('normalisation and names', () => {
    equal(comparePep440, [['2.0', '2.0.0'], ['1.0-1', '1.0.post1'], ['1.0RC1', '1.0rc1'], ['v1.0', '1.0'], ['1.0a', '1.0a0']]);
    less(comparePep440, [['51.3.3', '65.5.1'], ['2.0.0', '2.2.5'], ['2.14.2', '2.14.3'], ['not a version', '0.0.1']]);
    assert.equal(normalizePypiName('Flask'), 'flask');
    assert.equal(normalizePypiName('typing_extensions'), 'typing-extensions');
    assert.equal(normalizePypiName('zope.interface'), 'zope-interface');
  });
});

describe('scheme lookup', () => {
  test('ecosystems with release suffixes map to their schemes', () => {
    assert.equal(schemeForEcosystem('Debian:12')?.name, 'dpkg');
    assert.equal(schemeForEcosystem('Ubuntu:Pro:18.04:LTS')?.name, 'dpkg');
    assert.equal(schemeForEcosystem('Alpine:v3.19')?.name, 'apk');
    assert.equal(schemeForEcosystem('Red Hat:enterprise_linux:9::baseos')?.name, 'rpm');
    assert.equal(schemeForEcosystem('Maven')?.name, 'maven');
    assert.equal(schemeForEcosystem('crates.io')?.name, 'semver');
    assert.equal(schemeForEcosystem('NoSuch'), undefined);
  });

  test('count', () => {
    console.log(`# hand-written vector comparisons: ${counted}`);
    assert.ok(counted > 300);
  });
});
