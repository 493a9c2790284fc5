/**
 * The scanner inside an in-process registry: pushes queue durable scans, reports match the
 * fixtures' expectations, SBOMs are attached as referrers, new vulnerability data re-evaluates
 * stored inventories without reading a layer, hostile layers fail alone, deleted images are
 * forgotten, queued jobs survive a restart, exemptions apply.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { EventOf } from '../../src/registry/events/bus.ts';
import { buildImage, buildIndex, MEDIA, sha256, type BuiltImage } from '../acceptance/helpers/oci.ts';
import { expectedUbuntuMatches, osvSubset, startScannerRegistry, ubuntuBaseLayer, waitFor, waitForScan, type ScannerHarness, withRawLayer } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const skip = fixturesSkip();
const fixtures = requireScannerFixtures() ?? '';

describe('scanner in the registry', { skip }, () => {
  let h: ScannerHarness;
  let osvAll: string;
  let osvWithout: string;
  const dirs: string[] = [];

  before(async () => {
    osvAll = await osvSubset(fixtures, ['Ubuntu', 'Debian', 'PyPI', 'npm']);
    osvWithout = await osvSubset(fixtures, ['Ubuntu', 'Debian', 'PyPI', 'npm'], ['USN-5378-1', 'USN-4968-1']);
    dirs.push(osvAll, osvWithout);
  });
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a pushed image is scanned: findings as expected, with layer attribution, summary and SBOM referrers', async () => {
    h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osvAll);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures), [{ path: 'app/readme.txt', content: Buffer.from('hello') }]] });
      await h.push('team/app', 'v1', image);
      const digest = image.manifest.descriptor.digest;
      const report = await waitForScan(h, 'team/app', digest);
      const expected = await expectedUbuntuMatches(fixtures);
      assert.deepEqual([...new Set(report.findings.map((f: any) => f.id))].sort(), expected);
      assert.equal(report.summary.packages, 90);
      assert.equal(report.os.id, 'ubuntu');
      for (const f of report.findings) {
        assert.equal(f.layer.index, 0, `${f.id} comes from the base layer`);
        assert.equal(f.layer.diffId, image.layers[0]!.diffId);
        assert.equal(f.package.kind, 'dpkg');
        assert.ok(f.package.purl.startsWith('pkg:deb/ubuntu/'));
      }
      assert.equal(report.summary.total, report.findings.length);
      assert.equal(report.summary.fixable, report.findings.filter((f: any) => f.fixAvailable).length);
      assert.equal(report.layers[0].findings, report.findings.length);
      assert.equal(report.layers[1].packages, 0);
      assert.equal(report.database.stale, false);
      assert.ok(report.database.contentHash);
      assert.deepEqual(report.configFindings.map((c: any) => c.rule), ['no-user']);
      assert.deepEqual(report.licences, [], 'no copyright files in this layer');

      // SBOMs are referrers of the image, pushed through the registry itself.
      const referrers = await waitFor('two SBOM referrers', async () => {
        const res = await h.request('GET', `/v2/team/app/referrers/${digest}`);
        const index = res.json();
        return index.manifests.length === 2 ? index : undefined;
      });
      assert.deepEqual(referrers.manifests.map((m: any) => m.artifactType).sort(), ['application/spdx+json', 'application/vnd.cyclonedx+json']);
      const cdxRef = referrers.manifests.find((m: any) => m.artifactType === 'application/vnd.cyclonedx+json');
      const cdxManifest = (await h.request('GET', `/v2/team/app/manifests/${cdxRef.digest}`, { headers: { accept: MEDIA.ociManifest } })).json();
      assert.equal(cdxManifest.subject.digest, digest);
      const attached = (await h.request('GET', `/v2/team/app/blobs/${cdxManifest.layers[0].digest}`)).body;
      const downloaded = await h.request('GET', `/api/v1/repositories/team/app/scans/v1/sbom?format=cyclonedx`);
      assert.equal(downloaded.status, 200);
      assert.equal(downloaded.headers['content-type'], 'application/vnd.cyclonedx+json');
      assert.ok(attached.equals(downloaded.body), 'the downloadable SBOM is the attached one');
      const cdx = JSON.parse(attached.toString());
      assert.equal(cdx.specVersion, '1.6');
      assert.equal(cdx.components.filter((c: any) => c.type === 'library').length, 90);
      const spdx = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}/sbom?format=spdx`)).json();
      assert.equal(spdx.spdxVersion, 'SPDX-2.3');
      assert.equal(spdx.packages.length, 92, 'image, OS and 90 packages');

      const sarif = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}/sarif`)).json();
      assert.equal(sarif.version, '2.1.0');
      assert.deepEqual([...new Set(sarif.runs[0].results.filter((r: any) => !r.ruleId.includes('/')).map((r: any) => r.ruleId))].sort(), expected);

      // Pushing the same image to another repository does not read it again, and attaches SBOMs there too.
      const reads = h.blobReads.length;
      await h.push('team/copy', 'v1', image);
      await waitFor('SBOMs in the copy', async () => ((await h.request('GET', `/v2/team/copy/referrers/${digest}`)).json().manifests.length === 2 ? true : undefined));
      const layerDigests = new Set(image.layers.map((l) => l.descriptor.digest));
      assert.equal(h.blobReads.slice(reads).filter((d) => layerDigests.has(d)).length, 0);

      // A re-push writes no SBOM again (no referrer re-put, so no event for other observers).
      const pushed: string[] = [];
      h.registry.events.subscribe('manifest.pushed', (e) => void pushed.push(`${e.repository} ${e.artifactType}`));
      await h.push('team/app', 'v1', image);
      await waitFor('the job done', async () => ((await h.registry.scanner!.pendingJobs()) === 0 ? true : undefined));
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(pushed, ['team/app application/vnd.oci.image.config.v1+json']);
    } finally {
      await h.close();
    }
  });

  test('new vulnerability data re-evaluates stored inventories without reading a layer, and says what changed', async () => {
    h = await startScannerRegistry();
    try {
      const scanner = h.registry.scanner!;
      await scanner.importVulnData(osvWithout);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/app', 'v1', image);
      const digest = image.manifest.descriptor.digest;
      const first = await waitForScan(h, 'team/app', digest);
      const ids = first.findings.map((f: any) => f.id);
      assert.ok(!ids.includes('USN-5378-1') && !ids.includes('USN-4968-1'));
      const readsBefore = [...h.blobReads];
      const layersOpened = scanner.stats.layersOpened;
      const changes: Array<EventOf<'scan.findings.changed'>> = [];
      h.registry.events.subscribe('scan.findings.changed', (e) => void changes.push(e));

      const imported = await scanner.importVulnData(osvAll);
      assert.equal(imported.status, 'imported');
      const report = await waitFor('re-evaluated report', async () => {
        const r = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
        return r.findings.some((f: any) => f.id === 'USN-5378-1') && !r.database.reevaluationPending ? r : undefined;
      });
      assert.deepEqual([...new Set(report.findings.map((f: any) => f.id))].sort(), await expectedUbuntuMatches(fixtures));
      assert.equal(scanner.stats.layersOpened, layersOpened, 'no layer opened again');
      assert.deepEqual(h.blobReads, readsBefore, 'no blob read at all');
      await waitFor('change event', async () => (changes.length > 0 ? true : undefined));
      assert.equal(changes[0]!.digest, digest);
      assert.equal(changes[0]!.repository, 'team/app');
      assert.deepEqual(changes[0]!.added.map((a) => a.id).sort(), ['USN-4968-1', 'USN-5378-1']);
      assert.deepEqual(changes[0]!.removed, []);

      // The same data again changes nothing: no event, no rewrite.
      const again = await scanner.rematch();
      assert.equal(again.evaluated, 0);
    } finally {
      await h.close();
    }
  });

  test('a whiteout deleting the package database in a later layer removes its packages and findings', async () => {
    h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osvAll);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures), [{ path: 'var/lib/dpkg/.wh.status', content: Buffer.alloc(0) }]] });
      await h.push('team/slim', 'v1', image);
      const report = await waitForScan(h, 'team/slim', image.manifest.descriptor.digest);
      assert.equal(report.summary.packages, 0);
      assert.deepEqual(report.findings, []);
      assert.equal(report.os.id, 'ubuntu', 'os-release is still there');
    } finally {
      await h.close();
    }
  });

  test('a hostile layer fails its scan with a reason and harms nothing else', async () => {
    h = await startScannerRegistry();
    try {
      const corrupt = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(2048)]);
      const bad = withRawLayer(buildImage({ layers: [[{ path: 'a', content: Buffer.from('a') }]] }), corrupt);
      const bomb = withRawLayer(buildImage({ layers: [[{ path: 'b', content: Buffer.from('b') }]] }), gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 }));
      const good = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/bad', 'v1', bad);
      await h.push('team/bomb', 'v1', bomb);
      await h.push('team/good', 'v1', good);
      const failed = await waitForScan(h, 'team/bad', bad.manifest.descriptor.digest, 'failed');
      assert.match(failed.reason, /^corrupt-compression: /);
      assert.ok(failed.warnings.some((w: string) => w.startsWith('the scan failed')));
      const bombed = await waitForScan(h, 'team/bomb', bomb.manifest.descriptor.digest, 'failed');
      assert.match(bombed.reason, /^(corrupt-tar|truncated|diffid-mismatch|decompression-bomb|size-limit): /);
      const ok = await waitForScan(h, 'team/good', good.manifest.descriptor.digest);
      assert.equal(ok.summary.packages, 90);
      // Failed for good after one attempt: permanent failures are not retried (the good scan's job ends after its SBOMs).
      await waitFor('no job left', async () => ((await h.registry.scanner!.pendingJobs()) === 0 ? true : undefined));
      assert.equal(h.registry.scanner!.stats.scansFailed, 2);
    } finally {
      await h.close();
    }
  });

  test('each platform image of an index is scanned; the index report lists them; artifacts are not scanned', async () => {
    h = await startScannerRegistry();
    try {
      const amd = buildImage({ architecture: 'amd64', layers: [await ubuntuBaseLayer(fixtures)] });
      const arm = buildImage({ architecture: 'arm64', layers: [[{ path: 'etc/os-release', content: Buffer.from('ID=alpine\nVERSION_ID=3.18.4\n') }]] });
      const index = buildIndex([amd, arm]);
      await h.push('team/multi', amd.manifest.descriptor.digest, amd);
      await h.push('team/multi', arm.manifest.descriptor.digest, arm);
      const put = await h.request('PUT', `/v2/team/multi/manifests/latest`, { body: index.manifest.bytes, headers: { 'content-type': MEDIA.ociIndex } });
      assert.equal(put.status, 201);
      await waitForScan(h, 'team/multi', amd.manifest.descriptor.digest);
      await waitForScan(h, 'team/multi', arm.manifest.descriptor.digest);
      const res = (await h.request('GET', '/api/v1/repositories/team/multi/scans/latest')).json();
      assert.equal(res.manifests.length, 2);
      assert.deepEqual(res.manifests.map((m: any) => m.status), ['complete', 'complete']);
      assert.equal(res.manifests[0].platform.architecture, 'amd64');

      // An artifact (an SBOM someone attached) is never queued.
      const art = Buffer.from('{"bomFormat":"CycloneDX"}');
      const empty = Buffer.from('{}');
      for (const b of [art, empty]) await h.request('POST', `/v2/team/multi/blobs/uploads/?digest=${sha256(b)}`, { body: b, headers: { 'content-type': 'application/octet-stream' } });
      const artifact = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA.ociManifest,
          artifactType: 'application/vnd.cyclonedx+json',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
          layers: [{ mediaType: 'application/vnd.cyclonedx+json', digest: sha256(art), size: art.length }],
        }),
      );
      assert.equal((await h.request('PUT', `/v2/team/multi/manifests/${sha256(artifact)}`, { body: artifact, headers: { 'content-type': MEDIA.ociManifest } })).status, 201);
      await h.registry.scanner!.worker.idle();
      assert.equal((await h.request('GET', `/api/v1/repositories/team/multi/scans/${sha256(artifact)}`)).status, 404);
    } finally {
      await h.close();
    }
  });

  test('a queued scan survives a restart; a deleted image is forgotten', async () => {
    h = await startScannerRegistry();
    const dataDir = h.dataDir;
    const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
    await h.registry.scanner!.worker.stop(); // the process "dies" before it scans
    await h.push('team/app', 'v1', image);
    const digest = image.manifest.descriptor.digest;
    await waitFor('the job queued', async () => ((await h.registry.scanner!.pendingJobs()) === 1 ? true : undefined));
    assert.equal((await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}/status`)).json().status, 'queued');
    await h.close(false);
    h = await startScannerRegistry({ dataDir });
    try {
      const report = await waitForScan(h, 'team/app', digest);
      assert.equal(report.summary.packages, 90);
      const scanner = h.registry.scanner!;
      await scanner.worker.idle();
      // Delete the image; its result goes (the SBOM referrers stay until GC, like any referrer).
      assert.equal((await h.request('DELETE', `/v2/team/app/manifests/${digest}`)).status, 202);
      await waitFor('the result forgotten', async () => ((await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).status === 404 ? true : undefined));
    } finally {
      await h.close();
    }
  });

  test('exemptions: created through the API, applied to reports by scope, warned before expiry, revoked', async () => {
    h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osvAll);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/app', 'v1', image);
      const digest = image.manifest.descriptor.digest;
      const base = await waitForScan(h, 'team/app', digest);
      const target = base.findings.find((f: any) => f.id === 'USN-5355-1');
      assert.ok(target, 'zlib finding present');
      const cve = target.aliases.find((a: string) => a.startsWith('CVE-')) ?? target.id;
      const soon = new Date(Date.now() + 3 * 86_400_000).toISOString();
      const later = new Date(Date.now() + 60 * 86_400_000).toISOString();
      const post = (body: unknown) => h.request('POST', '/api/v1/exemptions', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

      const bad = await post({ vulnerability: cve, scope: 'digest', repository: 'team/app', owner: 'alice', reason: 'x', expiresAt: later });
      assert.equal(bad.status, 400, 'digest scope needs the digest');
      const tooLong = await post({ vulnerability: cve, scope: 'project', project: 'team', owner: 'alice', reason: 'x', expiresAt: new Date(Date.now() + 400 * 86_400_000).toISOString() });
      assert.equal(tooLong.status, 400);
      // By alias (a CVE), for this package in the project, expiring soon.
      const created = await post({ vulnerability: cve, scope: 'package', project: 'team', package: 'pkg:deb/ubuntu/zlib1g', owner: 'alice', reason: 'only used for tests', ticket: 'https://tickets.example/SEC-1', expiresAt: soon });
      assert.equal(created.status, 201, created.body.toString());
      const exemption = created.json();
      // Another repository of another project is unaffected.
      const other = await post({ vulnerability: 'USN-4038-1', scope: 'repository', repository: 'other/app', owner: 'bob', reason: 'n/a', expiresAt: later });
      assert.equal(other.status, 201);

      const report = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
      assert.ok(!report.findings.some((f: any) => f.id === 'USN-5355-1'));
      assert.equal(report.exempted.length, 1);
      assert.equal(report.exempted[0].exemption.id, exemption.id);
      assert.equal(report.exempted[0].exemption.ticket, 'https://tickets.example/SEC-1');
      assert.equal(report.summary.exempted, 1);
      assert.equal(report.summary.total, base.summary.total - 1);
      assert.equal(report.summary.all.total, base.summary.total);
      assert.ok(report.findings.some((f: any) => f.id === 'USN-4038-1'));
      assert.ok(report.warnings.some((w: string) => w.includes(exemption.id) && w.includes('expires in 3 days')));

      const listed = (await h.request('GET', '/api/v1/exemptions?project=team&expiringWithinDays=7')).json();
      assert.deepEqual(listed.exemptions.map((e: any) => e.id), [exemption.id]);
      assert.equal((await h.request('GET', '/api/v1/exemptions')).status, 400, 'project is required');
      assert.equal((await h.request('DELETE', `/api/v1/exemptions/${exemption.id}`)).status, 200);
      assert.equal((await h.request('DELETE', `/api/v1/exemptions/${exemption.id}`)).status, 409);
      const after = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
      assert.equal(after.summary.exempted, 0);
      assert.equal((await h.request('GET', `/api/v1/exemptions/${exemption.id}`)).json().revokedAt !== undefined, true);
    } finally {
      await h.close();
    }
  });

  test('reports state the age of the data and warn when it is stale or missing', async () => {
    h = await startScannerRegistry({ overrides: [{ path: ['scanner', 'vulnerabilityData', 'maxAgeHours'], value: 0.0001 }] });
    try {
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/app', 'v1', image);
      const none = await waitForScan(h, 'team/app', image.manifest.descriptor.digest);
      assert.ok(none.warnings.some((w: string) => w.includes('no vulnerability data')));
      await h.registry.scanner!.importVulnData(osvAll);
      const stale = await waitFor('stale report', async () => {
        const r = (await h.request('GET', `/api/v1/repositories/team/app/scans/${image.manifest.descriptor.digest}`)).json();
        return r.database.updatedAt && r.database.stale && !r.database.reevaluationPending ? r : undefined;
      });
      assert.ok(stale.warnings.some((w: string) => w.startsWith('the vulnerability data is stale')));
      const status = (await h.request('GET', '/api/v1/vulndb')).json();
      assert.equal(status.records > 0, true);
      assert.equal(status.stale, true);
    } finally {
      await h.close();
    }
  });
});

/** The image with its only layer replaced by raw bytes (diff ID left as built: a hostile layer lies). */
