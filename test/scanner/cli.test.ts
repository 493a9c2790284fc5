/**
 * `portcullis vulndb import|status` and `portcullis scan` as a CI job runs them: a data directory
 * with a database it imported itself, images on disk (OCI layout written here, docker- and
 * oci-archives written by skopeo), every output format, `--fail-on` exit codes, hostile input,
 * and the remote form against a running registry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { buildImage, MEDIA, sha256, writeOciLayout, type BuiltImage } from '../acceptance/helpers/oci.ts';
import { findOnPath, requireTools, run } from '../acceptance/helpers/tools.ts';
import { expectedUbuntuMatches, osvSubset, startScannerRegistry, ubuntuBaseLayer, waitForScan, withRawLayer } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const skip = fixturesSkip();
const fixtures = requireScannerFixtures() ?? '';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function portcullis(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) clean[k] = v;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bin, ...args], { env: { ...clean, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

describe('portcullis vulndb and scan (local)', { skip }, () => {
  let work: string;
  let dataDir: string;
  let layout: string;
  let osv: string;
  let image: BuiltImage;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'portcullis-scancli-'));
    dataDir = join(work, 'data');
    layout = join(work, 'layout');
    osv = await osvSubset(fixtures, ['Ubuntu', 'Debian']);
    image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
    const empty = buildImage({ layers: [[{ path: 'hello.txt', content: Buffer.from('hi') }]] });
    const corrupt = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(1024)]);
    const hostile = withRawLayer(empty, corrupt);
    await writeOciLayout(layout, { ubuntu: image, empty, hostile });
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
    await rm(osv, { recursive: true, force: true });
  });

  test('vulndb import and status', async () => {
    const imported = await portcullis(['vulndb', 'import', osv, '--data-dir', dataDir]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /imported \d+ records/);
    const again = await portcullis(['vulndb', 'import', osv, '--data-dir', dataDir]);
    assert.match(again.stdout, /unchanged/);
    const status = await portcullis(['vulndb', 'status', '--data-dir', dataDir, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout);
    assert.equal(s.records, 20);
    assert.equal(s.stale, false);
    assert.equal(s.sources.length, 1);
    assert.equal((await portcullis(['vulndb', 'import', '--data-dir', dataDir])).code, 2);
  });

  test('scan --oci-layout DIR:TAG: json, sarif, cyclonedx, spdx, table; --fail-on exit codes', async () => {
    const json = await portcullis(['scan', '--oci-layout', `${layout}:ubuntu`, '--format', 'json', '--data-dir', dataDir]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.digest, image.manifest.descriptor.digest);
    assert.deepEqual([...new Set(report.findings.map((f: any) => f.id))].sort(), await expectedUbuntuMatches(fixtures));
    const worst = report.findings.map((f: any) => f.severity).find((s: string) => ['critical', 'high', 'medium', 'low'].includes(s));
    assert.ok(worst, 'some finding has a severity');
    const failing = await portcullis(['scan', '--oci-layout', `${layout}:ubuntu`, '--fail-on', worst, '--data-dir', dataDir]);
    assert.equal(failing.code, 1, 'a finding at the threshold fails');
    assert.match(failing.stdout, /SEVERITY\s+ID\s+PACKAGE/);
    const clean = await portcullis(['scan', '--oci-layout', `${layout}:empty`, '--fail-on', 'low', '--data-dir', dataDir]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);

    const sarif = JSON.parse((await portcullis(['scan', '--oci-layout', `${layout}:ubuntu`, '--format', 'sarif', '--data-dir', dataDir])).stdout);
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0].results.filter((r: any) => !r.ruleId.includes('/')).length, report.findings.length);
    const cdx = JSON.parse((await portcullis(['scan', '--oci-layout', `${layout}:ubuntu`, '--format', 'cyclonedx', '--data-dir', dataDir])).stdout);
    assert.equal(cdx.bomFormat, 'CycloneDX');
    assert.equal(cdx.components.length, 91, 'the OS and 90 packages');
    const out = join(work, 'sbom.spdx.json');
    assert.equal((await portcullis(['scan', '--oci-layout', `${layout}:ubuntu`, '--format', 'spdx', '--output', out, '--data-dir', dataDir])).code, 0);
    const spdx = JSON.parse(await (await import('node:fs/promises')).readFile(out, 'utf8'));
    assert.equal(spdx.spdxVersion, 'SPDX-2.3');
  });

  test('a hostile layer exits 3 with the reason; usage errors exit 2', async () => {
    const hostile = await portcullis(['scan', '--oci-layout', `${layout}:hostile`, '--data-dir', dataDir]);
    assert.equal(hostile.code, 3);
    assert.match(hostile.stderr, /corrupt-compression/);
    assert.equal((await portcullis(['scan', '--oci-layout', `${layout}:missing`, '--data-dir', dataDir])).code, 3);
    assert.equal((await portcullis(['scan', '--format', 'xml', '--oci-layout', layout])).code, 2);
    assert.equal((await portcullis(['scan', '--fail-on', 'severe', '--oci-layout', layout])).code, 2);
    assert.equal((await portcullis(['scan'])).code, 2);
  });

  test('scan --archive: docker-archive and oci-archive written by skopeo', async (t) => {
    if (!findOnPath('skopeo') && !requireTools(t, 'skopeo')) return;
    const policy = join(work, 'policy.json');
    await (await import('node:fs/promises')).writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    for (const transport of ['docker-archive', 'oci-archive']) {
      const file = join(work, `${transport}.tar`);
      await run('skopeo', ['--policy', policy, 'copy', `oci:${layout}:ubuntu`, `${transport}:${file}${transport === 'docker-archive' ? ':team/app:v1' : ''}`]);
      const res = await portcullis(['scan', '--archive', file, '--format', 'json', '--data-dir', dataDir]);
      assert.equal(res.code, 0, `${transport}: ${res.stderr}`);
      const report = JSON.parse(res.stdout);
      assert.equal(report.summary.packages, 90, transport);
      assert.deepEqual([...new Set(report.findings.map((f: any) => f.id))].sort(), await expectedUbuntuMatches(fixtures), transport);
    }
  });

  test('scan IMAGE-REF shows the registry report', async () => {
    const h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osv);
      await h.push('team/app', 'v1', image);
      await waitForScan(h, 'team/app', image.manifest.descriptor.digest);
      await h.registry.app.listen({ host: '127.0.0.1', port: 0 });
      const address = h.registry.app.server.address() as { port: number };
      const res = await portcullis(['scan', `127.0.0.1:${address.port}/team/app:v1`, '--format', 'json']);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual([...new Set(JSON.parse(res.stdout).findings.map((f: any) => f.id))].sort(), await expectedUbuntuMatches(fixtures));
      const sbom = await portcullis(['scan', `127.0.0.1:${address.port}/team/app@${image.manifest.descriptor.digest}`, '--format', 'spdx']);
      assert.equal(JSON.parse(sbom.stdout).spdxVersion, 'SPDX-2.3');
      assert.equal((await portcullis(['scan', `127.0.0.1:${address.port}/team/nothing:v1`])).code, 3);
    } finally {
      await h.close();
    }
  });
});
