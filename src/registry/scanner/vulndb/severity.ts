/**
 * Severity of one affected package of an OSV record, resolved once at import:
 *
 * 1. Malicious-package records (`MAL-...`) are critical, whatever else they say.
 * 2. The vendor's own rating when the record carries one: Ubuntu priorities (`severity[]` type
 *    `Ubuntu`, or per CVE in `database_specific.cves_map`), GitHub's `database_specific.severity`
 *    (LOW/MODERATE/HIGH/CRITICAL), or a `severity` (or Debian `urgency`) string in
 *    `ecosystem_specific`/`database_specific`.
 * 3. Otherwise the rating of the CVSS score.
 *
 * The score is the newest CVSS version present (v4.0, else v3.x, else v2), taken from the affected
 * entry's own `severity[]` when it has one (the schema forbids mixing), else the record's, else the
 * per-CVE vectors of a `cves_map` (highest score). Every vector is scored here (cvss.ts); a bad vector
 * is a warning, not a failed record.
 */
import { CvssError, SEVERITY_ORDER, scoreCvss, severityFromScore, type CvssScore, type Severity } from './cvss.ts';

export type SeverityLabel = Severity | 'unknown';

export interface SeverityEntry {
  type: string;
  score: string;
}

export interface ResolvedSeverity {
  severity: SeverityLabel;
  /** The CVSS score that represents the record (see above); absent without a usable vector. */
  score?: number;
  /** Where `severity` came from: `malicious`, `vendor:<type>`, `cvss:<version>` or `none`. */
  source: string;
  /** Every CVSS vector found and scored. */
  cvss: CvssScore[];
}

export interface SeverityInput {
  id: string;
  ecosystem: string;
  affectedSeverity: SeverityEntry[];
  topSeverity: SeverityEntry[];
  affectedDatabaseSpecific: Record<string, unknown> | undefined;
  ecosystemSpecific: Record<string, unknown> | undefined;
  recordDatabaseSpecific: Record<string, unknown> | undefined;
  warnings: string[];
}

/** Vendor words for severity, lower-cased: Ubuntu priorities, GHSA, Debian urgency, Red Hat impact, Go. */
const VENDOR_WORDS: Record<string, SeverityLabel> = {
  untriaged: 'unknown',
  unknown: 'unknown',
  'not yet assigned': 'unknown',
  negligible: 'low',
  unimportant: 'low',
  low: 'low',
  moderate: 'medium',
  medium: 'medium',
  important: 'high',
  high: 'high',
  critical: 'critical',
};

export function severityRank(s: SeverityLabel): number {
  return s === 'unknown' ? -1 : SEVERITY_ORDER.indexOf(s);
}

function maxLabel(a: SeverityLabel | undefined, b: SeverityLabel): SeverityLabel {
  if (a === undefined) return b;
  return severityRank(b) > severityRank(a) ? b : a;
}

function vendorWord(value: unknown): SeverityLabel | undefined {
  if (typeof value !== 'string') return undefined;
  return VENDOR_WORDS[value.trim().toLowerCase()];
}

interface CvesMapEntry {
  severity: SeverityEntry[];
}

function cvesMap(ds: Record<string, unknown> | undefined): CvesMapEntry[] {
  const map = ds?.cves_map;
  if (typeof map !== 'object' || map === null) return [];
  const cves = (map as { cves?: unknown }).cves;
  if (!Array.isArray(cves)) return [];
  const out: CvesMapEntry[] = [];
  for (const c of cves.slice(0, 1000)) {
    const sev = (c as { severity?: unknown })?.severity;
    if (!Array.isArray(sev)) continue;
    out.push({
      severity: sev
        .filter((s): s is SeverityEntry => typeof s?.type === 'string' && typeof s?.score === 'string')
        .slice(0, 20),
    });
  }
  return out;
}

const VERSION_RANK: Record<CvssScore['version'], number> = { '2.0': 0, '3.0': 1, '3.1': 1, '4.0': 2 };

export function resolveSeverity(input: SeverityInput): ResolvedSeverity {
  const direct = input.affectedSeverity.length > 0 ? input.affectedSeverity : input.topSeverity;
  const perCve = cvesMap(input.affectedDatabaseSpecific);
  const entries = direct.length > 0 ? direct : perCve.flatMap((c) => c.severity);

  const cvss: CvssScore[] = [];
  let vendor: SeverityLabel | undefined;
  let vendorSource: string | undefined;
  for (const e of entries) {
    if (e.type === 'CVSS_V2' || e.type === 'CVSS_V3' || e.type === 'CVSS_V4') {
      try {
        cvss.push(scoreCvss(e.type, e.score));
      } catch (err) {
        if (!(err instanceof CvssError)) throw err;
        input.warnings.push(`${input.id}: ${err.message}`);
      }
    } else {
      const w = vendorWord(e.score);
      if (w !== undefined) {
        vendor = maxLabel(vendor, w);
        vendorSource = `vendor:${e.type}`;
      }
    }
  }
  for (const [where, ds] of [
    ['ecosystem_specific', input.ecosystemSpecific],
    ['database_specific', input.affectedDatabaseSpecific],
    ['database_specific', input.recordDatabaseSpecific],
  ] as const) {
    if (vendor !== undefined) break;
    // `severity` (GHSA, Go, most databases) or Debian's `urgency`.
    const w = vendorWord(ds?.severity) ?? vendorWord(ds?.urgency);
    if (w !== undefined) {
      vendor = w;
      vendorSource = `vendor:${where}`;
    }
  }

  let best: CvssScore | undefined;
  for (const c of cvss) {
    if (!best || VERSION_RANK[c.version] > VERSION_RANK[best.version] || (VERSION_RANK[c.version] === VERSION_RANK[best.version] && c.score > best.score)) best = c;
  }

  const out: ResolvedSeverity = { severity: 'unknown', source: 'none', cvss };
  if (best) out.score = best.score;
  if (input.id.startsWith('MAL-')) {
    out.severity = 'critical';
    out.source = 'malicious';
  } else if (vendor !== undefined && vendor !== 'unknown') {
    out.severity = vendor;
    out.source = vendorSource ?? 'vendor';
  } else if (best) {
    out.severity = severityFromScore(best.score);
    out.source = `cvss:${best.version}`;
  }
  return out;
}
