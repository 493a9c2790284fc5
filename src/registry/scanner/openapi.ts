/**
 * OpenAPI descriptions of the scanner's /api/v1 routes (http.ts serves them), for the management
 * API's document; build-app adds them when the scanner is enabled.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { anyObject, array, bool, digest, int, num, object, oneOf, q, str, time } from '../api/json-schema.ts';
import { exemptionInputSchema } from './exemptions.ts';
import { documentSchema } from './vex.ts';
import { CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE } from './sbom.ts';

const tag = 'scanner';
const scanStatus = oneOf('queued', 'running', 'complete', 'failed');
const severityCounts = object({ critical: int, high: int, medium: int, low: int, none: int, unknown: int });
const findingSummary = { total: int, bySeverity: severityCounts, fixable: int, fixableBySeverity: severityCounts, malicious: int };
const summary = object(findingSummary);
const database = object({ maxAgeSeconds: int, stale: bool, reevaluationPending: bool }, { contentHash: str, updatedAt: time, ageSeconds: num, evaluatedAt: time });
const finding = object(
  { id: str, aliases: array(str), cves: array(str), severity: str, severitySource: str, malicious: bool, package: object({ name: str, version: str, kind: str, purl: str, path: str }), ecosystem: str, installedVersion: str, fixedVersions: array(str), fixAvailable: bool },
  { summary: str, score: num, layer: object({ index: int, digest, diffId: str }), exemption: anyObject, vex: anyObject },
);
const report = object(
  {
    repository: str,
    digest,
    status: scanStatus,
    scanner: object({ name: str }, { version: str }),
    database,
    warnings: array(str),
    summary: object({ ...findingSummary, exempted: int, all: summary, packages: int, secrets: int, configFindings: int }),
    layers: array(object({ index: int, digest, diffId: str, packages: int, findings: int })),
    licences: array(str),
    findings: array(finding),
    exempted: array(finding),
    secrets: array(anyObject),
    configFindings: array(anyObject),
    inventoryWarnings: array(anyObject),
    builderSboms: array(anyObject),
  },
  { reason: str, scannedAt: time, os: anyObject },
);
/** An image index: the scan status of each child manifest. */
const indexReport = object({
  repository: str,
  digest,
  mediaType: str,
  manifests: array(object({ digest, status: oneOf('queued', 'running', 'complete', 'failed', 'not-scanned') }, { platform: anyObject, summary: anyObject, reason: str })),
});
const exemption = object(
  { id: str, vulnerability: str, scope: oneOf('project', 'repository', 'digest', 'package'), project: str, owner: str, reason: str, expiresAt: time, createdAt: time },
  { repository: str, digest, package: str, ticket: str, createdBy: str, revokedAt: time, revokedBy: str },
);
const vex = object({ id: str, documentId: str, statements: int, source: oneOf('upload', 'referrer'), project: str, createdAt: time }, { author: str, repository: str, subject: str, createdBy: str });

const scans = '/repositories/{repository}/scans/{reference}';
const params = { repository: 'Repository name; may contain `/` (`project/app`)', reference: 'A digest or a tag' };

export const scannerOpenApi: ApiDescription[] = [
  {
    method: 'GET',
    path: '/vulndb',
    tag,
    summary: 'Vulnerability database status: sources, records, age, stale (any authenticated caller)',
    status: 200,
    response: object({ format: int, sources: array(object({ kind: str, source: str, importedAt: time, records: int, contentHash: str })), records: int, stale: bool, maxAgeSeconds: int, scannerVersion: str, queue: object({ pending: int }) }, { contentHash: str, updatedAt: time, ageSeconds: num }),
  },
  {
    method: 'GET',
    path: '/scanner',
    tag,
    summary: "Scan queue, result counts by status, this process's counters (any authenticated caller)",
    status: 200,
    response: object({ version: str, queue: object({ pending: int, runningHere: int }), results: object({ queued: int, running: int, complete: int, failed: int }), stats: { type: 'object', additionalProperties: int } }),
  },
  { method: 'GET', path: scans, params, tag, summary: 'Scan report of an image, or the status of each child of an index (pull)', status: 200, response: { oneOf: [report, indexReport] } },
  { method: 'POST', path: scans, params, tag, summary: 'Queue a full re-scan (push)', status: 202, response: object({ repository: str, digest, status: { const: 'queued' } }) },
  {
    method: 'GET',
    path: `${scans}/status`,
    params,
    tag,
    summary: 'Scan status and counts only (pull)',
    status: 200,
    response: object({ repository: str, digest, status: scanStatus, summary: anyObject, database, warnings: array(str) }, { reason: str, scannedAt: time }),
  },
  { method: 'GET', path: `${scans}/sarif`, params, tag, summary: 'Findings as SARIF 2.1.0 (pull)', status: 200, responseType: 'application/sarif+json', response: object({ version: { const: '2.1.0' }, runs: array(anyObject) }, { $schema: str }) },
  {
    method: 'GET',
    path: `${scans}/sbom`,
    params,
    tag,
    summary: 'SBOM of the scanned image, as a download (pull)',
    query: { format: q(oneOf('cyclonedx', 'spdx'), 'Default cyclonedx') },
    status: 200,
    responseType: [CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE],
    response: anyObject,
  },
  {
    method: 'GET',
    path: '/exemptions',
    tag,
    summary: "A project's vulnerability exemptions (project.read)",
    query: {
      project: q(str, undefined, true),
      repository: q(str),
      vulnerability: q(str),
      all: q(oneOf('true', 'false'), 'Include expired and revoked ones'),
      expiringWithinDays: q({ type: 'number', minimum: 0 }, 'Only those expiring within this many days'),
    },
    status: 200,
    response: object({ exemptions: array(exemption) }),
  },
  { method: 'POST', path: '/exemptions', tag, summary: "Create an exemption (project.update on its project); it expires at most scanner.exemptions.maxDays ahead", body: exemptionInputSchema, status: 201, response: exemption },
  { method: 'GET', path: '/exemptions/{id}', tag, summary: 'Get an exemption (project.read)', status: 200, response: exemption },
  { method: 'DELETE', path: '/exemptions/{id}', tag, summary: 'Revoke an exemption, kept for the record (project.update); 409 when already revoked', status: 200, response: exemption },
  { method: 'GET', path: '/vex', tag, summary: 'OpenVEX documents of a project, uploaded and attached (project.read)', query: { project: q(str, undefined, true) }, status: 200, response: object({ documents: array(vex) }) },
  {
    method: 'POST',
    path: '/vex',
    tag,
    summary: 'Upload an OpenVEX document (project.update)',
    query: { project: q(str, undefined, true), repository: q(str, 'Limit the statements to this repository of the project') },
    body: documentSchema,
    status: 201,
    response: vex,
    errors: { 405: 'OpenVEX documents are not kept by this registry (UNSUPPORTED)' },
  },
  { method: 'DELETE', path: '/vex/{id}', tag, summary: 'Remove an OpenVEX document (project.update)', status: 204 },
];
