/**
 * Scan time of a ~100 MiB image (compressed), the way it happens in production and in CI.
 *
 *   npx node bench/scanner-image.ts [--runs N] [--dir DIR] [--keep]
 *
 * The image is built from real content of this machine: a Debian 12 base layer (this host's
 * /etc/os-release and dpkg status — a real database of several hundred packages — with its
 * /usr/bin executables and /usr/lib shared libraries), a layer with this repository's
 * node_modules (real package.json files and package-lock.json), and a layer of Go binaries
 * (skopeo, podman, buildah: real embedded build info). Layers are gzip -6, written as an OCI
 * layout. The vulnerability database holds the scanner fixtures' OSV records and 20,000 synthetic
 * ones over the image's own package names (a tenth of them affecting the installed version).
 *
 * Timed, median of --runs (3) after a warm-up:
 *   1. `scan --oci-layout` path: read the layout, walk the layers, match (in this thread);
 *   2. the same with the layer walk in a worker thread (the server's default isolation);
 *   3. the server: an in-process registry (filesystem + SQLite), blobs uploaded beforehand, time
 *      from the manifest PUT to `scan.completed` (job queue, blob store reads, worker thread,
 *      result stored; SBOM attachment follows); later runs are forced re-scans through the API.
 * Prints figures; asserts nothing.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { buildRegistry } from '../src/registry/app/build-app.ts';
import { loadConfig } from '../src/registry/config/load.ts';
import { analyzeImage } from '../src/registry/scanner/analyze.ts';
import { ociLayoutImage } from '../src/registry/scanner/image-source.ts';
import { VulnData } from '../src/registry/scanner/vulndata.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, dir: { type: 'string' }, keep: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);
const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'portcullis-scanimg-bench-'));
const FIXTURES = process.env.PORTCULLIS_FIXTURES ? join(process.env.PORTCULLIS_FIXTURES, 'scanner') : join(import.meta.dirname, '..', 'test', 'fixtures', 'scanner');
const SHARED_FIXTURES = existsSync(FIXTURES) ? FIXTURES : '/work/shared/fixtures/scanner';
const MiB = 1024 * 1024;

interface Entry {
  path: string;
  file?: string;
  content?: Buffer;
}

/** Regular files under `root` (no symlinks followed), sorted, until `budget` bytes. */
function filesUnder(root: string, prefix: string, budget: number, accept: (name: string) => boolean = () => true): Entry[] {
  const out: Entry[] = [];
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (total >= budget) return;
      const full = join(d, n);
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile() && accept(n) && st.size < 64 * MiB) {
        out.push({ path: join(prefix, relative(root, full)), file: full });
        total += st.size;
      }
    }
  };
  walk(root);
  return out;
}

async function writeLayer(entries: Entry[], blobs: string): Promise<{ digest: string; diffId: string; size: number; uncompressed: number; files: number }> {
  const pack = tar.pack();
  const tmp = join(blobs, `layer-${process.pid}.tmp`);
  const diff = createHash('sha256');
  let uncompressed = 0;
  const writing = pipeline(
    pack as unknown as AsyncIterable<Buffer>,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        diff.update(chunk);
        uncompressed += chunk.length;
        yield chunk;
      }
    },
    createGzip({ level: 6 }),
    createWriteStream(tmp),
  );
  for (const e of entries) {
    const content = e.content ?? readFileSync(e.file!);
    await new Promise<void>((resolve, reject) => pack.entry({ name: e.path, size: content.length, mode: 0o755, mtime: new Date(0) }, content, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await writing;
  const gz = readFileSync(tmp);
  const digest = createHash('sha256').update(gz).digest('hex');
  writeFileSync(join(blobs, digest), gz);
  rmSync(tmp);
  return { digest: `sha256:${digest}`, diffId: `sha256:${diff.digest('hex')}`, size: gz.length, uncompressed, files: entries.length };
}

function blob(blobs: string, bytes: Buffer): { digest: string; size: number } {
  const hex = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(blobs, hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

async function buildLayout(layout: string): Promise<{ manifest: Buffer; layers: Array<{ digest: string; size: number; uncompressed: number; files: number }> }> {
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const base: Entry[] = [
    { path: 'etc/os-release', content: readFileSync('/etc/os-release') },
    { path: 'etc/debian_version', content: existsSync('/etc/debian_version') ? readFileSync('/etc/debian_version') : Buffer.from('12.5\n') },
    { path: 'var/lib/dpkg/status', content: readFileSync(existsSync('/var/lib/dpkg/status') ? '/var/lib/dpkg/status' : join(SHARED_FIXTURES, 'pkgdb/dpkg/ubuntu-18.04-trivy-valid/var/lib/dpkg/status')) },
    ...filesUnder('/usr/bin', 'usr/bin', 40 * MiB, (n) => !['skopeo', 'podman', 'buildah', 'node'].includes(n)),
    ...filesUnder('/usr/lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 80 * MiB, (n) => n.includes('.so')),
  ];
  const repo = join(import.meta.dirname, '..');
  const app: Entry[] = [
    { path: 'app/package.json', content: readFileSync(join(repo, 'package.json')) },
    { path: 'app/package-lock.json', content: readFileSync(join(repo, 'package-lock.json')) },
    ...filesUnder(join(repo, 'node_modules'), 'app/node_modules', 90 * MiB, (n) => n !== 'node'),
  ];
  const go: Entry[] = ['/usr/bin/skopeo', '/usr/bin/podman', '/usr/bin/buildah'].filter((f) => existsSync(f)).map((f) => ({ path: `usr/local${f.slice(4)}`, file: f }));
  const layers = [];
  for (const entries of [base, app, go]) layers.push(await writeLayer(entries, blobs));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { User: '1000', Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/skopeo'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `layer ${i}` })),
    }),
  );
  const c = blob(blobs, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  const m = blob(blobs, manifest);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
  return { manifest, layers };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(what: string, fn: () => Promise<unknown>): Promise<{ ms: number; result: unknown }> {
  await fn(); // warm-up
  const samples: number[] = [];
  let result: unknown;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    result = await fn();
    samples.push(performance.now() - t);
  }
  console.error(`  ${what}: ${samples.map((s) => Math.round(s)).join(', ')} ms`);
  return { ms: median(samples), result };
}

async function main(): Promise<void> {
  const layout = join(dir, 'layout');
  console.error(`building the image in ${layout} ...`);
  const built = existsSync(join(layout, 'index.json')) ? undefined : await buildLayout(layout);
  const manifest = built?.manifest ?? readFileSync(join(layout, 'blobs', 'sha256', (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }).manifests[0]!.digest.slice(7)));
  const layers = (JSON.parse(manifest.toString()) as { layers: Array<{ digest: string; size: number }> }).layers;
  const compressed = layers.reduce((n, l) => n + l.size, 0);

  const dataDir = join(dir, 'data');
  const vulns = await VulnData.open(dataDir);
  const source = () => ociLayoutImage(`${layout}:bench`);
  if (vulns.db.size === 0) {
    await vulns.import(join(SHARED_FIXTURES, 'osv'));
    // 20,000 synthetic records over the image's own package names (a tenth affecting the installed version), so matching has real work.
    const found = await analyzeImage(await source(), vulns.matcher, vulns.identity());
    const osvDir = join(dir, 'synthetic-osv');
    mkdirSync(osvDir, { recursive: true });
    const pkgs = found.inventory.packages.filter((p) => p.kind === 'dpkg' || p.kind === 'npm' || p.kind === 'go-stdlib');
    for (let i = 0; i < 20_000; i++) {
      const p = pkgs[i % pkgs.length]!;
      const ecosystem = p.kind === 'dpkg' ? 'Debian:12' : p.kind === 'npm' ? 'npm' : 'Go';
      const name = p.kind === 'dpkg' ? (p.sourceName ?? p.name) : p.kind === 'go-stdlib' ? 'stdlib' : p.name;
      const version = p.kind === 'dpkg' ? (p.sourceVersion ?? p.version) : p.version;
      const hit = i % 10 === 0;
      const record = {
        id: `BENCH-${i}`,
        modified: '2024-01-01T00:00:00Z',
        aliases: [`CVE-2099-${100_000 + i}`],
        severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
        affected: [{ package: { ecosystem, name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: hit ? `${version}.1` : '0.0.0-0' }] }] }],
      };
      writeFileSync(join(osvDir, `BENCH-${i}.json`), JSON.stringify(record));
    }
    await vulns.import(osvDir);
  }
  console.error(`image: ${layers.length} layers, ${(compressed / MiB).toFixed(1)} MiB compressed; ${vulns.db.size} OSV records`);

  const local = await time('scan --oci-layout, in this thread', async () => analyzeImage(await source(), vulns.matcher, vulns.identity()));
  const analysis = local.result as Awaited<ReturnType<typeof analyzeImage>>;
  const threaded = await time('scan --oci-layout, walk in a worker thread', async () => analyzeImage(await source(), vulns.matcher, vulns.identity(), { threadMemoryMb: 2048 }));

  // The server: push, then wait for scan.completed.
  const serverDir = join(dir, 'server');
  rmSync(serverDir, { recursive: true, force: true });
  const config = await loadConfig({
    env: {},
    overrides: [
      { path: ['storage', 'dataDir'], value: serverDir, flag: 'dataDir' },
      { path: ['auth', 'mode'], value: 'none', flag: 'auth' },
      { path: ['log', 'level'], value: 'silent', flag: 'log' },
      { path: ['gc', 'intervalSeconds'], value: 0, flag: 'gc' },
      { path: ['audit', 'enabled'], value: false, flag: 'audit' },
      { path: ['scanner', 'pollIntervalMs'], value: 50, flag: 'poll' },
    ],
  });
  const { mkdir, cp } = await import('node:fs/promises');
  await mkdir(join(serverDir, 'vulndb'), { recursive: true });
  await cp(join(dataDir, 'vulndb'), join(serverDir, 'vulndb'), { recursive: true });
  const registry = await buildRegistry(config);
  let server: { ms: number } | undefined;
  try {
    const blobs = join(layout, 'blobs', 'sha256');
    const cfg = (JSON.parse(manifest.toString()) as { config: { digest: string } }).config.digest;
    for (const d of [cfg, ...layers.map((l) => l.digest)]) {
      const res = await registry.app.inject({ method: 'POST', url: `/v2/bench/app/blobs/uploads/?digest=${d}`, payload: readFileSync(join(blobs, d.slice(7))), headers: { 'content-type': 'application/octet-stream' } });
      if (res.statusCode !== 201) throw new Error(`upload ${d}: ${res.statusCode}`);
    }
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    const completed = () =>
      new Promise<void>((resolve, reject) => {
        const off = registry.events.subscribe('scan.completed', (e) => {
          if (e.digest !== digest) return;
          off();
          if (e.outcome === 'success') resolve();
          else reject(new Error(`scan failed: ${e.reason}`));
        });
      });
    let first = true;
    server = await time('server: manifest PUT to scan.completed', async () => {
      const done = completed();
      const res = first
        ? await registry.app.inject({ method: 'PUT', url: '/v2/bench/app/manifests/v1', payload: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
        : await registry.app.inject({ method: 'POST', url: `/api/v1/repositories/bench/app/scans/${digest}` });
      if (res.statusCode >= 300) throw new Error(`${first ? 'PUT' : 'rescan'}: ${res.statusCode} ${res.payload}`);
      first = false;
      await done;
    });
  } finally {
    await registry.close();
  }

  const s = analysis.evaluation.summary;
  const byKind = new Map<string, number>();
  for (const p of analysis.inventory.packages) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
  const rate = (ms: number) => (compressed / MiB / (ms / 1000)).toFixed(1);
  console.log(`\nScan time of a ${(compressed / MiB).toFixed(1)} MiB image (${layers.length} gzip layers, ${analysis.inventory.layers.reduce((n, l) => n + l.entries, 0).toLocaleString('en-US')} files, ${(analysis.inventory.layers.reduce((n, l) => n + l.uncompressedBytes, 0) / MiB).toFixed(0)} MiB of tar)`);
  console.log(`packages: ${analysis.inventory.packages.length} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}); findings: ${s.total}; OSV records: ${vulns.db.size}`);
  console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, node ${process.version}; median of ${RUNS} after a warm-up\n`);
  console.log('| path | median s | MiB/s compressed |');
  console.log('|---|---:|---:|');
  console.log(`| \`scan --oci-layout\` (walk in this thread) | ${(local.ms / 1000).toFixed(2)} | ${rate(local.ms)} |`);
  console.log(`| \`scan --oci-layout\`, walk in a worker thread | ${(threaded.ms / 1000).toFixed(2)} | ${rate(threaded.ms)} |`);
  if (server) console.log(`| server: manifest PUT → \`scan.completed\` | ${(server.ms / 1000).toFixed(2)} | ${rate(server.ms)} |`);
  if (!values.keep && !values.dir) rmSync(dir, { recursive: true, force: true });
}

await main();
