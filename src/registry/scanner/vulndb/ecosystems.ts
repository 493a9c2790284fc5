/**
 * Ecosystem vocabulary shared by the database and matching: how package names are normalised per
 * ecosystem, which OSV ecosystem an inventory package belongs to, and which release-scoped OS
 * ecosystems (`Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04:LTS`, ...) apply to an image.
 */
import type { InventoryPackage, OperatingSystem, PackageKind } from '../model.ts';
import { baseEcosystem } from '../versions/index.ts';
import { normalizePypiName } from '../versions/pep440.ts';

/** Lookup key of a package name: PEP 503 for PyPI; lower case where the registry is case-insensitive. */
export function normalizePackageName(ecosystem: string, name: string): string {
  const base = baseEcosystem(ecosystem);
  switch (base) {
    case 'PyPI':
      return normalizePypiName(name);
    case 'NuGet':
    case 'Packagist':
    case 'crates.io':
      return name.trim().toLowerCase();
    default:
      return name.trim();
  }
}

const LANGUAGE_ECOSYSTEM: Partial<Record<PackageKind, string>> = {
  npm: 'npm',
  python: 'PyPI',
  'go-module': 'Go',
  'go-stdlib': 'Go',
  java: 'Maven',
  gem: 'RubyGems',
  cargo: 'crates.io',
  nuget: 'NuGet',
  composer: 'Packagist',
};

/** The OSV ecosystem of a language package, or undefined for OS packages (dpkg, apk, rpm). */
export function languageEcosystem(kind: PackageKind): string | undefined {
  return LANGUAGE_ECOSYSTEM[kind];
}

export function isOsPackage(p: InventoryPackage): boolean {
  return p.kind === 'dpkg' || p.kind === 'apk' || p.kind === 'rpm';
}

const DEBIAN_CODENAMES: Record<string, string> = {
  wheezy: '7', jessie: '8', stretch: '9', buster: '10', bullseye: '11', bookworm: '12', trixie: '13', forky: '14',
};
const UBUNTU_CODENAMES: Record<string, string> = {
  trusty: '14.04', xenial: '16.04', bionic: '18.04', focal: '20.04', jammy: '22.04', noble: '24.04',
  kinetic: '22.10', lunar: '23.04', mantic: '23.10', oracular: '24.10', plucky: '25.04', questing: '25.10',
};

function major(v: string | undefined): string | undefined {
  const m = /^([0-9]+)/.exec(v ?? '');
  return m ? m[1] : undefined;
}

/**
 * How an image's OS selects OSV ecosystems: `exact` release ecosystems, and `base` ecosystems whose
 * release-less entries apply to every release; `prefixes` for ecosystems keyed by product streams.
 */
export interface OsEcosystemSelector {
  /** Display form, e.g. `Ubuntu:18.04:LTS`. */
  ecosystem: string;
  exact: string[];
  prefixes: string[];
}

/** The OSV ecosystem(s) of an image's OS packages; undefined when the OS or its release is unknown. */
export function osEcosystemSelector(os: OperatingSystem | undefined): OsEcosystemSelector | undefined {
  if (!os) return undefined;
  const one = (eco: string, baseAlso?: string): OsEcosystemSelector => ({ ecosystem: eco, exact: baseAlso ? [eco, baseAlso] : [eco], prefixes: [] });
  if (os.osvEcosystem) {
    const base = baseEcosystem(os.osvEcosystem);
    // Ubuntu and Alpine always scope by release; for the others a release-less entry means every release.
    return one(os.osvEcosystem, base === 'Ubuntu' || base === 'Alpine' || base === os.osvEcosystem ? undefined : base);
  }
  const id = os.id.toLowerCase();
  const version = os.versionId?.trim();
  switch (id) {
    case 'debian': {
      const m = major(version) ?? (os.codename ? DEBIAN_CODENAMES[os.codename.toLowerCase()] : undefined);
      return m ? one(`Debian:${m}`, 'Debian') : undefined;
    }
    case 'ubuntu': {
      const v = version && /^[0-9]+\.[0-9]+/.test(version) ? /^[0-9]+\.[0-9]+/.exec(version)![0] : os.codename ? UBUNTU_CODENAMES[os.codename.toLowerCase()] : undefined;
      if (!v) return undefined;
      const [yy, mm] = v.split('.');
      // LTS: every even-year April release (the os-release VERSION/PRETTY_NAME also says "LTS").
      const lts = (mm === '04' && Number(yy) % 2 === 0) || /\bLTS\b/.test(os.prettyName ?? '');
      return one(lts ? `Ubuntu:${v}:LTS` : `Ubuntu:${v}`);
    }
    case 'alpine': {
      const m = /^([0-9]+)\.([0-9]+)/.exec(version ?? '');
      return m ? one(`Alpine:v${m[1]}.${m[2]}`) : undefined;
    }
    case 'wolfi':
      return one('Wolfi');
    case 'chainguard':
      return one('Chainguard');
    case 'almalinux': {
      const m = major(version);
      return m ? one(`AlmaLinux:${m}`, 'AlmaLinux') : undefined;
    }
    case 'rocky': {
      const m = major(version);
      return m ? one(`Rocky Linux:${m}`, 'Rocky Linux') : undefined;
    }
    case 'rhel': {
      const m = major(version);
      return m ? { ecosystem: `Red Hat:enterprise_linux:${m}`, exact: [], prefixes: [`Red Hat:enterprise_linux:${m}::`] } : undefined;
    }
    case 'mariner':
      return version ? one(`Mariner:${version}`) : undefined;
    case 'azurelinux':
      return version ? one(`Azure Linux:${version}`) : undefined;
    case 'photon':
      return version ? one(`Photon OS:${version}`) : undefined;
    case 'opensuse-leap':
    case 'opensuse-tumbleweed':
      return os.prettyName ? one(`openSUSE:${os.prettyName}`) : undefined;
    case 'sles':
      return os.prettyName ? one(`SUSE:${os.prettyName}`) : undefined;
    default:
      return undefined;
  }
}

/** Whether a record's ecosystem string applies to an image with this selector. */
export function selectorMatches(sel: OsEcosystemSelector, ecosystem: string): boolean {
  return sel.exact.includes(ecosystem) || sel.prefixes.some((p) => ecosystem.startsWith(p));
}
