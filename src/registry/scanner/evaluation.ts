/**
 * Evaluating an inventory against the vulnerability database, in the form that is stored and that
 * re-evaluation compares: findings, a fingerprint of them and counts.
 *
 * Re-evaluation reads only the compact {@link MatchInput} of each image (what the matcher looks at,
 * plus the layer of each package for attribution), never the layers. The fingerprint is a hash of
 * (package index, finding content) pairs computed from the matcher's shared finding templates, so
 * telling "unchanged" images apart costs one hash per finding, not a materialised finding each.
 */
import { createHash } from 'node:crypto';
import type { Inventory, InventoryPackage, VulnerabilityFinding } from './model.ts';
import type { FindingTemplate, Matcher, PackageFindings } from './matching/matcher.ts';
import type { Evaluation, FindingSummary, MatchInput, MatchTuple, SeverityCounts } from './store.ts';

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'none', 'unknown'] as const;
export type SeverityName = (typeof SEVERITIES)[number];

export function emptyCounts(): SeverityCounts {
  return { critical: 0, high: 0, medium: 0, low: 0, none: 0, unknown: 0 };
}

/** The compact match input of an inventory; `layers` in manifest order. */
export function matchInputOf(inventory: Inventory, layers: Array<{ digest: string; diffId: string }>): MatchInput {
  const byDiffId = new Map(layers.map((l, i) => [l.diffId, i]));
  const byDigest = new Map(layers.map((l, i) => [l.digest, i]));
  const packages = inventory.packages.map((p): MatchTuple => {
    const layer = (p.layerDiffId !== undefined ? byDiffId.get(p.layerDiffId) : undefined) ?? (p.layerDigest !== undefined ? byDigest.get(p.layerDigest) : undefined);
    return [p.kind, p.name, p.version, p.sourceName ?? null, p.sourceVersion ?? null, p.epoch ?? null, layer ?? null];
  });
  const input: MatchInput = { layers: layers.map((l) => [l.digest, l.diffId]), packages };
  if (inventory.os) input.os = inventory.os;
  return input;
}

/** The inventory the matcher needs, rebuilt from a match input (purl and path are not needed). */
export function inventoryOfInput(input: MatchInput): Inventory {
  const packages = input.packages.map(([kind, name, version, sourceName, sourceVersion, epoch, layer]): InventoryPackage => {
    const p: InventoryPackage = { kind: kind as InventoryPackage['kind'], name, version, purl: '', path: '' };
    if (sourceName !== null) p.sourceName = sourceName;
    if (sourceVersion !== null) p.sourceVersion = sourceVersion;
    if (epoch !== null) p.epoch = epoch;
    const l = layer === null ? undefined : input.layers[layer];
    if (l) {
      p.layerDigest = l[0];
      p.layerDiffId = l[1];
    }
    return p;
  });
  const inventory: Inventory = { packages };
  if (input.os) inventory.os = input.os;
  return inventory;
}

const templateKeys = new WeakMap<FindingTemplate, string>();

/** A stable key of a finding template's content (cached on the shared template object). */
function templateKey(t: FindingTemplate): string {
  let k = templateKeys.get(t);
  if (k === undefined) {
    k = createHash('sha256').update(JSON.stringify(t)).digest('base64url').slice(0, 22);
    templateKeys.set(t, k);
  }
  return k;
}

/** Fingerprint of grouped findings: equal exactly when the materialised findings would be equal. */
export function fingerprintOf(groups: readonly PackageFindings[]): string {
  const h = createHash('sha256');
  for (const g of groups) for (const t of g.findings) h.update(`${g.packageIndex}|${templateKey(t)}\n`);
  return h.digest('hex');
}

export function summarize(findings: Iterable<Pick<VulnerabilityFinding, 'severity' | 'fixAvailable' | 'malicious'>>): FindingSummary {
  const s: FindingSummary = { total: 0, bySeverity: emptyCounts(), fixable: 0, fixableBySeverity: emptyCounts(), malicious: 0 };
  for (const f of findings) {
    s.total++;
    s.bySeverity[f.severity]++;
    if (f.fixAvailable) {
      s.fixable++;
      s.fixableBySeverity[f.severity]++;
    }
    if (f.malicious) s.malicious++;
  }
  return s;
}

function materialize(t: FindingTemplate, p: InventoryPackage, packageIndex: number): VulnerabilityFinding {
  const f: VulnerabilityFinding = { ...t, aliases: [...t.aliases], cves: [...t.cves], fixedVersions: [...t.fixedVersions], packageIndex, packageName: p.name };
  if (p.layerDiffId !== undefined) f.layerDiffId = p.layerDiffId;
  if (p.layerDigest !== undefined) f.layerDigest = p.layerDigest;
  return f;
}

export interface DatabaseIdentity {
  hash: string;
  updatedAt: number;
}

/** Grouped findings and their fingerprint (the cheap first step of re-evaluation). */
export function matchGroups(matcher: Matcher, inventory: Inventory): { groups: PackageFindings[]; fingerprint: string } {
  const groups = matcher.matchGrouped(inventory);
  return { groups, fingerprint: fingerprintOf(groups) };
}

/** The full evaluation (materialised findings, counts) from grouped findings. */
export function evaluationOf(inventory: Inventory, groups: readonly PackageFindings[], fingerprint: string, db: DatabaseIdentity): Evaluation {
  const findings: VulnerabilityFinding[] = [];
  for (const g of groups) {
    const p = inventory.packages[g.packageIndex]!;
    for (const t of g.findings) findings.push(materialize(t, p, g.packageIndex));
  }
  return { findings, fingerprint, summary: summarize(findings), dbHash: db.hash, dbUpdatedAt: db.updatedAt };
}

export function evaluate(matcher: Matcher, inventory: Inventory, db: DatabaseIdentity): Evaluation {
  const { groups, fingerprint } = matchGroups(matcher, inventory);
  return evaluationOf(inventory, groups, fingerprint, db);
}

/** Identity of a finding across evaluations (vulnerability on a package). */
export function findingKey(f: Pick<VulnerabilityFinding, 'id' | 'packageIndex'>): string {
  return `${f.id}@${f.packageIndex}`;
}

export interface FindingsChange {
  added: VulnerabilityFinding[];
  removed: VulnerabilityFinding[];
  /** Same vulnerability and package, other severity or fix information. */
  changed: VulnerabilityFinding[];
}

export function diffFindings(before: readonly VulnerabilityFinding[], after: readonly VulnerabilityFinding[]): FindingsChange {
  const old = new Map(before.map((f) => [findingKey(f), f]));
  const now = new Map(after.map((f) => [findingKey(f), f]));
  const change: FindingsChange = { added: [], removed: [], changed: [] };
  for (const [k, f] of now) {
    const o = old.get(k);
    if (!o) change.added.push(f);
    else if (o.severity !== f.severity || o.fixedVersions.join() !== f.fixedVersions.join() || o.score !== f.score) change.changed.push(f);
  }
  for (const [k, f] of old) if (!now.has(k)) change.removed.push(f);
  return change;
}
