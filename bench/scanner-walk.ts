/**
 * Layer-walking throughput: MiB/s of compressed input through the scanner's layer walker (full
 * inventory: all analyzers and secret rules, diff ID computed) against plain `gunzip -c > /dev/null`
 * (and `zstd -dc`) of the same generated layer. Goal: the walker within 1.5x of gunzip.
 *
 *   npx node bench/scanner-walk.ts [--mib N] [--runs N] [--dir DIR] [--keep]
 *
 * The layer is generated deterministically: many small text files (a node_modules- and
 * site-packages-like tree with package.json / METADATA files the analyzers parse), larger
 * half-random binaries, and real ELF executables from this machine (Go ones included when the Go
 * toolchain is installed), so every analyzer path is exercised. Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip, createZstdCompress } from 'node:zlib';
import tar from 'tar-stream';
import { inventoryImage } from '../src/registry/scanner/inventory/inventory.ts';
import { walkLayers, type LayerInput } from '../src/registry/scanner/inventory/walker.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '192' },
    runs: { type: 'string', default: '5' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const TARGET = Number(values.mib) * 1024 * 1024;
const RUNS = Number(values.runs);
const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'portcullis-walk-bench-'));
mkdirSync(dir, { recursive: true });

let seed = 0x9e3779b9;
function rnd(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}
const WORDS = 'the of and to in is that for it as with was on be by this are from or at an which have not but all were one their can has more will if when there so what about out up into than them some could other only new these time two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ');

function text(bytes: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = WORDS[rnd(WORDS.length)]!;
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(rnd(9) === 0 ? '\n' : ' '));
}

function binary(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes >> 1; i += 4) b.writeUInt32LE((rnd(0x7fffffff) * 2 + rnd(2)) >>> 0, i);
  return b;
}

function realExecutables(): string[] {
  const out: string[] = [];
  for (const d of ['/usr/bin', '/usr/sbin', '/usr/lib/go/bin', '/usr/lib/go-1.19/bin', '/usr/lib/go-1.19/pkg/tool/linux_amd64']) {
    if (!existsSync(d)) continue;
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      try {
        const st = statSync(p);
        if (!st.isFile() || (st.mode & 0o111) === 0 || st.size < 16 * 1024 || st.size > 64 * 1024 * 1024) continue;
        const head = readFileSync(p).subarray(0, 4);
        if (head.readUInt32BE(0) === 0x7f454c46) out.push(p);
      } catch {
        // unreadable: skip
      }
    }
  }
  return out;
}

async function generate(tarPath: string): Promise<{ files: number; bytes: number }> {
  const pack = tar.pack();
  const out = pipeline(pack as unknown as NodeJS.ReadableStream, createWriteStream(tarPath));
  let bytes = 0;
  let files = 0;
  const add = (name: string, content: Buffer, mode = 0o644): Promise<void> =>
    new Promise((res, rej) => {
      pack.entry({ name, size: content.length, mode, mtime: new Date(0) }, content, (e) => (e ? rej(e) : res()));
      bytes += content.length + 512;
      files++;
    });
  const exes = realExecutables();
  let exeBytes = 0;
  for (const p of exes) {
    if (exeBytes > TARGET * 0.25) break;
    const c = readFileSync(p);
    await add(`usr/local/bin/${p.replaceAll('/', '_')}`, c, 0o755);
    exeBytes += c.length;
  }
  let i = 0;
  while (bytes < TARGET) {
    const pkg = `pkg${i % 2000}`;
    switch (i % 40) {
      case 0:
        await add(`app/node_modules/${pkg}-${i}/package.json`, Buffer.from(JSON.stringify({ name: `${pkg}-${i}`, version: `1.${i % 50}.${i % 7}`, license: 'MIT', description: text(400).toString() })));
        break;
      case 1:
        await add(`usr/lib/python3/site-packages/${pkg}_${i}-2.${i % 9}.dist-info/METADATA`, Buffer.concat([Buffer.from(`Metadata-Version: 2.1\nName: ${pkg}-${i}\nVersion: 2.${i % 9}\nLicense: BSD\n\n`), text(2000)]));
        break;
      case 2:
        await add(`usr/share/lib/blob${i}.bin`, binary(64 * 1024 + rnd(256 * 1024)));
        break;
      default:
        await add(`app/node_modules/${pkg}-${i - (i % 40)}/lib/file${i}.js`, text(300 + rnd(12_000)));
    }
    i++;
  }
  pack.finalize();
  await out;
  return { files, bytes };
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function fileLayer(path: string, mediaType: string): LayerInput {
  return { digest: 'sha256:bench', mediaType, open: () => createReadStream(path, { highWaterMark: 1 << 20 }) };
}

const mib = (b: number): number => b / 1024 / 1024;

async function main(): Promise<void> {
  const tarPath = join(dir, 'layer.tar');
  const gzPath = `${tarPath}.gz`;
  const zstPath = `${tarPath}.zst`;
  process.stderr.write(`generating ~${mib(TARGET).toFixed(0)} MiB layer in ${dir}\n`);
  const gen = await generate(tarPath);
  await pipeline(createReadStream(tarPath), createGzip({ level: 6 }), createWriteStream(gzPath));
  await pipeline(createReadStream(tarPath), createZstdCompress(), createWriteStream(zstPath));
  const sizes = { tar: statSync(tarPath).size, gz: statSync(gzPath).size, zst: statSync(zstPath).size };

  const hasZstd = spawnSync('zstd', ['--version']).status === 0;
  const rows: Array<{ what: string; input: number; ms: number[] }> = [];
  const measure = async (what: string, input: number, fn: () => Promise<unknown> | void): Promise<void> => {
    await fn(); // warm-up (page cache, JIT)
    const ms: number[] = [];
    for (let r = 0; r < RUNS; r++) ms.push(await timeAsync(async () => fn()));
    rows.push({ what, input, ms });
    process.stderr.write(`${what}: ${median(ms).toFixed(0)} ms\n`);
  };
  await measure('gunzip -c > /dev/null', sizes.gz, () => {
    const r = spawnSync('sh', ['-c', `gunzip -c '${gzPath}' > /dev/null`]);
    if (r.status !== 0) throw new Error(`gunzip failed: ${r.stderr}`);
  });
  await measure('walker, gzip, full inventory + secrets', sizes.gz, () => inventoryImage([fileLayer(gzPath, 'application/vnd.oci.image.layer.v1.tar+gzip')]));
  await measure('walker, gzip, walk only (no analyzer)', sizes.gz, () => walkLayers([fileLayer(gzPath, 'application/vnd.oci.image.layer.v1.tar+gzip')], { select: () => undefined }));
  if (hasZstd) {
    await measure('zstd -dc > /dev/null', sizes.zst, () => {
      const r = spawnSync('sh', ['-c', `zstd -qdc '${zstPath}' > /dev/null`]);
      if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
    });
  }
  await measure('walker, zstd, full inventory + secrets', sizes.zst, () => inventoryImage([fileLayer(zstPath, 'application/vnd.oci.image.layer.v1.tar+zstd')]));

  const inv = await inventoryImage([fileLayer(gzPath, 'application/vnd.oci.image.layer.v1.tar+gzip')]);
  const gunzipMs = median(rows[0]!.ms);
  const walkMs = median(rows[1]!.ms);
  console.log(`# Layer walking throughput (${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version})`);
  console.log('');
  console.log(`Layer: ${gen.files} files, ${mib(sizes.tar).toFixed(1)} MiB tar, ${mib(sizes.gz).toFixed(1)} MiB gzip -6, ${mib(sizes.zst).toFixed(1)} MiB zstd -3; inventory found ${inv.inventory.packages.length} packages. Median of ${RUNS} runs after a warm-up.`);
  console.log('');
  console.log('| what | median ms | MiB/s of compressed input | MiB/s of tar |');
  console.log('|---|---:|---:|---:|');
  for (const r of rows) {
    const m = median(r.ms);
    console.log(`| ${r.what} | ${m.toFixed(0)} | ${(mib(r.input) / (m / 1000)).toFixed(1)} | ${(mib(sizes.tar) / (m / 1000)).toFixed(1)} |`);
  }
  console.log('');
  console.log(`Walker (full inventory) / gunzip time: ${(walkMs / gunzipMs).toFixed(2)}x (goal <= 1.5x).`);
  if (!values.keep && values.dir === undefined) rmSync(dir, { recursive: true, force: true });
}

await main();
