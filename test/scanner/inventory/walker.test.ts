/**
 * The layer walker on real layer blobs built in memory: OCI whiteouts and opaque directories,
 * replacement rules, symlink resolution confined to the image root, hard links, diff IDs,
 * compression sniffing, layer attribution of rewritten package databases.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { LayerError } from '../../../src/registry/scanner/inventory/errors.ts';
import { walkLayers, type FileInterest, type LayerInput } from '../../../src/registry/scanner/inventory/walker.ts';
import { buildTar, layer, layerFromBlob, sha256 } from './helpers.ts';

const text = (tag = 't'): FileInterest => ({ tag, parse: (c) => c.toString() });
/** Selects every regular file and symlink; the result is the file's text. */
const all = (): FileInterest => text();

async function view(layers: LayerInput[], select: (p: string) => FileInterest | undefined = all) {
  const r = await walkLayers(layers, { select });
  const files: Record<string, string> = {};
  for (const n of r.view.nodes.values()) files[n.path] = n.type === 'symlink' ? `-> ${n.target}` : String(n.result);
  return { ...r, files };
}

const dpkgStanza = (name: string, version: string): string => `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${version}\n\n`;

describe('OCI whiteouts', () => {
  it('a whiteout deletes the lower file; the whiteout itself is hidden', async () => {
    const { files } = await view([
      await layer([{ name: 'etc/a', content: 'A' }, { name: 'etc/b', content: 'B' }]),
      await layer([{ name: 'etc/.wh.a' }]),
    ]);
    assert.deepEqual(files, { 'etc/b': 'B' });
  });

  it('a whiteout deletes a whole lower directory', async () => {
    const { files } = await view([
      await layer([{ name: 'app/', type: 'directory' }, { name: 'app/x/y', content: '1' }, { name: 'app/z', content: '2' }, { name: 'keep', content: 'k' }]),
      await layer([{ name: '.wh.app' }]),
    ]);
    assert.deepEqual(files, { keep: 'k' });
  });

  it('whiteouts apply to lower layers only, not to entries of their own layer', async () => {
    const { files } = await view([
      await layer([{ name: 'etc/a', content: 'old' }]),
      await layer([{ name: 'etc/a', content: 'new' }, { name: 'etc/.wh.a' }]),
    ]);
    assert.deepEqual(files, { 'etc/a': 'new' });
  });

  it('an opaque directory hides all lower children, wherever the marker sits in the tar', async () => {
    for (const order of ['before', 'after'] as const) {
      const marker = { name: 'a/.wh..wh..opq' };
      const own = [{ name: 'a/b/c/foo', content: 'foo' }];
      const { files } = await view([
        await layer([{ name: 'a/b/c/bar', content: 'bar' }, { name: 'a/x', content: 'x' }, { name: 'other', content: 'o' }]),
        await layer(order === 'before' ? [marker, ...own] : [...own, marker]),
      ]);
      assert.deepEqual(files, { 'a/b/c/foo': 'foo', other: 'o' }, order);
    }
  });

  it('a whiteout in a later layer deletes the package database: its packages are gone', async () => {
    const db = { name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2.15-2') };
    const osr = { name: 'etc/os-release', content: 'ID=debian\nVERSION_ID="12"\n' };
    const before = await inventoryImage([await layer([osr, db])]);
    assert.deepEqual(before.inventory.packages.map((p) => p.name), ['bash']);
    const after = await inventoryImage([await layer([osr, db]), await layer([{ name: 'var/lib/dpkg/.wh.status' }])]);
    assert.deepEqual(after.inventory.packages, []);
    const opaque = await inventoryImage([await layer([osr, db]), await layer([{ name: 'var/lib/.wh..wh..opq' }])]);
    assert.deepEqual(opaque.inventory.packages, []);
  });

  it('a non-directory replaces a lower directory and everything below it', async () => {
    const { files } = await view([
      await layer([{ name: 'opt/app/x', content: '1' }, { name: 'opt/app/y/z', content: '2' }]),
      await layer([{ name: 'opt/app', content: 'now a file' }]),
    ]);
    assert.deepEqual(files, { 'opt/app': 'now a file' });
  });

  it('a directory replaces a lower symlink of the same name', async () => {
    const { files } = await view([
      await layer([{ name: 'lib', type: 'symlink', linkname: 'usr/lib' }]),
      await layer([{ name: 'lib/', type: 'directory' }, { name: 'lib/x', content: 'x' }]),
    ]);
    assert.deepEqual(files, { 'lib/x': 'x' });
  });

  it('rejects a whiteout that names no entry', async () => {
    await assert.rejects(view([await layer([{ name: 'etc/.wh.' }])]), (e: unknown) => e instanceof LayerError && e.code === 'invalid-whiteout' && e.layerIndex === 0);
  });
});

describe('symlinks and hard links', () => {
  it('resolves relative, absolute and chained symlinks inside the image', async () => {
    const inv = await inventoryImage([
      await layer([
        { name: 'usr/lib/os-release', content: 'ID=alpine\nVERSION_ID=3.19.1\n' },
        { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
      ]),
    ]);
    assert.equal(inv.inventory.os?.osvEcosystem, 'Alpine:v3.19');
    const chained = await inventoryImage([
      await layer([
        { name: 'usr/lib/os-release', content: 'ID=debian\nVERSION_ID="12"\n' },
        { name: 'etc/os-release', type: 'symlink', linkname: '/etc/alt/os' },
        { name: 'etc/alt/os', type: 'symlink', linkname: '../../usr/lib/os-release' },
      ]),
    ]);
    assert.equal(chained.inventory.os?.osvEcosystem, 'Debian:12');
  });

  it('never leaves the image root: `..` above the root stays at the root', async () => {
    // Outside the image these paths would reach the host's /etc/os-release (Debian here); inside they
    // reach only the image's own files.
    const inv = await inventoryImage([
      await layer([
        { name: 'usr/lib/os-release', content: 'ID=wolfi\nVERSION_ID=20230201\n' },
        { name: 'etc/os-release', type: 'symlink', linkname: '../../../../../../../../usr/lib/os-release' },
      ]),
    ]);
    assert.equal(inv.inventory.os?.id, 'wolfi');
    const escape = await inventoryImage([await layer([{ name: 'etc/os-release', type: 'symlink', linkname: '/../../../../etc/debian_version' }])]);
    assert.equal(escape.inventory.os, undefined);
    assert.ok(escape.warnings.some((w) => w.code === 'symlink-unresolved'));
  });

  it('reports symlink loops as unresolvable and carries on', async () => {
    const inv = await inventoryImage([
      await layer([
        { name: 'etc/os-release', type: 'symlink', linkname: 'a' },
        { name: 'etc/a', type: 'symlink', linkname: 'b' },
        { name: 'etc/b', type: 'symlink', linkname: '/etc/os-release' },
        { name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2.15-2') },
      ]),
    ]);
    assert.equal(inv.inventory.os, undefined);
    assert.ok(inv.warnings.some((w) => w.code === 'symlink-unresolved' && /loop/.test(w.message)));
    assert.deepEqual(inv.inventory.packages.map((p) => p.name), ['bash']);
  });

  it('entries below a directory symlink land where extraction would put them', async () => {
    const { files } = await view([
      await layer([{ name: 'lib', type: 'symlink', linkname: 'usr/lib' }, { name: 'usr/lib/', type: 'directory' }]),
      await layer([{ name: 'lib/apk/db/installed', content: 'P:musl\nV:1.2.4-r2\n' }]),
    ]);
    assert.equal(files['usr/lib/apk/db/installed'], 'P:musl\nV:1.2.4-r2\n');
  });

  it('selects files through directory-symlink aliases (merged /usr, /var/lib/rpm -> /usr/lib/sysimage/rpm)', async () => {
    const seen: string[] = [];
    await view(
      [await layer([{ name: 'var/lib/data', type: 'symlink', linkname: '../../srv/data' }, { name: 'srv/data/db', content: 'x' }])],
      (p) => {
        seen.push(p);
        return p === 'var/lib/data/db' ? text() : undefined;
      },
    );
    assert.ok(seen.includes('srv/data/db') && seen.includes('var/lib/data/db'));
    // Hundreds of other symlinks (busybox applets) do not crowd the directory links out.
    const applets = Array.from({ length: 400 }, (_, i) => ({ name: `bin/applet${i}`, type: 'symlink' as const, linkname: '/bin/busybox' }));
    const r = await view(
      [await layer([...applets, { name: 'lib', type: 'symlink', linkname: 'usr/lib' }]), await layer([{ name: 'usr/lib/foo/db', content: 'found' }])],
      (p) => (p === 'lib/foo/db' ? text() : undefined),
    );
    assert.equal(r.files['usr/lib/foo/db'], 'found');
  });

  it('hard links share the analysed content of their target', async () => {
    const { files } = await view([await layer([{ name: 'etc/a', content: 'A' }, { name: 'etc/b', type: 'link', linkname: 'etc/a' }])]);
    assert.deepEqual(files, { 'etc/a': 'A', 'etc/b': 'A' });
  });
});

describe('layer attribution', () => {
  it('a package keeps the layer that introduced it when later layers rewrite the database', async () => {
    const osr = { name: 'etc/os-release', content: 'ID=debian\nVERSION_ID="12"\n' };
    const l1 = await layer([osr, { name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2.15-2') + dpkgStanza('zlib1g', '1:1.2.13.dfsg-1') }]);
    const l2 = await layer([{ name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2.15-2') + dpkgStanza('zlib1g', '1:1.2.13.dfsg-1') + dpkgStanza('curl', '7.88.1-10') }]);
    const l3 = await layer([{ name: 'var/lib/dpkg/status', content: dpkgStanza('bash', '5.2.15-2') + dpkgStanza('zlib1g', '1:1.2.13.dfsg-1+deb12u1') + dpkgStanza('curl', '7.88.1-10') }]);
    const inv = await inventoryImage([l1, l2, l3]);
    const at = Object.fromEntries(inv.inventory.packages.map((p) => [p.name, p.layerDiffId]));
    assert.deepEqual(at, { bash: l1.diffId, curl: l2.diffId, zlib1g: l3.diffId });
    const digests = Object.fromEntries(inv.inventory.packages.map((p) => [p.name, p.layerDigest]));
    assert.equal(digests.bash, l1.digest);
    assert.equal(inv.inventory.packages.find((p) => p.name === 'bash')?.purl, 'pkg:deb/debian/bash@5.2.15-2?arch=amd64&distro=debian-12');
  });
});

describe('decoding', () => {
  it('computes diff IDs while streaming and checks them against the config', async () => {
    const l = await layer([{ name: 'a', content: 'a' }]);
    const r = await walkLayers([l], { select: () => undefined });
    assert.equal(r.layers[0]!.diffId, sha256(l.tar));
    await assert.rejects(walkLayers([{ ...l, diffId: `sha256:${'0'.repeat(64)}` }], { select: () => undefined }), (e: unknown) => e instanceof LayerError && e.code === 'diffid-mismatch');
  });

  it('sniffs the compression whatever the media type says (Docker schema2 labels everything gzip)', async () => {
    const tar = await buildTar([{ name: 'etc/x', content: 'x' }]);
    const cases: Array<[Buffer, string, string, boolean]> = [
      [gzipSync(tar), 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'gzip', false],
      [zstdCompressSync(tar), 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'zstd', true],
      [tar, 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'none', true],
      [gzipSync(tar), 'application/vnd.oci.image.layer.v1.tar', 'gzip', true],
      [zstdCompressSync(tar), 'application/vnd.oci.image.layer.v1.tar+zstd', 'zstd', false],
    ];
    for (const [blob, mt, kind, warns] of cases) {
      const r = await view([layerFromBlob(blob, mt, 7)]);
      assert.deepEqual(r.files, { 'etc/x': 'x' });
      assert.equal(r.layers[0]!.compression, kind);
      assert.equal(r.layers[0]!.diffId, sha256(tar));
      assert.equal(r.warnings.some((w) => w.code === 'media-type-mismatch'), warns, `${kind} as ${mt}`);
    }
  });

  it('verifies blob digests when asked', async () => {
    const l = await layer([{ name: 'a', content: 'a' }]);
    await walkLayers([l], { select: () => undefined, verifyDigests: true });
    await assert.rejects(walkLayers([{ ...l, digest: `sha256:${'1'.repeat(64)}` }], { select: () => undefined, verifyDigests: true }), (e: unknown) => e instanceof LayerError && e.code === 'digest-mismatch');
  });

  it('accepts empty layers (no bytes, or an empty tar)', async () => {
    const r = await view([layerFromBlob(Buffer.alloc(0), 'application/vnd.oci.image.layer.v1.tar'), await layer([])]);
    assert.deepEqual(r.files, {});
    assert.equal(r.layers.length, 2);
  });

  it('skips selected files above the analyzer limit with a warning', async () => {
    const r = await walkLayers([await layer([{ name: 'big', content: Buffer.alloc(2048) }])], { select: () => ({ tag: 't', maxSize: 1024, parse: () => 'parsed' }) });
    assert.equal(r.view.nodes.get('big')?.result, undefined);
    assert.ok(r.warnings.some((w) => w.code === 'file-too-large' && w.path === '/big'));
  });

  it('reads only selected files: content of others never reaches an analyzer', async () => {
    const parsed: string[] = [];
    await walkLayers([await layer([{ name: 'a', content: 'A' }, { name: 'b', content: 'B' }])], {
      select: (p) => (p === 'b' ? { tag: 't', parse: (c) => parsed.push(c.toString()) } : undefined),
    });
    assert.deepEqual(parsed, ['B']);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(walkLayers([await layer([{ name: 'a', content: 'A' }])], { select: () => undefined, signal: ac.signal }), (e: unknown) => e instanceof LayerError && e.code === 'aborted');
  });
});
