/**
 * Resource limits of the layer walker. Defaults are generous enough for real images (a
 * node_modules-heavy layer has a few 100k entries; rpm databases of full distributions reach
 * 100+ MiB) and small enough that a hostile layer cannot exhaust memory or CPU for long.
 */
export interface WalkLimits {
  /** Tar entries in one layer. */
  maxEntriesPerLayer: number;
  /** Tar entries over all layers of the image. */
  maxEntriesPerImage: number;
  /** Decompressed bytes of one layer. */
  maxLayerBytes: number;
  /** Decompressed bytes over all layers of the image. */
  maxImageBytes: number;
  /**
   * Decompressed/compressed ratio above which a layer is a decompression bomb. Checked once the
   * layer has produced more than `compressionRatioFloor` decompressed bytes, so small, highly
   * compressible layers (a few MiB of zeros) are fine.
   */
  maxCompressionRatio: number;
  compressionRatioFloor: number;
  /** Bytes of one entry path (after PAX/GNU long names). */
  maxPathBytes: number;
  /** Components of one entry path. */
  maxPathDepth: number;
  /** Bytes of file content buffered for analysis at one time, plus results kept (estimate). */
  maxRetainedBytes: number;
  /** Symlink hops while resolving one path. */
  maxSymlinkHops: number;
}

export const DEFAULT_WALK_LIMITS: Readonly<WalkLimits> = Object.freeze({
  maxEntriesPerLayer: 500_000,
  maxEntriesPerImage: 2_000_000,
  maxLayerBytes: 32 * 1024 ** 3,
  maxImageBytes: 128 * 1024 ** 3,
  maxCompressionRatio: 200,
  compressionRatioFloor: 1024 ** 3,
  maxPathBytes: 4096,
  maxPathDepth: 128,
  maxRetainedBytes: 1024 ** 3,
  maxSymlinkHops: 40,
});

export function resolveLimits(partial?: Partial<WalkLimits>): WalkLimits {
  return { ...DEFAULT_WALK_LIMITS, ...(partial ?? {}) };
}
