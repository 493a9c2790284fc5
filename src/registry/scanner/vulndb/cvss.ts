/**
 * CVSS scoring. v3.0/v3.1 and v2 base scores are computed here from the FIRST specification
 * formulas (short and exact). v4.0 scoring (MacroVector lookup + severity-distance interpolation)
 * is delegated to `ae-cvss-calculator` (metaeffekt, Apache-2.0, no dependencies, actively released),
 * after strict validation here so that a malformed vector is a clean error, never a library
 * warning or a silently partial score. Checked against @pandatix/js-cvss on 20,000 random vectors:
 * identical except ~0.4% that sit exactly on a x.x5 boundary, where ae rounds the exact value half
 * up (the specification's rounding) instead of rounding a float artefact such as 8.549999999.
 */
import cvssCalculator from 'ae-cvss-calculator';

export type Severity = 'none' | 'low' | 'medium' | 'high' | 'critical';
export const SEVERITY_ORDER: readonly Severity[] = ['none', 'low', 'medium', 'high', 'critical'];

export interface CvssScore {
  version: '2.0' | '3.0' | '3.1' | '4.0';
  vector: string;
  score: number;
  severity: Severity;
}

export class CvssError extends Error {
  override name = 'CvssError';
}

/** The qualitative rating scale of CVSS v3/v4 (v2 has no "critical"; we use the same scale for ranking). */
export function severityFromScore(score: number): Severity {
  if (score <= 0) return 'none';
  if (score < 4) return 'low';
  if (score < 7) return 'medium';
  if (score < 9) return 'high';
  return 'critical';
}

function parseMetrics(body: string, allowed: Record<string, readonly string[]>, required: readonly string[], vector: string): Map<string, string> {
  const out = new Map<string, string>();
  if (body.length === 0) throw new CvssError(`empty CVSS vector: ${vector}`);
  for (const part of body.split('/')) {
    const i = part.indexOf(':');
    if (i <= 0) throw new CvssError(`malformed metric "${part}" in ${vector}`);
    const key = part.slice(0, i);
    const value = part.slice(i + 1);
    const values = allowed[key];
    if (!values) throw new CvssError(`unknown metric ${key} in ${vector}`);
    if (!values.includes(value)) throw new CvssError(`invalid value ${key}:${value} in ${vector}`);
    if (out.has(key)) throw new CvssError(`duplicate metric ${key} in ${vector}`);
    out.set(key, value);
  }
  for (const k of required) if (!out.has(k)) throw new CvssError(`missing base metric ${k} in ${vector}`);
  return out;
}

// ---- CVSS v3.x -------------------------------------------------------------------------------

const V3_ALLOWED: Record<string, readonly string[]> = {
  AV: ['N', 'A', 'L', 'P'], AC: ['L', 'H'], PR: ['N', 'L', 'H'], UI: ['N', 'R'], S: ['U', 'C'],
  C: ['H', 'L', 'N'], I: ['H', 'L', 'N'], A: ['H', 'L', 'N'],
  E: ['X', 'H', 'F', 'P', 'U'], RL: ['X', 'U', 'W', 'T', 'O'], RC: ['X', 'C', 'R', 'U'],
  CR: ['X', 'H', 'M', 'L'], IR: ['X', 'H', 'M', 'L'], AR: ['X', 'H', 'M', 'L'],
  MAV: ['X', 'N', 'A', 'L', 'P'], MAC: ['X', 'L', 'H'], MPR: ['X', 'N', 'L', 'H'], MUI: ['X', 'N', 'R'], MS: ['X', 'U', 'C'],
  MC: ['X', 'H', 'L', 'N'], MI: ['X', 'H', 'L', 'N'], MA: ['X', 'H', 'L', 'N'],
};
const V3_REQUIRED = ['AV', 'AC', 'PR', 'UI', 'S', 'C', 'I', 'A'];

const AV3: Record<string, number> = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 };
const AC3: Record<string, number> = { L: 0.77, H: 0.44 };
const UI3: Record<string, number> = { N: 0.85, R: 0.62 };
const CIA3: Record<string, number> = { H: 0.56, L: 0.22, N: 0 };

/** CVSS v3.1 Roundup (specification Appendix A): avoids floating-point artefacts. */
function roundup31(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

function roundup30(x: number): number {
  return Math.ceil(x * 10) / 10;
}

/** Base score of a CVSS v3.0 or v3.1 vector (`CVSS:3.x/AV:../...`). */
export function cvss3BaseScore(vector: string): CvssScore {
  const m = /^CVSS:3\.([01])\/(.*)$/.exec(vector.trim());
  if (!m) throw new CvssError(`not a CVSS v3 vector: ${vector}`);
  const version = m[1] === '0' ? '3.0' : '3.1';
  const met = parseMetrics(m[2]!, V3_ALLOWED, V3_REQUIRED, vector);
  const changed = met.get('S') === 'C';
  const pr = met.get('PR')!;
  const prValue = pr === 'N' ? 0.85 : pr === 'L' ? (changed ? 0.68 : 0.62) : changed ? 0.5 : 0.27;
  const iss = 1 - (1 - CIA3[met.get('C')!]!) * (1 - CIA3[met.get('I')!]!) * (1 - CIA3[met.get('A')!]!);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * AV3[met.get('AV')!]! * AC3[met.get('AC')!]! * prValue * UI3[met.get('UI')!]!;
  const roundup = version === '3.0' ? roundup30 : roundup31;
  let score = 0;
  if (impact > 0) score = changed ? roundup(Math.min(1.08 * (impact + exploitability), 10)) : roundup(Math.min(impact + exploitability, 10));
  return { version, vector, score, severity: severityFromScore(score) };
}

// ---- CVSS v2 ---------------------------------------------------------------------------------

const V2_ALLOWED: Record<string, readonly string[]> = {
  AV: ['L', 'A', 'N'], AC: ['H', 'M', 'L'], Au: ['M', 'S', 'N'], C: ['N', 'P', 'C'], I: ['N', 'P', 'C'], A: ['N', 'P', 'C'],
  E: ['U', 'POC', 'F', 'H', 'ND'], RL: ['OF', 'TF', 'W', 'U', 'ND'], RC: ['UC', 'UR', 'C', 'ND'],
  CDP: ['N', 'L', 'LM', 'MH', 'H', 'ND'], TD: ['N', 'L', 'M', 'H', 'ND'], CR: ['L', 'M', 'H', 'ND'], IR: ['L', 'M', 'H', 'ND'], AR: ['L', 'M', 'H', 'ND'],
};

/** Base score of a CVSS v2 vector (`AV:N/AC:L/Au:N/C:P/I:P/A:P`, optionally prefixed `CVSS:2.0/`). */
export function cvss2BaseScore(vector: string): CvssScore {
  const body = vector.trim().replace(/^\(?(?:CVSS:2\.0\/)?/, '').replace(/\)$/, '');
  const met = parseMetrics(body, V2_ALLOWED, ['AV', 'AC', 'Au', 'C', 'I', 'A'], vector);
  const av = { L: 0.395, A: 0.646, N: 1.0 }[met.get('AV') as 'L' | 'A' | 'N'];
  const ac = { H: 0.35, M: 0.61, L: 0.71 }[met.get('AC') as 'H' | 'M' | 'L'];
  const au = { M: 0.45, S: 0.56, N: 0.704 }[met.get('Au') as 'M' | 'S' | 'N'];
  const cia = (k: string): number => ({ N: 0, P: 0.275, C: 0.66 })[met.get(k) as 'N' | 'P' | 'C'];
  const impact = 10.41 * (1 - (1 - cia('C')) * (1 - cia('I')) * (1 - cia('A')));
  const exploitability = 20 * av * ac * au;
  const f = impact === 0 ? 0 : 1.176;
  const raw = (0.6 * impact + 0.4 * exploitability - 1.5) * f;
  const score = Math.round(raw * 10 + 1e-9) / 10;
  return { version: '2.0', vector, score, severity: severityFromScore(score) };
}

// ---- CVSS v4.0 -------------------------------------------------------------------------------

const V4_ALLOWED: Record<string, readonly string[]> = {
  AV: ['N', 'A', 'L', 'P'], AC: ['L', 'H'], AT: ['N', 'P'], PR: ['N', 'L', 'H'], UI: ['N', 'P', 'A'],
  VC: ['H', 'L', 'N'], VI: ['H', 'L', 'N'], VA: ['H', 'L', 'N'], SC: ['H', 'L', 'N'], SI: ['H', 'L', 'N'], SA: ['H', 'L', 'N'],
  E: ['X', 'A', 'P', 'U'],
  CR: ['X', 'H', 'M', 'L'], IR: ['X', 'H', 'M', 'L'], AR: ['X', 'H', 'M', 'L'],
  MAV: ['X', 'N', 'A', 'L', 'P'], MAC: ['X', 'L', 'H'], MAT: ['X', 'N', 'P'], MPR: ['X', 'N', 'L', 'H'], MUI: ['X', 'N', 'P', 'A'],
  MVC: ['X', 'H', 'L', 'N'], MVI: ['X', 'H', 'L', 'N'], MVA: ['X', 'H', 'L', 'N'], MSC: ['X', 'H', 'L', 'N'],
  MSI: ['X', 'S', 'H', 'L', 'N'], MSA: ['X', 'S', 'H', 'L', 'N'],
  S: ['X', 'N', 'P'], AU: ['X', 'N', 'Y'], R: ['X', 'A', 'U', 'I'], V: ['X', 'D', 'C'], RE: ['X', 'L', 'M', 'H'],
  U: ['X', 'Clear', 'Green', 'Amber', 'Red'],
};
const V4_REQUIRED = ['AV', 'AC', 'AT', 'PR', 'UI', 'VC', 'VI', 'VA', 'SC', 'SI', 'SA'];

/**
 * Score of a CVSS v4.0 vector: CVSS-B when only base metrics are given, CVSS-BT/BE/BTE when the
 * vector carries threat or environmental metrics (the score the vector denotes, as FIRST's
 * calculator shows it).
 */
export function cvss4Score(vector: string): CvssScore {
  const m = /^CVSS:4\.0\/(.*)$/.exec(vector.trim());
  if (!m) throw new CvssError(`not a CVSS v4.0 vector: ${vector}`);
  parseMetrics(m[1]!, V4_ALLOWED, V4_REQUIRED, vector);
  let score: number;
  try {
    score = new cvssCalculator.Cvss4P0(vector.trim()).calculateScores().overall;
  } catch (err) {
    throw new CvssError(`CVSS v4.0 scoring failed for ${vector}: ${(err as Error).message}`);
  }
  if (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 10) {
    throw new CvssError(`CVSS v4.0 scoring gave no score for ${vector}`);
  }
  return { version: '4.0', vector, score, severity: severityFromScore(score) };
}

/** Scores an OSV `severity[]` entry of type CVSS_V2, CVSS_V3 or CVSS_V4. */
export function scoreCvss(type: string, vector: string): CvssScore {
  switch (type) {
    case 'CVSS_V2':
      return cvss2BaseScore(vector);
    case 'CVSS_V3':
      return cvss3BaseScore(vector);
    case 'CVSS_V4':
      return cvss4Score(vector);
    default:
      throw new CvssError(`not a CVSS severity type: ${type}`);
  }
}
