/**
 * Scan reports: the JSON report of one image (status, summary by severity, fixable counts,
 * findings with layer attribution, exemptions applied, secrets, configuration findings, and the age
 * of the vulnerability data with a warning once it is stale), its SARIF 2.1.0 export, and a plain
 * table for terminals. Reports are computed on read from the stored result, so exemptions created
 * or expired since the scan apply at once.
 */
import type { ConfigFinding } from './config-checks.ts';
import { SEVERITIES, summarize, type SeverityName } from './evaluation.ts';
import { exemptionApplies, exemptionView, type Exemption } from './exemptions.ts';
import type { InventoryWarning } from './inventory/errors.ts';
import type { SecretFinding } from './inventory/secrets.ts';
import type { InventoryPackage, OperatingSystem, VulnerabilityFinding } from './model.ts';
import type { FindingSummary, ScanStatus } from './store.ts';
import { type StoredVex, vexVerdict, type VexVerdict } from './vex.ts';
import type { BuilderSbomComparison } from './builder-sbom.ts';

export const SCANNER_NAME = 'portcullis';

/** The inventory document stored per digest. */
export interface StoredInventory {
  packages: InventoryPackage[];
  layers: Array<{ index: number; digest: string; diffId: string; mediaType: string; compressedBytes: number; uncompressedBytes: number; entries: number }>;
  warnings: InventoryWarning[];
  /** Layer descriptors not scanned (not layer media types). */
  skippedLayers: string[];
  /** SBOMs the image's builder attached, compared with what the scan found (builder-sbom.ts). */
  builderSboms?: BuilderSbomComparison[];
}

export interface ReportFinding {
  id: string;
  aliases: string[];
  cves: string[];
  summary?: string;
  severity: VulnerabilityFinding['severity'];
  score?: number;
  severitySource: string;
  malicious: boolean;
  package: { name: string; version: string; kind: string; purl: string; path: string; sourceName?: string; sourceVersion?: string; fromSbom?: true };
  ecosystem: string;
  installedVersion: string;
  fixedVersions: string[];
  fixAvailable: boolean;
  layer?: { index: number; digest: string; diffId: string };
  exemption?: Record<string, unknown>;
  /** The OpenVEX statement that suppresses this finding. */
  vex?: VexVerdict;
}

export interface ScanReport {
  repository: string;
  digest: string;
  status: ScanStatus;
  reason?: string;
  scannedAt?: string;
  scanner: { name: string; version?: string };
  os?: OperatingSystem;
  database: {
    /** Content hash of the vulnerability data the findings were computed with. */
    contentHash?: string;
    /** Newest import of that data (ISO 8601). */
    updatedAt?: string;
    ageSeconds?: number;
    maxAgeSeconds: number;
    stale: boolean;
    /** Findings are being re-evaluated against newer data. */
    reevaluationPending: boolean;
    evaluatedAt?: string;
  };
  warnings: string[];
  /** Counts without exempted findings; `all` counts every finding. */
  summary: FindingSummary & { exempted: number; all: FindingSummary; packages: number; secrets: number; configFindings: number };
  layers: Array<{ index: number; digest: string; diffId: string; packages: number; findings: number }>;
  /** Distinct licences of the inventory's packages, as recorded (SPDX ids or the raw strings). */
  licences: string[];
  findings: ReportFinding[];
  exempted: ReportFinding[];
  secrets: Array<Omit<SecretFinding, 'layerIndex'> & { layerIndex: number }>;
  configFindings: ConfigFinding[];
  inventoryWarnings: InventoryWarning[];
  /** SBOMs the builder attached, compared with the inventory: packages only in the SBOM, only found by the scan, or in other versions. Findings of packages only the SBOM lists have `package.fromSbom`. */
  builderSboms: BuilderSbomComparison[];
}

export interface ReportInput {
  repository: string;
  digest: string;
  status: ScanStatus;
  reason?: string | undefined;
  completedAt?: number | undefined;
  scannerVersion?: string | undefined;
  os?: OperatingSystem | undefined;
  inventory?: StoredInventory | undefined;
  findings: VulnerabilityFinding[];
  secrets: SecretFinding[];
  configFindings: ConfigFinding[];
  dbHash?: string | undefined;
  dbUpdatedAt?: number | undefined;
  evaluatedAt?: number | undefined;
  /** Content hash of the database loaded now. */
  currentDbHash: string;
  maxAgeSeconds: number;
  exemptions: Exemption[];
  /** OpenVEX documents that may speak about this image. */
  vex?: StoredVex[];
  /** Warn about exemptions in use that expire within this many days. */
  exemptionWarnDays: number;
  now: number;
}

const RANK: Record<SeverityName, number> = { critical: 5, high: 4, medium: 3, low: 2, none: 1, unknown: 0 };

export function severityRankOf(s: string): number {
  return RANK[s as SeverityName] ?? 0;
}

function compareFindings(a: ReportFinding, b: ReportFinding): number {
  return RANK[b.severity] - RANK[a.severity] || (b.score ?? -1) - (a.score ?? -1) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || (a.package.name < b.package.name ? -1 : 1);
}

export function buildReport(input: ReportInput): ScanReport {
  const packages = input.inventory?.packages ?? [];
  const layers = input.inventory?.layers ?? [];
  const layerIndex = new Map(layers.map((l) => [l.diffId, l]));
  const warnings: string[] = [];
  const findings: ReportFinding[] = [];
  const exempted: ReportFinding[] = [];
  const usedExemptions = new Map<string, Exemption>();
  for (const f of input.findings) {
    const p = packages[f.packageIndex];
    const layer = f.layerDiffId !== undefined ? layerIndex.get(f.layerDiffId) : undefined;
    const rf: ReportFinding = {
      id: f.id,
      aliases: f.aliases,
      cves: f.cves,
      ...(f.summary !== undefined ? { summary: f.summary } : {}),
      severity: f.severity,
      ...(f.score !== undefined ? { score: f.score } : {}),
      severitySource: f.severitySource,
      malicious: f.malicious,
      package: {
        name: f.packageName,
        version: p?.version ?? f.installedVersion,
        kind: p?.kind ?? 'unknown',
        purl: p?.purl ?? '',
        path: p?.path ?? '',
        ...(p?.sourceName ? { sourceName: p.sourceName } : {}),
        ...(p?.sourceVersion ? { sourceVersion: p.sourceVersion } : {}),
        ...(p?.origin === 'sbom' ? { fromSbom: true as const } : {}),
      },
      ecosystem: f.ecosystem,
      installedVersion: f.installedVersion,
      fixedVersions: f.fixedVersions,
      fixAvailable: f.fixAvailable,
      ...(layer ? { layer: { index: layer.index, digest: layer.digest, diffId: layer.diffId } } : {}),
    };
    const exemption = input.exemptions.find((e) => exemptionApplies(e, f, p, input.repository, input.digest, input.now));
    const vex = exemption || !input.vex?.length ? undefined : vexVerdict(input.vex, f, p, input.digest);
    if (exemption) {
      rf.exemption = exemptionView(exemption);
      usedExemptions.set(exemption.id, exemption);
      exempted.push(rf);
    } else if (vex) {
      rf.vex = vex;
      exempted.push(rf);
    } else findings.push(rf);
  }
  findings.sort(compareFindings);
  exempted.sort(compareFindings);
  const warnBefore = input.now + input.exemptionWarnDays * 86_400_000;
  for (const e of usedExemptions.values()) {
    if (e.expiresAt < warnBefore) {
      const days = Math.max(0, Math.ceil((e.expiresAt - input.now) / 86_400_000));
      warnings.push(`exemption ${e.id} for ${e.vulnerability} (owner ${e.owner}) expires in ${days} day${days === 1 ? '' : 's'} (${new Date(e.expiresAt).toISOString()})`);
    }
  }

  const database: ScanReport['database'] = { maxAgeSeconds: input.maxAgeSeconds, stale: true, reevaluationPending: input.dbHash !== undefined && input.dbHash !== input.currentDbHash };
  if (input.dbHash !== undefined) database.contentHash = input.dbHash;
  if (input.evaluatedAt !== undefined) database.evaluatedAt = new Date(input.evaluatedAt).toISOString();
  if (input.dbUpdatedAt !== undefined && input.dbUpdatedAt > 0) {
    database.updatedAt = new Date(input.dbUpdatedAt).toISOString();
    database.ageSeconds = Math.max(0, Math.round((input.now - input.dbUpdatedAt) / 1000));
    database.stale = database.ageSeconds > input.maxAgeSeconds;
  }
  if (input.status === 'complete') {
    if (database.updatedAt === undefined) warnings.push('no vulnerability data was imported when these findings were computed: vulnerabilities are not reported (run portcullis vulndb import)');
    else if (database.stale) warnings.push(`the vulnerability data is stale: last imported ${formatAge(database.ageSeconds!)} ago (${database.updatedAt}), more than the allowed ${formatAge(input.maxAgeSeconds)}`);
    if (database.reevaluationPending) warnings.push('newer vulnerability data was imported; findings are being re-evaluated');
  }
  if (input.status === 'failed') warnings.push(`the scan failed: ${input.reason ?? 'unknown reason'}`);

  const perLayer = layers.map((l) => ({ index: l.index, digest: l.digest, diffId: l.diffId, packages: 0, findings: 0 }));
  const byDiff = new Map(perLayer.map((l) => [l.diffId, l]));
  for (const p of packages) {
    const l = p.layerDiffId !== undefined ? byDiff.get(p.layerDiffId) : undefined;
    if (l) l.packages++;
  }
  for (const f of findings) {
    const l = f.layer ? byDiff.get(f.layer.diffId) : undefined;
    if (l) l.findings++;
  }

  const all = summarize(input.findings);
  const effective = summarize(findings);
  const report: ScanReport = {
    repository: input.repository,
    digest: input.digest,
    status: input.status,
    ...(input.reason !== undefined ? { reason: input.reason } : {}),
    ...(input.completedAt !== undefined ? { scannedAt: new Date(input.completedAt).toISOString() } : {}),
    scanner: { name: SCANNER_NAME, ...(input.scannerVersion !== undefined ? { version: input.scannerVersion } : {}) },
    ...(input.os ? { os: input.os } : {}),
    database,
    warnings,
    summary: { ...effective, exempted: exempted.length, all, packages: packages.length, secrets: input.secrets.length, configFindings: input.configFindings.length },
    layers: perLayer,
    licences: [...new Set(packages.flatMap((p) => p.licenses ?? []))].sort(),
    findings,
    exempted,
    secrets: input.secrets as ScanReport['secrets'],
    configFindings: input.configFindings,
    inventoryWarnings: input.inventory?.warnings ?? [],
    builderSboms: input.inventory?.builderSboms ?? [],
  };
  return report;
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** True when the report has an unexempted finding (vulnerability, secret or malicious package) at or above `threshold`. */
export function failsThreshold(report: ScanReport, threshold: SeverityName): boolean {
  const min = RANK[threshold];
  return report.findings.some((f) => RANK[f.severity] >= min || f.malicious) || report.secrets.some((s) => RANK[s.severity] >= min);
}

export const SEVERITY_NAMES: readonly SeverityName[] = SEVERITIES;

function sarifLevel(severity: string): 'error' | 'warning' | 'note' {
  const r = severityRankOf(severity);
  return r >= 4 ? 'error' : r >= 3 ? 'warning' : 'note';
}

const SECURITY_SEVERITY: Record<string, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '2.0', none: '0.0', unknown: '0.0' };

/** SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/): vulnerabilities, secrets and configuration findings as results. */
export function sarif(report: ScanReport, toolVersion: string): Record<string, unknown> {
  const rules: Record<string, unknown>[] = [];
  const ruleIndex = new Map<string, number>();
  const rule = (id: string, make: () => Record<string, unknown>): number => {
    let i = ruleIndex.get(id);
    if (i === undefined) {
      i = rules.length;
      ruleIndex.set(id, i);
      rules.push({ id, ...make() });
    }
    return i;
  };
  const imageUri = `${report.repository}@${report.digest}`;
  const results: Record<string, unknown>[] = [];
  for (const f of report.findings) {
    const index = rule(f.id, () => ({
      name: f.id.replace(/[^A-Za-z0-9]/g, ''),
      shortDescription: { text: f.summary ?? f.id },
      fullDescription: { text: `${f.summary ?? f.id}${f.aliases.length > 0 ? ` (also ${f.aliases.join(', ')})` : ''}` },
      helpUri: `https://osv.dev/vulnerability/${encodeURIComponent(f.id)}`,
      help: { text: `Vulnerability ${f.id}. Aliases: ${f.aliases.join(', ') || 'none'}.`, markdown: `**${f.id}** ${f.summary ?? ''}` },
      defaultConfiguration: { level: sarifLevel(f.severity) },
      properties: { 'security-severity': f.score !== undefined ? f.score.toFixed(1) : SECURITY_SEVERITY[f.severity], tags: ['vulnerability', 'security', f.severity, ...(f.malicious ? ['malicious'] : [])] },
    }));
    const fixed = f.fixedVersions.length > 0 ? `; fixed in ${f.fixedVersions.join(', ')}` : '; no fix available';
    results.push({
      ruleId: f.id,
      ruleIndex: index,
      level: sarifLevel(f.severity),
      message: { text: `${f.package.name} ${f.installedVersion} is affected by ${f.id} (${f.severity}${f.score !== undefined ? ` ${f.score}` : ''})${fixed}.` },
      locations: [
        {
          physicalLocation: { artifactLocation: { uri: (f.package.path || '/').replace(/^\//, '') || '.', uriBaseId: 'IMAGE_ROOT' } },
          logicalLocations: [{ name: f.package.purl || f.package.name, kind: 'package' }],
          message: { text: `in ${imageUri}${f.layer ? `, layer ${f.layer.index} (${f.layer.diffId})` : ''}` },
        },
      ],
      partialFingerprints: { 'vulnerability/package': `${f.id}/${f.package.purl || f.package.name}` },
      properties: { package: f.package, installedVersion: f.installedVersion, fixedVersions: f.fixedVersions, ...(f.layer ? { layer: f.layer } : {}) },
    });
  }
  for (const s of report.secrets) {
    const id = `secret/${s.rule}`;
    const index = rule(id, () => ({
      name: s.rule.replace(/[^A-Za-z0-9]/g, ''),
      shortDescription: { text: s.title },
      defaultConfiguration: { level: sarifLevel(s.severity) },
      properties: { 'security-severity': SECURITY_SEVERITY[s.severity], tags: ['secret', 'security', s.severity] },
    }));
    results.push({
      ruleId: id,
      ruleIndex: index,
      level: sarifLevel(s.severity),
      message: { text: `${s.title} in ${s.path} (layer ${s.layerIndex}); fingerprint ${s.fingerprint}. The secret itself is not reported.` },
      locations: [{ physicalLocation: { artifactLocation: { uri: s.path.replace(/^\//, ''), uriBaseId: 'IMAGE_ROOT' }, region: { startLine: Math.max(1, s.line) } } }],
      partialFingerprints: { 'secret/fingerprint': s.fingerprint },
    });
  }
  for (const c of report.configFindings) {
    const id = `config/${c.rule}`;
    const index = rule(id, () => ({ name: c.rule.replace(/[^A-Za-z0-9]/g, ''), shortDescription: { text: c.title }, defaultConfiguration: { level: sarifLevel(c.severity) }, properties: { tags: ['configuration', 'security', c.severity] } }));
    results.push({
      ruleId: id,
      ruleIndex: index,
      level: sarifLevel(c.severity),
      message: { text: `${c.title} (${c.location})` },
      locations: [{ logicalLocations: [{ name: c.location, kind: 'member' }] }],
      ...(c.fingerprint ? { partialFingerprints: { 'secret/fingerprint': c.fingerprint } } : {}),
    });
  }
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: SCANNER_NAME, version: toolVersion, informationUri: 'https://github.com/portcullis-registry/portcullis', rules } },
        originalUriBaseIds: { IMAGE_ROOT: { uri: 'file:///' } },
        results,
        properties: { image: imageUri, database: report.database, warnings: report.warnings },
      },
    ],
  };
}

/** A fixed-width table for terminals. */
export function table(report: ScanReport): string {
  const lines: string[] = [];
  const s = report.summary;
  lines.push(`${report.repository}@${report.digest}${report.os ? ` (${report.os.prettyName ?? report.os.id})` : ''}`);
  lines.push(`status ${report.status}${report.reason ? `: ${report.reason}` : ''}; ${s.packages} packages`);
  lines.push(
    `vulnerabilities: ${s.total} (critical ${s.bySeverity.critical}, high ${s.bySeverity.high}, medium ${s.bySeverity.medium}, low ${s.bySeverity.low}, unknown ${s.bySeverity.unknown}); fixable ${s.fixable}; exempted ${s.exempted}; secrets ${s.secrets}`,
  );
  for (const w of report.warnings) lines.push(`WARNING: ${w}`);
  if (report.findings.length > 0) {
    const rows = report.findings.map((f) => [f.severity.toUpperCase(), f.id, f.package.name, f.installedVersion, f.fixedVersions.join(', ') || '-', f.layer ? String(f.layer.index) : f.package.fromSbom ? 'sbom' : '-']);
    const head = ['SEVERITY', 'ID', 'PACKAGE', 'INSTALLED', 'FIXED', 'LAYER'];
    const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
    const fmt = (r: string[]) => r.map((c, i) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c.padEnd(widths[i]!))).join('  ').trimEnd();
    lines.push('', fmt(head), ...rows.map(fmt));
  }
  if (report.secrets.length > 0) {
    lines.push('', 'SECRETS');
    for (const x of report.secrets) lines.push(`  ${x.severity.toUpperCase()} ${x.rule} ${x.path}:${x.line} (layer ${x.layerIndex}) fingerprint ${x.fingerprint}`);
  }
  if ((report.builderSboms ?? []).length > 0) {
    lines.push('', 'BUILDER SBOMS');
    for (const b of report.builderSboms) {
      // Comparisons stored before components without a purl were compared lack the last two counts.
      const byName = (b.resolvedByName ?? 0) > 0 || (b.unmatchedCount ?? 0) > 0 ? `; without a purl: ${b.resolvedByName ?? 0} resolved by name, ${b.unmatchedCount ?? 0} unmatched` : '';
      lines.push(`  ${b.referrer} (${b.format}${b.tool ? `, ${b.tool}` : ''}): ${b.packages} packages; only in the SBOM ${b.onlyInSbomCount}, only found by the scan ${b.onlyInInventoryCount}, other version ${b.versionDiffersCount}; ${b.matched} matched from the SBOM${byName}`);
      for (const u of (b.unmatched ?? []).slice(0, 20)) lines.push(`    unmatched ${u.name}${u.version !== undefined ? `@${u.version}` : ''}: ${u.reason}${u.candidates ? ` (${u.candidates.join(', ')})` : ''}`);
    }
  }
  if (report.configFindings.length > 0) {
    lines.push('', 'CONFIGURATION');
    for (const c of report.configFindings) lines.push(`  ${c.severity.toUpperCase()} ${c.rule} ${c.location}: ${c.title}`);
  }
  return `${lines.join('\n')}\n`;
}
