/**
 * The inventory stage of the scanner: read an image's layers once and list what is installed.
 *
 *   const { inventory, layers, warnings, secrets } = await inventoryImage(layerInputs);
 *
 * `inventory` (OS and packages, each with the layer that introduced it) is what matching and
 * re-evaluation work on; a hostile layer rejects with a `LayerError` whose `code` says why.
 */
export { inventoryImage, analyzeView, DEFAULT_ANALYZERS, type InventoryOptions, type InventoryResult } from './inventory.ts';
export { walkLayers, ImageView, type LayerInput, type LayerSource, type LayerSummary, type WalkOptions, type FileInterest, type FileSink, type LayerInspector } from './walker.ts';
export { LayerError, type LayerErrorCode, type InventoryWarning, type WarningCode } from './errors.ts';
export { DEFAULT_WALK_LIMITS, type WalkLimits } from './limits.ts';
export { detectOs, osvEcosystemFor } from './os.ts';
export { findConfigSecrets, createSecretScanner, type SecretFinding, type ConfigSecretFinding, type ImageConfigLike } from './secrets.ts';
export type { PackageAnalyzer, AnalyzerContext } from './analyzer.ts';
