/**
 * OpenVEX: parsing and validation, which statement decides, and documents applied to reports —
 * uploaded for a project through the API, or attached to an image as a referrer.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { parseOpenVex, vexVerdict, VexError } from '../../src/registry/scanner/vex.ts';
import { buildImage, MEDIA, sha256 } from '../acceptance/helpers/oci.ts';
import { osvSubset, startScannerRegistry, ubuntuBaseLayer, waitFor, waitForScan } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const doc = (statements: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ '@context': 'https://openvex.dev/ns/v0.2.0', '@id': 'https://vex.example/doc-1', author: 'Example Security', timestamp: '2024-05-01T00:00:00Z', version: 1, statements, ...extra });

describe('OpenVEX documents', () => {
  test('invalid documents are refused with a reason', () => {
    assert.throws(() => parseOpenVex('{'), VexError);
    assert.throws(() => parseOpenVex(JSON.stringify({ '@context': 'https://example.com', '@id': 'x', author: 'a', timestamp: '2024-01-01T00:00:00Z', statements: [] })), /@context/);
    assert.throws(() => parseOpenVex(doc([{ vulnerability: { name: 'CVE-2024-1' }, products: [{ '@id': 'pkg:npm/a' }], status: 'not_affected' }])), /justification/);
    assert.throws(() => parseOpenVex(doc([{ vulnerability: { name: 'CVE-2024-1' }, status: 'maybe' }])), /status/);
  });

  const finding = { id: 'GHSA-xxxx', aliases: ['CVE-2024-1'], cves: ['CVE-2024-1'] };
  const pkg = { purl: 'pkg:npm/express@4.16.4' };
  const image = `sha256:${'b'.repeat(64)}`;

  test('statements match by vulnerability alias and product purl (with or without version), or by image and subcomponent', () => {
    const byPackage = parseOpenVex(doc([{ vulnerability: { name: 'CVE-2024-1' }, products: [{ '@id': 'pkg:npm/express' }], status: 'not_affected', justification: 'vulnerable_code_not_in_execute_path' }]));
    assert.equal(vexVerdict([{ id: 'd', document: byPackage }], finding, pkg, image)?.justification, 'vulnerable_code_not_in_execute_path');
    assert.equal(vexVerdict([{ id: 'd', document: byPackage }], finding, { purl: 'pkg:npm/other@1.0.0' }, image), undefined);
    const otherVersion = parseOpenVex(doc([{ vulnerability: { name: 'CVE-2024-1' }, products: [{ '@id': 'pkg:npm/express@4.17.0' }], status: 'fixed' }]));
    assert.equal(vexVerdict([{ id: 'd', document: otherVersion }], finding, pkg, image), undefined, 'a versioned purl names that version only');
    const byImage = parseOpenVex(
      doc([{ vulnerability: { '@id': 'https://nvd.example/CVE-2024-1', name: 'CVE-2024-1' }, products: [{ '@id': `pkg:oci/app@${encodeURIComponent(image)}`, subcomponents: [{ '@id': 'pkg:npm/express' }] }], status: 'not_affected', impact_statement: 'not reachable' }]),
    );
    assert.equal(vexVerdict([{ id: 'd', document: byImage }], finding, pkg, image)?.impactStatement, 'not reachable');
    assert.equal(vexVerdict([{ id: 'd', document: byImage }], finding, pkg, `sha256:${'c'.repeat(64)}`), undefined, 'another image');
    // Attached to an image without naming it: applies to that image only.
    const attached = parseOpenVex(doc([{ vulnerability: { name: 'GHSA-xxxx' }, status: 'not_affected', justification: 'component_not_present' }]));
    assert.ok(vexVerdict([{ id: 'd', document: attached, subject: image }], finding, pkg, image));
    assert.equal(vexVerdict([{ id: 'd', document: attached, subject: `sha256:${'c'.repeat(64)}` }], finding, pkg, image), undefined);
  });

  test('the latest statement decides: affected after not_affected is not suppressed', () => {
    const d = parseOpenVex(
      doc([
        { vulnerability: { name: 'CVE-2024-1' }, products: [{ '@id': 'pkg:npm/express' }], status: 'not_affected', justification: 'inline_mitigations_already_exist', timestamp: '2024-05-01T00:00:00Z' },
        { vulnerability: { name: 'CVE-2024-1' }, products: [{ '@id': 'pkg:npm/express' }], status: 'affected', action_statement: 'upgrade', timestamp: '2024-06-01T00:00:00Z' },
      ]),
    );
    assert.equal(vexVerdict([{ id: 'd', document: d }], finding, pkg, image), undefined);
  });
});

describe('OpenVEX in reports', { skip: fixturesSkip() }, () => {
  const fixtures = requireScannerFixtures() ?? '';
  let osv: string;
  before(async () => {
    osv = await osvSubset(fixtures, ['Ubuntu']);
  });
  after(async () => {
    await rm(osv, { recursive: true, force: true });
  });

  test('uploaded for a project, and attached to the image as a referrer', async () => {
    const h = await startScannerRegistry();
    try {
      await h.registry.scanner!.importVulnData(osv);
      const image = buildImage({ layers: [await ubuntuBaseLayer(fixtures)] });
      await h.push('team/app', 'v1', image);
      const digest = image.manifest.descriptor.digest;
      const base = await waitForScan(h, 'team/app', digest);
      assert.ok(base.findings.some((f: any) => f.id === 'USN-5355-1') && base.findings.some((f: any) => f.id === 'USN-5378-1'));

      const upload = doc([{ vulnerability: { name: 'USN-5355-1' }, products: [{ '@id': 'pkg:deb/ubuntu/zlib1g' }], status: 'not_affected', justification: 'vulnerable_code_cannot_be_controlled_by_adversary' }]);
      const res = await h.request('POST', '/api/v1/vex?project=team', { body: upload, headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 201, res.body.toString());
      assert.equal((await h.request('POST', '/api/v1/vex?project=team', { body: '{"@context":"nope"}', headers: { 'content-type': 'application/json' } })).status, 400);
      let report = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
      const zlib = report.exempted.find((f: any) => f.id === 'USN-5355-1');
      assert.equal(zlib?.vex.status, 'not_affected');
      assert.equal(zlib?.vex.justification, 'vulnerable_code_cannot_be_controlled_by_adversary');
      assert.equal(zlib?.vex.document, 'https://vex.example/doc-1');
      assert.ok(!report.findings.some((f: any) => f.id === 'USN-5355-1'));

      // Attached: an OCI 1.1 artifact whose subject is the image.
      const vexBytes = Buffer.from(doc([{ vulnerability: { name: 'USN-5378-1' }, products: [{ '@id': `pkg:oci/app@${digest}`, subcomponents: [{ '@id': 'pkg:deb/ubuntu/gzip' }] }], status: 'fixed' }], { '@id': 'https://vex.example/doc-2' }));
      const empty = Buffer.from('{}');
      for (const b of [vexBytes, empty]) await h.request('POST', `/v2/team/app/blobs/uploads/?digest=${sha256(b)}`, { body: b, headers: { 'content-type': 'application/octet-stream' } });
      const artifact = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA.ociManifest,
          artifactType: 'application/vnd.openvex+json',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
          layers: [{ mediaType: 'application/vnd.openvex+json', digest: sha256(vexBytes), size: vexBytes.length }],
          subject: image.manifest.descriptor,
        }),
      );
      assert.equal((await h.request('PUT', `/v2/team/app/manifests/${sha256(artifact)}`, { body: artifact, headers: { 'content-type': MEDIA.ociManifest } })).status, 201);
      report = await waitFor('the attached statement applied', async () => {
        const r = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
        return r.exempted.some((f: any) => f.id === 'USN-5378-1') ? r : undefined;
      });
      assert.equal(report.exempted.find((f: any) => f.id === 'USN-5378-1').vex.status, 'fixed');
      assert.equal(report.summary.exempted, 2);
      const listed = (await h.request('GET', '/api/v1/vex?project=team')).json().documents;
      assert.deepEqual(listed.map((d: any) => d.source).sort(), ['referrer', 'upload']);

      // Removing the referrer removes its effect; deleting the upload too.
      assert.equal((await h.request('DELETE', `/v2/team/app/manifests/${sha256(artifact)}`)).status, 202);
      await waitFor('the referrer forgotten', async () => ((await h.request('GET', '/api/v1/vex?project=team')).json().documents.length === 1 ? true : undefined));
      const uploaded = listed.find((d: any) => d.source === 'upload');
      assert.equal((await h.request('DELETE', `/api/v1/vex/${uploaded.id}`)).status, 204);
      report = (await h.request('GET', `/api/v1/repositories/team/app/scans/${digest}`)).json();
      assert.equal(report.summary.exempted, 0);
    } finally {
      await h.close();
    }
  });
});
