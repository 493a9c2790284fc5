/**
 * SBOM-first ingestion: an SBOM its builder attached to an image (an OCI referrer with artifact
 * type `application/vnd.cyclonedx+json` or `application/spdx+json`, an in-toto statement or DSSE
 * envelope wrapping one as cosign and syft attach them, or a BuildKit attestation manifest in the
 * image index) is parsed defensively, its packages (by purl) compared with Portcullis' own
 * inventory, and the package versions only it knows are matched too, marked as coming from the
 * SBOM. Portcullis' own SBOM referrers are recognised by their annotation and never ingested.
 *
 * The SBOM is data from the pusher, not evidence: it can add findings, never remove any.
 */
import type { SqlDriver } from '../storage/sql/driver.ts';
import type { InventoryPackage } from './model.ts';

export const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';
export const SPDX_JSON = 'application/spdx+json';
export const IN_TOTO_JSON = 'application/vnd.in-toto+json';
export const DSSE_JSON = 'application/vnd.dsse.envelope.v1+json';
/** Artifact (or layer) types that may carry a builder SBOM. */
export const BUILDER_SBOM_TYPES: readonly string[] = [CYCLONEDX_JSON, SPDX_JSON, IN_TOTO_JSON, DSSE_JSON];
/** The annotation on Portcullis' own SBOM referrers (service.ts). */
export const OWN_SBOM_ANNOTATION = 'dev.portcullis.scanner.version';

export const MAX_BUILDER_SBOM_BYTES = 64 * 1024 * 1024;
export const MAX_BUILDER_SBOM_PACKAGES = 200_000;
/** Entries listed per difference kind in a report (the counts are always complete). */
const MAX_LISTED = 500;

export class BuilderSbomError extends Error {
  override name = 'BuilderSbomError';
}

/** A package of a builder SBOM: only what a purl says (a component without a purl cannot be compared or matched). */
export interface SbomPackage {
  purl: string;
}

export interface ParsedSbom {
  format: 'cyclonedx' | 'spdx';
  /** The tool that wrote it, as the document says (`syft 1.4.1`, `buildkit`...). */
  tool?: string;
  packages: SbomPackage[];
}

const SBOM_PREDICATES = [/^https:\/\/spdx\.dev\/Document/, /^https:\/\/cyclonedx\.org\/bom/];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The SBOM in `bytes`: CycloneDX JSON, SPDX 2.x JSON, an in-toto statement whose predicate is one,
 * or a DSSE envelope around such a statement. Anything else (provenance, an unreadable document)
 * is a {@link BuilderSbomError} with the reason.
 */
export function parseBuilderSbom(bytes: Buffer): ParsedSbom {
  if (bytes.length > MAX_BUILDER_SBOM_BYTES) throw new BuilderSbomError(`SBOM larger than ${MAX_BUILDER_SBOM_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BuilderSbomError(`not JSON: ${(err as Error).message}`);
  }
  return parseValue(doc, 0);
}

function parseValue(doc: unknown, depth: number): ParsedSbom {
  if (!isObject(doc)) throw new BuilderSbomError('not a JSON object');
  if (depth > 2) throw new BuilderSbomError('envelopes nested too deep');
  if (typeof doc.payloadType === 'string' && typeof doc.payload === 'string') {
    if (doc.payloadType !== IN_TOTO_JSON) throw new BuilderSbomError(`DSSE payload type ${JSON.stringify(doc.payloadType)} is not an in-toto statement`);
    let statement: unknown;
    try {
      statement = JSON.parse(Buffer.from(doc.payload, 'base64').toString('utf8'));
    } catch {
      throw new BuilderSbomError('the DSSE payload is not base64 JSON');
    }
    return parseValue(statement, depth + 1);
  }
  if (typeof doc._type === 'string' && doc._type.startsWith('https://in-toto.io/Statement/')) {
    const type = typeof doc.predicateType === 'string' ? doc.predicateType : '';
    if (!SBOM_PREDICATES.some((p) => p.test(type))) throw new BuilderSbomError(`in-toto predicate ${JSON.stringify(type)} is not an SBOM`);
    return parseValue(doc.predicate, depth + 1);
  }
  if (doc.bomFormat === 'CycloneDX') return cyclonedx(doc);
  if (typeof doc.spdxVersion === 'string' && doc.spdxVersion.startsWith('SPDX-')) return spdx(doc);
  throw new BuilderSbomError('neither CycloneDX nor SPDX JSON');
}

class Collector {
  readonly packages: SbomPackage[] = [];
  readonly #seen = new Set<string>();
  add(purl: unknown): void {
    if (typeof purl !== 'string' || !purl.startsWith('pkg:') || purl.length > 2048 || this.#seen.has(purl)) return;
    // The image itself (syft and BuildKit describe it as a package too) is not a package in it.
    if (purl.startsWith('pkg:oci/') || purl.startsWith('pkg:docker/')) return;
    if (this.packages.length >= MAX_BUILDER_SBOM_PACKAGES) throw new BuilderSbomError(`more than ${MAX_BUILDER_SBOM_PACKAGES} packages`);
    this.#seen.add(purl);
    this.packages.push({ purl });
  }
}

function cyclonedx(doc: Record<string, unknown>): ParsedSbom {
  const c = new Collector();
  // Components nest (a jar in a jar); walked iteratively so a hostile depth cannot blow the stack.
  const stack: unknown[] = [doc.components];
  while (stack.length > 0) {
    const list = stack.pop();
    if (!Array.isArray(list)) continue;
    for (const comp of list) {
      if (!isObject(comp)) continue;
      c.add(comp.purl);
      if (Array.isArray(comp.components)) stack.push(comp.components);
    }
  }
  const out: ParsedSbom = { format: 'cyclonedx', packages: c.packages };
  const tools = isObject(doc.metadata) ? doc.metadata.tools : undefined;
  const list = Array.isArray(tools) ? tools : isObject(tools) && Array.isArray(tools.components) ? tools.components : [];
  const first = list.find(isObject);
  if (first && typeof first.name === 'string') out.tool = `${first.name}${typeof first.version === 'string' ? ` ${first.version}` : ''}`.slice(0, 200);
  return out;
}

function spdx(doc: Record<string, unknown>): ParsedSbom {
  const c = new Collector();
  for (const p of Array.isArray(doc.packages) ? doc.packages : []) {
    if (!isObject(p) || !Array.isArray(p.externalRefs)) continue;
    for (const ref of p.externalRefs) {
      if (isObject(ref) && ref.referenceType === 'purl') c.add(ref.referenceLocator);
    }
  }
  const out: ParsedSbom = { format: 'spdx', packages: c.packages };
  const creators = isObject(doc.creationInfo) && Array.isArray(doc.creationInfo.creators) ? doc.creationInfo.creators : [];
  const tool = creators.find((x): x is string => typeof x === 'string' && x.startsWith('Tool:'));
  if (tool) out.tool = tool.slice(5).trim().slice(0, 200);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Package URLs

export interface ParsedPurl {
  type: string;
  namespace: string | undefined;
  name: string;
  version: string | undefined;
  qualifiers: Record<string, string>;
}

export function parsePurl(text: string): ParsedPurl | undefined {
  const m = /^pkg:([A-Za-z.+-][A-Za-z0-9.+-]*)\/([^?#]+?)(?:\?([^#]*))?(?:#.*)?$/.exec(text);
  if (!m) return undefined;
  let path = m[2]!;
  let version: string | undefined;
  const at = path.lastIndexOf('@');
  if (at > 0) {
    version = path.slice(at + 1);
    path = path.slice(0, at);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) return undefined;
  const qualifiers: Record<string, string> = {};
  try {
    for (const pair of (m[3] ?? '').split('&')) {
      const eq = pair.indexOf('=');
      if (eq > 0) qualifiers[pair.slice(0, eq).toLowerCase()] = decodeURIComponent(pair.slice(eq + 1));
    }
    const decoded = segments.map((s) => decodeURIComponent(s));
    const type = m[1]!.toLowerCase();
    const name = decoded.pop()!;
    return { type, namespace: decoded.length > 0 ? decoded.join('/') : undefined, name, version: version === undefined ? undefined : decodeURIComponent(version), qualifiers };
  } catch {
    return undefined;
  }
}

/** What identifies a package across SBOM and inventory: type, namespace and name, normalised where the ecosystem is case-blind. */
function identity(p: ParsedPurl): string {
  let name = p.name;
  let ns = p.namespace ?? '';
  if (p.type === 'pypi') name = name.toLowerCase().replace(/[-_.]+/g, '-');
  if (p.type === 'deb' || p.type === 'apk' || p.type === 'rpm' || p.type === 'golang' || p.type === 'nuget' || p.type === 'composer') {
    name = name.toLowerCase();
    ns = ns.toLowerCase();
  }
  return `${p.type}/${ns}/${name}`;
}

function versionOf(p: ParsedPurl): string {
  const v = p.version ?? '';
  return p.type === 'golang' ? v.replace(/^v/, '') : v;
}

const KINDS: Record<string, InventoryPackage['kind']> = {
  deb: 'dpkg',
  apk: 'apk',
  rpm: 'rpm',
  npm: 'npm',
  pypi: 'python',
  golang: 'go-module',
  maven: 'java',
  gem: 'gem',
  cargo: 'cargo',
  nuget: 'nuget',
  composer: 'composer',
};

/** An inventory package for a purl the scanner can match (undefined for other types or no version). */
export function packageFromPurl(purl: string, referrer: string): InventoryPackage | undefined {
  const p = parsePurl(purl);
  if (!p || !p.version) return undefined;
  const kind = KINDS[p.type];
  if (!kind) return undefined;
  const full = p.namespace ? `${p.namespace}/${p.name}` : p.name;
  const pkg: InventoryPackage = { kind, name: p.name, version: p.version, purl, path: `sbom:${referrer}`, origin: 'sbom' };
  switch (kind) {
    case 'dpkg':
    case 'apk': {
      const upstream = p.qualifiers.upstream;
      if (upstream) {
        // syft writes `upstream=glibc` or `upstream=glibc@2.36-9`.
        const i = upstream.indexOf('@');
        pkg.sourceName = i > 0 ? upstream.slice(0, i) : upstream;
        if (i > 0) pkg.sourceVersion = upstream.slice(i + 1);
      } else pkg.sourceName = p.name;
      if (kind === 'apk') pkg.sourceVersion ??= p.version;
      break;
    }
    case 'rpm': {
      const epoch = Number(p.qualifiers.epoch ?? '0');
      if (Number.isSafeInteger(epoch) && epoch > 0) {
        pkg.version = `${epoch}:${p.version}`;
        pkg.epoch = epoch;
      }
      break;
    }
    case 'go-module':
      if (full === 'stdlib') {
        pkg.kind = 'go-stdlib';
        pkg.name = 'stdlib';
      } else pkg.name = full;
      pkg.version = p.version.replace(/^v/, '');
      break;
    case 'java':
      if (!p.namespace) return undefined;
      pkg.name = `${p.namespace}:${p.name}`;
      break;
    case 'python':
      pkg.name = p.name.toLowerCase().replace(/[-_.]+/g, '-');
      break;
    case 'npm':
    case 'composer':
      pkg.name = full;
      break;
    default:
      break;
  }
  return pkg;
}

// ------------------------------------------------------------------------------------------------
// Comparison with the inventory

/** What one builder SBOM said, compared with the inventory (stored with the inventory, shown in reports). */
export interface BuilderSbomComparison {
  /** The referrer manifest's digest. */
  referrer: string;
  format: 'cyclonedx' | 'spdx';
  tool?: string;
  packages: number;
  /** Packages (purl without version) only the SBOM lists. */
  onlyInSbom: string[];
  onlyInSbomCount: number;
  /** Packages only Portcullis found. */
  onlyInInventory: string[];
  onlyInInventoryCount: number;
  /** Packages both list, with other versions. */
  versionDiffers: Array<{ package: string; sbom: string[]; inventory: string[] }>;
  versionDiffersCount: number;
  /** SBOM package versions added to the inventory for matching (kinds the scanner matches). */
  matched: number;
}

export interface StoredBuilderSbom {
  id: string;
  repository: string;
  subject: string;
  format: 'cyclonedx' | 'spdx';
  tool?: string;
  packages: SbomPackage[];
  createdAt: number;
}

function versionsByIdentity(purls: Iterable<string>): Map<string, { display: string; versions: Set<string> }> {
  const out = new Map<string, { display: string; versions: Set<string> }>();
  for (const text of purls) {
    const p = parsePurl(text);
    if (!p) continue;
    const key = identity(p);
    let e = out.get(key);
    if (!e) {
      e = { display: `pkg:${p.type}/${p.namespace ? `${p.namespace}/` : ''}${p.name}`, versions: new Set() };
      out.set(key, e);
    }
    e.versions.add(versionOf(p));
  }
  return out;
}

/**
 * The inventory with the builder SBOMs' extra package versions appended (after the scanned ones,
 * so finding references of scanned packages keep their indexes), and one comparison per SBOM.
 * `scanned` holds no SBOM packages.
 */
export function mergeBuilderSboms(scanned: InventoryPackage[], sboms: StoredBuilderSbom[]): { packages: InventoryPackage[]; comparisons: BuilderSbomComparison[] } {
  const inventory = versionsByIdentity(scanned.filter((p) => !p.dev).map((p) => p.purl));
  const packages = [...scanned];
  const added = new Set<string>();
  const comparisons: BuilderSbomComparison[] = [];
  for (const sbom of [...sboms].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const listed = versionsByIdentity(sbom.packages.map((p) => p.purl));
    const onlyInSbom: string[] = [];
    const onlyInInventory: string[] = [];
    const versionDiffers: BuilderSbomComparison['versionDiffers'] = [];
    for (const [key, s] of listed) {
      const i = inventory.get(key);
      if (!i) onlyInSbom.push(s.display);
      else if ([...s.versions].some((v) => !i.versions.has(v)) || [...i.versions].some((v) => !s.versions.has(v))) {
        versionDiffers.push({ package: s.display, sbom: [...s.versions].sort(), inventory: [...i.versions].sort() });
      }
    }
    for (const [key, i] of inventory) if (!listed.has(key)) onlyInInventory.push(i.display);
    let matched = 0;
    for (const { purl } of sbom.packages) {
      const p = parsePurl(purl);
      if (!p) continue;
      if (inventory.get(identity(p))?.versions.has(versionOf(p))) continue;
      const key = `${identity(p)}@${versionOf(p)}`;
      if (added.has(key)) continue;
      const pkg = packageFromPurl(purl, sbom.id);
      if (!pkg) continue;
      added.add(key);
      packages.push(pkg);
      matched++;
    }
    onlyInSbom.sort();
    onlyInInventory.sort();
    versionDiffers.sort((a, b) => (a.package < b.package ? -1 : 1));
    const c: BuilderSbomComparison = {
      referrer: sbom.id,
      format: sbom.format,
      packages: sbom.packages.length,
      onlyInSbom: onlyInSbom.slice(0, MAX_LISTED),
      onlyInSbomCount: onlyInSbom.length,
      onlyInInventory: onlyInInventory.slice(0, MAX_LISTED),
      onlyInInventoryCount: onlyInInventory.length,
      versionDiffers: versionDiffers.slice(0, MAX_LISTED),
      versionDiffersCount: versionDiffers.length,
      matched,
    };
    if (sbom.tool !== undefined) c.tool = sbom.tool;
    comparisons.push(c);
  }
  return { packages, comparisons };
}

// ------------------------------------------------------------------------------------------------
// Storage

export class BuilderSbomStore {
  readonly #db: SqlDriver;

  constructor(db: SqlDriver) {
    this.#db = db;
  }

  async put(r: StoredBuilderSbom): Promise<void> {
    await this.#db.run(
      `INSERT INTO scan_builder_sboms (id, repository, subject, format, tool, packages, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id, repository) DO NOTHING`,
      [r.id, r.repository, r.subject, r.format, r.tool ?? null, JSON.stringify(r.packages.map((p) => p.purl)), r.createdAt],
    );
  }

  /** The builder SBOMs of an image (from any repository holding it). */
  async forSubject(subject: string): Promise<StoredBuilderSbom[]> {
    const rows = await this.#db.all('SELECT * FROM scan_builder_sboms WHERE subject = $1 ORDER BY id LIMIT 100', [subject]);
    return rows.map((r) => {
      const out: StoredBuilderSbom = {
        id: String(r.id),
        repository: String(r.repository),
        subject: String(r.subject),
        format: String(r.format) as StoredBuilderSbom['format'],
        packages: (JSON.parse(String(r.packages)) as string[]).map((purl) => ({ purl })),
        createdAt: Number(r.created_at),
      };
      if (r.tool !== null && r.tool !== undefined) out.tool = String(r.tool);
      return out;
    });
  }

  /** Forgets the SBOM referrer `id` pushed to `repository`; returns its subject when there was one. */
  async delete(repository: string, id: string): Promise<string | undefined> {
    const row = (await this.#db.all('SELECT subject FROM scan_builder_sboms WHERE id = $1 AND repository = $2', [id, repository]))[0];
    if (!row) return undefined;
    await this.#db.run('DELETE FROM scan_builder_sboms WHERE id = $1 AND repository = $2', [id, repository]);
    return String(row.subject);
  }
}
