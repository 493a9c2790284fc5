/**
 * SBOM-first ingestion: SBOMs attached by an image's builder (CycloneDX or SPDX referrers, in-toto
 * statements and DSSE envelopes around them, BuildKit attestation manifests in an index) are parsed
 * defensively, compared with the scanner's inventory (only in the SBOM / only in the inventory /
 * other version) and their extra packages matched, marked as from the SBOM — whether the SBOM
 * arrives after the scan or before it. Portcullis' own SBOM referrers are never taken for one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BuilderSbomError, cosignSbomSubject, hasPurl, mergeBuilderSboms, packageFromPurl, parseBuilderSbom, parsePurl, type SbomPackage } from '../../src/registry/scanner/builder-sbom.ts';
import type { InventoryPackage } from '../../src/registry/scanner/model.ts';
import { SPDX_TAG_VALUE } from './sbom-documents.ts';
import { buildImage, MEDIA, sha256, writeOciLayout, type BuiltImage } from '../acceptance/helpers/oci.ts';
import { createClientEnvironment, requireTools, run } from '../acceptance/helpers/tools.ts';
import { startRegistry } from '../support/registry-process.ts';
import { osvSubset, type ScannerHarness, startScannerRegistry, ubuntuBaseLayer, waitFor, waitForScan } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const cdx = (components: unknown[], extra: Record<string, unknown> = {}) => ({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, metadata: { tools: { components: [{ name: 'syft', version: '1.4.1' }] } }, components, ...extra });
const spdxDoc = (purls: string[]) => ({
  spdxVersion: 'SPDX-2.3',
  SPDXID: 'SPDXRef-DOCUMENT',
  name: 'img',
  creationInfo: { created: '2024-05-01T00:00:00Z', creators: ['Organization: Example', 'Tool: buildkit-v0.13.2'] },
  packages: [
    { SPDXID: 'SPDXRef-img', name: 'img', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:oci/img@sha256%3A${'a'.repeat(64)}` }] },
    ...purls.map((p, i) => ({ SPDXID: `SPDXRef-p${i}`, name: `p${i}`, externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p }] })),
  ],
});
const statement = (predicateType: string, predicate: unknown) => ({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ name: 'img', digest: { sha256: 'a'.repeat(64) } }], predicateType, predicate });
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('builder SBOM parsing and comparison', () => {
  test('CycloneDX (nested components), SPDX, in-toto and DSSE; the image itself is not a package', () => {
    const c = parseBuilderSbom(json(cdx([{ type: 'library', name: 'a', purl: 'pkg:npm/a@1.0.0', components: [{ name: 'b', purl: 'pkg:maven/org.x/b@2.0' }] }, { name: 'no-purl' }])));
    assert.equal(c.format, 'cyclonedx');
    assert.equal(c.tool, 'syft 1.4.1');
    assert.deepEqual(c.packages.filter(hasPurl).map((p) => p.purl).sort(), ['pkg:maven/org.x/b@2.0', 'pkg:npm/a@1.0.0']);
    assert.deepEqual(c.packages.filter((p) => !hasPurl(p)), [{ name: 'no-purl' }], 'a component without a purl is kept for comparison by name');
    const s = parseBuilderSbom(json(spdxDoc(['pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc'])));
    assert.equal(s.format, 'spdx');
    assert.equal(s.tool, 'buildkit-v0.13.2');
    assert.deepEqual(s.packages, [{ purl: 'pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc' }]);
    const wrapped = parseBuilderSbom(json(statement('https://spdx.dev/Document', spdxDoc(['pkg:npm/x@1.0.0']))));
    assert.deepEqual(wrapped.packages[0], { purl: 'pkg:npm/x@1.0.0' });
    const envelope = { payloadType: 'application/vnd.in-toto+json', payload: json(statement('https://cyclonedx.org/bom', cdx([{ name: 'y', purl: 'pkg:pypi/y@1.0' }]))).toString('base64'), signatures: [{ sig: 'x' }] };
    assert.deepEqual(parseBuilderSbom(json(envelope)).packages[0], { purl: 'pkg:pypi/y@1.0' });
  });

  test('anything else is refused with a reason', () => {
    assert.throws(() => parseBuilderSbom(Buffer.from('{')), (e: unknown) => e instanceof BuilderSbomError && /not JSON/.test((e as Error).message));
    assert.throws(() => parseBuilderSbom(json(statement('https://slsa.dev/provenance/v0.2', {}))), /not an SBOM/);
    assert.throws(() => parseBuilderSbom(json({ payloadType: 'text/plain', payload: 'eA==' })), /not an in-toto statement/);
    assert.throws(() => parseBuilderSbom(json({ hello: 'world' })), /neither CycloneDX nor SPDX/);
    assert.throws(() => parseBuilderSbom(json([1, 2])), /not a JSON object/);
  });

  test('purls become matchable packages the way the analyzers name them', () => {
    assert.deepEqual(parsePurl('pkg:npm/%40types/node@20.1.0?x=1'), { type: 'npm', namespace: '@types', name: 'node', version: '20.1.0', qualifiers: { x: '1' } });
    const deb = packageFromPurl('pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc', 'r')!;
    assert.equal(deb.kind, 'dpkg');
    assert.equal(deb.sourceName, 'glibc');
    assert.equal(deb.origin, 'sbom');
    assert.equal(packageFromPurl('pkg:golang/github.com/x/y@v1.2.3', 'r')!.name, 'github.com/x/y');
    assert.equal(packageFromPurl('pkg:golang/github.com/x/y@v1.2.3', 'r')!.version, '1.2.3');
    assert.equal(packageFromPurl('pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1', 'r')!.name, 'org.apache.logging.log4j:log4j-core');
    assert.equal(packageFromPurl('pkg:rpm/redhat/openssl@1.1.1k-7.el8?epoch=1', 'r')!.version, '1:1.1.1k-7.el8');
    assert.equal(packageFromPurl('pkg:generic/thing@1.0', 'r'), undefined);
    assert.equal(packageFromPurl('pkg:npm/no-version', 'r'), undefined);
  });

  test('comparison: only in the SBOM, only in the inventory, other versions; extra versions appended for matching', () => {
    const scanned: InventoryPackage[] = [
      { kind: 'dpkg', name: 'libc6', version: '2.36-9', purl: 'pkg:deb/debian/libc6@2.36-9?arch=amd64', path: '/var/lib/dpkg/status' },
      { kind: 'npm', name: 'lodash', version: '4.17.21', purl: 'pkg:npm/lodash@4.17.21', path: '/app/package-lock.json' },
      { kind: 'python', name: 'requests', version: '2.31.0', purl: 'pkg:pypi/requests@2.31.0', path: '/usr/lib/python3/requests.dist-info/METADATA' },
    ];
    const sbom = { id: 'sha256:r', repository: 'p/a', subject: 'sha256:s', format: 'cyclonedx' as const, createdAt: 0, packages: ['pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12', 'pkg:npm/lodash@4.17.20', 'pkg:npm/body-parser@1.20.2', 'pkg:generic/thing@1'].map((purl) => ({ purl })) };
    const { packages, comparisons } = mergeBuilderSboms(scanned, [sbom]);
    const c = comparisons[0]!;
    assert.deepEqual(c.onlyInSbom, ['pkg:generic/thing', 'pkg:npm/body-parser']);
    assert.deepEqual(c.onlyInInventory, ['pkg:pypi/requests']);
    assert.deepEqual(c.versionDiffers, [{ package: 'pkg:npm/lodash', sbom: ['4.17.20'], inventory: ['4.17.21'] }]);
    assert.equal(c.matched, 2);
    assert.deepEqual(
      packages.slice(3).map((p) => `${p.name}@${p.version}:${p.origin}`),
      ['lodash@4.17.20:sbom', 'body-parser@1.20.2:sbom'],
    );
    assert.deepEqual(packages.slice(0, 3), scanned, 'scanned packages keep their places');
  });
});

describe('cosign tag-scheme SBOMs and components without a purl', () => {
  test("cosign's tag names the subject (with cosign's --attachment-tag-prefix too)", () => {
    const hex = 'ab'.repeat(32);
    assert.equal(cosignSbomSubject(`sha256-${hex}.sbom`), `sha256:${hex}`);
    assert.equal(cosignSbomSubject(`pre-sha256-${hex}.sbom`), `sha256:${hex}`);
    assert.equal(cosignSbomSubject(`sha256-${hex}.sig`), undefined);
    assert.equal(cosignSbomSubject(`sha256-${hex.slice(2)}.sbom`), undefined);
    assert.equal(cosignSbomSubject(undefined), undefined);
  });

  test('SPDX tag-value (text/spdx): packages by purl and by name with their download location as a hint; the described image, files and <text> blocks are skipped', () => {
    const s = parseBuilderSbom(Buffer.from(SPDX_TAG_VALUE), 'text/spdx');
    assert.equal(s.format, 'spdx');
    assert.equal(s.tool, 'syft-1.4.1');
    assert.deepEqual(s.packages, [{ name: 'body-parser', version: '1.20.2', ecosystems: ['npm'] }, { purl: 'pkg:deb/ubuntu/zlib1g@1%3A1.2.11.dfsg-0ubuntu2?arch=amd64&upstream=zlib&distro=ubuntu-18.04' }]);
    assert.throws(() => parseBuilderSbom(Buffer.from('SPDXVersion: 2.3\nPackageName: x\n'), 'text/spdx'), /SPDXVersion/);
    // cosign also labelled JSON documents text/spdx: the content decides.
    assert.equal(parseBuilderSbom(json(spdxDoc(['pkg:npm/x@1.0.0'])), 'text/spdx').packages.length, 1);
    assert.throws(() => parseBuilderSbom(Buffer.from('<bom/>'), 'application/vnd.cyclonedx+xml'), /CycloneDX XML is not read/);
  });

  test('SPDX JSON and CycloneDX: PACKAGE-MANAGER references become purls; ecosystem hints from syft and cdx properties and distribution URLs; the OS and files are no packages', () => {
    const s = parseBuilderSbom(
      json({
        spdxVersion: 'SPDX-2.3',
        SPDXID: 'SPDXRef-DOCUMENT',
        documentDescribes: ['SPDXRef-root'],
        packages: [
          { SPDXID: 'SPDXRef-root', name: 'my-app', versionInfo: '1.0' },
          { SPDXID: 'SPDXRef-a', name: 'log4j-core', versionInfo: '2.14.1', externalRefs: [{ referenceCategory: 'PACKAGE_MANAGER', referenceType: 'maven-central', referenceLocator: 'org.apache.logging.log4j:log4j-core:2.14.1' }] },
          { SPDXID: 'SPDXRef-b', name: 'types-node', versionInfo: '20.1.0', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'npm', referenceLocator: '@types/node@20.1.0' }] },
          { SPDXID: 'SPDXRef-c', name: 'requests', versionInfo: '2.31.0', downloadLocation: 'https://files.pythonhosted.org/packages/requests-2.31.0.tar.gz' },
          { SPDXID: 'SPDXRef-d', name: 'ubuntu', versionInfo: '22.04', primaryPackagePurpose: 'OPERATING-SYSTEM' },
          { SPDXID: 'SPDXRef-e', name: 'mystery', versionInfo: 'NOASSERTION' },
        ],
      }),
    );
    assert.deepEqual(s.packages, [
      { purl: 'pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1' },
      { purl: 'pkg:npm/%40types/node@20.1.0' },
      { name: 'requests', version: '2.31.0', ecosystems: ['pypi'] },
      { name: 'mystery' },
    ]);
    const c = parseBuilderSbom(
      json(
        cdx([
          { type: 'operating-system', name: 'ubuntu', version: '22.04' },
          { type: 'file', name: '/etc/passwd' },
          { type: 'library', name: 'tar', version: '6.1.0', properties: [{ name: 'syft:package:type', value: 'npm' }] },
          { type: 'library', group: 'org.x', name: 'b', version: '2.0', properties: [{ name: 'cdx:maven:packaging', value: 'jar' }] },
          { type: 'library', name: 'serde', version: '1.0.0', externalReferences: [{ type: 'distribution', url: 'https://crates.io/api/v1/crates/serde/1.0.0/download' }] },
        ]),
      ),
    );
    assert.deepEqual(c.packages, [
      { name: 'tar', version: '6.1.0', ecosystems: ['npm'] },
      { name: 'b', version: '2.0', group: 'org.x', ecosystems: ['maven'] },
      { name: 'serde', version: '1.0.0', ecosystems: ['cargo'] },
    ]);
  });

  test('the rule for a component without a purl: one fitting package of the image, else one hinted ecosystem, else unmatched with the reason', () => {
    const scanned: InventoryPackage[] = [
      { kind: 'dpkg', name: 'tar', version: '1.29b-2ubuntu0.1', purl: 'pkg:deb/ubuntu/tar@1.29b-2ubuntu0.1?arch=amd64&distro=ubuntu-18.04', path: '/var/lib/dpkg/status' },
      { kind: 'dpkg', name: 'zlib1g', version: '1:1.2.11.dfsg-0ubuntu2', sourceName: 'zlib', purl: 'pkg:deb/ubuntu/zlib1g@1%3A1.2.11.dfsg-0ubuntu2?arch=amd64&distro=ubuntu-18.04&upstream=zlib', path: '/var/lib/dpkg/status' },
      { kind: 'npm', name: 'tar', version: '6.1.0', purl: 'pkg:npm/tar@6.1.0', path: '/app/node_modules/tar/package.json' },
      { kind: 'npm', name: '@types/node', version: '20.1.0', purl: 'pkg:npm/%40types/node@20.1.0', path: '/app/node_modules/@types/node/package.json' },
      { kind: 'python', name: 'pyyaml', version: '6.0', purl: 'pkg:pypi/pyyaml@6.0', path: '/usr/lib/python3/PyYAML.dist-info/METADATA' },
      { kind: 'java', name: 'org.x:b', version: '2.0', purl: 'pkg:maven/org.x/b@2.0', path: '/app/b.jar' },
    ];
    const components: SbomPackage[] = [
      { name: 'zlib1g', version: '1:1.2.11.dfsg-0ubuntu1' }, // one fit (deb): other version, matched with its source package
      { name: 'tar', version: '6.1.0' }, // deb and npm fit
      { name: 'tar', version: '6.2.0', ecosystems: ['npm'] }, // the hint picks npm: other version
      { name: 'PyYAML', version: '6.0' }, // PEP 503 name: same version, nothing to match
      { name: 'node', version: '20.1.0', group: '@types' }, // npm scope as group: same
      { name: 'b', version: '2.0', group: 'org.x' }, // Maven by group: same
      { name: 'body-parser', version: '1.20.2', ecosystems: ['npm'] }, // not in the image, hinted: only in the SBOM, matched
      { name: 'left-pad-internal', version: '1.0.0' }, // nothing tells
      { name: 'commons-text', version: '1.9', ecosystems: ['maven'] }, // Maven without a group
      { name: 'six', version: '1.16.0', ecosystems: ['deb', 'pypi'] }, // two hints, nothing fits
      { name: 'mystery' }, // no version
    ];
    const sbom = { id: 'sha256:r', repository: 'p/a', subject: 'sha256:s', format: 'spdx' as const, createdAt: 0, packages: components };
    const { packages, comparisons } = mergeBuilderSboms(scanned, [sbom]);
    const c = comparisons[0]!;
    assert.equal(c.resolvedByName, 6);
    assert.deepEqual(c.unmatched, [
      { name: 'commons-text', version: '1.9', reason: 'incomplete' },
      { name: 'left-pad-internal', version: '1.0.0', reason: 'no-ecosystem' },
      { name: 'mystery', reason: 'no-version' },
      { name: 'six', version: '1.16.0', reason: 'ambiguous', candidates: ['deb', 'pypi'] },
      { name: 'tar', version: '6.1.0', reason: 'ambiguous', candidates: ['pkg:deb/ubuntu/tar', 'pkg:npm/tar'] },
    ]);
    assert.equal(c.unmatchedCount, 5);
    assert.deepEqual(c.onlyInSbom, ['pkg:npm/body-parser']);
    assert.deepEqual(c.versionDiffers, [
      { package: 'pkg:deb/ubuntu/zlib1g', sbom: ['1:1.2.11.dfsg-0ubuntu1'], inventory: ['1:1.2.11.dfsg-0ubuntu2'] },
      { package: 'pkg:npm/tar', sbom: ['6.2.0'], inventory: ['6.1.0'] },
    ]);
    // Only the deb tar is missing from the SBOM (the ambiguous component counts for neither).
    assert.deepEqual(c.onlyInInventory, ['pkg:deb/ubuntu/tar']);
    assert.deepEqual(
      packages.slice(scanned.length).map((p) => `${p.kind}:${p.name}@${p.version}${p.sourceName ? ` (${p.sourceName})` : ''}`),
      ['dpkg:zlib1g@1:1.2.11.dfsg-0ubuntu1 (zlib)', 'npm:tar@6.2.0', 'npm:body-parser@1.20.2'],
    );
    assert.equal(c.matched, 3);
  });
});

describe('builder SBOMs in reports', { skip: fixturesSkip() }, () => {
  const fixtures = requireScannerFixtures() ?? '';
  let osv: string;
  before(async () => {
    osv = await osvSubset(fixtures, ['Ubuntu', 'npm']);
  });
  after(async () => {
    await rm(osv, { recursive: true, force: true });
  });

  async function pushArtifact(h: ScannerHarness, repository: string, artifactType: string, layerType: string, body: Buffer, subject: { mediaType: string; digest: string; size: number }, annotations?: Record<string, string>): Promise<string> {
    const empty = Buffer.from('{}');
    for (const b of [body, empty]) await h.request('POST', `/v2/${repository}/blobs/uploads/?digest=${sha256(b)}`, { body: b, headers: { 'content-type': 'application/octet-stream' } });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
        layers: [{ mediaType: layerType, digest: sha256(body), size: body.length }],
        subject,
        ...(annotations ? { annotations } : {}),
      }),
    );
    const res = await h.request('PUT', `/v2/${repository}/manifests/${sha256(manifest)}`, { body: manifest, headers: { 'content-type': MEDIA.ociManifest } });
    assert.equal(res.status, 201, res.body.toString());
    return sha256(manifest);
  }

  const reportOf = async (h: ScannerHarness, repository: string, digest: string) => (await h.request('GET', `/api/v1/repositories/${repository}/scans/${digest}`)).json();

  test('arriving after the scan: compared, extra packages matched (fromSbom), removed again with the referrer; our own SBOMs are not builder SBOMs', async () => {
    const h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osv);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/app', 'v1', image);
      const digest = image.manifest.descriptor.digest;
      const scanned = await waitForScan(h, 'team/app', digest);
      // Our SBOM referrers are attached; they must not count as builder SBOMs.
      await waitFor('own SBOM referrers', async () => ((await h.request('GET', `/v2/team/app/referrers/${digest}`)).json().manifests.length === 2 ? true : undefined));
      assert.deepEqual((await reportOf(h, 'team/app', digest)).builderSboms, []);

      // The builder's SBOM: our own CycloneDX as a base (real purls), one package dropped, one version changed, an npm package added.
      const ours = JSON.parse((await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}/sbom?format=cyclonedx`)).body.toString());
      const components = ours.components.filter((c: any) => c.purl?.startsWith('pkg:deb/'));
      const dropped = components.shift();
      const changed = components[0];
      changed.purl = changed.purl.replace(/@[^?]+/, '@0.0.1-fake');
      components.push({ type: 'library', name: 'body-parser', version: '1.20.2', purl: 'pkg:npm/body-parser@1.20.2' });
      const referrer = await pushArtifact(h, 'team/app', 'application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+json', json(cdx(components)), image.manifest.descriptor);

      const report = await waitFor('the builder SBOM merged', async () => {
        const r = await reportOf(h, 'team/app', digest);
        return r.builderSboms.length === 1 ? r : undefined;
      });
      const c = report.builderSboms[0];
      assert.equal(c.referrer, referrer);
      assert.equal(c.format, 'cyclonedx');
      assert.equal(c.tool, 'syft 1.4.1');
      assert.deepEqual(c.onlyInSbom, ['pkg:npm/body-parser']);
      assert.ok(c.onlyInInventory.includes(dropped.purl.replace(/@.*$/, '')), 'the dropped package is only in the inventory');
      assert.equal(c.versionDiffers.length, 1);
      assert.deepEqual(c.versionDiffers[0].sbom, ['0.0.1-fake']);
      const fromSbom = report.findings.find((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7');
      assert.ok(fromSbom, 'the npm package only the SBOM lists is matched');
      assert.equal(fromSbom.package.fromSbom, true);
      assert.equal(fromSbom.package.purl, 'pkg:npm/body-parser@1.20.2');
      assert.equal(fromSbom.layer, undefined);
      assert.ok(!scanned.findings.some((f: any) => f.package.fromSbom));
      const { table } = await import('../../src/registry/scanner/report.ts');
      const text = table(report);
      assert.match(text, /BUILDER SBOMS\n {2}sha256:[a-f0-9]{64} \(cyclonedx, syft 1\.4\.1\): \d+ packages; only in the SBOM 1, only found by the scan 1, other version 1; \d+ matched from the SBOM/);
      assert.match(text, /GHSA-qwcr-r2fm-qrc7\s+body-parser\s+1\.20\.2\s+1\.20\.3\s+sbom/);
      assert.ok(report.summary.total > scanned.summary.total);
      // The inventory's own findings stay; the scan time does not move.
      for (const f of scanned.findings) assert.ok(report.findings.some((g: any) => g.id === f.id && g.package.name === f.package.name), `${f.id} kept`);
      assert.equal(report.scannedAt, scanned.scannedAt);
      // Our SBOM still describes only what the scan found.
      const oursAfter = JSON.parse((await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}/sbom?format=cyclonedx`)).body.toString());
      assert.ok(!oursAfter.components.some((x: any) => x.purl === 'pkg:npm/body-parser@1.20.2'));

      // A junk "SBOM" and a provenance statement change nothing.
      await pushArtifact(h, 'team/app', 'application/spdx+json', 'application/spdx+json', Buffer.from('{"not":"an sbom"'), image.manifest.descriptor);
      await pushArtifact(h, 'team/app', 'application/vnd.in-toto+json', 'application/vnd.in-toto+json', json(statement('https://slsa.dev/provenance/v0.2', { builder: {} })), image.manifest.descriptor);
      // An SBOM carrying our annotation (e.g. copied from another Portcullis) is ours, not the builder's.
      await pushArtifact(h, 'team/app', 'application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+json', json(cdx([{ name: 'x', purl: 'pkg:npm/express@4.0.0' }])), image.manifest.descriptor, { 'dev.portcullis.scanner.version': '1' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const still = await reportOf(h, 'team/app', digest);
      assert.equal(still.builderSboms.length, 1);
      assert.ok(!still.findings.some((f: any) => f.package.name === 'express'));

      // Deleting the referrer takes its packages and findings away.
      assert.equal((await h.request('DELETE', `/v2/team/app/manifests/${referrer}`)).status, 202);
      const gone = await waitFor('the builder SBOM forgotten', async () => {
        const r = await reportOf(h, 'team/app', digest);
        return r.builderSboms.length === 0 ? r : undefined;
      });
      assert.ok(!gone.findings.some((f: any) => f.package.fromSbom));
      assert.equal(gone.summary.total, scanned.summary.total);
    } finally {
      await h.close();
    }
  });

  test('as BuildKit attaches it (an attestation manifest in the index), and pushed before the image: merged at scan time; the attestation is not scanned as an image', async () => {
    const h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osv);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      const { index, attestation } = buildkitIndex(image, ['pkg:npm/body-parser@1.20.2', 'pkg:deb/ubuntu/zlib1g@1:1.2.11.dfsg-0ubuntu2?arch=amd64&upstream=zlib&distro=ubuntu-18.04']);
      for (const blob of [image.config, ...image.layers, ...attestation.blobs]) await h.request('POST', `/v2/team/bk/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes, headers: { 'content-type': 'application/octet-stream' } });
      await h.request('PUT', `/v2/team/bk/manifests/${image.manifest.descriptor.digest}`, { body: image.manifest.bytes, headers: { 'content-type': MEDIA.ociManifest } });
      await h.request('PUT', `/v2/team/bk/manifests/${attestation.digest}`, { body: attestation.bytes, headers: { 'content-type': MEDIA.ociManifest } });
      assert.equal((await h.request('PUT', '/v2/team/bk/manifests/v1', { body: index, headers: { 'content-type': MEDIA.ociIndex } })).status, 201);
      const report = await waitFor('scan with the builder SBOM', async () => {
        const r = await reportOf(h, 'team/bk', image.manifest.descriptor.digest);
        return r.status === 'complete' && r.builderSboms?.length === 1 ? r : undefined;
      });
      assert.equal(report.builderSboms[0].format, 'spdx');
      assert.equal(report.builderSboms[0].tool, 'buildkit-v0.13.2');
      assert.deepEqual(report.builderSboms[0].onlyInSbom, ['pkg:npm/body-parser']);
      assert.ok(report.findings.some((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7' && f.package.fromSbom));
      assert.equal((await h.request('GET', `/api/v1/repositories/team/bk/scans/${attestation.digest}`)).status, 404, 'the attestation manifest is not an image to scan');

      // A referrer pushed before its subject (OCI 1.1 allows it): the first completed report has it.
      const later = buildImage({ layers: [await ubuntuBaseLayer(fixtures), [{ path: 'app/README', content: Buffer.from('later') }]] });
      for (const blob of [later.config, ...later.layers]) await h.request('POST', `/v2/team/early/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes, headers: { 'content-type': 'application/octet-stream' } });
      await pushArtifact(h, 'team/early', 'application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+json', json(cdx([{ name: 'body-parser', purl: 'pkg:npm/body-parser@1.20.2' }])), later.manifest.descriptor);
      await h.request('PUT', '/v2/team/early/manifests/v1', { body: later.manifest.bytes, headers: { 'content-type': MEDIA.ociManifest } });
      const first = await waitForScan(h, 'team/early', later.manifest.descriptor.digest);
      assert.equal(first.builderSboms.length, 1);
      assert.ok(first.findings.some((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7' && f.package.fromSbom));
    } finally {
      await h.close();
    }
  });

  test('skopeo copies a BuildKit-style index (image + SBOM attestation) into a registry process; the report shows the comparison', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const work = await mkdtemp(join(tmpdir(), 'portcullis-bksbom-'));
    const registry = await startRegistry({ env: { PORTCULLIS_SCANNER_POLL_INTERVAL_MS: '100' } });
    const clients = await createClientEnvironment(new URL(registry.url).host);
    try {
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      const { index, attestation } = buildkitIndex(image, ['pkg:npm/body-parser@1.20.2']);
      await writeOciLayout(join(work, 'layout'), { v1: { kind: 'index', images: [image], manifest: { bytes: index, descriptor: { mediaType: MEDIA.ociIndex, digest: sha256(index), size: index.length } } } });
      for (const blob of [...attestation.blobs.map((b) => b.bytes), attestation.bytes]) await writeFile(join(work, 'layout', 'blobs', 'sha256', sha256(blob).slice(7)), blob);
      const host = new URL(registry.url).host;
      await run('skopeo', [...clients.skopeo, 'copy', '--all', '--dest-tls-verify=false', `oci:${join(work, 'layout')}:v1`, `docker://${host}/team/bk:v1`], { env: clients.env });
      const report = await waitFor(
        'the scan',
        async () => {
          const r = await fetch(`${registry.url}/api/v1/repositories/team/bk/scans/${image.manifest.descriptor.digest}`);
          if (r.status !== 200) return undefined;
          const body = (await r.json()) as any;
          return body.status === 'complete' && body.builderSboms.length === 1 ? body : undefined;
        },
        60_000,
      );
      assert.deepEqual(report.builderSboms[0].onlyInSbom, ['pkg:npm/body-parser']);
      assert.equal((await fetch(`${registry.url}/api/v1/repositories/team/bk/scans/${attestation.digest}`)).status, 404);
    } finally {
      await clients.cleanup();
      await registry.stop();
      await rm(registry.dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  });
});

interface Attestation {
  digest: string;
  bytes: Buffer;
  blobs: Array<{ bytes: Buffer; descriptor: { mediaType: string; digest: string; size: number } }>;
}

/** An image index as BuildKit writes one with `--attest type=sbom`: the image and an attestation manifest of in-toto layers (SPDX SBOM and provenance). */
function buildkitIndex(image: BuiltImage, purls: string[]): { index: Buffer; attestation: Attestation } {
  const sbom = json(statement('https://spdx.dev/Document', spdxDoc(purls)));
  const provenance = json(statement('https://slsa.dev/provenance/v0.2', { builder: { id: 'buildkit' } }));
  const config = json({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(sbom), sha256(provenance)] } });
  const blobs = [
    { bytes: config, descriptor: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length } },
    { bytes: sbom, descriptor: { mediaType: 'application/vnd.in-toto+json', digest: sha256(sbom), size: sbom.length } },
    { bytes: provenance, descriptor: { mediaType: 'application/vnd.in-toto+json', digest: sha256(provenance), size: provenance.length } },
  ];
  const bytes = json({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: blobs[0]!.descriptor,
    layers: [
      { ...blobs[1]!.descriptor, annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' } },
      { ...blobs[2]!.descriptor, annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } },
    ],
  });
  const attestation = { digest: sha256(bytes), bytes, blobs };
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [
      { ...image.manifest.descriptor, platform: image.platform },
      {
        mediaType: MEDIA.ociManifest,
        digest: attestation.digest,
        size: bytes.length,
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.digest': image.manifest.descriptor.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
      },
    ],
  });
  return { index, attestation };
}
