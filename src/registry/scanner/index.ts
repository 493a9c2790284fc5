/**
 * The scanner module's entry points for the composition root and the CLI: settings from the
 * configuration slice, and the service over its store.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { ManifestService } from '../distribution/manifests.ts';
import type { UploadService } from '../distribution/uploads.ts';
import type { EventBus } from '../events/bus.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import { BuilderSbomStore } from './builder-sbom.ts';
import { ExemptionStore } from './exemptions.ts';
import { JobQueue } from './jobs.ts';
import { type ScannerLogger, type ScannerSettings, ScanService } from './service.ts';
import type { ScanStore } from './store.ts';
import { VexStore } from './vex.ts';
import { VulnData } from './vulndata.ts';

export { ScanService } from './service.ts';
export { ScanStore } from './store.ts';
export { registerScannerRoutes } from './http.ts';
export { accessAuthorizer } from './access.ts';

export function scannerSettings(c: Config['scanner']): ScannerSettings {
  return {
    concurrency: c.concurrency,
    pollIntervalMs: c.pollIntervalMs,
    leaseSeconds: c.leaseSeconds,
    maxAttempts: c.maxAttempts,
    retryInitialMs: c.retryInitialMs,
    retryMaxMs: c.retryMaxMs,
    limits: { ...c.limits },
    secretsKey: c.secretsFingerprintKey,
    maxAgeSeconds: Math.round(c.vulnerabilityData.maxAgeHours * 3600),
    reloadIntervalSeconds: c.vulnerabilityData.reloadIntervalSeconds,
    vulnSources: c.vulnerabilityData.sources.map((src) => ({ ...src })),
    vulnRefreshMs: Math.round(c.vulnerabilityData.refreshIntervalMinutes * 60_000),
    rematchPageSize: c.rematchPageSize,
    sbom: { attach: c.sbom.attach, formats: [...c.sbom.formats], registryHost: c.sbom.registryHost },
    exemptions: { maxDays: c.exemptions.maxDays, warnDays: c.exemptions.warnDays },
    rescanOnUpgrade: c.rescanOnUpgrade,
    threadMemoryMb: c.isolation.thread ? c.isolation.maxMemoryMb : undefined,
  };
}

/** The scanner over its (migrated) store, not yet started. */
export async function createScanner(
  deps: { store: ScanStore; dataDir: string; meta: MetadataStore; blobs: BlobStore; events: EventBus; uploads?: UploadService; manifests?: ManifestService; logger?: ScannerLogger },
  config: Config['scanner'],
): Promise<ScanService> {
  const { store } = deps;
  return new ScanService(
    {
      store,
      jobs: new JobQueue(store.db),
      exemptions: new ExemptionStore(store.db),
      vex: new VexStore(store.db),
      builderSboms: new BuilderSbomStore(store.db),
      vulns: await VulnData.open(resolve(deps.dataDir)),
      meta: deps.meta,
      blobs: deps.blobs,
      events: deps.events,
      ...(deps.uploads ? { uploads: deps.uploads } : {}),
      ...(deps.manifests ? { manifests: deps.manifests } : {}),
      ...(deps.logger ? { logger: deps.logger } : {}),
    },
    scannerSettings(config),
  );
}
