/**
 * SBOM-first ingestion: an SBOM its builder attached to an image (an OCI referrer with artifact
 * type `application/vnd.cyclonedx+json` or `application/spdx+json`, an in-toto statement or DSSE
 * envelope wrapping one as cosign and syft attach them, a BuildKit attestation manifest in the
 * image index, or `cosign attach sbom`'s tag `sha256-<hex>.sbom`) is parsed defensively, its
 * packages compared with Portcullis' own inventory, and the package versions only it knows are
 * matched too, marked as coming from the SBOM. Portcullis' own SBOM referrers are recognised by
 * their annotation and never ingested.
 *
 * Packages are compared by purl. A component without one (hand-written SBOMs, older tools) is
 * resolved by name when that is unambiguous (see {@link resolveComponent}); otherwise it is listed
 * as unmatched in the comparison, never guessed.
 *
 * The SBOM is data from the pusher, not evidence: it can add findings, never remove any.
 */
import type { SqlDriver } from '../storage/sql/driver.ts';
import { purl } from './inventory/purl.ts';
import type { InventoryPackage } from './model.ts';

export const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';
export const SPDX_JSON = 'application/spdx+json';
export const IN_TOTO_JSON = 'application/vnd.in-toto+json';
export const DSSE_JSON = 'application/vnd.dsse.envelope.v1+json';
/** Artifact (or layer) types that may carry a builder SBOM. */
export const BUILDER_SBOM_TYPES: readonly string[] = [CYCLONEDX_JSON, SPDX_JSON, IN_TOTO_JSON, DSSE_JSON];
/**
 * Layer types of `cosign attach sbom` manifests: the cosign SBOM spec names `text/spdx` and
 * `application/vnd.cyclonedx` with optional `+json`/`+xml` suffixes; cosign releases wrote
 * `text/spdx` (tag-value, or JSON before format detection), `spdx+json` and `text/spdx+json`.
 */
export const COSIGN_SBOM_LAYER_TYPES: readonly string[] = ['text/spdx', 'text/spdx+json', 'spdx+json', SPDX_JSON, 'application/vnd.cyclonedx', CYCLONEDX_JSON];
/** SBOM encodings that are recognised but not read (a reason in the log, nothing merged). */
const UNREAD_SBOM_TYPES: Record<string, string> = {
  'application/vnd.cyclonedx+xml': 'CycloneDX XML is not read (CycloneDX JSON is)',
  'text/spdx+xml': 'SPDX XML is not read (SPDX JSON and tag-value are)',
  'application/vnd.syft+json': "syft's own JSON is not read (its CycloneDX or SPDX output is)",
};
export const UNREAD_SBOM_LAYER_TYPES: readonly string[] = Object.keys(UNREAD_SBOM_TYPES);

/** The subject of a cosign tag-scheme SBOM (`[prefix]sha256-<hex>.sbom`, cosign's `--attachment-tag-prefix`), or undefined. */
export function cosignSbomSubject(tag: string | undefined): string | undefined {
  const m = tag === undefined ? null : /sha256-([0-9a-f]{64})\.sbom$/.exec(tag);
  return m ? `sha256:${m[1]}` : undefined;
}
/** The annotation on Portcullis' own SBOM referrers (service.ts). */
export const OWN_SBOM_ANNOTATION = 'dev.portcullis.scanner.version';

export const MAX_BUILDER_SBOM_BYTES = 64 * 1024 * 1024;
export const MAX_BUILDER_SBOM_PACKAGES = 200_000;
/** Entries listed per difference kind in a report (the counts are always complete). */
const MAX_LISTED = 500;

export class BuilderSbomError extends Error {
  override name = 'BuilderSbomError';
}

/** A package of a builder SBOM: its purl, or what a component without one says of itself. */
export type SbomPackage = { purl: string } | SbomComponent;

/** A component without a purl: name, version, group (Maven groupId, npm scope...) and the ecosystems (purl types) its document hints at. */
export interface SbomComponent {
  name: string;
  version?: string;
  group?: string;
  ecosystems?: string[];
}

export function hasPurl(p: SbomPackage): p is { purl: string } {
  return 'purl' in p;
}

/** A key telling packages of SBOMs apart (for de-duplication). */
export function sbomPackageKey(p: SbomPackage): string {
  return hasPurl(p) ? p.purl : `\u0000${p.group ?? ''}/${p.name}@${p.version ?? ''}#${(p.ecosystems ?? []).join(',')}`;
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
export function parseBuilderSbom(bytes: Buffer, mediaType?: string): ParsedSbom {
  if (bytes.length > MAX_BUILDER_SBOM_BYTES) throw new BuilderSbomError(`SBOM larger than ${MAX_BUILDER_SBOM_BYTES} bytes`);
  const unread = mediaType === undefined ? undefined : UNREAD_SBOM_TYPES[mediaType];
  if (unread !== undefined) throw new BuilderSbomError(unread);
  // `text/spdx` is SPDX's tag-value format, though cosign used the type for JSON documents too.
  const text = bytes.toString('utf8');
  if (/^\s*(?:##[^\n]*\n\s*)*SPDXVersion:/.test(text)) return spdx(spdxTagValue(text));
  let doc: unknown;
  try {
    doc = JSON.parse(text);
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
  add(purl: unknown): boolean {
    if (typeof purl !== 'string' || !purl.startsWith('pkg:') || purl.length > 2048) return false;
    // The image itself (syft and BuildKit describe it as a package too) is not a package in it.
    if (purl.startsWith('pkg:oci/') || purl.startsWith('pkg:docker/')) return true;
    this.#push(purl, { purl });
    return true;
  }

  /** A component without a usable purl (only a string name is kept; lengths are bounded). */
  addComponent(name: unknown, version: unknown, group: unknown, ecosystems: Set<string>): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > 512) return;
    const c: SbomComponent = { name };
    if (typeof version === 'string' && version.length > 0 && version.length <= 256 && version !== 'NOASSERTION') c.version = version;
    if (typeof group === 'string' && group.length > 0 && group.length <= 512) c.group = group;
    if (ecosystems.size > 0) c.ecosystems = [...ecosystems].sort();
    this.#push(sbomPackageKey(c), c);
  }

  #push(key: string, p: SbomPackage): void {
    if (this.#seen.has(key)) return;
    if (this.packages.length >= MAX_BUILDER_SBOM_PACKAGES) throw new BuilderSbomError(`more than ${MAX_BUILDER_SBOM_PACKAGES} packages`);
    this.#seen.add(key);
    this.packages.push(p);
  }
}

/** CycloneDX component types that are not packages of the image (the OS itself, files, the container...). */
const NOT_PACKAGES = new Set(['operating-system', 'container', 'file', 'device', 'firmware', 'platform', 'data', 'machine-learning-model', 'cryptographic-asset', 'device-driver']);
/** SPDX 2.3 `primaryPackagePurpose` values that are not packages of the image. */
const NOT_PACKAGE_PURPOSES = new Set(['CONTAINER', 'OPERATING-SYSTEM', 'FILE', 'DEVICE', 'FIRMWARE', 'SOURCE', 'ARCHIVE', 'INSTALL']);

/** syft's `syft:package:type` property -> purl type. */
const SYFT_TYPES: Record<string, string> = {
  apk: 'apk',
  deb: 'deb',
  rpm: 'rpm',
  npm: 'npm',
  python: 'pypi',
  'java-archive': 'maven',
  'jenkins-plugin': 'maven',
  'go-module': 'golang',
  gem: 'gem',
  'rust-crate': 'cargo',
  dotnet: 'nuget',
  'php-composer': 'composer',
};
/** CycloneDX tool property prefixes (`cdx:npm:...`, `cdx:python:...`) -> purl type. */
const CDX_PROPERTY_TYPES: Record<string, string> = { npm: 'npm', python: 'pypi', pipenv: 'pypi', poetry: 'pypi', maven: 'maven', gomod: 'golang', composer: 'composer', cargo: 'cargo', gem: 'gem', nuget: 'nuget' };
/** Package registries (download location hosts) -> purl type. */
const REGISTRY_HOSTS: Array<[RegExp, string]> = [
  [/(^|\.)(registry\.npmjs\.org|registry\.yarnpkg\.com)$/, 'npm'],
  [/(^|\.)(pypi\.org|pypi\.python\.org|files\.pythonhosted\.org)$/, 'pypi'],
  [/(^|\.)(repo1\.maven\.org|repo\.maven\.apache\.org|central\.sonatype\.com)$/, 'maven'],
  [/(^|\.)rubygems\.org$/, 'gem'],
  [/(^|\.)crates\.io$/, 'cargo'],
  [/(^|\.)proxy\.golang\.org$/, 'golang'],
  [/(^|\.)nuget\.org$/, 'nuget'],
  [/(^|\.)packagist\.org$/, 'composer'],
  [/(^|\.)(deb\.debian\.org|security\.debian\.org|archive\.ubuntu\.com|security\.ubuntu\.com)$/, 'deb'],
  [/(^|\.)alpinelinux\.org$/, 'apk'],
];

function hostHint(url: unknown, into: Set<string>): void {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return;
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return;
  }
  for (const [re, type] of REGISTRY_HOSTS) if (re.test(host)) into.add(type);
}

/** Ecosystem hints of a CycloneDX component: tool properties and distribution URLs. */
function cyclonedxHints(comp: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  for (const prop of Array.isArray(comp.properties) ? comp.properties : []) {
    if (!isObject(prop) || typeof prop.name !== 'string') continue;
    if (prop.name === 'syft:package:type' && typeof prop.value === 'string' && SYFT_TYPES[prop.value]) out.add(SYFT_TYPES[prop.value]!);
    const m = /^cdx:([a-z]+):/.exec(prop.name);
    if (m && CDX_PROPERTY_TYPES[m[1]!]) out.add(CDX_PROPERTY_TYPES[m[1]!]!);
  }
  for (const ref of Array.isArray(comp.externalReferences) ? comp.externalReferences : []) {
    if (isObject(ref) && (ref.type === 'distribution' || ref.type === 'distribution-intake')) hostHint(ref.url, out);
  }
  return out;
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
      if (Array.isArray(comp.components)) stack.push(comp.components);
      if (c.add(comp.purl)) continue;
      if (typeof comp.type === 'string' && NOT_PACKAGES.has(comp.type)) continue;
      c.addComponent(comp.name, comp.version, comp.group, cyclonedxHints(comp));
    }
  }
  const out: ParsedSbom = { format: 'cyclonedx', packages: c.packages };
  const tools = isObject(doc.metadata) ? doc.metadata.tools : undefined;
  const list = Array.isArray(tools) ? tools : isObject(tools) && Array.isArray(tools.components) ? tools.components : [];
  const first = list.find(isObject);
  if (first && typeof first.name === 'string') out.tool = `${first.name}${typeof first.version === 'string' ? ` ${first.version}` : ''}`.slice(0, 200);
  return out;
}

/**
 * SPDX 2.3 PACKAGE-MANAGER references other than purl name the package exactly (annex F):
 * `maven-central` `group:artifact:version`, `npm` `name@version`, `nuget` `Name/Version`.
 */
function packageManagerPurl(type: unknown, locator: unknown): string | undefined {
  if (typeof locator !== 'string' || locator.length > 1024) return undefined;
  if (type === 'maven-central') {
    const [group, artifact, version] = locator.split(':');
    return group && artifact && version ? purl('maven', group, artifact, version) : undefined;
  }
  if (type === 'npm') {
    const at = locator.lastIndexOf('@');
    if (at <= 0) return undefined;
    const name = locator.slice(0, at);
    const slash = name.indexOf('/');
    return slash > 0 ? purl('npm', name.slice(0, slash), name.slice(slash + 1), locator.slice(at + 1)) : purl('npm', undefined, name, locator.slice(at + 1));
  }
  if (type === 'nuget') {
    const [name, version] = locator.split('/');
    return name && version ? purl('nuget', undefined, name, version) : undefined;
  }
  return undefined;
}

function spdx(doc: Record<string, unknown>): ParsedSbom {
  const c = new Collector();
  // What the document describes (the image, a directory) is the subject, not a package in it.
  const described = new Set<string>((Array.isArray(doc.documentDescribes) ? doc.documentDescribes : []).filter((x): x is string => typeof x === 'string'));
  for (const r of Array.isArray(doc.relationships) ? doc.relationships : []) {
    if (isObject(r) && r.spdxElementId === doc.SPDXID && r.relationshipType === 'DESCRIBES' && typeof r.relatedSpdxElement === 'string') described.add(r.relatedSpdxElement);
  }
  for (const p of Array.isArray(doc.packages) ? doc.packages : []) {
    if (!isObject(p)) continue;
    const refs = (Array.isArray(p.externalRefs) ? p.externalRefs : []).filter(isObject);
    let found = false;
    for (const ref of refs) if (ref.referenceType === 'purl' && c.add(ref.referenceLocator)) found = true;
    if (found) continue;
    for (const ref of refs) {
      const category = typeof ref.referenceCategory === 'string' ? ref.referenceCategory.replace('_', '-') : '';
      if (category === 'PACKAGE-MANAGER' && c.add(packageManagerPurl(ref.referenceType, ref.referenceLocator))) found = true;
    }
    if (found || (typeof p.SPDXID === 'string' && described.has(p.SPDXID))) continue;
    if (typeof p.primaryPackagePurpose === 'string' && NOT_PACKAGE_PURPOSES.has(p.primaryPackagePurpose)) continue;
    const hints = new Set<string>();
    hostHint(p.downloadLocation, hints);
    c.addComponent(p.name, p.versionInfo, undefined, hints);
  }
  const out: ParsedSbom = { format: 'spdx', packages: c.packages };
  const creators = isObject(doc.creationInfo) && Array.isArray(doc.creationInfo.creators) ? doc.creationInfo.creators : [];
  const tool = creators.find((x): x is string => typeof x === 'string' && x.startsWith('Tool:'));
  if (tool) out.tool = tool.slice(5).trim().slice(0, 200);
  return out;
}

/**
 * SPDX 2.x tag-value (`text/spdx`) as the JSON shape {@link spdx} reads: the document's version,
 * creators and relationships, and per package (`PackageName:` starts one) its version, download
 * location, purpose and external references. `<text>` blocks are skipped whole.
 */
function spdxTagValue(text: string): Record<string, unknown> {
  const creators: string[] = [];
  const packages: Array<Record<string, unknown>> = [];
  const relationships: Array<Record<string, unknown>> = [];
  const doc: Record<string, unknown> = { creationInfo: { creators }, packages, relationships };
  let pkg: Record<string, unknown> | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || line.startsWith('#')) continue;
    const tag = line.slice(0, colon).trim();
    let value = line.slice(colon + 1).trim();
    if (value.startsWith('<text>')) {
      while (!value.includes('</text>') && i + 1 < lines.length) value += `\n${lines[++i]}`;
      value = value.replace(/^<text>/, '').replace(/<\/text>$/, '');
    }
    switch (tag) {
      case 'SPDXVersion':
        doc.spdxVersion = value;
        break;
      case 'SPDXID':
        if (pkg) pkg.SPDXID = value;
        else if (doc.SPDXID === undefined) doc.SPDXID = value;
        break;
      case 'Creator':
        creators.push(value);
        break;
      case 'Relationship': {
        const [from, type, to] = value.split(/\s+/);
        relationships.push({ spdxElementId: from, relationshipType: type, relatedSpdxElement: to });
        break;
      }
      case 'PackageName':
        if (packages.length >= MAX_BUILDER_SBOM_PACKAGES) throw new BuilderSbomError(`more than ${MAX_BUILDER_SBOM_PACKAGES} packages`);
        pkg = { name: value, externalRefs: [] };
        packages.push(pkg);
        break;
      case 'PackageVersion':
        if (pkg) pkg.versionInfo = value;
        break;
      case 'PackageDownloadLocation':
        if (pkg) pkg.downloadLocation = value;
        break;
      case 'PrimaryPackagePurpose':
        if (pkg) pkg.primaryPackagePurpose = value;
        break;
      case 'ExternalRef': {
        const [category, type, locator] = value.split(/\s+/);
        if (pkg) (pkg.externalRefs as unknown[]).push({ referenceCategory: category, referenceType: type, referenceLocator: locator });
        break;
      }
      case 'FileName':
      case 'SnippetSPDXID':
      case 'LicenseID':
        // Files, snippets and licences follow the packages; nothing after them belongs to a package.
        pkg = undefined;
        break;
      default:
        break;
    }
  }
  if (typeof doc.spdxVersion !== 'string' || !doc.spdxVersion.startsWith('SPDX-')) throw new BuilderSbomError('SPDX tag-value without an SPDXVersion');
  return doc;
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

/** A component without a purl that could not be told apart (see {@link resolveComponent}). */
export interface UnmatchedComponent {
  /** `group/name` when the component has a group. */
  name: string;
  version?: string;
  /**
   * `no-version`: nothing to compare or match; `no-ecosystem`: no hint of its ecosystem and no
   * package of that name in the image; `ambiguous`: several packages of the image (or several
   * hinted ecosystems) fit; `incomplete`: the hinted ecosystem needs more than a name (Maven: a group).
   */
  reason: 'no-version' | 'no-ecosystem' | 'ambiguous' | 'incomplete';
  /** For `ambiguous`: the packages (purl without version) or ecosystems that fit. */
  candidates?: string[];
}

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
  /** Components without a purl compared by name (resolved to one package or ecosystem). */
  resolvedByName: number;
  /** Components without a purl that could not be resolved: neither compared nor matched. */
  unmatched: UnmatchedComponent[];
  unmatchedCount: number;
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
      e = { display: displayOf(p), versions: new Set() };
      out.set(key, e);
    }
    e.versions.add(versionOf(p));
  }
  return out;
}

function displayOf(p: ParsedPurl): string {
  return `pkg:${p.type}/${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
}

/** Purl types whose namespace is a vendor or distro, not part of the package's name. */
const VENDOR_NAMESPACES = new Set(['deb', 'apk', 'rpm']);
const pep503 = (name: string) => name.toLowerCase().replace(/[-_.]+/g, '-');

/** The inventory's packages by the names a component may call them: name, `namespace/name`, `group:artifact` (lower case). */
type NameIndex = Map<string, Map<string, ParsedPurl>>;

function nameIndex(purls: Iterable<string>): NameIndex {
  const out: NameIndex = new Map();
  const add = (key: string, p: ParsedPurl) => {
    let m = out.get(key);
    if (!m) out.set(key, (m = new Map()));
    m.set(identity(p), p);
  };
  for (const text of purls) {
    const p = parsePurl(text);
    if (!p) continue;
    const name = p.name.toLowerCase();
    if (!p.namespace || VENDOR_NAMESPACES.has(p.type)) add(name, p);
    if (p.type === 'pypi') add(pep503(p.name), p);
    if (p.namespace && !VENDOR_NAMESPACES.has(p.type)) {
      add(`${p.namespace}/${p.name}`.toLowerCase(), p);
      if (p.type === 'maven') add(`${p.namespace}:${p.name}`.toLowerCase(), p);
    }
  }
  return out;
}

/**
 * The purl a component without one stands for, or why there is none. The rule:
 *
 * 1. no version: unmatched (`no-version`);
 * 2. the image's packages whose name fits — `name`, or `group/name` / `group:name` when the
 *    component has a group; for PyPI also the PEP 503 form — restricted to the component's
 *    ecosystem hints (syft's `syft:package:type`, `cdx:<ecosystem>:` properties, the registry host
 *    of a download location) when it has any;
 * 3. exactly one such package: the component is that package at its own version (the package's
 *    distro namespace and source package kept);
 * 4. none, and exactly one hinted ecosystem: a package of that ecosystem the scan did not find
 *    (Maven needs a group: `incomplete` without one);
 * 5. otherwise unmatched: `ambiguous` (several fit) or `no-ecosystem` (nothing tells).
 */
export function resolveComponent(c: SbomComponent, index: NameIndex): { purl: string } | UnmatchedComponent {
  const display = c.group ? `${c.group}/${c.name}` : c.name;
  const unmatched = (reason: UnmatchedComponent['reason'], candidates?: string[]): UnmatchedComponent => ({
    name: display,
    ...(c.version !== undefined ? { version: c.version } : {}),
    reason,
    ...(candidates ? { candidates } : {}),
  });
  if (c.version === undefined) return unmatched('no-version');
  const keys = c.group ? [`${c.group}/${c.name}`, `${c.group}:${c.name}`] : [c.name, pep503(c.name)];
  const fits = new Map<string, ParsedPurl>();
  for (const key of keys) for (const [id, p] of index.get(key.toLowerCase()) ?? []) fits.set(id, p);
  const hinted = c.ecosystems ?? [];
  if (hinted.length > 0) for (const [id, p] of fits) if (!hinted.includes(p.type)) fits.delete(id);
  if (fits.size === 1) {
    const p = [...fits.values()][0]!;
    const upstream = p.qualifiers.upstream?.split('@')[0];
    return { purl: purl(p.type, p.namespace, p.name, c.version, { upstream, distro: p.qualifiers.distro }) };
  }
  if (fits.size > 1) return unmatched('ambiguous', [...fits.values()].map(displayOf).sort());
  if (hinted.length > 1) return unmatched('ambiguous', [...hinted]);
  if (hinted.length === 0) return unmatched('no-ecosystem');
  const type = hinted[0]!;
  if (type === 'maven') {
    const [group, artifact] = c.group ? [c.group, c.name] : c.name.includes(':') ? c.name.split(':', 2) : [undefined, c.name];
    return group && artifact ? { purl: purl('maven', group, artifact, c.version) } : unmatched('incomplete');
  }
  // npm scopes, Go module paths and Composer vendors are the namespace.
  const full = c.group ? `${c.group}/${c.name}` : c.name;
  const slash = full.lastIndexOf('/');
  return { purl: slash > 0 && !VENDOR_NAMESPACES.has(type) ? purl(type, full.slice(0, slash), full.slice(slash + 1), c.version) : purl(type, undefined, c.name, c.version) };
}

/**
 * The inventory with the builder SBOMs' extra package versions appended (after the scanned ones,
 * so finding references of scanned packages keep their indexes), and one comparison per SBOM.
 * `scanned` holds no SBOM packages.
 */
export function mergeBuilderSboms(scanned: InventoryPackage[], sboms: StoredBuilderSbom[]): { packages: InventoryPackage[]; comparisons: BuilderSbomComparison[] } {
  const scannedPurls = scanned.filter((p) => !p.dev).map((p) => p.purl);
  const inventory = versionsByIdentity(scannedPurls);
  const names = nameIndex(scannedPurls);
  const packages = [...scanned];
  const added = new Set<string>();
  const comparisons: BuilderSbomComparison[] = [];
  for (const sbom of [...sboms].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const purls: string[] = [];
    const unmatched: UnmatchedComponent[] = [];
    let resolvedByName = 0;
    for (const p of sbom.packages) {
      if (hasPurl(p)) {
        purls.push(p.purl);
        continue;
      }
      const r = resolveComponent(p, names);
      if ('purl' in r) {
        purls.push(r.purl);
        resolvedByName++;
      } else unmatched.push(r);
    }
    const listed = versionsByIdentity(purls);
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
    for (const text of purls) {
      const p = parsePurl(text);
      if (!p) continue;
      if (inventory.get(identity(p))?.versions.has(versionOf(p))) continue;
      const key = `${identity(p)}@${versionOf(p)}`;
      if (added.has(key)) continue;
      const pkg = packageFromPurl(text, sbom.id);
      if (!pkg) continue;
      added.add(key);
      packages.push(pkg);
      matched++;
    }
    onlyInSbom.sort();
    onlyInInventory.sort();
    versionDiffers.sort((a, b) => (a.package < b.package ? -1 : 1));
    unmatched.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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
      resolvedByName,
      unmatched: unmatched.slice(0, MAX_LISTED),
      unmatchedCount: unmatched.length,
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
      // A purl is stored as a string, a component without one as an object.
      [r.id, r.repository, r.subject, r.format, r.tool ?? null, JSON.stringify(r.packages.map((p) => (hasPurl(p) ? p.purl : p))), r.createdAt],
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
        packages: (JSON.parse(String(r.packages)) as Array<string | SbomComponent>).map((p) => (typeof p === 'string' ? { purl: p } : p)),
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
