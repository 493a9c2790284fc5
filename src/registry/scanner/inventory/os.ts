/**
 * Operating-system detection from the release files of an image:
 * `/etc/os-release` (falling back to `/usr/lib/os-release`), then `/etc/alpine-release`,
 * `/etc/debian_version` and the Red Hat family's `/etc/*-release` for images without os-release.
 * The result carries the OSV ecosystem string of the release (`Debian:12`, `Alpine:v3.19`,
 * `Ubuntu:22.04:LTS`, ...) that OS packages of the image are matched against.
 */
import type { OperatingSystem } from '../model.ts';

/** Parses os-release syntax (KEY=value, shell-style quoting, `#` comments). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    out[key] = unquote(line.slice(eq + 1).trim());
  }
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    return v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) return v.slice(1, -1);
  // Unquoted: strip a trailing comment and backslash escapes.
  return v.replace(/\s+#.*$/, '').replace(/\\(.)/g, '$1');
}

export interface ReleaseFiles {
  /** Content of /etc/os-release (after following symlinks). */
  etcOsRelease?: string;
  /** Content of /usr/lib/os-release. */
  usrLibOsRelease?: string;
  alpineRelease?: string;
  debianVersion?: string;
  /** Content of /etc/redhat-release or one of its siblings (centos-, rocky-, almalinux-, oracle-, fedora-release). */
  redhatRelease?: string;
}

const NUMERIC_DEBIAN = /^\d+(?:\.\d+)*$/;

/** Detects the OS; undefined when nothing identifies it. */
export function detectOs(files: ReleaseFiles): OperatingSystem | undefined {
  let fields: Record<string, string> | undefined;
  for (const text of [files.etcOsRelease, files.usrLibOsRelease]) {
    if (text === undefined) continue;
    const f = parseOsRelease(text);
    if (Object.keys(f).length > 0) {
      fields = f;
      break;
    }
  }
  const alpine = firstLine(files.alpineRelease);
  const debian = firstLine(files.debianVersion);

  let os: OperatingSystem | undefined;
  if (fields?.ID !== undefined && fields.ID !== '') {
    os = { id: fields.ID.toLowerCase() };
    if (fields.VERSION_ID) os.versionId = fields.VERSION_ID;
    const codename = fields.VERSION_CODENAME || fields.UBUNTU_CODENAME;
    if (codename) os.codename = codename;
    if (fields.PRETTY_NAME) os.prettyName = fields.PRETTY_NAME;
    // debian_version carries the point release (12.5) that os-release (12) lacks.
    if (os.id === 'debian' && debian !== undefined) {
      if (NUMERIC_DEBIAN.test(debian)) os.versionId = debian;
      else if (os.versionId === undefined) os.versionId = debian;
    }
    if (os.id === 'alpine' && os.versionId === undefined && alpine !== undefined) os.versionId = alpine;
  } else if (alpine !== undefined && alpine !== '') {
    os = { id: 'alpine', versionId: alpine };
  } else if (debian !== undefined && debian !== '') {
    os = { id: 'debian', versionId: debian };
    const codename = /^([a-z]+)\/sid$/.exec(debian)?.[1];
    if (codename !== undefined) os.codename = codename;
  } else if (files.redhatRelease !== undefined) {
    os = parseRedhatRelease(files.redhatRelease);
  }
  if (os === undefined) return undefined;
  const eco = osvEcosystemFor(os, fields ?? {});
  if (eco !== undefined) os.osvEcosystem = eco;
  return os;
}

function firstLine(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const line = text.split(/\r?\n/, 1)[0]!.trim();
  return line === '' ? undefined : line;
}

/** `CentOS Linux release 7.9.2009 (Core)`, `Red Hat Enterprise Linux release 8.10 (Ootpa)`, ... */
export function parseRedhatRelease(text: string): OperatingSystem | undefined {
  const line = firstLine(text);
  if (line === undefined) return undefined;
  const m = /^(.*?)\s+release\s+(\d+(?:\.\d+)*)/i.exec(line);
  if (m === null) return undefined;
  const name = m[1]!.toLowerCase();
  let id: string;
  if (name.startsWith('red hat enterprise linux')) id = 'rhel';
  else if (name.startsWith('centos')) id = 'centos';
  else if (name.startsWith('rocky')) id = 'rocky';
  else if (name.startsWith('almalinux')) id = 'almalinux';
  else if (name.startsWith('oracle linux')) id = 'ol';
  else if (name.startsWith('fedora')) id = 'fedora';
  else id = name.replace(/\s+/g, '-');
  return { id, versionId: m[2]!, prettyName: line };
}

function majorOf(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)/.exec(v);
  return m?.[1];
}

function majorMinorOf(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)\.(\d+)/.exec(v);
  return m === null ? undefined : `${m[1]}.${m[2]}`;
}

/**
 * The OSV ecosystem (with release) whose records apply to OS packages of this release, following
 * the OSV schema's ecosystem table. Undefined where OSV has no ecosystem for the distribution
 * (CentOS, Fedora, Oracle Linux, Amazon Linux, Arch, ...) or the release cannot be named.
 */
export function osvEcosystemFor(os: OperatingSystem, fields: Record<string, string> = {}): string | undefined {
  const v = os.versionId;
  switch (os.id) {
    case 'debian': {
      const major = v !== undefined && NUMERIC_DEBIAN.test(v) ? majorOf(v) : undefined;
      return major === undefined ? undefined : `Debian:${major}`;
    }
    case 'ubuntu': {
      const mm = majorMinorOf(v);
      if (mm === undefined) return undefined;
      const version = fields.VERSION ?? '';
      const [yy, month] = mm.split('.').map(Number) as [number, number];
      const lts = /\bLTS\b/.test(version) || (version === '' && month === 4 && yy % 2 === 0);
      return `Ubuntu:${mm}${lts ? ':LTS' : ''}`;
    }
    case 'alpine': {
      const mm = majorMinorOf(v);
      return mm === undefined ? undefined : `Alpine:v${mm}`;
    }
    case 'wolfi':
      return 'Wolfi';
    case 'chainguard':
      return 'Chainguard';
    case 'almalinux': {
      const major = majorOf(v);
      return major === undefined ? undefined : `AlmaLinux:${major}`;
    }
    case 'rocky': {
      const major = majorOf(v);
      return major === undefined ? undefined : `Rocky Linux:${major}`;
    }
    case 'rhel': {
      const cpe = fields.CPE_NAME;
      const m = cpe === undefined ? null : /^cpe:\/o:redhat:(.+)$/.exec(cpe);
      if (m !== null) return `Red Hat:${m[1]}`;
      const major = majorOf(v);
      return major === undefined ? undefined : `Red Hat:enterprise_linux:${major}::baseos`;
    }
    case 'photon':
      return v === undefined ? undefined : `Photon OS:${v}`;
    case 'mariner':
      return v === undefined ? undefined : `Mariner:${v}`;
    case 'azurelinux':
      return v === undefined ? undefined : `Azure Linux:${v}`;
    case 'mageia':
      return v === undefined ? undefined : `Mageia:${majorOf(v) ?? v}`;
    case 'sles':
    case 'sles_sap': {
      const m = v === undefined ? null : /^(\d+)(?:\.(\d+))?/.exec(v);
      if (m === null) return undefined;
      const sp = m[2] !== undefined && m[2] !== '0' ? ` SP${m[2]}` : '';
      const product = os.id === 'sles_sap' ? 'Linux Enterprise Server for SAP Applications' : 'Linux Enterprise Server';
      return `SUSE:${product} ${m[1]}${sp}`;
    }
    case 'opensuse-leap':
      return v === undefined ? undefined : `openSUSE:Leap ${v}`;
    case 'opensuse-tumbleweed':
      return 'openSUSE:Tumbleweed';
    default:
      return undefined;
  }
}
