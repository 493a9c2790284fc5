/**
 * One scan of one image, wherever its bytes come from (registry, OCI layout, archive): walk the
 * layers once (inventory and secrets), check the configuration, match against the vulnerability
 * database, and give everything that is stored or reported.
 */
import { checkImageConfig } from './config-checks.ts';
import { evaluate, matchInputOf, type DatabaseIdentity } from './evaluation.ts';
import type { ImageSource } from './image-source.ts';
import { inventoryImage } from './inventory/inventory.ts';
import { inventoryInThread } from './inventory-thread.ts';
import type { WalkLimits } from './inventory/limits.ts';
import type { Matcher } from './matching/matcher.ts';
import type { StoredInventory } from './report.ts';
import type { ScanRecord } from './store.ts';

/** Bumped when the inventory stage finds more or other things: results of older versions are re-scanned (layers read again). */
export const SCANNER_VERSION = '1';

export interface AnalyzeOptions {
  limits?: Partial<WalkLimits>;
  signal?: AbortSignal;
  /** Key of the secret fingerprints (HMAC); a per-installation secret keeps fingerprints unlinkable across registries. */
  secretsKey?: string;
  /** Walk the layers in a worker thread with this heap (MiB); in this thread when absent. */
  threadMemoryMb?: number;
}

export interface Analysis extends ScanRecord {
  inventory: StoredInventory;
}

export async function analyzeImage(source: ImageSource, matcher: Matcher, db: DatabaseIdentity, options: AnalyzeOptions = {}): Promise<Analysis> {
  const common = { ...(options.limits ? { limits: options.limits } : {}), ...(options.signal ? { signal: options.signal } : {}) };
  const result =
    options.threadMemoryMb !== undefined
      ? await inventoryInThread(source.layers, { ...common, maxMemoryMb: options.threadMemoryMb, ...(options.secretsKey !== undefined ? { secretsKey: options.secretsKey } : {}) })
      : await inventoryImage(source.layers, { ...common, secrets: options.secretsKey !== undefined ? { key: options.secretsKey } : true });
  const layers = result.layers.map((l) => ({ index: l.index, digest: l.digest, diffId: l.diffId, mediaType: l.mediaType, compressedBytes: l.compressedBytes, uncompressedBytes: l.uncompressedBytes, entries: l.entries }));
  const inventory: StoredInventory = { packages: result.inventory.packages, layers, warnings: result.warnings, skippedLayers: source.skipped.map((d) => d.digest) };
  const matchInput = matchInputOf(result.inventory, layers);
  return {
    scannerVersion: SCANNER_VERSION,
    os: result.inventory.os,
    inventory,
    matchInput,
    secrets: result.secrets,
    configFindings: checkImageConfig(source.config, options.secretsKey),
    evaluation: evaluate(matcher, result.inventory, db),
  };
}
