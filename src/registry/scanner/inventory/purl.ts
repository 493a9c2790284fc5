/**
 * Package URLs (https://github.com/package-url/purl-spec): `pkg:type/namespace/name@version?qualifiers`,
 * each segment percent-encoded, qualifiers sorted by key, empty qualifiers dropped.
 */
import type { OperatingSystem } from '../model.ts';

function enc(s: string): string {
  // encodeURIComponent leaves !'()* alone; the spec wants everything but unreserved characters encoded.
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function purl(
  type: string,
  namespace: string | undefined,
  name: string,
  version: string | undefined,
  qualifiers: Record<string, string | undefined> = {},
): string {
  let out = `pkg:${type}/`;
  if (namespace !== undefined && namespace !== '') out += `${namespace.split('/').map(enc).join('/')}/`;
  out += enc(name);
  if (version !== undefined && version !== '') out += `@${enc(version)}`;
  const q = Object.entries(qualifiers)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${enc(v)}`);
  if (q.length > 0) out += `?${q.join('&')}`;
  return out;
}

/** `distro` qualifier: `debian-12.5`, `alpine-3.19.1`. */
export function distroQualifier(os: OperatingSystem | undefined): string | undefined {
  if (os === undefined) return undefined;
  return os.versionId === undefined ? os.id : `${os.id}-${os.versionId}`;
}

/** Namespace for deb purls: the distribution (debian, ubuntu, ...). */
export function debNamespace(os: OperatingSystem | undefined): string {
  return os?.id !== undefined && os.id !== '' ? os.id : 'debian';
}

/** Namespace for apk purls. */
export function apkNamespace(os: OperatingSystem | undefined): string {
  return os?.id !== undefined && os.id !== '' ? os.id : 'alpine';
}

const RPM_VENDORS: Record<string, string> = {
  rhel: 'redhat',
  centos: 'centos',
  fedora: 'fedora',
  ol: 'oracle',
  amzn: 'amazon',
  almalinux: 'almalinux',
  rocky: 'rocky',
  sles: 'suse',
  sles_sap: 'suse',
  'opensuse-leap': 'opensuse',
  'opensuse-tumbleweed': 'opensuse',
  photon: 'photon',
  mariner: 'mariner',
  azurelinux: 'azurelinux',
};

/** Namespace for rpm purls: the vendor of the distribution, when known. */
export function rpmNamespace(os: OperatingSystem | undefined): string | undefined {
  if (os === undefined) return undefined;
  return RPM_VENDORS[os.id] ?? os.id;
}

/** npm: `@scope/name` -> namespace `@scope` (encoded as %40scope). */
export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  return slash > 0 ? purl('npm', name.slice(0, slash), name.slice(slash + 1), version) : purl('npm', undefined, name, version);
}

/** PEP 503 normalised project name. */
export function normalizePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Go: module path split into namespace and name. */
export function golangPurl(modulePath: string, version: string | undefined): string {
  const i = modulePath.lastIndexOf('/');
  return i === -1 ? purl('golang', undefined, modulePath, version) : purl('golang', modulePath.slice(0, i), modulePath.slice(i + 1), version);
}

export function mavenPurl(groupId: string, artifactId: string, version: string): string {
  return purl('maven', groupId, artifactId, version);
}

/** Composer `vendor/package`. */
export function composerPurl(name: string, version: string): string {
  const i = name.indexOf('/');
  return i === -1 ? purl('composer', undefined, name, version) : purl('composer', name.slice(0, i), name.slice(i + 1), version);
}
