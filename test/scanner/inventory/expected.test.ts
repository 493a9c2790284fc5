/**
 * Every expectation in `fixtures/scanner/expected/{pkgdb,lang}/*.json` reproduced: each parser's raw
 * output equals the expected records exactly, and the same fixtures packed into real layers and
 * inventoried end to end give the expected packages. A new expected file without a handler here
 * fails the suite, as does an empty directory.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { InventoryPackage } from '../../../src/registry/scanner/model.ts';
import { parseApkInstalled } from '../../../src/registry/scanner/inventory/apk.ts';
import { parseCargoLock } from '../../../src/registry/scanner/inventory/cargo.ts';
import { isValidDpkgVersion, parseDpkgStatus } from '../../../src/registry/scanner/inventory/dpkg.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { parseJavaArchive } from '../../../src/registry/scanner/inventory/java.ts';
import { parseNpmPackageJson, parsePackageLock } from '../../../src/registry/scanner/inventory/npm.ts';
import { parsePythonMetadata } from '../../../src/registry/scanner/inventory/python.ts';
import { parseRpmBdb, parseRpmSqlite, type RpmRecord } from '../../../src/registry/scanner/inventory/rpm.ts';
import { parseGemspec } from '../../../src/registry/scanner/inventory/ruby.ts';
import { dirEntries, fixtures, layer, skipWithoutFixtures, type TarSpec } from './helpers.ts';

const F = fixtures();
const skip = skipWithoutFixtures();

type Json = Record<string, unknown>;
const readJson = (p: string): Json => JSON.parse(readFileSync(p, 'utf8')) as Json;
const fx = (rel: string): string => join(F!, rel);
const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function byNameVersion(a: unknown[], b: unknown[]): number {
  const [an, av, bn, bv] = [String(a[0]), String(a[1]), String(b[0]), String(b[1])];
  return an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0;
}

/** Inventory of an image whose single layer is the given entries (gzip). */
async function inventoryOf(entries: TarSpec[]) {
  return inventoryImage([await layer(entries, 'gzip')]);
}

function dpkgFiles(dir: string): string[] {
  const out: string[] = [];
  const status = join(dir, 'var/lib/dpkg/status');
  if (existsSync(status)) out.push(status);
  const sd = join(dir, 'var/lib/dpkg/status.d');
  if (existsSync(sd)) for (const n of readdirSync(sd).sort()) if (!n.endsWith('.md5sums')) out.push(join(sd, n));
  return out;
}

const handlers: Record<string, (exp: Json, file: string, t: TestContext) => Promise<void>> = {
  async dpkg(exp) {
    const dir = fx((exp.fixture_dir as string | undefined) ?? (exp.fixture as string).replace(/\/var\/lib\/dpkg\/status$/, ''));
    const expected = exp.packages as Json[];
    const raw = dpkgFiles(dir).flatMap((file) =>
      parseDpkgStatus(readFileSync(file, 'utf8'), file.includes('/status.d/')).records.map((r) => ({ file: file.slice(F!.length + 1), ...r })),
    );
    if (exp.fixture_dir !== undefined) {
      // Full records, installed or not, in file order.
      const got = raw.map((r) => ({ file: r.file, name: r.name, version: orNull(r.version), status: orNull(r.status), installed: r.installed, source_name: r.sourceName, source_version: orNull(r.sourceVersion), arch: orNull(r.arch) }));
      assert.deepEqual(got, expected);
    } else {
      // Upstream goldens list installed packages by name.
      const got = raw.filter((r) => r.installed).map((r) => ({ name: r.name, version: r.version, source_name: r.sourceName, source_version: r.sourceVersion, arch: r.arch }));
      const byName = (a: Json, b: Json): number => ((a.name as string) < (b.name as string) ? -1 : 1);
      assert.deepEqual(got.sort(byName), [...expected].sort(byName));
    }
    // End to end: only installed packages with valid versions, each with its source package.
    const inv = await inventoryOf(dirEntries(dir));
    const pkgs = inv.inventory.packages.filter((p) => p.kind === 'dpkg');
    // Installed records with a usable version, once each; the others are skipped with a warning.
    const usable = (e: Json): boolean => e.installed !== false && e.name !== '' && typeof e.version === 'string' && isValidDpkgVersion(e.version);
    const want = [...new Map(expected.filter(usable).map((e) => [`${e.name}:${e.arch}@${e.version}`, e])).values()];
    assert.deepEqual(
      pkgs.map((p) => [p.name, p.version, p.sourceName, p.sourceVersion, p.arch ?? null]).sort(),
      want.map((e) => [e.name, e.version, e.source_name, e.source_version, e.arch ?? null]).sort(),
    );
    const skipped = expected.filter((e) => e.installed !== false && !usable(e));
    assert.equal(inv.warnings.filter((w) => w.code === 'record-skipped').length, skipped.length);
    for (const p of pkgs) assert.match(p.purl, /^pkg:deb\/debian\/[^@]+@/);
  },

  async apk(exp) {
    const file = fx(exp.fixture as string);
    const expected = exp.packages as Json[];
    const parsed = parseApkInstalled(readFileSync(file, 'utf8'));
    assert.deepEqual(
      parsed.records.map((r) => ({ name: r.name, version: orNull(r.version), arch: orNull(r.arch), origin: orNull(r.origin), license: orNull(r.license) })),
      expected,
    );
    const inv = await inventoryOf(dirEntries(file.replace(/\/lib\/apk\/db\/installed$/, '')));
    const withVersion = expected.filter((e) => e.version !== null);
    assert.deepEqual(
      inv.inventory.packages.map((p) => [p.name, p.version, p.arch, p.sourceName, p.licenses?.[0]]),
      withVersion.map((e) => [e.name, e.version, e.arch, e.origin, e.license]).sort(byNameVersion),
    );
    // A versionless record is skipped with a warning, not silently.
    for (const e of expected.filter((x) => x.version === null)) {
      assert.ok(inv.warnings.some((w) => w.code === 'record-skipped' && w.message.includes(e.name as string)), `warning for ${e.name}`);
    }
  },

  async rpm(exp, name) {
    const compare = (records: RpmRecord[], expected: Json[]): void => {
      const got = records.map((r) => {
        const full: Json = { name: r.name, epoch: orNull(r.epoch), version: r.version, release: r.release, arch: orNull(r.arch), sourcerpm: orNull(r.sourceRpm), license: orNull(r.license), vendor: orNull(r.vendor) };
        return full;
      });
      assert.equal(got.length, expected.length);
      expected.forEach((e, i) => {
        const g = got[i]!;
        for (const k of Object.keys(e)) assert.deepEqual(g[k], e[k], `${e.name}: ${k}`);
      });
    };
    if (name === 'rpm-bdb.json') {
      const list = exp.fixtures as Json[];
      assert.ok(list.length >= 3);
      for (const f of list) {
        const buf = readFileSync(fx(f.fixture as string));
        const parsed = parseRpmBdb(buf);
        assert.deepEqual(parsed.problems, []);
        compare(parsed.records, f.packages as Json[]);
        const inv = await inventoryOf([{ name: 'var/lib/rpm/Packages', content: buf }]);
        assert.deepEqual(inv.inventory.packages.map((p) => p.name), (f.packages as Json[]).map((p) => p.name));
        for (const [i, p] of inv.inventory.packages.entries()) {
          const e = (f.packages as Json[])[i]!;
          assert.equal(p.version, `${e.epoch ? `${e.epoch}:` : ''}${e.version}-${e.release}`);
          assert.equal(p.kind, 'rpm');
        }
      }
      return;
    }
    const buf = gunzipSync(readFileSync(fx(exp.fixture as string)));
    const parsed = parseRpmSqlite(buf);
    assert.deepEqual(parsed.problems, []);
    assert.equal(parsed.records.length, exp.count);
    compare(parsed.records, exp.packages as Json[]);
    const inv = await inventoryOf([{ name: 'var/lib/rpm/rpmdb.sqlite', content: buf }]);
    assert.equal(inv.inventory.packages.length, exp.count);
    const curl = inv.inventory.packages.find((p) => p.name === 'curl');
    assert.equal(curl?.version, '7.76.0-6.cm2');
    assert.equal(curl?.sourceName, 'curl');
    assert.equal(curl?.arch, 'x86_64');
  },

  async 'java-jars'(exp) {
    for (const j of exp.jars as Json[]) {
      const path = j.jar as string;
      const base = path.slice(path.lastIndexOf('/') + 1);
      const { packages } = await parseJavaArchive(readFileSync(fx(path)), base);
      const got = packages.map((p) => ({ name: `${p.groupId}:${p.artifactId}`, version: p.version, path: p.path })).sort((a, b) => (a.name < b.name ? -1 : 1));
      const want = (j.packages as Json[]).map((p) => ({ name: p.name, version: p.version, path: (p.path as string | undefined) ?? base }));
      const offlineMayBeEmpty = typeof j.offline_note === 'string' && /may report no/i.test(j.offline_note);
      if (offlineMayBeEmpty && got.length === 0) continue;
      assert.deepEqual(got, want, path);
    }
  },

  async 'npm-lockfiles'(exp) {
    for (const l of exp.lockfiles as Json[]) {
      const lock = parsePackageLock(readFileSync(fx(l.lockfile as string), 'utf8'));
      assert.equal(lock.lockfileVersion, l.lockfileVersion);
      assert.deepEqual(lock.root, l.root);
      const got = lock.packages.map((p) => {
        const o: Json = { path: p.path, name: p.name, version: orNull(p.version) };
        for (const k of ['dev', 'optional', 'devOptional', 'peer', 'link'] as const) if (p[k]) o[k] = true;
        if (p.resolved !== undefined) o.resolved = p.resolved;
        return o;
      });
      const want = (l.packages as Json[]).map((p) => ({ ...p, version: p.version ?? null }));
      assert.deepEqual(got.map((g) => JSON.stringify(g, Object.keys(g).sort())), want.map((w) => JSON.stringify(w, Object.keys(w).sort())), l.lockfile as string);
      const members = (l.workspace_members as Json[] | undefined) ?? [];
      assert.deepEqual(lock.workspaceMembers.map((m) => ({ path: m.path, name: orNull(m.name), version: orNull(m.version) })), members);
    }
    // End to end: the v3 lockfile in an app directory; links and versionless entries are not packages.
    const inv = await inventoryOf([{ name: 'app/package-lock.json', content: readFileSync(fx('lang/npm/lockfiles/package-lock_v3_with_workspace.json')) }]);
    assert.deepEqual(inv.inventory.packages.map((p) => `${p.name}@${p.version}`), ['debug@2.5.2', 'debug@2.6.9', 'ms@0.7.2', 'ms@2.0.0']);
  },

  async 'npm-trivy-happy'(exp, _file, t) {
    const lock = parsePackageLock(readFileSync(fx(exp.lockfile as string), 'utf8'));
    const top = lock.packages.filter((p) => !p.path.slice('node_modules/'.length).includes('node_modules/'));
    assert.deepEqual(top.map((p) => ({ name: p.name, version: p.version, dev: p.dev === true })), exp.lockfile_packages);
    const expectedInstalled = exp.node_modules_packages as Json[];
    const present = expectedInstalled.filter((e) => existsSync(fx(e.path as string)));
    for (const e of present) {
      const p = parseNpmPackageJson(readFileSync(fx(e.path as string), 'utf8'));
      assert.deepEqual({ path: e.path, name: p?.name, version: p?.version }, e);
    }
    let entries = dirEntries(fx('lang/npm/trivy-happy'), 'srv/app');
    if (present.length < expectedInstalled.length) {
      // The shared fixture set lists these files (README, provenance.json) but they are not on disk;
      // stand-ins carrying only the expected name/version keep the end-to-end check meaningful.
      t.diagnostic(`${expectedInstalled.length - present.length} of ${expectedInstalled.length} node_modules/**/package.json fixtures are missing on disk; using stand-ins for the end-to-end check`);
      entries = [
        ...entries,
        ...expectedInstalled.filter((e) => !present.includes(e)).map((e) => ({
          name: `srv/app/${(e.path as string).slice('lang/npm/trivy-happy/'.length)}`,
          content: JSON.stringify({ name: e.name, version: e.version }),
        })),
      ];
    }
    // End to end: installed packages from node_modules; the lockfile adds only what is not installed.
    const inv = await inventoryOf(entries);
    const got = inv.inventory.packages.map((p) => `${p.name}@${p.version}${p.path.includes('node_modules') ? '' : ' (lock)'}${p.dev ? ' dev' : ''}`);
    const installed = (exp.node_modules_packages as Json[]).map((e) => `${e.name}@${e.version}`);
    const lockOnly = (exp.lockfile_packages as Json[]).filter((e) => !installed.includes(`${e.name}@${e.version}`)).map((e) => `${e.name}@${e.version} (lock)${e.dev ? ' dev' : ''}`);
    assert.deepEqual(got.sort(), [...installed, ...lockOnly].sort());
  },

  async 'python-site-packages'(exp) {
    const want = exp.packages as Json[];
    for (const e of want) {
      const md = parsePythonMetadata(readFileSync(fx(e.path as string), 'utf8'));
      assert.deepEqual({ path: e.path, name: md?.name, normalized_name: md?.normalizedName, version: md?.version }, e);
    }
    const inv = await inventoryOf(dirEntries(fx('lang/python/site-packages'), 'usr/local/lib/python3.12/site-packages'));
    assert.deepEqual(inv.inventory.packages.map((p) => `${p.name}@${p.version}`), want.map((e) => `${e.normalized_name}@${e.version}`).sort());
    for (const p of inv.inventory.packages) assert.equal(p.purl, `pkg:pypi/${p.name}@${p.version}`);
  },

  async 'ruby-gemspecs'(exp) {
    const specs = exp.gemspecs as Json[];
    for (const e of specs) {
      const g = parseGemspec(readFileSync(fx(e.path as string), 'utf8'));
      if (e.name === null) {
        assert.equal(g, undefined, `${e.path} must yield nothing`);
        continue;
      }
      assert.deepEqual({ name: g?.name, version: g?.version, licenses: g?.licenses }, { name: e.name, version: e.version, licenses: e.licenses }, e.path as string);
    }
    const inv = await inventoryOf(dirEntries(fx('lang/ruby'), 'usr/local/bundle'));
    assert.equal(inv.inventory.packages.length, specs.filter((s) => s.name !== null).length);
    assert.ok(inv.warnings.some((w) => w.path?.endsWith('malformed00.gemspec')));
  },

  async 'rust-cargo'(exp) {
    for (const l of exp.lockfiles as Json[]) {
      const lock = parseCargoLock(readFileSync(fx(l.lockfile as string), 'utf8'));
      assert.equal(orNull(lock.formatVersion), l.lockfile_format_version);
      const got = lock.packages.map((p) => ({ name: p.name, version: p.version, source: orNull(p.source) })).sort((a, b) => byNameVersion([a.name, a.version], [b.name, b.version]));
      assert.deepEqual(got, l.packages, l.lockfile as string);
      const inv = await inventoryOf([{ name: 'build/Cargo.lock', content: readFileSync(fx(l.lockfile as string)) }]);
      assert.deepEqual(
        inv.inventory.packages.map((p) => `${p.name}@${p.version}`),
        (l.packages as Json[]).filter((p) => typeof p.source === 'string' && (p.source as string).startsWith('registry+')).map((p) => `${p.name}@${p.version}`),
      );
    }
  },
};

function handlerFor(name: string): ((exp: Json, file: string, t: TestContext) => Promise<void>) | undefined {
  const stem = name.replace(/\.json$/, '');
  if (handlers[stem] !== undefined) return handlers[stem];
  const prefix = stem.split('-')[0]!;
  return handlers[prefix];
}

describe('fixture expectations (expected/pkgdb, expected/lang)', { skip }, () => {
  const files = skip ? [] : ['pkgdb', 'lang'].flatMap((d) => {
    const dir = fx(`expected/${d}`);
    return existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((n) => n.endsWith('.json')).sort().map((n) => join(d, n)) : [];
  });

  it('has expectation files to reproduce', () => {
    assert.ok(files.filter((f) => f.startsWith('pkgdb/')).length > 0, 'expected/pkgdb is empty');
    assert.ok(files.filter((f) => f.startsWith('lang/')).length > 0, 'expected/lang is empty');
  });

  for (const rel of files) {
    const name = rel.slice(rel.indexOf('/') + 1);
    it(`reproduces expected/${rel}`, async (t) => {
      const h = handlerFor(name);
      assert.ok(h !== undefined, `no handler for expected/${rel}: add one`);
      await h(readJson(fx(`expected/${rel}`)), name, t);
    });
  }
});

/** The lang fixtures laid out as an application image would hold them (lockfiles under their real names). */
function langImage(): TarSpec[] {
  const out: TarSpec[] = [];
  for (const n of readdirSync(fx('lang/npm/lockfiles'))) out.push({ name: `srv/${n.replace(/\.json$/, '')}/package-lock.json`, content: readFileSync(fx(`lang/npm/lockfiles/${n}`)) });
  out.push(...dirEntries(fx('lang/npm/trivy-happy'), 'srv/happy'));
  out.push(...dirEntries(fx('lang/python/site-packages'), 'usr/lib/python3/site-packages'));
  out.push(...dirEntries(fx('lang/java'), 'opt/java'));
  out.push(...dirEntries(fx('lang/ruby'), 'usr/local/bundle'));
  for (const n of readdirSync(fx('lang/rust'))) out.push({ name: `src/${n.replace(/\.lock$/, '')}/Cargo.lock`, content: readFileSync(fx(`lang/rust/${n}`)) });
  return out;
}

describe('cross-check with the matching expectations', { skip }, () => {
  it('every package named in expected/matches.json is in the inventory of the lang fixtures', async () => {
    const inv = await inventoryOf(langImage());
    const kinds: Record<string, InventoryPackage['kind']> = { PyPI: 'python', npm: 'npm', Maven: 'java', RubyGems: 'gem', 'crates.io': 'cargo', Go: 'go-module' };
    const matches = (readJson(fx('expected/matches.json')).matches as Json[]).map((m) => m.package as Json);
    assert.ok(matches.length > 0);
    for (const p of matches) {
      const kind = kinds[p.ecosystem as string];
      assert.ok(kind !== undefined, `ecosystem ${p.ecosystem}`);
      const name = kind === 'python' ? (p.name as string).toLowerCase() : p.name;
      assert.ok(inv.inventory.packages.some((x) => x.kind === kind && x.name === name && x.version === p.version), `${p.ecosystem} ${p.name}@${p.version} (${p.found_in})`);
    }
  });

  it('every OS source package in expected/matches-os.json is found with exactly its binary packages', async () => {
    const matches = (readJson(fx('expected/matches-os.json')).matches as Json[]).map((m) => m.package as Json);
    assert.ok(matches.length > 0);
    const cache = new Map<string, InventoryPackage[]>();
    for (const p of matches) {
      const file = (p.found_in as string).split(' ')[0]!;
      const dir = fx(file.replace(/\/(?:var\/lib\/dpkg\/status|lib\/apk\/db\/installed)$/, ''));
      if (!cache.has(dir)) cache.set(dir, (await inventoryOf(dirEntries(dir))).inventory.packages);
      const binaries = cache.get(dir)!.filter((x) => x.sourceName === p.name && x.sourceVersion === p.version).map((x) => x.name).sort();
      assert.deepEqual(binaries, [...(p.binary_packages as string[])].sort(), `${p.name} ${p.version} in ${file}`);
    }
  });
});
