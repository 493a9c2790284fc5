/**
 * Version schemes by OSV ecosystem. Every comparator is total (never throws): malformed versions
 * from hostile inventories or records get a deterministic order instead of a crash.
 */
import { compareApk, isValidApkVersion } from './apk.ts';
import { compareComposer } from './composer.ts';
import { compareDpkg, isValidDpkgVersion } from './dpkg.ts';
import { compareMaven } from './maven.ts';
import { compareNuGet, parseNuGet } from './nuget.ts';
import { comparePep440, parsePep440 } from './pep440.ts';
import { compareRpm } from './rpm.ts';
import { compareGem, isValidGemVersion } from './rubygems.ts';
import { compareGo, compareSemVer, parseSemVer } from './semver.ts';

export type SchemeName = 'dpkg' | 'apk' | 'rpm' | 'semver' | 'go' | 'pep440' | 'maven' | 'rubygems' | 'nuget' | 'composer';

export interface VersionScheme {
  readonly name: SchemeName;
  /** Negative, zero or positive like a sort comparator. */
  compare(a: string, b: string): number;
  /** Whether the string is a well-formed version of this scheme (informational; compare never throws). */
  valid(v: string): boolean;
}

export const SCHEMES: Record<SchemeName, VersionScheme> = {
  dpkg: { name: 'dpkg', compare: compareDpkg, valid: isValidDpkgVersion },
  apk: { name: 'apk', compare: compareApk, valid: isValidApkVersion },
  rpm: { name: 'rpm', compare: compareRpm, valid: (v) => /^(?:[0-9]+:)?[A-Za-z0-9._+~^-]+$/.test(v.trim()) },
  semver: { name: 'semver', compare: compareSemVer, valid: (v) => parseSemVer(v) !== undefined },
  go: { name: 'go', compare: compareGo, valid: (v) => parseSemVer(v.replace(/^v/, '').replace(/\+incompatible$/, '')) !== undefined },
  pep440: { name: 'pep440', compare: comparePep440, valid: (v) => parsePep440(v) !== undefined },
  maven: { name: 'maven', compare: compareMaven, valid: (v) => v.trim().length > 0 && v.length <= 256 },
  rubygems: { name: 'rubygems', compare: compareGem, valid: isValidGemVersion },
  nuget: { name: 'nuget', compare: compareNuGet, valid: (v) => parseNuGet(v) !== undefined },
  composer: { name: 'composer', compare: compareComposer, valid: (v) => /^v?[0-9]/i.test(v.trim()) },
};

const BY_ECOSYSTEM: Record<string, SchemeName> = {
  Debian: 'dpkg',
  Ubuntu: 'dpkg',
  Alpine: 'apk',
  Wolfi: 'apk',
  Chainguard: 'apk',
  MinimOS: 'apk',
  'Red Hat': 'rpm',
  AlmaLinux: 'rpm',
  'Rocky Linux': 'rpm',
  SUSE: 'rpm',
  openSUSE: 'rpm',
  'Photon OS': 'rpm',
  Mariner: 'rpm',
  'Azure Linux': 'rpm',
  'Amazon Linux': 'rpm',
  openEuler: 'rpm',
  Mageia: 'rpm',
  npm: 'semver',
  'crates.io': 'semver',
  Hex: 'semver',
  Pub: 'semver',
  SwiftURL: 'semver',
  Go: 'go',
  PyPI: 'pep440',
  Maven: 'maven',
  RubyGems: 'rubygems',
  NuGet: 'nuget',
  Packagist: 'composer',
};

/** The base ecosystem of an OSV ecosystem string: `Debian:12` -> `Debian`, `Ubuntu:Pro:18.04:LTS` -> `Ubuntu`. */
export function baseEcosystem(ecosystem: string): string {
  const i = ecosystem.indexOf(':');
  return i < 0 ? ecosystem : ecosystem.slice(0, i);
}

/** The version scheme of an OSV ecosystem (release suffixes allowed), or undefined when unsupported. */
export function schemeForEcosystem(ecosystem: string): VersionScheme | undefined {
  const name = BY_ECOSYSTEM[baseEcosystem(ecosystem)];
  return name ? SCHEMES[name] : undefined;
}
