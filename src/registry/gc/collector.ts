import type { UploadService } from '../distribution/uploads.ts';
import type { EventBus } from '../events/bus.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';

export interface CollectorOptions {
  /** Delete untagged manifests older than this many ms (0 = keep them). */
  untaggedManifestsAfterMs: number;
  /** Abandoned upload sessions older than this many ms are removed. */
  uploadExpiryMs: number;
  /** Candidates handled per metadata query. */
  batchSize?: number;
  /**
   * A blob marked for deletion longer ago than this is taken to belong to a collector that died,
   * and is finished by this one (a live collector deletes a blob within milliseconds of marking it).
   */
  staleDeletionMs?: number;
}

export interface CollectionReport {
  dryRun: boolean;
  manifestsDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  uploadsExpired: number;
  durationMs: number;
}

/**
 * Online garbage collection. It never walks the store: candidates come from reference counts the
 * metadata store keeps in the same transactions as pushes and deletes. Pushes are never blocked:
 * each candidate is re-checked and marked atomically (`beginBlobDeletion`), so a manifest push
 * racing with the collector either rescues the blob first or is refused cleanly, never left
 * pointing at missing bytes. Several collectors (replicas, the CLI) may run at once.
 */
export class GarbageCollector {
  readonly #blobs: BlobStore;
  readonly #meta: MetadataStore;
  readonly #uploads: UploadService;
  readonly #events: EventBus;
  readonly #options: Required<CollectorOptions>;

  constructor(deps: { blobs: BlobStore; meta: MetadataStore; uploads: UploadService; events: EventBus }, options: CollectorOptions) {
    this.#blobs = deps.blobs;
    this.#meta = deps.meta;
    this.#uploads = deps.uploads;
    this.#events = deps.events;
    this.#options = { batchSize: 1000, staleDeletionMs: 60_000, ...options };
  }

  async collect(options: { dryRun?: boolean; now?: Date } = {}): Promise<CollectionReport> {
    const started = performance.now();
    const now = options.now ?? new Date();
    const dryRun = options.dryRun ?? false;
    const report: CollectionReport = { dryRun, manifestsDeleted: 0, blobsDeleted: 0, bytesFreed: 0, uploadsExpired: 0, durationMs: 0 };
    const batch = this.#options.batchSize;

    if (!dryRun) {
      // Finish deletions a crashed collector had started (deleting bytes is idempotent). Only old
      // marks: finishing another live collector's fresh mark would let an upload re-create the
      // blob before that collector deletes the bytes, leaving a visible blob without content.
      for (const digest of await this.#meta.blobsBeingDeleted(100_000, new Date(now.getTime() - this.#options.staleDeletionMs))) {
        await this.#blobs.delete(digest);
        await this.#meta.finishBlobDeletion(digest);
      }
    }

    if (this.#options.untaggedManifestsAfterMs > 0) {
      const cutoff = new Date(now.getTime() - this.#options.untaggedManifestsAfterMs);
      if (dryRun) {
        report.manifestsDeleted = (await this.#meta.untaggedManifests(cutoff, 1_000_000)).length;
      } else {
        for (;;) {
          const manifests = await this.#meta.untaggedManifests(cutoff, batch);
          let deleted = 0;
          for (const { repository, digest } of manifests) {
            // Conditional: a manifest tagged or pushed again since the listing is kept.
            if (!(await this.#meta.deleteUntaggedManifest(repository, digest, cutoff))) continue;
            deleted++;
            this.#events.publish({ type: 'manifest.deleted', at: new Date(), origin: undefined, repository, digest, tags: [] });
          }
          report.manifestsDeleted += deleted;
          if (manifests.length < batch || deleted === 0) break;
        }
      }
    }

    if (dryRun) {
      for (const candidate of await this.#meta.gcCandidates(now, 10_000_000)) {
        report.blobsDeleted++;
        report.bytesFreed += candidate.size;
      }
    } else {
      for (;;) {
        const candidates = await this.#meta.gcCandidates(now, batch);
        let progressed = 0;
        for (const candidate of candidates) {
          if (!(await this.#meta.beginBlobDeletion(candidate.digest, now))) continue; // rescued meanwhile
          progressed++;
          await this.#blobs.delete(candidate.digest);
          await this.#meta.finishBlobDeletion(candidate.digest);
          report.blobsDeleted++;
          report.bytesFreed += candidate.size;
          this.#events.publish({ type: 'blob.collected', at: new Date(), origin: undefined, digest: candidate.digest, size: candidate.size });
        }
        if (candidates.length < batch || progressed === 0) break;
      }
      report.uploadsExpired = await this.#uploads.expire(new Date(now.getTime() - this.#options.uploadExpiryMs));
    }
    report.durationMs = Math.round(performance.now() - started);
    return report;
  }
}
