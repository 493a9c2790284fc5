/**
 * Evaluating an inventory against the vulnerability database, in the form that is stored and that
 * re-evaluation compares.
 *
 * Re-evaluation reads only the compact {@link MatchInput} of each image (what the matcher looks at,
 * plus the layer of each package for attribution), never the layers. Findings are stored as
 * references: (package index, template key) pairs, where a template is the package-independent
 * part of a finding (id, aliases, severity, fixed versions...) shared by every image with the same
 * package version, stored once and keyed by a hash of its content. An image's findings are then a
 * few dozen bytes per finding to write, the fingerprint (a hash of the references) tells unchanged
 * images apart without materialising anything, and the full finding is rebuilt only for a report.
 */
import { createHash } from 'node:crypto';
import type { Inventory, InventoryPackage, VulnerabilityFinding } from './model.ts';
import type { FindingTemplate, Matcher, PackageFindings } from './matching/matcher.ts';

export type { FindingTemplate } from './matching/matcher.ts';
import type { FindingSummary, MatchInput, MatchTuple, SeverityCounts } from './store.ts';

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
export function templateKey(t: FindingTemplate): string {
  let k = templateKeys.get(t);
  if (k === undefined) {
    k = createHash('sha256').update(JSON.stringify(t)).digest('base64url').slice(0, 22);
    templateKeys.set(t, k);
  }
  return k;
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

export interface DatabaseIdentity {
  hash: string;
  updatedAt: number;
}

/** One finding of an image: the package (index into the inventory) and the key of its template. */
export type FindingRef = [number, string];

/**
 * Findings of one evaluation against one database. `refs` encodes the references compactly:
 * `<package index>:<key>,<key>;<package index>:<key>...` in package order, which is also what the
 * fingerprint hashes.
 */
export interface Evaluation {
  refs: string;
  /** The matcher's shared template lists per package (to store templates not stored yet, to materialise). */
  groups: ReadonlyArray<{ packageIndex: number; findings: readonly FindingTemplate[] }>;
  /** Hash of `refs`: equal exactly when the findings are equal. */
  fingerprint: string;
  summary: FindingSummary;
  dbHash: string;
  dbUpdatedAt: number;
}

interface GroupInfo {
  keys: string;
  summary: FindingSummary;
}

/** Per shared template list (one per package identity and version per database generation): its keys and counts. */
const groupInfos = new WeakMap<readonly FindingTemplate[], GroupInfo>();

function groupInfo(list: readonly FindingTemplate[]): GroupInfo {
  let info = groupInfos.get(list);
  if (!info) {
    info = { keys: list.map(templateKey).join(','), summary: summarize(list) };
    groupInfos.set(list, info);
  }
  return info;
}

function addSummary(into: FindingSummary, s: FindingSummary): void {
  into.total += s.total;
  into.fixable += s.fixable;
  into.malicious += s.malicious;
  for (const k of SEVERITIES) {
    into.bySeverity[k] += s.bySeverity[k];
    into.fixableBySeverity[k] += s.fixableBySeverity[k];
  }
}

/** The evaluation of an inventory's grouped findings: work per package with findings, not per finding. */
export function evaluationOf(groups: ReadonlyArray<{ packageIndex: number; findings: readonly FindingTemplate[] }>, db: DatabaseIdentity): Evaluation {
  const parts: string[] = [];
  const summary: FindingSummary = { total: 0, bySeverity: emptyCounts(), fixable: 0, fixableBySeverity: emptyCounts(), malicious: 0 };
  for (const g of groups) {
    if (g.findings.length === 0) continue;
    const info = groupInfo(g.findings);
    parts.push(`${g.packageIndex}:${info.keys}`);
    addSummary(summary, info.summary);
  }
  const refs = parts.join(';');
  return { refs, groups, fingerprint: createHash('sha256').update(refs).digest('hex'), summary, dbHash: db.hash, dbUpdatedAt: db.updatedAt };
}

export function evaluate(matcher: Matcher, inventory: Inventory, db: DatabaseIdentity): Evaluation {
  return evaluationOf(matcher.matchGrouped(inventory), db);
}

function splitRefs(refs: string): Map<number, string> {
  const out = new Map<number, string>();
  if (refs.length === 0) return out;
  for (const part of refs.split(';')) {
    const colon = part.indexOf(':');
    out.set(Number(part.slice(0, colon)), part.slice(colon + 1));
  }
  return out;
}

function refsOfGroup(packageIndex: number, keys: string | undefined): FindingRef[] {
  return keys ? keys.split(',').map((k): FindingRef => [packageIndex, k]) : [];
}

/** The references encoded in `refs`. */
export function parseRefs(refs: string): FindingRef[] {
  return [...splitRefs(refs)].flatMap(([i, keys]) => refsOfGroup(i, keys));
}

/** The references in `after` and not in `before` (added) and the reverse (removed); unchanged packages are skipped whole. */
export function differingRefs(before: string, after: string): { before: FindingRef[]; after: FindingRef[] } {
  const b = splitRefs(before);
  const a = splitRefs(after);
  const out = { before: [] as FindingRef[], after: [] as FindingRef[] };
  for (const i of new Set([...b.keys(), ...a.keys()])) {
    const old = b.get(i);
    const now = a.get(i);
    if (old === now) continue;
    const oldKeys = new Set(old ? old.split(',') : []);
    const newKeys = new Set(now ? now.split(',') : []);
    for (const k of newKeys) if (!oldKeys.has(k)) out.after.push([i, k]);
    for (const k of oldKeys) if (!newKeys.has(k)) out.before.push([i, k]);
  }
  return out;
}

/** Key -> template of an evaluation's groups (only `packageIndexes` when given). */
export function templatesOf(evaluation: Pick<Evaluation, 'groups'>, packageIndexes?: ReadonlySet<number>): Map<string, FindingTemplate> {
  const out = new Map<string, FindingTemplate>();
  for (const g of evaluation.groups) {
    if (packageIndexes && !packageIndexes.has(g.packageIndex)) continue;
    for (const t of g.findings) out.set(templateKey(t), t);
  }
  return out;
}

/** What a finding needs of its package. */
export type FindingPackage = Pick<InventoryPackage, 'name' | 'layerDiffId' | 'layerDigest'>;

/** Full findings from references (templates missing from `templates` are skipped). */
export function materializeFindings(refs: readonly FindingRef[], templates: ReadonlyMap<string, FindingTemplate>, packages: readonly (FindingPackage | undefined)[]): VulnerabilityFinding[] {
  const out: VulnerabilityFinding[] = [];
  for (const [packageIndex, key] of refs) {
    const t = templates.get(key);
    if (!t) continue;
    const p = packages[packageIndex];
    const f: VulnerabilityFinding = { ...t, aliases: [...t.aliases], cves: [...t.cves], fixedVersions: [...t.fixedVersions], packageIndex, packageName: p?.name ?? '' };
    if (p?.layerDiffId !== undefined) f.layerDiffId = p.layerDiffId;
    if (p?.layerDigest !== undefined) f.layerDigest = p.layerDigest;
    out.push(f);
  }
  return out;
}

/** What a change event says about one finding. */
export interface FindingBriefOf {
  id: string;
  severity: string;
  package: string;
  installedVersion: string;
  fixAvailable: boolean;
}

export interface FindingsChange {
  added: FindingBriefOf[];
  removed: FindingBriefOf[];
  /** Same vulnerability and package, other severity or fix information. */
  changed: FindingBriefOf[];
  /** Added findings that are critical or malicious (all of them, not only those listed). */
  newCritical: number;
}

type Resolved = { t: FindingTemplate; packageIndex: number };

function resolve(refs: readonly FindingRef[], templates: ReadonlyMap<string, FindingTemplate>): Map<string, Resolved> {
  const out = new Map<string, Resolved>();
  for (const [packageIndex, key] of refs) {
    const t = templates.get(key);
    if (t) out.set(`${t.id}@${packageIndex}`, { t, packageIndex });
  }
  return out;
}

/**
 * What changed, from the references only in the old findings (`removed`) and only in the new ones
 * (`added`, see {@link differingRefs}): a vulnerability on a package in both is a changed finding
 * (other severity, fixed versions...). Lists are cut at `limit`.
 */
export function diffRefs(
  removed: readonly FindingRef[],
  removedTemplates: ReadonlyMap<string, FindingTemplate>,
  added: readonly FindingRef[],
  addedTemplates: ReadonlyMap<string, FindingTemplate>,
  packages: ReadonlyArray<{ name: string } | undefined>,
  limit = 100,
): FindingsChange {
  const old = resolve(removed, removedTemplates);
  const now = resolve(added, addedTemplates);
  const change: FindingsChange = { added: [], removed: [], changed: [], newCritical: 0 };
  const brief = ({ t, packageIndex }: Resolved): FindingBriefOf => ({ id: t.id, severity: t.severity, package: packages[packageIndex]?.name ?? '', installedVersion: t.installedVersion, fixAvailable: t.fixAvailable });
  for (const [k, r] of now) {
    if (old.has(k)) {
      if (change.changed.length < limit) change.changed.push(brief(r));
      continue;
    }
    if (r.t.severity === 'critical' || r.t.malicious) change.newCritical++;
    if (change.added.length < limit) change.added.push(brief(r));
  }
  for (const [k, r] of old) if (!now.has(k) && change.removed.length < limit) change.removed.push(brief(r));
  return change;
}
