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
  /** The template keys, in the list's order. */
  keyList: string[];
  keys: string;
  summary: FindingSummary;
  /** Old key lists of the same package -> what differs (see packageDiff). */
  diffs?: Map<string, Omit<PackageDiff, 'packageIndex'>>;
}

/** Per shared template list (one per package identity and version per database generation): its keys and counts. */
const groupInfos = new WeakMap<readonly FindingTemplate[], GroupInfo>();

function groupInfo(list: readonly FindingTemplate[]): GroupInfo {
  let info = groupInfos.get(list);
  if (!info) {
    const keyList = list.map(templateKey);
    info = { keyList, keys: keyList.join(','), summary: summarize(list) };
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

type Groups = ReadonlyArray<{ packageIndex: number; findings: readonly FindingTemplate[] }>;

/** The encoded references of grouped findings (see {@link Evaluation}). */
export function refsOfGroups(groups: Groups): string {
  let refs = '';
  for (const g of groups) {
    if (g.findings.length === 0) continue;
    const part = `${g.packageIndex}:${groupInfo(g.findings).keys}`;
    refs = refs.length === 0 ? part : `${refs};${part}`;
  }
  return refs;
}

export function fingerprintOf(refs: string): string {
  return createHash('sha256').update(refs).digest('hex');
}

/**
 * The evaluation of an inventory's grouped findings: work per package with findings, not per
 * finding. Re-evaluation passes the refs and fingerprint it already computed to tell unchanged
 * images apart, so only changed ones pay for the counts.
 */
export function evaluationOf(groups: Groups, db: DatabaseIdentity, refs = refsOfGroups(groups), fingerprint = fingerprintOf(refs)): Evaluation {
  const summary: FindingSummary = { total: 0, bySeverity: emptyCounts(), fixable: 0, fixableBySeverity: emptyCounts(), malicious: 0 };
  for (const g of groups) if (g.findings.length > 0) addSummary(summary, groupInfo(g.findings).summary);
  return { refs, groups, fingerprint, summary, dbHash: db.hash, dbUpdatedAt: db.updatedAt };
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

/** One package whose findings differ: the keys of its old findings that are gone, its new findings that were not there. */
export interface PackageDiff {
  packageIndex: number;
  removed: string[];
  added: readonly FindingTemplate[];
}

/** (package index, start, end of its keys) per package of encoded references, read in place; undefined when not in package order (never written so). */
function segmentBounds(refs: string): Int32Array | undefined {
  if (refs.length === 0) return new Int32Array(0);
  let n = 1;
  for (let p = refs.indexOf(';'); p >= 0; p = refs.indexOf(';', p + 1)) n++;
  const out = new Int32Array(n * 3);
  let pos = 0;
  for (let k = 0; k < n; k++) {
    const colon = refs.indexOf(':', pos);
    let end = refs.indexOf(';', colon);
    if (end < 0) end = refs.length;
    let index = 0;
    for (let c = pos; c < colon; c++) index = index * 10 + refs.charCodeAt(c) - 48;
    if (k > 0 && index <= out[k * 3 - 3]!) return undefined;
    out[k * 3] = index;
    out[k * 3 + 1] = colon + 1;
    out[k * 3 + 2] = end;
    pos = end + 1;
  }
  return out;
}

/**
 * What differs between a package's old key list and its new findings. Images sharing a base share
 * both (a package with hundreds of findings in every image of a distro), so the answer is kept
 * per new template list for a few old lists, and the (read-only) arrays are shared.
 */
function packageDiff(keys: string, findings: readonly FindingTemplate[], info: GroupInfo): Omit<PackageDiff, 'packageIndex'> {
  const known = info.diffs?.get(keys);
  if (known) return known;
  const old = keys.split(',');
  const oldSet = new Set(old);
  const newSet = new Set(info.keyList);
  const added: FindingTemplate[] = [];
  for (let k = 0; k < info.keyList.length; k++) if (!oldSet.has(info.keyList[k]!)) added.push(findings[k]!);
  const diff = { removed: old.filter((key) => !newSet.has(key)), added };
  info.diffs ??= new Map();
  if (info.diffs.size < 16) info.diffs.set(keys, diff);
  return diff;
}

/**
 * The packages whose findings differ between stored references `before` and a new evaluation:
 * one merge walk over both (package order) that reads `before` in place, comparing each package's
 * key list as a string, so an unchanged package costs one comparison and a package new to the
 * findings reuses its shared template list. No per-finding allocation.
 */
export function diffGroups(before: string, evaluation: Pick<Evaluation, 'groups'>): PackageDiff[] {
  const groups = evaluation.groups.filter((g) => g.findings.length > 0);
  for (let i = 1; i < groups.length; i++) {
    if (groups[i]!.packageIndex <= groups[i - 1]!.packageIndex) {
      groups.sort((x, y) => x.packageIndex - y.packageIndex);
      break;
    }
  }
  const old = segmentBounds(before);
  if (!old) return diffGroups([...splitRefs(before)].sort(([x], [y]) => x - y).map(([i, keys]) => `${i}:${keys}`).join(';'), { groups });
  const out: PackageDiff[] = [];
  // Packages without findings before come last (the order change events have always listed them in).
  const fresh: PackageDiff[] = [];
  const n = old.length / 3;
  let i = 0;
  let j = 0;
  while (i < n || j < groups.length) {
    const index = i < n ? old[i * 3]! : Infinity;
    const g = groups[j];
    if (g === undefined || index < g.packageIndex) {
      out.push({ packageIndex: index, removed: before.slice(old[i * 3 + 1], old[i * 3 + 2]).split(','), added: [] });
      i++;
      continue;
    }
    j++;
    if (index > g.packageIndex) {
      fresh.push({ packageIndex: g.packageIndex, removed: [], added: g.findings });
      continue;
    }
    const info = groupInfo(g.findings);
    const start = old[i * 3 + 1]!;
    const end = old[i * 3 + 2]!;
    i++;
    if (end - start === info.keys.length && before.slice(start, end) === info.keys) continue;
    out.push({ packageIndex: g.packageIndex, ...packageDiff(before.slice(start, end), g.findings, info) });
  }
  return fresh.length === 0 ? out : out.concat(fresh);
}

/** Key -> template of an evaluation's groups (only `packageIndexes` when given). */
export function templatesOf(evaluation: Pick<Evaluation, 'groups'>, packageIndexes?: ReadonlySet<number>): Map<string, FindingTemplate> {
  const out = new Map<string, FindingTemplate>();
  for (const g of evaluation.groups) {
    if (packageIndexes && !packageIndexes.has(g.packageIndex)) continue;
    const keys = groupInfo(g.findings).keyList;
    for (let k = 0; k < keys.length; k++) out.set(keys[k]!, g.findings[k]!);
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

/**
 * What changed, from {@link diffGroups} and the templates of the removed keys (read from the
 * store): a vulnerability on a package on both sides is a changed finding (other severity, fixed
 * versions...). Lists are cut at `limit`; `newCritical` counts every added critical or malicious
 * finding.
 */
export function changeOf(diffs: readonly PackageDiff[], removedTemplates: ReadonlyMap<string, FindingTemplate>, nameOf: (packageIndex: number) => string, limit = 100): FindingsChange {
  const change: FindingsChange = { added: [], removed: [], changed: [], newCritical: 0 };
  const removedLater: Array<{ t: FindingTemplate; packageIndex: number }> = [];
  const brief = (t: FindingTemplate, packageIndex: number): FindingBriefOf => ({ id: t.id, severity: t.severity, package: nameOf(packageIndex), installedVersion: t.installedVersion, fixAvailable: t.fixAvailable });
  for (const d of diffs) {
    let gone: Map<string, FindingTemplate> | undefined;
    for (const key of d.removed) {
      const t = removedTemplates.get(key);
      if (t) (gone ??= new Map()).set(t.id, t);
    }
    for (const t of d.added) {
      if (gone?.delete(t.id)) {
        if (change.changed.length < limit) change.changed.push(brief(t, d.packageIndex));
        continue;
      }
      if (t.severity === 'critical' || t.malicious) change.newCritical++;
      if (change.added.length < limit) change.added.push(brief(t, d.packageIndex));
    }
    if (gone) for (const t of gone.values()) if (removedLater.length < limit) removedLater.push({ t, packageIndex: d.packageIndex });
  }
  change.removed = removedLater.map(({ t, packageIndex }) => brief(t, packageIndex));
  return change;
}
