/**
 * End to end, with real tools and a real server process: umoci builds images whose layers hold the
 * fixture files (an Ubuntu 18.04 dpkg database and Python packages; a second image deletes the
 * package database in a later layer, which umoci writes as a whiteout), skopeo pushes them to
 * `portcullis serve`, the `portcullis vulndb import` command (another process) imports OSV records,
 * the server scans; the reports are compared with the fixtures' expectations. Then a changed OSV
 * set is imported and the reports change without a re-scan: the server's counters show no layer
 * was opened again.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createClientEnvironment, makeTempDir, requireTools, run, type ClientEnvironment } from '../acceptance/helpers/tools.ts';
import { startRegistry, type RunningRegistry } from '../support/registry-process.ts';
import { expectedUbuntuMatches, osvSubset, UBUNTU_1804_OS_RELEASE, waitFor } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const skip = fixturesSkip();
const fixtures = requireScannerFixtures() ?? '';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) env[k] = v;
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, ...args], { env, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    }),
  );
}

describe('scanning end to end: umoci, skopeo, portcullis serve, portcullis vulndb import', { skip }, () => {
  let work: string;
  let server: RunningRegistry | undefined;
  let clients: ClientEnvironment | undefined;

  before(async () => {
    work = await makeTempDir('scan-e2e');
  });
  after(async () => {
    await server?.stop();
    await clients?.cleanup();
    await rm(work, { recursive: true, force: true });
    if (server) await rm(server.dataDir, { recursive: true, force: true });
  });

  test('scan at push, expected findings, whiteouts, re-evaluation without reading layers', async (t) => {
    if (!requireTools(t, 'umoci', 'skopeo')) return;
    const layout = join(work, 'layout');
    const umoci = (...args: string[]) => run('umoci', args, { timeoutMs: 120_000 });

    // Image "base": layer 1 = os-release + dpkg status; layer 2 = Python packages.
    await umoci('init', '--layout', layout);
    await umoci('new', '--image', `${layout}:base`);
    const bundle = join(work, 'bundle');
    await umoci('unpack', '--rootless', '--image', `${layout}:base`, bundle);
    await mkdir(join(bundle, 'rootfs/etc'), { recursive: true });
    await mkdir(join(bundle, 'rootfs/var/lib/dpkg'), { recursive: true });
    await writeFile(join(bundle, 'rootfs/etc/os-release'), UBUNTU_1804_OS_RELEASE);
    await cp(join(fixtures, 'pkgdb/dpkg/ubuntu-18.04-trivy-valid/var/lib/dpkg/status'), join(bundle, 'rootfs/var/lib/dpkg/status'));
    // --refresh-bundle: the next repack records only what changed since (one layer per repack).
    await umoci('repack', '--refresh-bundle', '--image', `${layout}:base`, bundle);
    await cp(join(fixtures, 'lang/python/site-packages'), join(bundle, 'rootfs/usr/lib/python3/dist-packages'), { recursive: true });
    await umoci('repack', '--refresh-bundle', '--image', `${layout}:base`, bundle);
    // Image "slim": the same plus a layer deleting the package database (umoci writes `.wh.status`).
    await rm(join(bundle, 'rootfs/var/lib/dpkg/status'));
    await umoci('repack', '--image', `${layout}:slim`, bundle);
    await rm(bundle, { recursive: true, force: true });

    server = await startRegistry({
      env: {
        PORTCULLIS_SCANNER_POLL_INTERVAL_MS: '100',
        PORTCULLIS_SCANNER_VULNERABILITY_DATA_RELOAD_INTERVAL_SECONDS: '1',
        PORTCULLIS_LOG_LEVEL: 'warn',
        PORTCULLIS_AUDIT_ENABLED: 'false',
      },
    });
    clients = await createClientEnvironment(server.host);
    const api = async (path: string) => {
      const res = await fetch(`${server!.url}${path}`);
      assert.equal(res.status, 200, `${path}: ${res.status}`);
      return res.json() as Promise<any>;
    };

    // Data without two Ubuntu notices, imported by the CLI (another process) while the server runs.
    const osvOld = await osvSubset(fixtures, ['Ubuntu', 'Debian', 'PyPI'], ['USN-5378-1', 'USN-4968-1']);
    const osvNew = await osvSubset(fixtures, ['Ubuntu', 'Debian', 'PyPI']);
    try {
      const first = await cli(['vulndb', 'import', osvOld, '--data-dir', server.dataDir]);
      assert.equal(first.code, 0, first.stderr);

      for (const tag of ['base', 'slim']) {
        await run('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${server.host}/e2e/app:${tag}`], { env: clients.env });
      }
      const report = async (tag: string, ready: (r: any) => boolean = (r) => r.status === 'complete') =>
        waitFor(`report of ${tag}`, async () => {
          const res = await fetch(`${server!.url}/api/v1/repositories/e2e/app/scans/${tag}`);
          if (res.status !== 200) return undefined;
          const r = (await res.json()) as any;
          if (r.status === 'failed') throw new Error(`scan of ${tag} failed: ${r.reason}`);
          return ready(r) ? r : undefined;
        }, 60_000);
      const base = await report('base');
      const slim = await report('slim');

      const ubuntu = await expectedUbuntuMatches(fixtures);
      const python = ['PYSEC-2022-43012', 'PYSEC-2023-62']; // expected/matches.json: setuptools 51.3.3, flask 2.0.0
      const ids = (r: any) => [...new Set(r.findings.map((f: any) => f.id as string))].sort();
      assert.deepEqual(ids(base), [...ubuntu.filter((id) => id !== 'USN-5378-1' && id !== 'USN-4968-1'), ...python].sort());
      assert.equal(base.layers.length, 2);
      for (const f of base.findings) assert.equal(f.layer.index, f.package.kind === 'dpkg' ? 0 : 1, `${f.id} attributed to its layer`);
      assert.deepEqual(ids(slim), python, 'the whiteout removed the dpkg database and its findings');
      assert.ok(base.licences.includes('BSD-3-Clause'), `licences from the Python metadata: ${base.licences.join(', ')}`);
      assert.equal(slim.layers.length, 3);
      assert.equal(slim.summary.packages, base.summary.packages - 90);

      // The SBOMs are referrers of each image.
      const referrers = await waitFor('SBOM referrers', async () => {
        const index = (await (await fetch(`${server!.url}/v2/e2e/app/referrers/${base.digest}`)).json()) as any;
        return index.manifests.length === 2 ? index : undefined;
      });
      assert.deepEqual(referrers.manifests.map((m: any) => m.artifactType).sort(), ['application/spdx+json', 'application/vnd.cyclonedx+json']);

      const before = (await api('/api/v1/scanner')).stats;
      assert.equal(before.scansCompleted, 2);

      // New data, imported by the CLI: the server re-evaluates (no re-scan) and the report changes.
      const second = await cli(['vulndb', 'import', osvNew, '--data-dir', server.dataDir]);
      assert.equal(second.code, 0, second.stderr);
      const updated = await report('base', (r) => r.status === 'complete' && r.findings.some((f: any) => f.id === 'USN-5378-1') && !r.database.reevaluationPending);
      assert.deepEqual(ids(updated), [...ubuntu, ...python].sort());
      assert.deepEqual(ids(await report('slim')), python);
      const afterStats = (await api('/api/v1/scanner')).stats;
      assert.equal(afterStats.layersOpened, before.layersOpened, 'no layer was opened again');
      assert.equal(afterStats.scansCompleted, before.scansCompleted, 'no image was re-scanned');
      assert.ok(afterStats.rematches >= 1);
      assert.equal(afterStats.findingsChanged, 1, 'only the base image changed');

      const sbom = await fetch(`${server.url}/api/v1/repositories/e2e/app/scans/base/sbom?format=spdx`);
      assert.equal(sbom.status, 200);
      const doc = JSON.parse(await sbom.text());
      assert.ok(doc.packages.some((p: any) => p.name === 'flask' || p.name === 'Flask'));
      const vulndb = await api('/api/v1/vulndb');
      assert.equal(vulndb.stale, false);
      assert.equal(JSON.parse(await readFile(join(osvNew, 'Ubuntu', 'USN-5378-1.json'), 'utf8')).id, 'USN-5378-1');
    } finally {
      await rm(osvOld, { recursive: true, force: true });
      await rm(osvNew, { recursive: true, force: true });
    }
  });
});
