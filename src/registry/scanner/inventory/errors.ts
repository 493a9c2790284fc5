/**
 * Typed failures of the inventory stage. A hostile or broken layer ends the scan of that image
 * with a {@link LayerError} whose `code` says why; nothing else (other scans, the registry) is
 * affected. Problems that do not make the whole image unreadable (one malformed package database,
 * an unresolvable symlink) are {@link InventoryWarning}s instead and the rest is still inventoried.
 */

export type LayerErrorCode =
  /** The compressed stream is not valid gzip/zstd (bad header, bad checksum, garbage). */
  | 'corrupt-compression'
  /** Compression we do not decode (bzip2, xz, ...). */
  | 'unsupported-compression'
  /** The tar stream is malformed (bad header checksum, impossible sizes). */
  | 'corrupt-tar'
  /** The stream ended in the middle of the tar archive or of an entry. */
  | 'truncated'
  /** More entries than `limits.maxEntriesPerLayer` / `maxEntriesPerImage`. */
  | 'entry-limit'
  /** Decompressed size above `limits.maxLayerBytes` / `maxImageBytes`. */
  | 'size-limit'
  /** Decompressed/compressed ratio above `limits.maxCompressionRatio`. */
  | 'decompression-bomb'
  /** A path that is absolute-escaping (`..`), too long, too deep or contains NUL. */
  | 'unsafe-path'
  /** A whiteout that names no entry (`.wh.`, `.wh..`, `.wh...`). */
  | 'invalid-whiteout'
  /** Content bytes kept in memory for analysis above `limits.maxRetainedBytes`. */
  | 'retained-limit'
  /** The uncompressed digest differs from the diff ID the image config declares. */
  | 'diffid-mismatch'
  /** The compressed digest differs from the layer descriptor (only when verification is on). */
  | 'digest-mismatch'
  /** The layer could not be read from storage. */
  | 'read-failed'
  /** The scan was aborted by the caller. */
  | 'aborted';

export class LayerError extends Error {
  readonly code: LayerErrorCode;
  /** Digest of the layer (as in the manifest), when known. */
  readonly layerDigest: string | undefined;
  /** Index of the layer in the manifest (0 = base). */
  readonly layerIndex: number | undefined;
  /** Path of the tar entry being processed, when relevant. */
  readonly entryPath: string | undefined;

  constructor(
    code: LayerErrorCode,
    message: string,
    options: { layerDigest?: string; layerIndex?: number; entryPath?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LayerError';
    this.code = code;
    this.layerDigest = options.layerDigest;
    this.layerIndex = options.layerIndex;
    this.entryPath = options.entryPath;
  }

  /** A copy of this error annotated with the layer it happened in. */
  withLayer(layerIndex: number, layerDigest: string): LayerError {
    if (this.layerDigest !== undefined) return this;
    const e = new LayerError(this.code, `layer ${layerIndex} (${layerDigest}): ${this.message}`, {
      layerDigest,
      layerIndex,
      ...(this.entryPath === undefined ? {} : { entryPath: this.entryPath }),
      cause: this.cause,
    });
    return e;
  }
}

export type WarningCode =
  /** A package database or manifest could not be parsed; the rest of the image was still inventoried. */
  | 'malformed-database'
  /** A file an analyzer wanted was larger than its size limit and was skipped. */
  | 'file-too-large'
  /** A symlink could not be resolved inside the image (loop, too many hops, dangling). */
  | 'symlink-unresolved'
  /** A hard link points to a file whose content was not retained. */
  | 'hardlink-unresolved'
  /** A record inside a database was skipped (e.g. a package without a version). */
  | 'record-skipped'
  /** The layer's media type disagrees with its content; the content won. */
  | 'media-type-mismatch'
  /** A binary's embedded metadata is in a format we do not read. */
  | 'unsupported-format';

export interface InventoryWarning {
  code: WarningCode;
  message: string;
  /** Path inside the image, when the warning is about a file. */
  path?: string;
  layerDiffId?: string;
  layerDigest?: string;
}
