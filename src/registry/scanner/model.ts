/**
 * The scanner's shared vocabulary: what the inventory stage finds in an image and what the
 * matching stage reports against it. Inventories are stored, so re-evaluation against new
 * vulnerability data never reads a layer again.
 */

/** OSV ecosystem names (https://ossf.github.io/osv-schema/#affectedpackage-field), without release suffixes. */
export type Ecosystem =
  | 'Debian'
  | 'Ubuntu'
  | 'Alpine'
  | 'Wolfi'
  | 'Red Hat'
  | 'AlmaLinux'
  | 'Rocky Linux'
  | 'SUSE'
  | 'openSUSE'
  | 'Photon OS'
  | 'Mariner'
  | 'Amazon Linux'
  | 'npm'
  | 'PyPI'
  | 'Go'
  | 'Maven'
  | 'RubyGems'
  | 'crates.io'
  | 'NuGet'
  | 'Packagist';

/** The operating system of an image, from os-release and friends. */
export interface OperatingSystem {
  /** os-release `ID` (e.g. `debian`, `alpine`, `ubuntu`, `rhel`). */
  id: string;
  /** os-release `VERSION_ID` or the release file's content (e.g. `12`, `3.19.1`, `22.04`). */
  versionId?: string;
  /** os-release `VERSION_CODENAME` where present. */
  codename?: string;
  prettyName?: string;
  /** The OSV ecosystem with release for OS packages of this image (e.g. `Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04:LTS`), when known. */
  osvEcosystem?: string;
}

/** Where a package was recorded: the package manager's database or a language manifest. */
export type PackageKind = 'dpkg' | 'apk' | 'rpm' | 'npm' | 'python' | 'go-module' | 'go-stdlib' | 'java' | 'gem' | 'cargo' | 'nuget' | 'composer';

export interface InventoryPackage {
  kind: PackageKind;
  name: string;
  version: string;
  /** dpkg `Source:`, apk `o:` origin, rpm source RPM name: what distro advisories are keyed by. */
  sourceName?: string;
  sourceVersion?: string;
  /** rpm epoch / dpkg epoch when separate from `version`. */
  epoch?: number;
  /** rpm/dpkg/apk architecture where recorded. */
  arch?: string;
  /** Package URL (https://github.com/package-url/purl-spec). */
  purl: string;
  /** SPDX licence expression or the raw licence strings found. */
  licenses?: string[];
  /** The file in the image the package was read from (absolute path inside the image). */
  path: string;
  /** Diff ID (uncompressed layer digest) of the layer that introduced the file, when known. */
  layerDiffId?: string;
  /** Layer digest (as in the manifest) of that layer, when known. */
  layerDigest?: string;
  /** Only a development dependency according to the lockfile it was read from (npm `dev: true`); usually not installed. */
  dev?: boolean;
  /** Listed only by an SBOM the image's builder attached (builder-sbom.ts), not found in the layers. */
  origin?: 'sbom';
}

export interface Inventory {
  os?: OperatingSystem;
  packages: InventoryPackage[];
}

/** One vulnerability (or malicious-package record) affecting one inventory package. */
export interface VulnerabilityFinding {
  /** The OSV id reported (the preferred one of a group of aliases). */
  id: string;
  /** Other ids of the same vulnerability: the record's aliases and de-duplicated records' ids. */
  aliases: string[];
  /** CVE ids among id, aliases and the records' `upstream`, for counting by CVE. */
  cves: string[];
  summary?: string;
  /** The inventory package (index into `Inventory.packages`) and what was compared. */
  packageIndex: number;
  packageName: string;
  /** The OSV ecosystem and package name the record names (e.g. `Ubuntu:18.04:LTS` / source `xz-utils`). */
  ecosystem: string;
  matchedName: string;
  /** The installed version that was compared (the source version for distro source packages). */
  installedVersion: string;
  fixedVersions: string[];
  fixAvailable: boolean;
  severity: 'unknown' | 'none' | 'low' | 'medium' | 'high' | 'critical';
  score?: number;
  /** Where severity came from: `malicious`, `vendor:...`, `cvss:<version>` or `none`. */
  severitySource: string;
  malicious: boolean;
  layerDiffId?: string;
  layerDigest?: string;
}
