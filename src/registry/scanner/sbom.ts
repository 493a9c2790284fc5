/**
 * SBOMs of a scanned image, from its stored inventory: CycloneDX 1.6 JSON and SPDX 2.3 JSON.
 *
 * Both are deterministic for an inventory (serial number, namespace and timestamps derive from the
 * image digest and the scan time), so the copy attached to the image as an OCI referrer and the
 * one downloaded later are byte-identical, and re-attaching never creates a second referrer.
 *
 * Licences: a licence string that is a known SPDX identifier (or an expression of them) is written
 * as such; anything else is kept verbatim as a named licence (CycloneDX `license.name`, SPDX
 * `LicenseRef-` with the text in `hasExtractedLicensingInfos`) rather than guessed.
 */
import { createHash } from 'node:crypto';
import type { InventoryPackage, OperatingSystem } from './model.ts';

export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';
export const SPDX_MEDIA_TYPE = 'application/spdx+json';
export type SbomFormat = 'cyclonedx' | 'spdx';

export interface SbomSubject {
  /** Repository or local reference of the image (used as its name). */
  name: string;
  /** Manifest digest. */
  digest: string;
  /** When the scan that produced the inventory completed (ISO 8601). */
  scannedAt: string;
  os?: OperatingSystem | undefined;
  /** Registry host for the image's purl `repository_url`, when known. */
  registryHost?: string | undefined;
  toolVersion: string;
}

export interface SbomLayer {
  digest: string;
  diffId: string;
}

/** A deterministic RFC 4122-shaped UUID (name-based, SHA-256) of `parts`. */
export function stableUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Common SPDX licence identifiers (https://spdx.org/licenses/); others are kept as named licences. */
const SPDX_IDS = new Set(
  (
    '0BSD AFL-2.1 AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-1.0 Artistic-1.0-Perl Artistic-2.0 BSD-1-Clause BSD-2-Clause ' +
    'BSD-3-Clause BSD-4-Clause BSL-1.0 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-3.0 CC-BY-SA-4.0 CC0-1.0 CDDL-1.0 CDDL-1.1 CPL-1.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 ' +
    'FTL GFDL-1.2-only GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only ' +
    'GPL-3.0-or-later GPL-2.0 GPL-2.0+ GPL-3.0 GPL-3.0+ LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later ' +
    'LGPL-2.0 LGPL-2.0+ LGPL-2.1 LGPL-2.1+ LGPL-3.0 LGPL-3.0+ ISC MIT MIT-0 MPL-1.1 MPL-2.0 MS-PL MS-RL NCSA OFL-1.1 OpenSSL PHP-3.0 PHP-3.01 PostgreSQL ' +
    'Python-2.0 PSF-2.0 Ruby Unicode-DFS-2016 Unicode-3.0 Unlicense UPL-1.0 Vim W3C X11 Zlib zlib-acknowledgement ZPL-2.1 bzip2-1.0.6 curl libtiff ' +
    'BSD-2-Clause-Patent BlueOak-1.0.0 WTFPL Beerware HPND Sleepycat GPL-2.0-with-classpath-exception LGPL-2.1-or-later MirOS'
  ).split(' '),
);

const TOKEN = /\(|\)|[^\s()]+/g;

/** True when `s` is an SPDX licence expression made only of known identifiers. */
export function isSpdxExpression(s: string): boolean {
  const tokens = s.match(TOKEN) ?? [];
  if (tokens.length === 0) return false;
  let expectOperand = true;
  let depth = 0;
  for (const t of tokens) {
    if (t === '(') {
      if (!expectOperand) return false;
      depth++;
    } else if (t === ')') {
      if (expectOperand || --depth < 0) return false;
    } else if (/^(AND|OR|WITH)$/.test(t)) {
      if (expectOperand) return false;
      expectOperand = true;
    } else {
      if (!expectOperand || !(SPDX_IDS.has(t) || /^[A-Za-z0-9.-]+-exception$/.test(t))) return false;
      expectOperand = false;
    }
  }
  return !expectOperand && depth === 0;
}

function isSingleId(s: string): boolean {
  return SPDX_IDS.has(s);
}

function packageRefs(packages: readonly InventoryPackage[]): string[] {
  const seen = new Map<string, number>();
  for (const p of packages) seen.set(p.purl, (seen.get(p.purl) ?? 0) + 1);
  return packages.map((p, i) => ((seen.get(p.purl) ?? 0) > 1 || p.purl === '' ? `${p.purl || `pkg:generic/${encodeURIComponent(p.name)}`}#${i}` : p.purl));
}

function imagePurl(subject: SbomSubject): string {
  const last = subject.name.split('/').pop()!.toLowerCase();
  const q = subject.registryHost ? `?repository_url=${encodeURIComponent(`${subject.registryHost}/${subject.name}`)}` : '';
  return `pkg:oci/${encodeURIComponent(last)}@${encodeURIComponent(subject.digest)}${q}`;
}

function layerOf(p: InventoryPackage, layers: readonly SbomLayer[]): number | undefined {
  const i = layers.findIndex((l) => (p.layerDiffId !== undefined && l.diffId === p.layerDiffId) || (p.layerDigest !== undefined && l.digest === p.layerDigest));
  return i < 0 ? undefined : i;
}

/** CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/). */
export function cycloneDx(subject: SbomSubject, packages: readonly InventoryPackage[], layers: readonly SbomLayer[]): Record<string, unknown> {
  const refs = packageRefs(packages);
  const components: Record<string, unknown>[] = [];
  if (subject.os) {
    components.push({
      type: 'operating-system',
      'bom-ref': 'os',
      name: subject.os.id,
      ...(subject.os.versionId ? { version: subject.os.versionId } : {}),
      ...(subject.os.prettyName ? { description: subject.os.prettyName } : {}),
    });
  }
  packages.forEach((p, i) => {
    const properties: Array<{ name: string; value: string }> = [
      { name: 'portcullis:package:type', value: p.kind },
      { name: 'portcullis:package:path', value: p.path },
    ];
    if (p.sourceName) properties.push({ name: 'portcullis:package:source-name', value: p.sourceName });
    if (p.sourceVersion) properties.push({ name: 'portcullis:package:source-version', value: p.sourceVersion });
    if (p.arch) properties.push({ name: 'portcullis:package:arch', value: p.arch });
    if (p.layerDigest) properties.push({ name: 'portcullis:layer:digest', value: p.layerDigest });
    if (p.layerDiffId) properties.push({ name: 'portcullis:layer:diffID', value: p.layerDiffId });
    const layer = layerOf(p, layers);
    if (layer !== undefined) properties.push({ name: 'portcullis:layer:index', value: String(layer) });
    const licenses = (p.licenses ?? []).filter((l) => l.trim().length > 0);
    const licenseEntries =
      licenses.length === 1 && !isSingleId(licenses[0]!) && isSpdxExpression(licenses[0]!)
        ? [{ expression: licenses[0] }]
        : licenses.map((l) => (isSingleId(l) ? { license: { id: l } } : { license: { name: l.slice(0, 1000) } }));
    components.push({
      type: 'library',
      'bom-ref': refs[i],
      name: p.name,
      version: p.version,
      ...(p.purl ? { purl: p.purl } : {}),
      ...(licenseEntries.length > 0 ? { licenses: licenseEntries } : {}),
      properties,
    });
  });
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${stableUuid('cyclonedx', subject.digest, subject.scannedAt, subject.toolVersion)}`,
    version: 1,
    metadata: {
      timestamp: subject.scannedAt,
      tools: { components: [{ type: 'application', author: 'Portcullis', name: 'portcullis', version: subject.toolVersion }] },
      component: {
        type: 'container',
        'bom-ref': 'image',
        name: subject.name,
        version: subject.digest,
        purl: imagePurl(subject),
        properties: layers.map((l, i) => ({ name: `portcullis:layer:${i}`, value: `${l.digest} ${l.diffId}` })),
      },
    },
    components,
    dependencies: [{ ref: 'image', dependsOn: [...(subject.os ? ['os'] : []), ...refs] }],
  };
}

function spdxTime(iso: string): string {
  return new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function spdxText(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100) || 'unknown';
}

/** SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/). */
export function spdx(subject: SbomSubject, packages: readonly InventoryPackage[], layers: readonly SbomLayer[]): Record<string, unknown> {
  const extracted = new Map<string, string>();
  const licenseOf = (p: InventoryPackage): string => {
    const licenses = (p.licenses ?? []).filter((l) => l.trim().length > 0);
    if (licenses.length === 0) return 'NOASSERTION';
    const parts = licenses.map((l) => {
      if (isSpdxExpression(l)) return licenses.length > 1 && /\s/.test(l) ? `(${l})` : l;
      const ref = `LicenseRef-${spdxText(l)}`;
      extracted.set(ref, l);
      return ref;
    });
    return parts.join(' AND ');
  };
  const imageId = 'SPDXRef-Image';
  const spdxPackages: Record<string, unknown>[] = [
    {
      name: subject.name,
      SPDXID: imageId,
      versionInfo: subject.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
      primaryPackagePurpose: 'CONTAINER',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(subject) }],
    },
  ];
  const relationships: Record<string, unknown>[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId }];
  if (subject.os) {
    spdxPackages.push({
      name: subject.os.id,
      SPDXID: 'SPDXRef-OperatingSystem',
      versionInfo: subject.os.versionId ?? 'NOASSERTION',
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
      primaryPackagePurpose: 'OPERATING-SYSTEM',
    });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-OperatingSystem' });
  }
  packages.forEach((p, i) => {
    const id = `SPDXRef-Package-${spdxText(p.kind)}-${i}`;
    const layer = layerOf(p, layers);
    spdxPackages.push({
      name: p.name,
      SPDXID: id,
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: licenseOf(p),
      copyrightText: 'NOASSERTION',
      primaryPackagePurpose: 'LIBRARY',
      sourceInfo: `${p.kind} package recorded in ${p.path}${p.layerDiffId ? ` (layer ${layer ?? '?'}, diff ID ${p.layerDiffId})` : ''}`,
      ...(p.purl ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }] } : {}),
    });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  });
  const uuid = stableUuid('spdx', subject.digest, subject.scannedAt, subject.toolVersion);
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${subject.name}@${subject.digest}`,
    documentNamespace: `https://portcullis.dev/spdxdocs/${spdxText(subject.name)}-${subject.digest.replace(':', '-')}-${uuid}`,
    creationInfo: { created: spdxTime(subject.scannedAt), creators: [`Tool: portcullis-${subject.toolVersion}`, 'Organization: Portcullis'] },
    packages: spdxPackages,
    relationships,
    ...(extracted.size > 0
      ? { hasExtractedLicensingInfos: [...extracted].map(([licenseId, text]) => ({ licenseId, extractedText: text.slice(0, 10_000), name: text.slice(0, 200) })) }
      : {}),
  };
}

/** Serialised SBOM bytes (two-space JSON, trailing newline). */
export function sbomBytes(format: SbomFormat, subject: SbomSubject, packages: readonly InventoryPackage[], layers: readonly SbomLayer[]): Buffer {
  const doc = format === 'cyclonedx' ? cycloneDx(subject, packages, layers) : spdx(subject, packages, layers);
  return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
}

export function sbomMediaType(format: SbomFormat): string {
  return format === 'cyclonedx' ? CYCLONEDX_MEDIA_TYPE : SPDX_MEDIA_TYPE;
}
