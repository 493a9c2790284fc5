/**
 * Go binaries built by the real Go toolchain (Debian's golang-go, installed by
 * scripts/install-test-deps.sh): a main module with a vendored dependency and a version set through
 * -ldflags, read back from a layer and compared with what `go version -m` prints.
 * Without a Go toolchain the test skips locally and fails under CI=true.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { elfDataOffsets, GoBuildInfoSink, parseModInfo, stdlibVersion, versionFromLdflags } from '../../../src/registry/scanner/inventory/gobinary.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { layer } from './helpers.ts';

function goAvailable(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI === 'true') throw new Error('the Go toolchain (golang-go) is required under CI=true; scripts/install-test-deps.sh installs it');
    return false;
  }
}

const skip = goAvailable() ? false : 'no Go toolchain (apt-get install golang-go)';

describe('Go binaries built by the Go toolchain', { skip }, () => {
  let dir: string;
  let binary: Buffer;
  let pie: Buffer;
  let goVersionM: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-go-'));
    const app = join(dir, 'app');
    mkdirSync(join(app, 'vendor/example.com/greet'), { recursive: true });
    writeFileSync(join(app, 'go.mod'), 'module example.com/app\n\ngo 1.18\n\nrequire example.com/greet v1.4.2\n');
    writeFileSync(join(app, 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\t"example.com/greet"\n)\n\nvar version = "dev"\n\nfunc main() { fmt.Println(greet.Hello(), version) }\n');
    writeFileSync(join(app, 'vendor/example.com/greet/greet.go'), 'package greet\n\nfunc Hello() string { return "hello" }\n');
    writeFileSync(join(app, 'vendor/modules.txt'), '# example.com/greet v1.4.2\n## explicit\nexample.com/greet\n');
    // A build cache shared between runs keeps reruns fast (the first build compiles the standard library).
    const env = { ...process.env, HOME: dir, GOPATH: join(dir, 'gopath'), GOCACHE: join(tmpdir(), 'portcullis-test-gocache'), GOFLAGS: '-mod=vendor', GOPROXY: 'off', GOTOOLCHAIN: 'local' };
    // No -trimpath: with it, Go leaves -ldflags out of the build info.
    execFileSync('go', ['build', '-ldflags', '-X main.version=v1.2.3', '-o', join(dir, 'app.bin'), '.'], { cwd: app, env, stdio: 'pipe' });
    execFileSync('go', ['build', '-buildmode=pie', '-o', join(dir, 'app-pie.bin'), '.'], { cwd: app, env, stdio: 'pipe' });
    binary = readFileSync(join(dir, 'app.bin'));
    pie = readFileSync(join(dir, 'app-pie.bin'));
    goVersionM = execFileSync('go', ['version', '-m', join(dir, 'app.bin')], { env }).toString();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the build info while streaming, in any chunking', () => {
    for (const chunk of [1, 7, 4096, 65536, binary.length]) {
      const sink = new GoBuildInfoSink();
      for (let i = 0; i < binary.length; i += chunk) if (!sink.write(binary.subarray(i, i + chunk))) break;
      const r = sink.end();
      assert.ok(r !== undefined && 'info' in r, `chunk ${chunk}`);
      assert.equal(r.info.main?.path, 'example.com/app');
      assert.deepEqual(r.info.deps.map((d) => `${d.path}@${d.version}`), ['example.com/greet@v1.4.2']);
      if (chunk === 1) break; // slow path proven once
    }
  });

  it('matches `go version -m` (Go version, path, mod, deps, ldflags)', () => {
    const sink = new GoBuildInfoSink();
    sink.write(binary);
    const r = sink.end();
    assert.ok(r !== undefined && 'info' in r);
    const lines = goVersionM.split('\n').map((l) => l.trim());
    assert.equal(`${r.info.goVersion}`, lines[0]!.split(': ')[1]);
    assert.ok(lines.includes(`path\t${r.info.path}`));
    assert.ok(lines.some((l) => l.startsWith(`mod\t${r.info.main?.path}\t${r.info.main?.version}`)));
    for (const d of r.info.deps) assert.ok(lines.some((l) => l.startsWith(`dep\t${d.path}\t${d.version}`)), d.path);
    assert.equal(versionFromLdflags(r.info), 'v1.2.3');
  });

  it('inventories the main module, its dependencies and the standard library from a layer', async () => {
    const l = await layer([{ name: 'usr/local/bin/app', content: binary, mode: 0o755 }, { name: 'usr/local/bin/app-pie', content: pie, mode: 0o755 }, { name: 'usr/local/bin/not-go', content: Buffer.alloc(100_000, 7), mode: 0o755 }], 'zstd');
    const inv = await inventoryImage([l]);
    const got = inv.inventory.packages.filter((p) => p.path === '/usr/local/bin/app').map((p) => `${p.kind} ${p.name}@${p.version} ${p.purl}`);
    const goVer = stdlibVersion(goVersionM.split('\n')[0]!.split(': ')[1]!)!;
    assert.deepEqual(got, [
      'go-module example.com/app@1.2.3 pkg:golang/example.com/app@v1.2.3',
      'go-module example.com/greet@1.4.2 pkg:golang/example.com/greet@v1.4.2',
      `go-stdlib stdlib@${goVer} pkg:golang/stdlib@v${goVer}`,
    ]);
    // The PIE build has no ldflags version: main module (devel) is not a package, the rest is.
    assert.deepEqual(inv.inventory.packages.filter((p) => p.path === '/usr/local/bin/app-pie').map((p) => p.name), ['example.com/greet', 'stdlib']);
    assert.equal(inv.inventory.packages.filter((p) => p.path === '/usr/local/bin/not-go').length, 0);
  });
});

describe('Go binaries linked externally (cgo), as distributions build them', { skip }, () => {
  it('finds the build info after a .data section larger than the first search window', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-go-ext-'));
    try {
      // 12,000 initialised strings: .data (pointers) of ~190 KiB, which the external linker puts before .go.buildinfo.
      const names = Array.from({ length: 12_000 }, (_, i) => `"n${i}"`).join(',');
      writeFileSync(join(dir, 'go.mod'), 'module example.com/big\n\ngo 1.18\n');
      writeFileSync(join(dir, 'main.go'), `package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nvar names = [...]string{${names}}\n\nfunc main() { fmt.Println(names[len(os.Args)]) }\n`);
      const env = { ...process.env, HOME: dir, GOPATH: join(dir, 'gopath'), GOCACHE: join(tmpdir(), 'portcullis-test-gocache'), GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' };
      execFileSync('go', ['build', '-ldflags', '-linkmode=external', '-o', join(dir, 'big.bin'), '.'], { cwd: dir, env, stdio: 'pipe' });
      const bin = readFileSync(join(dir, 'big.bin'));
      const magic = bin.indexOf(Buffer.from('\xff Go buildinf:', 'latin1'));
      const segment = elfDataOffsets(bin)!.filter((o) => o.offset <= magic).at(-1)!;
      assert.ok(magic - segment.offset > 64 * 1024, `the build info is ${magic - segment.offset} bytes into its segment: beyond the first 64 KiB`);
      const sink = new GoBuildInfoSink();
      for (let i = 0; i < bin.length; i += 65536) if (!sink.write(bin.subarray(i, i + 65536))) break;
      const r = sink.end();
      assert.ok(r !== undefined && 'info' in r, 'build info found');
      assert.equal(r.info.path, 'example.com/big');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Go build info parsing', () => {
  it('applies replacements and strips sentinels', () => {
    const info = parseModInfo('go1.22.1', 'path\tex.com/x\nmod\tex.com/x\tv0.1.0\th1:a\ndep\tgolang.org/x/net\tv0.1.0\th1:b\n=>\tgolang.org/x/net\tv0.23.0\th1:c\ndep\tex.com/local\tv1.0.0\n=>\t../local\t\t\nbuild\t-ldflags=-s -w -X main.Version=2.3.4\n');
    assert.deepEqual(info.deps[0]!.replace, { path: 'golang.org/x/net', version: 'v0.23.0', sum: 'h1:c' });
    assert.equal(info.deps[1]!.replace?.version, '');
    assert.equal(versionFromLdflags(info), '2.3.4');
  });

  it('stdlib versions from go version strings', () => {
    assert.equal(stdlibVersion('go1.22.1'), '1.22.1');
    assert.equal(stdlibVersion('go1.21rc2'), '1.21rc2');
    assert.equal(stdlibVersion('go1.20.3 X:boringcrypto'), '1.20.3');
    assert.equal(stdlibVersion('devel go1.23-abcdef'), undefined);
  });

  it('ignores non-ELF executables and ELF files without build info', () => {
    const script = new GoBuildInfoSink();
    assert.equal(script.write(Buffer.from('#!/bin/sh\necho hi\n'.repeat(400))), false);
    assert.equal(script.end(), undefined);
    const elf = readFileSync(process.execPath.includes('node') ? '/bin/ls' : process.execPath);
    const sink = new GoBuildInfoSink();
    for (let i = 0; i < elf.length; i += 65536) if (!sink.write(elf.subarray(i, i + 65536))) break;
    assert.equal(sink.end(), undefined);
  });
});
