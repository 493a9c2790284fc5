/**
 * Hostile and broken input: every case ends in a clean, typed failure with a reason (LayerError and
 * its code), or — for a malformed package database — a warning while the rest of the image is still
 * inventoried. A failing scan never disturbs another one running beside it.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { buildZip } from '../zip-writer.ts';
import { LayerError, type LayerErrorCode } from '../../../src/registry/scanner/inventory/errors.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { walkLayers, type LayerInput } from '../../../src/registry/scanner/inventory/walker.ts';
import { buildTar, layer, layerFromBlob, quickTar } from './helpers.ts';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';

function failsWith(code: LayerErrorCode, re?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof LayerError, `expected a LayerError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.layerDigest, 'string');
    if (re !== undefined) assert.match(e.message, re);
    return true;
  };
}

const dpkgOk = { name: 'var/lib/dpkg/status', content: 'Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\nArchitecture: amd64\n' };
const none = { select: () => undefined };

describe('hostile layers fail cleanly with a reason', () => {
  it('corrupt gzip', async () => {
    const blob = gzipSync(await buildTar([{ name: 'a', content: 'x'.repeat(100_000) }, dpkgOk]));
    for (let i = 20; i < blob.length - 20; i += 7) blob[i] = blob[i]! ^ 0x5a;
    await assert.rejects(inventoryImage([layerFromBlob(blob, GZ)]), failsWith('corrupt-compression'));
    const badHeader = Buffer.from([0x1f, 0x8b, 0x09, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
    await assert.rejects(inventoryImage([layerFromBlob(badHeader, GZ)]), failsWith('corrupt-compression'));
  });

  it('truncated gzip', async () => {
    const blob = gzipSync(await buildTar([{ name: 'a', content: Buffer.alloc(300_000, 1) }]));
    await assert.rejects(inventoryImage([layerFromBlob(blob.subarray(0, blob.length >> 1), GZ)]), failsWith('truncated'));
  });

  it('truncated tar (in the middle of an entry)', async () => {
    const tar = await buildTar([{ name: 'a', content: Buffer.alloc(10_000, 1) }, dpkgOk]);
    await assert.rejects(inventoryImage([layerFromBlob(tar.subarray(0, 5000), TAR)]), failsWith('truncated'));
    await assert.rejects(inventoryImage([layerFromBlob(gzipSync(tar.subarray(0, 5000)), GZ)]), failsWith('truncated'));
  });

  it('garbage that is not a tar archive', async () => {
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) & 0xff;
    await assert.rejects(inventoryImage([layerFromBlob(garbage, TAR)]), failsWith('corrupt-tar'));
  });

  it('compression we do not decode', async () => {
    await assert.rejects(inventoryImage([layerFromBlob(Buffer.from('BZh91AY&SY....'), GZ)]), failsWith('unsupported-compression', /bzip2/));
    await assert.rejects(inventoryImage([layerFromBlob(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]), GZ)]), failsWith('unsupported-compression', /xz/));
  });

  it('decompression bomb (ratio) and oversized layers', async () => {
    // 128 MiB of zeros gzip to ~130 KiB: a ratio of ~1000.
    const tar = quickTar([{ name: 'zeros', content: Buffer.alloc(128 * 1024 * 1024) }]);
    const bomb = layerFromBlob(gzipSync(tar, { level: 6 }), GZ, 1 << 20);
    const t0 = performance.now();
    await assert.rejects(inventoryImage([bomb], { limits: { compressionRatioFloor: 16 * 1024 * 1024, maxCompressionRatio: 100 } }), failsWith('decompression-bomb', /expands more than 100x/));
    assert.ok(performance.now() - t0 < 10_000, 'stops early');
    await assert.rejects(inventoryImage([bomb], { limits: { maxLayerBytes: 32 * 1024 * 1024 } }), failsWith('size-limit'));
    await assert.rejects(inventoryImage([await layer([{ name: 'a', content: Buffer.alloc(1 << 20) }]), await layer([{ name: 'b', content: Buffer.alloc(1 << 20) }])], { limits: { maxImageBytes: 1536 * 1024 } }), failsWith('size-limit', /image/));
  });

  it('100k-entry layer: inventoried within the default limits, refused above a lower one', async () => {
    const files: Array<{ name: string; content?: string }> = [dpkgOk];
    for (let i = 0; i < 100_000; i++) files.push({ name: `srv/many/d${i % 100}/f${i}` });
    const l = layerFromBlob(gzipSync(quickTar(files), { level: 1 }), GZ, 1 << 20);
    const ok = await inventoryImage([l]);
    assert.equal(ok.layers[0]!.entries, 100_001);
    assert.deepEqual(ok.inventory.packages.map((p) => p.name), ['bash']);
    await assert.rejects(inventoryImage([l], { limits: { maxEntriesPerLayer: 50_000 } }), failsWith('entry-limit', /50000/));
    await assert.rejects(inventoryImage([l, l], { limits: { maxEntriesPerImage: 150_000 } }), failsWith('entry-limit', /image/));
  });

  it('paths that climb out of the root, are too long or too deep', async () => {
    await assert.rejects(walkLayers([await layer([{ name: '../../etc/passwd', content: 'x' }])], none), failsWith('unsafe-path', /\.\./));
    await assert.rejects(walkLayers([await layer([{ name: 'ok', content: 'x' }, { name: 'link', type: 'link', linkname: '../../host' }])], { select: () => ({ tag: 't', parse: () => 1 }) }), failsWith('unsafe-path'));
    await assert.rejects(walkLayers([await layer([{ name: `${'a/'.repeat(200)}f`, content: 'x' }])], none), failsWith('unsafe-path', /deeper/));
    await assert.rejects(walkLayers([await layer([{ name: `${'b'.repeat(250)}/`.repeat(20) + 'f', content: 'x' }])], none), failsWith('unsafe-path', /longer/));
  });

  it('a symlink loop in the parent directories of an entry', async () => {
    await assert.rejects(
      walkLayers([await layer([{ name: 'x', type: 'symlink', linkname: 'y' }, { name: 'y', type: 'symlink', linkname: 'x' }, { name: 'x/file', content: 'f' }])], none),
      failsWith('unsafe-path', /loop/),
    );
  });

  it('too much analysed content held in memory', async () => {
    // One file larger than the budget...
    const one = [{ name: 'usr/lib/python3/site-packages/p.dist-info/METADATA', content: `Name: p\nVersion: 1.0\n\n${'x'.repeat(1_200_000)}` }];
    await assert.rejects(inventoryImage([await layer(one)], { limits: { maxRetainedBytes: 1_000_000 } }), failsWith('retained-limit'));
    // ...or results that add up (every stanza of these status.d files is kept).
    const stanzas = Array.from({ length: 2000 }, (_, i) => `Package: pkg${i}\nStatus: install ok installed\nVersion: 1.0-${i}\n\n`).join('');
    const many = Array.from({ length: 8 }, (_, i) => ({ name: `var/lib/dpkg/status.d/f${i}`, content: stanzas }));
    await assert.rejects(inventoryImage([await layer(many)], { limits: { maxRetainedBytes: 1_000_000 } }), failsWith('retained-limit'));
  });

  it('a failing scan does not disturb another one running beside it', async () => {
    const bad = layerFromBlob(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]), GZ);
    const good = await layer([dpkgOk, { name: 'etc/os-release', content: 'ID=debian\nVERSION_ID=12\n' }]);
    const [a, b] = await Promise.allSettled([inventoryImage([good, bad]), inventoryImage([good])]);
    assert.equal(a.status, 'rejected');
    assert.equal(b.status, 'fulfilled');
    assert.deepEqual(b.status === 'fulfilled' ? b.value.inventory.packages.map((p) => p.name) : [], ['bash']);
  });

  it('a source that errors while being read', async () => {
    const failing: LayerInput = {
      digest: 'sha256:x',
      mediaType: GZ,
      open: () => (async function* () {
        yield gzipSync(Buffer.alloc(1024));
        throw new Error('storage went away');
      })(),
    };
    await assert.rejects(inventoryImage([failing]), (e: unknown) => e instanceof LayerError && /storage went away/.test(e.message));
  });
});

describe('malformed package databases: warning, rest still inventoried', () => {
  it('garbage in every database format beside one good database', async () => {
    const inv = await inventoryImage([
      await layer([
        dpkgOk,
        { name: 'etc/os-release', content: 'ID=debian\nVERSION_ID="12"\n' },
        { name: 'lib/apk/db/installed', content: Buffer.from([0, 1, 2, 3, 0xff, 0xfe]) },
        { name: 'var/lib/rpm/rpmdb.sqlite', content: 'SQLite format 3\0' + 'garbage'.repeat(100) },
        { name: 'usr/lib/sysimage/rpm/Packages', content: Buffer.alloc(8192, 0x41) },
        { name: 'app/package-lock.json', content: '{"lockfileVersion": 3, "packages": {' },
        { name: 'app/node_modules/left-pad/package.json', content: 'not json' },
        { name: 'usr/lib/python3/site-packages/x.dist-info/METADATA', content: '\0\0\0' },
        { name: 'opt/app.jar', content: 'PK\x03\x04 this is not a zip' },
        { name: 'src/Cargo.lock', content: '[[package]\nname = ' },
        { name: 'app/bin/Release/app.deps.json', content: '{"libraries": ' },
        { name: 'app/composer.lock', content: '[' },
        { name: 'usr/local/bundle/specifications/x.gemspec', content: 'Gem::Specification.new do |s|\n s.name = 1\n' },
      ]),
    ]);
    assert.deepEqual(inv.inventory.packages.map((p) => `${p.kind}:${p.name}`), ['dpkg:bash']);
    const warned = new Set(inv.warnings.filter((w) => w.code === 'malformed-database').map((w) => w.path));
    for (const p of ['/var/lib/rpm/rpmdb.sqlite', '/usr/lib/sysimage/rpm/Packages', '/app/package-lock.json', '/app/node_modules/left-pad/package.json', '/opt/app.jar', '/app/bin/Release/app.deps.json', '/app/composer.lock', '/usr/local/bundle/specifications/x.gemspec']) {
      assert.ok(warned.has(p), `warning for ${p}: ${[...warned].join(', ')}`);
    }
  });

  it('a dpkg status with broken stanzas keeps the readable ones', async () => {
    const inv = await inventoryImage([await layer([{ name: 'var/lib/dpkg/status', content: `garbage line\n\n${dpkgOk.content}\nPackage: broken\nStatus: install ok installed\nVersion: 1:5.#\n` }])]);
    assert.deepEqual(inv.inventory.packages.map((p) => p.name), ['bash']);
    assert.ok(inv.warnings.some((w) => w.code === 'malformed-database'));
    assert.ok(inv.warnings.some((w) => w.code === 'record-skipped' && /broken/.test(w.message)));
  });

  it('a truncated Berkeley DB and a corrupt rpm header', async () => {
    const { readFileSync } = await import('node:fs');
    const { fixtures } = await import('./helpers.ts');
    const F = fixtures();
    if (F === undefined) return;
    const db = readFileSync(`${F}/pkgdb/rpm/bdb-rhel8-libuuid/var/lib/rpm/Packages`);
    const cut = await inventoryImage([await layer([{ name: 'var/lib/rpm/Packages', content: db.subarray(0, db.length >> 1) }, dpkgOk])]);
    assert.deepEqual(cut.inventory.packages.map((p) => p.name), ['bash']);
    assert.ok(cut.warnings.some((w) => w.code === 'malformed-database' && w.path === '/var/lib/rpm/Packages'));
    const flipped = Buffer.from(db);
    flipped.fill(0xff, 8192 + 64, 8192 + 80); // inside the first overflow page: header index entries
    const bad = await inventoryImage([await layer([{ name: 'var/lib/rpm/Packages', content: flipped }])]);
    assert.ok(bad.warnings.length > 0 || bad.inventory.packages.length === 1);
  });

  it('a zip bomb inside a jar is cut off and reported', async () => {
    const inner = buildZip([{ name: 'zeros.bin', data: Buffer.alloc(64 * 1024 * 1024), deflate: true }]);
    const outer = buildZip([
      { name: 'META-INF/maven/com.example/app/pom.properties', data: 'groupId=com.example\nartifactId=app\nversion=1.0\n', deflate: true },
      { name: 'BOOT-INF/lib/inner.jar', data: inner, deflate: true },
      { name: 'BOOT-INF/lib/inner2.jar', data: inner, deflate: true },
    ]);
    const { parseJavaArchive } = await import('../../../src/registry/scanner/inventory/java.ts');
    const r = await parseJavaArchive(outer, 'app.jar', { maxEntries: 1000, maxDepth: 2, maxNestedBytes: inner.length + 10, maxMetadataBytes: 1024 });
    assert.deepEqual(r.packages.map((p) => p.artifactId), ['app']);
    assert.ok(r.problems.some((p) => /inflate beyond/.test(p)));
  });
});
