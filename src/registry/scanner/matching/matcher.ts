/**
 * Matching an inventory against the vulnerability database.
 *
 * - Language packages match in their ecosystem by normalised name (`npm`, `PyPI` per PEP 503, `Go`
 *   with `stdlib` for the toolchain, `Maven` as `groupId:artifactId`, ...).
 * - OS packages match only records of the image's own release ecosystem (`Ubuntu:18.04:LTS`, not
 *   `Ubuntu:Pro:18.04:LTS` nor another release; `Alpine:v3.18`; `Debian:12` plus release-less
 *   `Debian`), by the name the distro keys its advisories with: the dpkg source package (with the
 *   `Source:` version when given) for Debian/Ubuntu, the apk origin for Alpine; for rpm-based
 *   distros both the source RPM and the binary name (Red Hat keys either).
 * - Findings for the same package whose ids are aliases of each other (CVE/GHSA/PYSEC/DSA...) are
 *   merged into one, keeping the most specific id.
 *
 * Speed: lookups are Map hits on (ecosystem, name); evaluations are memoised per database
 * generation by (ecosystem, name, version), so re-matching many inventories that share packages
 * costs little more than the lookups.
 */
import type { Inventory, InventoryPackage, VulnerabilityFinding } from '../model.ts';
import type { MatchInput } from '../store.ts';
import type { IndexEntry, VulnDatabase } from '../vulndb/database.ts';
import { isOsPackage, languageEcosystem, normalizePackageName, osEcosystemSelector, selectorMatches, type OsEcosystemSelector } from '../vulndb/ecosystems.ts';
import { severityRank } from '../vulndb/severity.ts';
import { baseEcosystem, schemeForEcosystem } from '../versions/index.ts';
import { goToolchainToSemVer } from '../versions/semver.ts';
import { evaluateAffected } from './evaluate.ts';

/** One (ecosystem, name, version) question asked of the database for a package. */
interface Query {
  ecosystem: string;
  name: string;
  key: string;
  version: string;
}

interface RawMatch {
  entry: IndexEntry;
  query: Query;
  fixed: string[];
}

const KIND_SCHEME: Record<string, string> = { dpkg: 'dpkg', apk: 'apk', rpm: 'rpm' };

function withEpoch(version: string, epoch: number | undefined): string {
  return epoch !== undefined && epoch > 0 && !version.includes(':') ? `${epoch}:${version}` : version;
}

/** Prefers the id a user of that ecosystem knows best: the distro's or ecosystem's own database, then GHSA, then CVE. */
function idPreference(id: string, ecosystem: string): number {
  const base = baseEcosystem(ecosystem);
  const prefix = id.split('-')[0] ?? '';
  const native: Record<string, string[]> = {
    Debian: ['DSA', 'DLA', 'DTSA', 'DEBIAN'],
    Ubuntu: ['USN', 'UBUNTU'],
    Alpine: ['ALPINE'],
    Go: ['GO'],
    PyPI: ['PYSEC'],
    'crates.io': ['RUSTSEC'],
    RubyGems: [],
    Packagist: [],
  };
  if (prefix === 'MAL') return 0;
  if ((native[base] ?? []).includes(prefix)) return 1;
  if (prefix === 'GHSA') return 2;
  if (prefix === 'CVE') return 4;
  return 3;
}

/** A finding without the per-package fields; shared (frozen) between packages with identical identity and version. */
export type FindingTemplate = Readonly<Omit<VulnerabilityFinding, 'packageIndex' | 'packageName' | 'layerDiffId' | 'layerDigest'>>;

/** The findings of one inventory package, as shared templates (no per-finding allocation). */
export interface PackageFindings {
  packageIndex: number;
  findings: readonly FindingTemplate[];
}

const NO_TEMPLATES: readonly FindingTemplate[] = Object.freeze([]);

export class Matcher {
  private readonly db: VulnDatabase;
  private generation = -1;
  private readonly cache = new Map<string, RawMatch[]>();
  private readonly osEcosystems = new Map<string, string[]>();
  /** Per OS ecosystem ('' for none): package name -> version -> the packages of that name and version seen, with their templates. */
  private readonly packageCache = new Map<string, PackageCache>();

  constructor(db: VulnDatabase) {
    this.db = db;
  }

  private sync(): void {
    if (this.generation !== this.db.generation) {
      this.cache.clear();
      this.osEcosystems.clear();
      this.packageCache.clear();
      this.generation = this.db.generation;
    }
  }

  /** The database ecosystems that apply to an image's OS (cached per selector). */
  private ecosystemsFor(sel: OsEcosystemSelector): string[] {
    const k = `${sel.exact.join('|')}#${sel.prefixes.join('|')}`;
    let list = this.osEcosystems.get(k);
    if (!list) {
      list = [...this.db.ecosystems()].filter((e) => selectorMatches(sel, e));
      this.osEcosystems.set(k, list);
    }
    return list;
  }

  private queriesFor(p: InventoryPackage, sel: OsEcosystemSelector | undefined): Query[] {
    if (isOsPackage(p)) {
      if (!sel) return [];
      const out: Query[] = [];
      for (const ecosystem of this.ecosystemsFor(sel)) {
        if (schemeForEcosystem(ecosystem)?.name !== KIND_SCHEME[p.kind]) continue;
        const base = baseEcosystem(ecosystem);
        const source = p.sourceName && p.sourceName.length > 0 ? p.sourceName : undefined;
        const sourceVersion = source ? withEpoch(p.sourceVersion ?? p.version, p.sourceVersion ? undefined : p.epoch) : undefined;
        const binaryVersion = withEpoch(p.version, p.epoch);
        const names: [string, string][] = [];
        if (base === 'Debian' || base === 'Ubuntu' || base === 'Alpine') {
          names.push(source ? [source, sourceVersion!] : [p.name, binaryVersion]);
        } else {
          if (source) names.push([source, sourceVersion!]);
          if (!source || source !== p.name) names.push([p.name, binaryVersion]);
        }
        for (const [name, version] of names) out.push({ ecosystem, name, key: normalizePackageName(ecosystem, name), version });
      }
      return out;
    }
    const ecosystem = languageEcosystem(p.kind);
    if (!ecosystem) return [];
    let name = p.name;
    let version = p.version;
    if (p.kind === 'go-stdlib') {
      name = 'stdlib';
      version = goToolchainToSemVer(version);
    }
    return [{ ecosystem, name, key: normalizePackageName(ecosystem, name), version }];
  }

  private evaluate(q: Query): RawMatch[] {
    const ck = `${q.ecosystem}\u0000${q.key}\u0000${q.version}`;
    const cached = this.cache.get(ck);
    if (cached) return cached;
    const out: RawMatch[] = [];
    for (const entry of this.db.lookup(q.ecosystem, q.key)) {
      const ev = evaluateAffected(entry.affected, q.version);
      if (ev.affected) out.push({ entry, query: q, fixed: ev.fixed });
    }
    this.cache.set(ck, out);
    return out;
  }

  /** The (cached) finding templates of one package: evaluated once per identity, version and OS per database generation. */
  templatesFor(p: InventoryPackage, sel: OsEcosystemSelector | undefined): readonly FindingTemplate[] {
    this.sync();
    const cache = this.cacheFor(sel);
    return cached(cache, p.kind, p.name, p.version, p.sourceName ?? null, p.sourceVersion ?? null, p.epoch ?? null) ?? this.remember(cache, p, sel);
  }

  private cacheFor(sel: OsEcosystemSelector | undefined): PackageCache {
    const eco = sel ? sel.ecosystem : '';
    let cache = this.packageCache.get(eco);
    if (!cache) this.packageCache.set(eco, (cache = new Map()));
    return cache;
  }

  private remember(cache: PackageCache, p: InventoryPackage, sel: OsEcosystemSelector | undefined): readonly FindingTemplate[] {
    const built = this.build(p, sel);
    const templates = built.length === 0 ? NO_TEMPLATES : Object.freeze(built.map(freezeTemplate));
    let versions = cache.get(p.name);
    if (!versions) cache.set(p.name, (versions = new Map()));
    const entry: CachedPackage = { kind: p.kind, sourceName: p.sourceName ?? null, sourceVersion: p.sourceVersion ?? null, epoch: p.epoch ?? null, templates, next: versions.get(p.version) };
    versions.set(p.version, entry);
    return templates;
  }

  /** Findings for one package (de-duplicated by id and alias). */
  matchPackage(p: InventoryPackage, packageIndex: number, sel: OsEcosystemSelector | undefined): VulnerabilityFinding[] {
    return this.templatesFor(p, sel).map((t) => materialize(t, p, packageIndex));
  }

  private build(p: InventoryPackage, sel: OsEcosystemSelector | undefined): VulnerabilityFinding[] {
    const byId = new Map<string, VulnerabilityFinding>();
    const upstreamOf = new Map<string, string[]>();
    for (const q of this.queriesFor(p, sel)) {
      for (const m of this.evaluate(q)) {
        const rec = m.entry.record;
        const sev = m.entry.affected.severity;
        let f = byId.get(rec.id);
        if (!f) {
          f = {
            id: rec.id,
            aliases: [...rec.aliases],
            cves: [],
            packageIndex: 0,
            packageName: '',
            ecosystem: m.entry.affected.ecosystem,
            matchedName: m.entry.affected.name,
            installedVersion: q.version,
            fixedVersions: [],
            fixAvailable: false,
            severity: sev.severity,
            severitySource: sev.source,
            malicious: rec.id.startsWith('MAL-'),
          };
          if (sev.score !== undefined) f.score = sev.score;
          if (rec.summary !== undefined) f.summary = rec.summary;
          byId.set(rec.id, f);
          upstreamOf.set(rec.id, rec.upstream);
        } else if (severityRank(sev.severity) > severityRank(f.severity)) {
          f.severity = sev.severity;
          f.severitySource = sev.source;
          if (sev.score !== undefined) f.score = sev.score;
        }
        for (const v of m.fixed) if (!f.fixedVersions.includes(v)) f.fixedVersions.push(v);
      }
    }
    return mergeAliases([...byId.values()], upstreamOf);
  }

  /** All findings of an inventory, in package order. */
  match(inventory: Inventory): VulnerabilityFinding[] {
    const out: VulnerabilityFinding[] = [];
    for (const g of this.matchGrouped(inventory)) {
      const p = inventory.packages[g.packageIndex]!;
      for (const t of g.findings) out.push(materialize(t, p, g.packageIndex));
    }
    return out;
  }

  /**
   * Findings grouped by package, as shared templates: what re-evaluation of many stored
   * inventories uses (compare, count, store) without allocating a finding per package.
   */
  matchGrouped(inventory: Inventory): PackageFindings[] {
    this.sync();
    const sel = osEcosystemSelector(inventory.os);
    const out: PackageFindings[] = [];
    const packages = inventory.packages;
    for (let i = 0; i < packages.length; i++) {
      const t = this.templatesFor(packages[i]!, sel);
      if (t.length > 0) out.push({ packageIndex: i, findings: t });
    }
    return out;
  }

  /**
   * {@link matchGrouped} of a stored match input, straight from its tuples: re-evaluating
   * thousands of inventories builds a package object only for a version not seen before.
   */
  matchTuples(input: MatchInput): PackageFindings[] {
    this.sync();
    const sel = osEcosystemSelector(input.os);
    const cache = this.cacheFor(sel);
    const out: PackageFindings[] = [];
    const tuples = input.packages;
    for (let i = 0; i < tuples.length; i++) {
      const [kind, name, version, sourceName, sourceVersion, epoch] = tuples[i]!;
      let t = cached(cache, kind, name, version, sourceName, sourceVersion, epoch);
      if (t === undefined) {
        const p: InventoryPackage = { kind: kind as InventoryPackage['kind'], name, version, purl: '', path: '' };
        if (sourceName !== null) p.sourceName = sourceName;
        if (sourceVersion !== null) p.sourceVersion = sourceVersion;
        if (epoch !== null) p.epoch = epoch;
        t = this.remember(cache, p, sel);
      }
      if (t.length > 0) out.push({ packageIndex: i, findings: t });
    }
    return out;
  }
}

/** A package version seen (what its findings depend on besides name and version), with its templates; `next`: another of the same name and version. */
interface CachedPackage {
  kind: string;
  sourceName: string | null;
  sourceVersion: string | null;
  epoch: number | null;
  templates: readonly FindingTemplate[];
  next: CachedPackage | undefined;
}

/** Nested maps rather than one composed key: a lookup hashes the name and version as read, building no string. */
type PackageCache = Map<string, Map<string, CachedPackage>>;

function cached(cache: PackageCache, kind: string, name: string, version: string, sourceName: string | null, sourceVersion: string | null, epoch: number | null): readonly FindingTemplate[] | undefined {
  for (let e = cache.get(name)?.get(version); e !== undefined; e = e.next) {
    if (e.kind === kind && e.sourceName === sourceName && e.sourceVersion === sourceVersion && e.epoch === epoch) return e.templates;
  }
  return undefined;
}

function freezeTemplate(f: VulnerabilityFinding): FindingTemplate {
  const { packageIndex: _i, packageName: _n, layerDiffId: _l, layerDigest: _d, ...rest } = f;
  Object.freeze(rest.aliases);
  Object.freeze(rest.cves);
  Object.freeze(rest.fixedVersions);
  return Object.freeze(rest);
}

function materialize(t: FindingTemplate, p: InventoryPackage, packageIndex: number): VulnerabilityFinding {
  const f: VulnerabilityFinding = { ...t, aliases: [...t.aliases], cves: [...t.cves], fixedVersions: [...t.fixedVersions], packageIndex, packageName: p.name };
  if (p.layerDiffId !== undefined) f.layerDiffId = p.layerDiffId;
  if (p.layerDigest !== undefined) f.layerDigest = p.layerDigest;
  return f;
}

/** Union of findings whose id sets ({id} + aliases) intersect; the preferred id leads. */
function mergeAliases(findings: VulnerabilityFinding[], upstreamOf: Map<string, string[]>): VulnerabilityFinding[] {
  const finish = (f: VulnerabilityFinding, upstream: string[]): VulnerabilityFinding => {
    f.fixAvailable = f.fixedVersions.length > 0;
    const cves = new Set([f.id, ...f.aliases, ...upstream].filter((x) => /^CVE-\d{4}-\d+$/.test(x)));
    f.cves = [...cves].sort();
    return f;
  };
  if (findings.length <= 1) return findings.map((f) => finish(f, upstreamOf.get(f.id) ?? []));
  const parent = findings.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const owner = new Map<string, number>();
  findings.forEach((f, i) => {
    for (const id of [f.id, ...f.aliases]) {
      const j = owner.get(id);
      if (j === undefined) owner.set(id, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, VulnerabilityFinding[]>();
  findings.forEach((f, i) => {
    const r = find(i);
    let g = groups.get(r);
    if (!g) groups.set(r, (g = []));
    g.push(f);
  });
  const out: VulnerabilityFinding[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => idPreference(a.id, a.ecosystem) - idPreference(b.id, b.ecosystem) || (a.id < b.id ? -1 : 1));
    const lead = g[0]!;
    const upstream = [...(upstreamOf.get(lead.id) ?? [])];
    for (const other of g.slice(1)) {
      for (const id of [other.id, ...other.aliases]) if (id !== lead.id && !lead.aliases.includes(id)) lead.aliases.push(id);
      for (const v of other.fixedVersions) if (!lead.fixedVersions.includes(v)) lead.fixedVersions.push(v);
      if (severityRank(other.severity) > severityRank(lead.severity)) {
        lead.severity = other.severity;
        lead.severitySource = other.severitySource;
        if (other.score !== undefined) lead.score = other.score;
      }
      if (lead.score === undefined && other.score !== undefined) lead.score = other.score;
      lead.malicious ||= other.malicious;
      upstream.push(...(upstreamOf.get(other.id) ?? []));
    }
    out.push(finish(lead, upstream));
  }
  return out;
}

/** Convenience: match one inventory against a database. */
export function matchInventory(db: VulnDatabase, inventory: Inventory): VulnerabilityFinding[] {
  return new Matcher(db).match(inventory);
}
