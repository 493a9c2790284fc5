/**
 * Inventory of an image: walk its layers once, detect the OS, list OS and language packages with
 * the layer that introduced each, and collect secret findings. This is the whole "read the image"
 * stage of a scan; matching works on the returned inventory and never reads a layer again.
 */
import type { Inventory, InventoryPackage } from '../model.ts';
import type { AnalyzerContext, PackageAnalyzer } from './analyzer.ts';
import { apkAnalyzer } from './apk.ts';
import { cargoAnalyzer } from './cargo.ts';
import { composerAnalyzer } from './composer.ts';
import { dotnetAnalyzer } from './dotnet.ts';
import { dpkgAnalyzer } from './dpkg.ts';
import type { InventoryWarning } from './errors.ts';
import { goBinaryAnalyzer } from './gobinary.ts';
import { javaAnalyzer } from './java.ts';
import type { WalkLimits } from './limits.ts';
import { npmAnalyzer } from './npm.ts';
import { detectOs, type ReleaseFiles } from './os.ts';
import { pythonAnalyzer } from './python.ts';
import { rpmAnalyzer } from './rpm.ts';
import { rubyAnalyzer } from './ruby.ts';
import { createSecretScanner, type SecretFinding } from './secrets.ts';
import { walkLayers, type EntryInfo, type FileInterest, type ImageView, type LayerInput, type LayerInspector, type LayerSummary } from './walker.ts';

/** Every package analyzer, in selection order (the Go binary analyzer takes any executable, so it is last). */
export const DEFAULT_ANALYZERS: readonly PackageAnalyzer[] = [
  dpkgAnalyzer,
  apkAnalyzer,
  rpmAnalyzer,
  npmAnalyzer,
  pythonAnalyzer,
  rubyAnalyzer,
  cargoAnalyzer,
  dotnetAnalyzer,
  composerAnalyzer,
  javaAnalyzer,
  goBinaryAnalyzer,
];

const RELEASE_FILES: Record<string, keyof ReleaseFiles> = {
  'etc/os-release': 'etcOsRelease',
  'usr/lib/os-release': 'usrLibOsRelease',
  'etc/alpine-release': 'alpineRelease',
  'etc/debian_version': 'debianVersion',
  'etc/redhat-release': 'redhatRelease',
  'etc/centos-release': 'redhatRelease',
  'etc/rocky-release': 'redhatRelease',
  'etc/almalinux-release': 'redhatRelease',
  'etc/oracle-release': 'redhatRelease',
  'etc/fedora-release': 'redhatRelease',
};

const releaseInterest: FileInterest = { tag: 'os-release', maxSize: 64 * 1024, parse: (c) => c.toString('utf8') };

export interface InventoryOptions {
  limits?: Partial<WalkLimits>;
  analyzers?: readonly PackageAnalyzer[];
  /** Secret detection (default on); `key` keys the fingerprint HMAC. */
  secrets?: boolean | { key?: string };
  /** Hash the compressed blobs too and compare with the layer digests. */
  verifyDigests?: boolean;
  signal?: AbortSignal;
}

export interface InventoryResult {
  inventory: Inventory;
  layers: LayerSummary[];
  warnings: InventoryWarning[];
  secrets: SecretFinding[];
}

/**
 * Inventories an image from its layers (in manifest order). Rejects with a `LayerError` when a
 * layer cannot be read safely; problems confined to one file become warnings.
 */
export async function inventoryImage(layers: LayerInput[], options: InventoryOptions = {}): Promise<InventoryResult> {
  const analyzers = options.analyzers ?? DEFAULT_ANALYZERS;
  const select = (path: string, info: EntryInfo): FileInterest | undefined => {
    if (path in RELEASE_FILES) return releaseInterest;
    for (const a of analyzers) {
      const i = a.select(path, info);
      if (i !== undefined) return i;
    }
    return undefined;
  };
  const inspectors: LayerInspector[] = [];
  const secretScanner = options.secrets === false ? undefined : createSecretScanner(typeof options.secrets === 'object' ? options.secrets.key : undefined);
  if (secretScanner !== undefined) inspectors.push(secretScanner);

  const walk = await walkLayers(layers, {
    select,
    inspectors,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.verifyDigests === undefined ? {} : { verifyDigests: options.verifyDigests }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const warnings = [...walk.warnings];
  const inventory = analyzeView(walk.view, analyzers, (w) => warnings.push(w));
  const secrets = secretScanner?.findings ?? [];
  for (const s of secrets) {
    const d = walk.layers[s.layerIndex]?.diffId;
    if (d !== undefined) s.layerDiffId = d;
  }
  for (const w of warnings) {
    if (w.layerDigest !== undefined && w.layerDiffId === undefined) {
      const d = walk.layers.find((l) => l.digest === w.layerDigest)?.diffId;
      if (d !== undefined) w.layerDiffId = d;
    }
  }
  return { inventory, layers: walk.layers, warnings, secrets };
}

/** OS detection and package listing over a finished walk. */
export function analyzeView(view: ImageView, analyzers: readonly PackageAnalyzer[], warn: (w: InventoryWarning) => void): Inventory {
  const files: ReleaseFiles = {};
  for (const [path, key] of Object.entries(RELEASE_FILES)) {
    if (files[key] !== undefined) continue;
    const r = view.resolve(path);
    if (!r.ok) {
      if (view.nodes.has(path)) warn({ code: 'symlink-unresolved', message: r.reason, path: `/${path}` });
      continue;
    }
    const node = view.nodes.get(r.path);
    if (node === undefined) {
      if (view.nodes.get(path)?.type === 'symlink') warn({ code: 'symlink-unresolved', message: `/${path} points to /${r.path}, which is missing or was not analysed`, path: `/${path}` });
      continue;
    }
    if (node.type === 'file' && typeof node.result === 'string') files[key] = node.result;
  }
  const os = detectOs(files);
  const ctx: AnalyzerContext = {
    os,
    view,
    warn,
    layer: (i) => {
      const l = view.layers[i];
      return l === undefined ? {} : { diffId: l.diffId, digest: l.digest };
    },
  };
  const packages: InventoryPackage[] = [];
  for (const a of analyzers) {
    try {
      packages.push(...a.packages(ctx));
    } catch (e) {
      warn({ code: 'malformed-database', message: `${a.name} analyzer failed: ${(e as Error)?.message ?? String(e)}` });
    }
  }
  packages.sort(comparePackages);
  const inventory: Inventory = { packages };
  if (os !== undefined) inventory.os = os;
  return inventory;
}

function comparePackages(a: InventoryPackage, b: InventoryPackage): number {
  return cmp(a.kind, b.kind) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.path, b.path);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
