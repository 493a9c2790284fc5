/**
 * `cosign attach sbom` as the registry sees it, over HTTP against a `portcullis serve` process: an
 * OCI image manifest (image config media type, one SBOM layer) tagged `sha256-<hex>.sbom`, with no
 * `subject` field. The SBOM is ingested like a builder's referrer — before or after the scan —
 * compared with the inventory, its extra packages matched; components without a purl are
 * resolved by name or listed as unmatched with the reason. Re-attaching (the tag moves) replaces
 * the SBOM (also by one that cannot be read: XML), deleting the tag detaches it, and the SBOM
 * manifest is never scanned as an image.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { buildImage, hexOf, MEDIA, sha256, type BuiltImage } from '../acceptance/helpers/oci.ts';
import { startRegistry, type RunningRegistry } from '../support/registry-process.ts';
import { SPDX_TAG_VALUE } from './sbom-documents.ts';
import { osvSubset, ubuntuBaseLayer, waitFor } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const fixtures = requireScannerFixtures() ?? '';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** A CycloneDX 1.5 document as syft writes one: components without purls carry syft's package type. */
const cyclonedx = json({
  bomFormat: 'CycloneDX',
  specVersion: '1.5',
  serialNumber: 'urn:uuid:9d8e3c57-52a2-4a4f-9c0c-5d9a1b0e2f11',
  version: 1,
  metadata: { timestamp: '2024-05-01T00:00:00Z', tools: { components: [{ type: 'application', author: 'anchore', name: 'syft', version: '1.4.1' }] }, component: { type: 'container', name: 'team/app', version: 'sha256:5b0f' } },
  components: [
    { type: 'operating-system', name: 'ubuntu', version: '18.04' },
    // Other version than the scan found (purl-less, a deb by syft's type): compared and matched.
    { 'bom-ref': 'zlib', type: 'library', name: 'zlib1g', version: '1:1.2.11.dfsg-0ubuntu1', properties: [{ name: 'syft:package:type', value: 'deb' }] },
    // Not in the image, an npm package by its type: only in the SBOM, matched (GHSA-qwcr-r2fm-qrc7).
    { 'bom-ref': 'bp', type: 'library', name: 'body-parser', version: '1.20.2', properties: [{ name: 'syft:package:type', value: 'npm' }, { name: 'syft:package:language', value: 'javascript' }] },
    // The image has a deb `tar` and an npm `tar`: no hint, so ambiguous.
    { 'bom-ref': 'tar', type: 'library', name: 'tar', version: '6.1.0' },
    // Nothing tells its ecosystem.
    { 'bom-ref': 'lp', type: 'library', name: 'left-pad-internal', version: '1.0.0' },
  ],
});

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) env[k] = v;
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, ...args], { env, timeout: 120_000 }, (error, _stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, stderr });
    }),
  );
}

describe('cosign attach sbom (tag sha256-<hex>.sbom) through a registry process', { skip: fixturesSkip() }, () => {
  let registry: RunningRegistry;
  let osv: string;

  before(async () => {
    osv = await osvSubset(fixtures, ['Ubuntu', 'npm']);
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-cosign-sbom-'));
    const imported = await cli(['vulndb', 'import', osv, '--data-dir', dataDir]);
    assert.equal(imported.code, 0, imported.stderr);
    registry = await startRegistry({ dataDir, env: { PORTCULLIS_SCANNER_POLL_INTERVAL_MS: '100', PORTCULLIS_LOG_LEVEL: 'warn', PORTCULLIS_AUDIT_ENABLED: 'false' } });
  });
  after(async () => {
    await registry?.stop();
    if (registry) await rm(registry.dataDir, { recursive: true, force: true });
    await rm(osv, { recursive: true, force: true });
  });

  const http = (method: string, path: string, body?: Buffer, contentType?: string) =>
    fetch(`${registry.url}${path}`, { method, ...(body ? { body } : {}), headers: contentType ? { 'content-type': contentType } : {} });

  async function upload(repository: string, bytes: Buffer): Promise<void> {
    const res = await http('POST', `/v2/${repository}/blobs/uploads/?digest=${sha256(bytes)}`, bytes, 'application/octet-stream');
    assert.equal(res.status, 201, await res.text());
  }

  async function putManifest(repository: string, reference: string, bytes: Buffer): Promise<void> {
    const res = await http('PUT', `/v2/${repository}/manifests/${reference}`, bytes, MEDIA.ociManifest);
    assert.equal(res.status, 201, await res.text());
  }

  async function pushImageBlobs(repository: string, image: BuiltImage): Promise<void> {
    for (const blob of [image.config, ...image.layers]) await upload(repository, blob.bytes);
  }

  /** What `cosign attach sbom --type <...>` pushes: an image config describing one layer, the SBOM as that layer, the manifest under the `.sbom` tag. */
  async function attachSbom(repository: string, subject: string, layerType: string, sbom: Buffer): Promise<string> {
    const config = json({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [sha256(sbom)] }, config: {} });
    await upload(repository, config);
    await upload(repository, sbom);
    const manifest = json({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: layerType, size: sbom.length, digest: sha256(sbom) }],
    });
    await putManifest(repository, `sha256-${hexOf(subject)}.sbom`, manifest);
    return sha256(manifest);
  }

  const report = async (repository: string, digest: string, ready: (r: any) => boolean) =>
    waitFor(
      `the report of ${digest}`,
      async () => {
        const res = await http('GET', `/api/v1/repositories/${repository}/scans/${digest}`);
        if (res.status !== 200) return undefined;
        const r = (await res.json()) as any;
        return r.status === 'complete' && ready(r) ? r : undefined;
      },
      60_000,
    );

  // `name` makes each test's image a new digest: a digest scanned by an earlier test has a complete
  // report at once, before a newly attached SBOM is merged.
  const appImage = async (name: string) =>
    buildImage({
      layers: [
        await ubuntuBaseLayer(fixtures),
        [{ path: 'app/node_modules/tar/package.json', content: json({ name: 'tar', version: '6.1.0', license: 'ISC' }) }, { path: 'app/name', content: Buffer.from(name) }],
      ],
    });

  test('attached after the scan (CycloneDX JSON), re-attached (SPDX tag-value moves the tag), detached by deleting the tag', async () => {
    const image = await appImage('after');
    const digest = image.manifest.descriptor.digest;
    await pushImageBlobs('team/app', image);
    await putManifest('team/app', 'v1', image.manifest.bytes);
    const scanned = await report('team/app', digest, () => true);
    assert.deepEqual(scanned.builderSboms, []);

    const first = await attachSbom('team/app', digest, 'application/vnd.cyclonedx+json', cyclonedx);
    const merged = await report('team/app', digest, (r) => r.builderSboms.length === 1);
    const c = merged.builderSboms[0];
    assert.equal(c.referrer, first);
    assert.equal(c.format, 'cyclonedx');
    assert.equal(c.tool, 'syft 1.4.1');
    assert.equal(c.packages, 4, 'the operating system is not a package');
    assert.equal(c.resolvedByName, 2);
    assert.deepEqual(c.unmatched, [
      { name: 'left-pad-internal', version: '1.0.0', reason: 'no-ecosystem' },
      { name: 'tar', version: '6.1.0', reason: 'ambiguous', candidates: ['pkg:deb/ubuntu/tar', 'pkg:npm/tar'] },
    ]);
    assert.deepEqual(c.onlyInSbom, ['pkg:npm/body-parser']);
    assert.deepEqual(c.versionDiffers, [{ package: 'pkg:deb/ubuntu/zlib1g', sbom: ['1:1.2.11.dfsg-0ubuntu1'], inventory: ['1:1.2.11.dfsg-0ubuntu2'] }]);
    assert.equal(c.matched, 2);
    const fromSbom = merged.findings.find((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7');
    assert.ok(fromSbom, 'the npm package only the SBOM lists (no purl, by its syft type) is matched');
    assert.equal(fromSbom.package.fromSbom, true);
    assert.equal(fromSbom.package.purl, 'pkg:npm/body-parser@1.20.2');
    assert.equal(merged.scannedAt, scanned.scannedAt, 'no re-scan');
    assert.equal((await http('GET', `/api/v1/repositories/team/app/scans/${first}`)).status, 404, 'the SBOM manifest is not scanned as an image');

    // `cosign attach sbom` again, SPDX tag-value this time: the tag moves, the first SBOM is no longer attached.
    const second = await attachSbom('team/app', digest, 'text/spdx', Buffer.from(SPDX_TAG_VALUE));
    const replaced = await report('team/app', digest, (r) => r.builderSboms.length === 1 && r.builderSboms[0].referrer === second);
    const s = replaced.builderSboms[0];
    assert.equal(s.format, 'spdx');
    assert.equal(s.tool, 'syft-1.4.1');
    assert.equal(s.packages, 2, 'the described image is not a package');
    assert.equal(s.resolvedByName, 1, 'body-parser, by its npm download location');
    assert.deepEqual(s.unmatched, []);
    assert.deepEqual(s.onlyInSbom, ['pkg:npm/body-parser']);
    assert.deepEqual(s.versionDiffers, [], 'zlib1g by purl, same version as scanned');
    assert.ok(replaced.findings.some((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7' && f.package.fromSbom));

    // `cosign clean --type sbom` deletes the tag: the SBOM is detached, its findings go.
    const deleted = await http('DELETE', `/v2/team/app/manifests/sha256-${hexOf(digest)}.sbom`);
    assert.equal(deleted.status, 202, await deleted.text());
    const detached = await report('team/app', digest, (r) => r.builderSboms.length === 0);
    assert.ok(!detached.findings.some((f: any) => f.package.fromSbom));
    assert.equal(detached.summary.total, scanned.summary.total);

    // Attached again, then replaced by a CycloneDX XML SBOM (not read): the tag no longer names a readable SBOM.
    const third = await attachSbom('team/app', digest, 'application/vnd.cyclonedx+json', cyclonedx);
    await report('team/app', digest, (r) => r.builderSboms.length === 1 && r.builderSboms[0].referrer === third);
    await attachSbom('team/app', digest, 'application/vnd.cyclonedx+xml', Buffer.from('<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.5" version="1"/>'));
    const xml = await report('team/app', digest, (r) => r.builderSboms.length === 0);
    assert.equal(xml.summary.total, scanned.summary.total);
  });

  test('attached before the image manifest is pushed: the first completed report has it', async () => {
    const image = await appImage('early');
    const digest = image.manifest.descriptor.digest;
    await pushImageBlobs('team/early', image);
    const sbom = await attachSbom('team/early', digest, 'application/vnd.cyclonedx+json', cyclonedx);
    await putManifest('team/early', 'v1', image.manifest.bytes);
    const first = await report('team/early', digest, () => true);
    assert.equal(first.builderSboms.length, 1);
    assert.equal(first.builderSboms[0].referrer, sbom);
    assert.equal(first.builderSboms[0].unmatchedCount, 2);
    assert.ok(first.findings.some((f: any) => f.id === 'GHSA-qwcr-r2fm-qrc7' && f.package.fromSbom));
  });
});
