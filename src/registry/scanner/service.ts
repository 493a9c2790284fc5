/**
 * The scanner as a capability module of the registry. It observes the core (never in its request
 * path) and keeps its own durable state:
 *
 * - `manifest.pushed` of an image (or of an index: each platform image it lists) records the image
 *   and queues a durable scan job keyed by digest; the handler only writes two small rows in the
 *   scanner's own database, so pushes are not slowed;
 * - a {@link JobWorker} with bounded concurrency claims jobs (lease + compare-and-set, safe for
 *   several replicas), reads the manifest, configuration and layers from the stores, inventories
 *   and matches, stores the result, attaches CycloneDX and SPDX SBOMs as OCI referrers (pushed
 *   through the core's ManifestService, so `GET /v2/<name>/referrers/<digest>` lists them) and
 *   publishes `scan.completed`;
 * - a change of the vulnerability database (an import here, by the CLI, or by another replica)
 *   queues one `rematch` job that re-evaluates every stored inventory page by page, without reading
 *   a layer, and publishes `scan.findings.changed` for each image whose findings changed;
 * - `manifest.deleted` forgets the image (its result when no repository holds it any more).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { digestOf } from '../../oci/digest.ts';
import { MediaType, manifestMediaTypes } from '../../oci/media-types.ts';
import type { ManifestService } from '../distribution/manifests.ts';
import type { UploadService } from '../distribution/uploads.ts';
import type { EventBus, EventOf, RequestOrigin } from '../events/bus.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import type { SqlExecutor } from '../storage/sql/driver.ts';
import { analyzeImage, SCANNER_VERSION } from './analyze.ts';
import type { ConfigFinding } from './config-checks.ts';
import {
  BUILDER_SBOM_TYPES,
  BuilderSbomError,
  type BuilderSbomStore,
  COSIGN_SBOM_LAYER_TYPES,
  cosignSbomSubject,
  IN_TOTO_JSON,
  MAX_BUILDER_SBOM_BYTES,
  mergeBuilderSboms,
  OWN_SBOM_ANNOTATION,
  parseBuilderSbom,
  type ParsedSbom,
  sbomPackageKey,
  UNREAD_SBOM_LAYER_TYPES,
} from './builder-sbom.ts';
import { changeOf, diffGroups, evaluate, type Evaluation, evaluationOf, type FindingsChange, fingerprintOf, matchInputOf, refsOfGroups } from './evaluation.ts';
import { type ExemptionStore, exemptionView } from './exemptions.ts';
import { classifyManifest, IMAGE_CONFIG_TYPES, imageFrom, readBounded } from './image-source.ts';
import { projectOf } from '../../oci/reference.ts';
import { LayerError } from './inventory/errors.ts';
import type { WalkLimits } from './inventory/limits.ts';
import type { SecretFinding } from './inventory/secrets.ts';
import { type ClaimedJob, type JobQueue, JobWorker, PermanentJobError, type TxWrite, errorMessage } from './jobs.ts';
import { buildReport, type ScanReport, type StoredInventory } from './report.ts';
import { sbomBytes, sbomMediaType, type SbomFormat, type SbomSubject } from './sbom.ts';
import type { Inventory, OperatingSystem, VulnerabilityFinding } from './model.ts';
import type { MatchInput, ScanStore } from './store.ts';
import { MAX_VEX_BYTES, OPENVEX_MEDIA_TYPE, parseOpenVex, type VexStore } from './vex.ts';
import type { VulnData } from './vulndata.ts';
import type { ImportReport } from './vulndb/index.ts';
import { OSV_ARTIFACT_TYPE } from './vulndb/artifact.ts';
import { importFromStores } from './vulndb/oci-source.ts';

export interface ScannerSettings {
  concurrency: number;
  pollIntervalMs: number;
  leaseSeconds: number;
  maxAttempts: number;
  retryInitialMs: number;
  retryMaxMs: number;
  limits: Partial<WalkLimits>;
  secretsKey?: string | undefined;
  maxAgeSeconds: number;
  reloadIntervalSeconds: number;
  /** Vulnerability data the server imports itself: OSV artifacts in this registry, http(s) URLs. */
  vulnSources?: VulnSource[];
  vulnRefreshMs?: number;
  rematchPageSize: number;
  sbom: { attach: boolean; formats: SbomFormat[]; registryHost?: string | undefined };
  exemptions: { maxDays: number; warnDays: number };
  rescanOnUpgrade: boolean;
  /** Heap of the scan thread (MiB); scans run in the server's thread when absent. */
  threadMemoryMb?: number | undefined;
}

export type VulnSource = { repository: string; tag: string } | { url: string };

export interface ScannerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ScannerDeps {
  store: ScanStore;
  jobs: JobQueue;
  exemptions: ExemptionStore;
  /** OpenVEX documents (absent: none applied). */
  vex?: VexStore;
  /** SBOMs attached by image builders (absent: not ingested). */
  builderSboms?: BuilderSbomStore;
  vulns: VulnData;
  meta: MetadataStore;
  blobs: BlobStore;
  events: EventBus;
  /** Needed to attach SBOMs as referrers; without them SBOMs are only downloadable. */
  uploads?: UploadService;
  manifests?: ManifestService;
  logger?: ScannerLogger;
  now?: () => number;
}

export interface ScannerStats {
  scansCompleted: number;
  scansFailed: number;
  /** Layer blobs opened for reading (a re-evaluation opens none). */
  layersOpened: number;
  rematches: number;
  imagesReevaluated: number;
  findingsChanged: number;
  sbomsAttached: number;
}

export interface RematchReport {
  evaluated: number;
  changed: number;
  durationMs: number;
  database: string;
}

const silent: ScannerLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const REMATCH_JOB = 'rematch';

/** A URL as logged or shown: no user info, no query (either may carry a token). */
export function withoutSecrets(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** What the claim of a scan job did and read (see #claimed). */
interface ScanStart {
  marked: boolean;
  repositories: string[];
}

function scanJobId(digest: string): string {
  return `scan:${digest}`;
}

/** Who the scanner acts as when it pushes referrers. */
function systemOrigin(): RequestOrigin {
  return { clientAddress: '127.0.0.1', userAgent: `portcullis-scanner/${SCANNER_VERSION}`, requestId: randomUUID(), actor: { kind: 'system', name: 'scanner' } };
}

export class ScanService {
  readonly stats: ScannerStats = { scansCompleted: 0, scansFailed: 0, layersOpened: 0, rematches: 0, imagesReevaluated: 0, findingsChanged: 0, sbomsAttached: 0 };
  readonly #d: ScannerDeps;
  readonly #s: ScannerSettings;
  readonly #log: ScannerLogger;
  readonly #now: () => number;
  readonly worker: JobWorker;
  readonly #unsubscribe: Array<() => void> = [];
  /** Recently read results (policy gates read the report on every pull), checked against a cheap stamp. */
  readonly #results = new Map<string, { stamp: string; row: NonNullable<Awaited<ReturnType<ScanStore['result']>>> }>();
  #reloadTimer: NodeJS.Timeout | undefined;
  #sourcesTimer: NodeJS.Timeout | undefined;
  /** Source imports run one at a time (a moved tag while the periodic check runs). */
  #importing: Promise<unknown> = Promise.resolve();

  constructor(deps: ScannerDeps, settings: ScannerSettings) {
    this.#d = deps;
    this.#s = settings;
    this.#log = deps.logger ?? silent;
    this.#now = deps.now ?? Date.now;
    this.worker = new JobWorker(
      deps.jobs,
      { scan: (job, signal, complete) => this.#runScan(job, signal, complete), rematch: (_job, signal) => this.rematch(signal).then(() => undefined), 'builder-sbom': (job, signal) => this.#mergeJob(job, signal) },
      {
        onGiveUp: (job, error, complete) => this.#giveUp(job, error, complete),
        onError: (error, job) => this.#log.error({ err: error, job: job?.id }, 'scanner job error'),
        onClaimed: (tx, job) => this.#claimed(tx, job),
      },
      {
        concurrency: settings.concurrency,
        pollMs: settings.pollIntervalMs,
        leaseMs: settings.leaseSeconds * 1000,
        maxAttempts: settings.maxAttempts,
        retryBaseMs: settings.retryInitialMs,
        retryMaxMs: settings.retryMaxMs,
        now: this.#now,
      },
    );
  }

  get exemptions(): ExemptionStore {
    return this.#d.exemptions;
  }

  get vex(): VexStore | undefined {
    return this.#d.vex;
  }

  get vulns(): VulnData {
    return this.#d.vulns;
  }

  get settings(): ScannerSettings {
    return this.#s;
  }

  /** Subscribes to the core's events and starts the worker (and the database snapshot watch). */
  async start(): Promise<void> {
    const { events } = this.#d;
    this.#unsubscribe.push(events.subscribe('manifest.pushed', (e) => this.onManifestPushed(e)));
    this.#unsubscribe.push(events.subscribe('manifest.deleted', (e) => this.onManifestDeleted(e)));
    this.#unsubscribe.push(events.subscribe('tag.deleted', (e) => this.onTagDeleted(e)));
    // Findings computed with another database (an import while this server was down) are re-evaluated.
    if (await this.#d.store.needsRematch(this.#d.vulns.identity().hash)) await this.enqueueRematch();
    if (this.#s.rescanOnUpgrade) await this.enqueueOutdated();
    this.worker.start();
    if (this.#s.reloadIntervalSeconds > 0) {
      this.#reloadTimer = setInterval(() => {
        this.#d.vulns
          .refresh()
          .then((changed) => (changed ? this.enqueueRematch() : undefined))
          .catch((error) => this.#log.error({ err: error }, 'vulnerability database reload failed'));
        this.#warnExpiringExemptions().catch((error) => this.#log.error({ err: error }, 'exemption expiry check failed'));
      }, this.#s.reloadIntervalSeconds * 1000);
      this.#reloadTimer.unref();
    }
    const sources = this.#s.vulnSources ?? [];
    if (sources.length > 0) {
      void this.importSources(sources);
      this.#sourcesTimer = setInterval(() => void this.importSources(sources), this.#s.vulnRefreshMs ?? 3_600_000);
      this.#sourcesTimer.unref();
    }
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    if (this.#reloadTimer) clearInterval(this.#reloadTimer);
    if (this.#sourcesTimer) clearInterval(this.#sourcesTimer);
    await this.#importing;
    await this.worker.stop();
  }

  // ------------------------------------------------------------------------------------------
  // Events

  /** Queues a scan of a pushed image, or of each image an index lists. */
  async onManifestPushed(e: EventOf<'manifest.pushed'>): Promise<void> {
    if (e.mediaType === MediaType.ociIndex || e.mediaType === MediaType.dockerManifestList) {
      await this.#d.store.recordImage(e.repository, e.digest, e.mediaType, this.#now());
      const record = await this.#d.meta.getManifest(e.repository, e.digest);
      const kind = record ? classifyManifest(record.content) : undefined;
      if (kind?.kind !== 'index') return;
      for (const child of kind.manifests) {
        // BuildKit keeps attestations (SBOM, provenance) as manifests of the index, not as images.
        const attests = child.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ? child.annotations['vnd.docker.reference.digest'] : undefined;
        if (attests !== undefined) await this.#ingestBuilderSbom(e.repository, child.digest, attests);
        else if (child.mediaType === MediaType.ociManifest || child.mediaType === MediaType.dockerManifest) await this.enqueueScan(e.repository, child.digest, child.mediaType);
      }
      return;
    }
    if (e.subject !== undefined && e.artifactType !== undefined && BUILDER_SBOM_TYPES.includes(e.artifactType)) {
      await this.#ingestBuilderSbom(e.repository, e.digest, e.subject);
      return;
    }
    // `cosign attach sbom`: no subject field; the tag `sha256-<hex>.sbom` names the image.
    const cosignSubject = cosignSbomSubject(e.tag);
    if (cosignSubject !== undefined && (e.mediaType === MediaType.ociManifest || e.mediaType === MediaType.dockerManifest)) {
      // The tag moved (the SBOM attached again): the one it named before is no longer attached.
      if (e.previousTagTarget !== undefined && e.previousTagTarget !== e.digest) {
        const before = await this.#d.builderSboms?.delete(e.repository, e.previousTagTarget);
        // Merged again even when the new manifest holds no readable SBOM.
        if (before !== undefined) await this.#enqueueMerge(before);
      }
      await this.#ingestBuilderSbom(e.repository, e.digest, cosignSubject);
      return;
    }
    if (e.artifactType === OSV_ARTIFACT_TYPE && e.tag !== undefined) {
      const moved = (this.#s.vulnSources ?? []).filter((src) => 'repository' in src && src.repository === e.repository && src.tag === e.tag);
      if (moved.length > 0) void this.importSources(moved);
      return;
    }
    if (e.artifactType === OPENVEX_MEDIA_TYPE && e.subject !== undefined) {
      await this.#ingestVex(e.repository, e.digest, e.subject);
      return;
    }
    // Artifacts (signatures, SBOMs, attestations, our own referrers) are not images.
    if (e.artifactType !== undefined && !IMAGE_CONFIG_TYPES.includes(e.artifactType)) return;
    if (!manifestMediaTypes.includes(e.mediaType)) return;
    await this.enqueueScan(e.repository, e.digest, e.mediaType);
  }

  /** Deleting a cosign SBOM tag (`cosign clean`) detaches that SBOM; its manifest may stay, untagged. */
  async onTagDeleted(e: EventOf<'tag.deleted'>): Promise<void> {
    if (e.digest === undefined || cosignSbomSubject(e.tag) === undefined) return;
    const subject = await this.#d.builderSboms?.delete(e.repository, e.digest);
    if (subject !== undefined) await this.#enqueueMerge(subject);
  }

  async onManifestDeleted(e: EventOf<'manifest.deleted'>): Promise<void> {
    await this.#d.store.forgetImage(e.repository, e.digest);
    const vex = await this.#d.vex?.get(e.digest);
    if (vex?.source === 'referrer' && vex.repository === e.repository) await this.#d.vex!.delete(e.digest);
    const subject = await this.#d.builderSboms?.delete(e.repository, e.digest);
    if (subject !== undefined) await this.#enqueueMerge(subject);
  }

  /**
   * Stores the packages of an SBOM its builder attached to `subject` (a referrer, or a BuildKit
   * attestation manifest) and queues their comparison with the image's inventory. Portcullis' own
   * SBOMs, other attestations (provenance) and unreadable documents are skipped, with a log line.
   */
  async #ingestBuilderSbom(repository: string, digest: string, subject: string): Promise<void> {
    if (!this.#d.builderSboms) return;
    const record = await this.#d.meta.getManifest(repository, digest);
    if (!record) return;
    let manifest: { annotations?: Record<string, string>; layers?: Array<{ mediaType?: string; digest: string; size: number }> };
    try {
      manifest = JSON.parse(record.content.toString('utf8')) as typeof manifest;
    } catch {
      return;
    }
    if (manifest.annotations?.[OWN_SBOM_ANNOTATION] !== undefined) return;
    const found: ParsedSbom[] = [];
    const reasons: string[] = [];
    for (const layer of (manifest.layers ?? []).slice(0, 16)) {
      const type = layer.mediaType ?? '';
      if (!BUILDER_SBOM_TYPES.includes(type) && !COSIGN_SBOM_LAYER_TYPES.includes(type) && !UNREAD_SBOM_LAYER_TYPES.includes(type) && type !== 'application/json') continue;
      if (layer.size > MAX_BUILDER_SBOM_BYTES) {
        reasons.push(`${layer.digest}: ${layer.size} bytes > ${MAX_BUILDER_SBOM_BYTES}`);
        continue;
      }
      try {
        // Unread encodings (XML...) are refused by their type, before their blob is read.
        if (UNREAD_SBOM_LAYER_TYPES.includes(type)) parseBuilderSbom(Buffer.alloc(0), type);
        found.push(parseBuilderSbom(await readBounded(await this.#d.blobs.read(layer.digest), MAX_BUILDER_SBOM_BYTES, 'builder SBOM'), type));
      } catch (error) {
        reasons.push(`${layer.digest}: ${errorMessage(error)}`);
        if (!(error instanceof BuilderSbomError)) this.#log.warn({ err: error, repository, digest }, 'a builder SBOM layer could not be read');
      }
    }
    if (found.length === 0) {
      this.#log.info({ repository, digest, subject, reasons }, 'no builder SBOM in this referrer');
      return;
    }
    const packages = [...new Map(found.flatMap((f) => f.packages).map((p) => [sbomPackageKey(p), p])).values()];
    const tool = found.find((f) => f.tool !== undefined)?.tool;
    await this.#d.builderSboms.put({ id: digest, repository, subject, format: found[0]!.format, ...(tool !== undefined ? { tool } : {}), packages, createdAt: this.#now() });
    this.#log.info({ repository, subject, referrer: digest, packages: packages.length, format: found[0]!.format }, 'builder SBOM attached');
    await this.#enqueueMerge(subject);
  }

  async #enqueueMerge(subject: string): Promise<void> {
    const id = `builder-sbom:${subject}`;
    await this.#d.jobs.enqueue({ id, kind: 'builder-sbom', digest: subject, priority: 1, payload: {} }, this.#now(), { replace: true });
    this.worker.wake(id);
  }

  /** The inventory with the builder SBOMs of `digest` merged in (see builder-sbom.ts), its match input and evaluation. */
  async #withBuilderSboms(digest: string, inventory: StoredInventory, os: OperatingSystem | undefined): Promise<{ inventory: StoredInventory; matchInput: ReturnType<typeof matchInputOf>; evaluation: Evaluation }> {
    const sboms = (await this.#d.builderSboms?.forSubject(digest)) ?? [];
    const { packages, comparisons } = mergeBuilderSboms(
      inventory.packages.filter((p) => p.origin !== 'sbom'),
      sboms,
    );
    const next: StoredInventory = { ...inventory, packages };
    if (comparisons.length > 0) next.builderSboms = comparisons;
    else delete next.builderSboms;
    const inv: Inventory = { packages };
    if (os) inv.os = os;
    return { inventory: next, matchInput: matchInputOf(inv, inventory.layers), evaluation: evaluate(this.#d.vulns.matcher, inv, this.#d.vulns.identity()) };
  }

  /** A builder SBOM came or went: re-derive the image's stored inventory and findings (no layer read). */
  async #mergeJob(job: ClaimedJob, signal: AbortSignal): Promise<void> {
    const digest = job.digest!;
    const r = await this.#d.store.result(digest);
    if (!r || r.status === 'failed') return;
    // The scan merges what is stored when it ends; one running now may have read the SBOMs before this one.
    if (r.status !== 'complete' || !r.inventory) throw new Error('the image is being scanned; merging after the scan');
    signal.throwIfAborted();
    await this.#d.vulns.refresh();
    const stored = r.inventory as StoredInventory;
    const merged = await this.#withBuilderSboms(digest, stored, r.os);
    if (JSON.stringify(merged.inventory.builderSboms ?? []) === JSON.stringify(stored.builderSboms ?? []) && merged.inventory.packages.length === stored.packages.length) return;
    const before = (await this.#d.store.refsOf([digest])).get(digest) ?? '';
    if (!(await this.#d.store.replaceInventory(digest, merged.inventory, merged.matchInput, merged.evaluation, this.#now()))) return;
    const diff = diffGroups(before, merged.evaluation);
    const oldTemplates = await this.#d.store.templates(diff.flatMap((d) => d.removed));
    const change = changeOf(diff, oldTemplates, (i) => merged.inventory.packages[i]?.name ?? '');
    this.#publishChange(digest, change, merged.evaluation, merged.evaluation.dbHash, await this.#d.store.repositoriesOf(digest));
    this.#log.info({ digest, builderSboms: merged.inventory.builderSboms?.length ?? 0, packages: merged.inventory.packages.length }, 'builder SBOMs merged into the inventory');
  }

  /** Stores an OpenVEX document attached to `subject` as a referrer (its first layer), for that image's reports. */
  async #ingestVex(repository: string, digest: string, subject: string): Promise<void> {
    if (!this.#d.vex) return;
    const record = await this.#d.meta.getManifest(repository, digest);
    const layer = record ? (JSON.parse(record.content.toString('utf8')) as { layers?: Array<{ digest: string; size: number }> }).layers?.[0] : undefined;
    if (!layer || layer.size > MAX_VEX_BYTES) return;
    try {
      const bytes = await readBounded(await this.#d.blobs.read(layer.digest), MAX_VEX_BYTES, 'OpenVEX document');
      const document = parseOpenVex(bytes);
      await this.#d.vex.put({ id: digest, project: projectOf(repository), repository, subject, source: 'referrer', document, createdAt: this.#now() });
      this.#log.info({ repository, subject, vex: document.id, statements: document.statements.length }, 'OpenVEX document attached');
    } catch (error) {
      this.#log.warn({ err: error, repository, digest }, 'an attached OpenVEX document was not accepted');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Queueing

  /** Records the image and queues its scan (a no-op scan when a current result exists, which then only attaches SBOMs there). */
  async enqueueScan(repository: string, digest: string, mediaType: string, options: { force?: boolean } = {}): Promise<void> {
    const now = this.#now();
    const { store } = this.#d;
    const id = scanJobId(digest);
    // One transaction: the image, its job, and its result marked queued (unless pending or complete, when not forced).
    await this.#d.jobs.enqueue({ id, kind: 'scan', repository, digest, payload: { force: options.force === true }, priority: 1 }, now, {
      replace: options.force === true,
      before: (tx) => store.recordImage(repository, digest, mediaType, now, tx),
      after: (tx) => store.markQueued(digest, now, { onlyFailed: options.force !== true }, tx),
    });
    this.worker.wake(id);
  }

  /** Queues re-evaluation of every stored inventory against the current database (one job, however often asked). */
  async enqueueRematch(): Promise<void> {
    await this.#d.jobs.enqueue({ id: REMATCH_JOB, kind: 'rematch', priority: 0, payload: { requestedAt: this.#now() } }, this.#now(), { replace: true });
    this.worker.wake(REMATCH_JOB);
  }

  /** Queues a full re-scan (layers read again) of results made by an older scanner version. */
  async enqueueOutdated(limit = 100_000): Promise<number> {
    let after = '';
    let n = 0;
    while (n < limit) {
      const digests = await this.#d.store.outdated(SCANNER_VERSION, after, 500);
      if (digests.length === 0) break;
      for (const digest of digests) {
        const repository = (await this.#d.store.repositoriesOf(digest))[0];
        if (repository === undefined) continue;
        const image = await this.#d.store.image(repository, digest);
        await this.enqueueScan(repository, digest, image?.mediaType ?? MediaType.ociManifest, { force: true });
        n++;
      }
      after = digests.at(-1)!;
    }
    return n;
  }

  /** Queues a full re-scan of an image (or of each image of an index), on request. */
  async rescan(repository: string, digest: string, mediaType: string, origin: RequestOrigin): Promise<void> {
    if (mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList) {
      const record = await this.#d.meta.getManifest(repository, digest);
      const kind = record ? classifyManifest(record.content) : undefined;
      for (const child of kind?.kind === 'index' ? kind.manifests : []) {
        if (child.mediaType === MediaType.ociManifest || child.mediaType === MediaType.dockerManifest) await this.enqueueScan(repository, child.digest, child.mediaType, { force: true });
      }
    } else await this.enqueueScan(repository, digest, mediaType, { force: true });
    this.#log.info({ repository, digest, actor: origin.actor }, 're-scan requested');
  }

  /** Results by status (all replicas). */
  resultCounts(): ReturnType<ScanStore['counts']> {
    return this.#d.store.counts();
  }

  /** Jobs waiting or running (all replicas). */
  pendingJobs(): Promise<number> {
    return this.#d.jobs.pending();
  }

  /** Imports vulnerability data (path or URL) and queues re-evaluation when it changed anything. */
  async importVulnData(location: string, options: { force?: boolean } = {}): Promise<ImportReport> {
    return this.#imported(await this.#d.vulns.import(location, { force: options.force === true }));
  }

  /**
   * Imports the configured sources one after the other (never two imports at once); a failing
   * source is logged and leaves the database as it was. Resolves with the reports (or errors).
   */
  importSources(sources: VulnSource[]): Promise<Array<ImportReport | Error>> {
    const run = this.#importing.then(async () => {
      const out: Array<ImportReport | Error> = [];
      for (const src of sources) {
        try {
          const report =
            'url' in src ? await this.#d.vulns.import(src.url) : await importFromStores(this.#d.vulns, { meta: this.#d.meta, blobs: this.#d.blobs }, src.repository, src.tag);
          out.push(await this.#imported(report));
          if (report.status === 'imported') this.#log.info({ source: report.source, records: report.meta?.records, contentHash: report.meta?.contentHash }, 'vulnerability data imported');
        } catch (error) {
          this.#log.error({ err: error, source: 'url' in src ? withoutSecrets(src.url) : `${src.repository}:${src.tag}` }, 'vulnerability data import failed');
          out.push(error instanceof Error ? error : new Error(String(error)));
        }
      }
      return out;
    });
    this.#importing = run.catch(() => undefined);
    return run;
  }

  async #imported(report: ImportReport): Promise<ImportReport> {
    if (report.status === 'imported') {
      const c = report.changes;
      this.#d.events.publish({ type: 'vulndb.imported', at: new Date(), origin: undefined, source: report.source, records: report.meta?.records ?? 0, added: c.added.length, removed: c.removed.length, changed: c.changed.length });
      await this.enqueueRematch();
    }
    return report;
  }

  // ------------------------------------------------------------------------------------------
  // Scanning

  /** In the transaction claiming a scan: its result marked running (unless current), where the image lives. */
  async #claimed(tx: SqlExecutor, job: ClaimedJob): Promise<ScanStart | undefined> {
    if (job.kind !== 'scan' || job.digest === undefined) return undefined;
    const marked = await this.#d.store.startScan(job.digest, SCANNER_VERSION, job.payload.force === true, this.#now(), tx);
    return { marked, repositories: await this.#d.store.repositoriesOf(job.digest, tx) };
  }

  async #runScan(job: ClaimedJob, signal: AbortSignal, complete: (write?: TxWrite) => Promise<void>): Promise<void> {
    const digest = job.digest!;
    const store = this.#d.store;
    const start = job.started as ScanStart | undefined;
    const repositories = start?.repositories ?? (await store.repositoriesOf(digest));
    let found: { repository: string; content: Buffer; mediaType: string } | undefined;
    for (const repository of repositories) {
      const record = await this.#d.meta.getManifest(repository, digest);
      if (record) {
        found = { repository, content: record.content, mediaType: record.mediaType };
        break;
      }
      await store.forgetImage(repository, digest);
    }
    if (!found) return; // deleted everywhere meanwhile
    const kind = classifyManifest(found.content);
    if (kind.kind === 'image' && kind.layers.length > 0 && kind.layers.every((l) => l.mediaType === IN_TOTO_JSON)) {
      // A BuildKit attestation manifest (image config, unknown platform, in-toto layers) is no image: its index brings it as a builder SBOM.
      for (const repository of repositories) await store.forgetImage(repository, digest);
      return;
    }
    if (kind.kind !== 'image') {
      const reason = `not an image: ${kind.kind === 'other' ? kind.reason : 'an index'}`;
      await complete((tx) => store.markFailed(digest, reason, this.#now(), tx));
      return;
    }
    // Marked running when claimed, unless current (or without a result row: decided here).
    let scan = start?.marked === true;
    if (!scan) {
      const existing = await store.scanState(digest);
      const current = existing?.status === 'complete' && existing.scannerVersion === SCANNER_VERSION;
      scan = !current || job.payload.force === true;
      if (scan) await store.markRunning(digest, this.#now());
    }
    if (scan) {
      const openBlob = (d: string) => this.#d.blobs.read(d);
      let source;
      try {
        source = await imageFrom(digest, kind, openBlob, { skipNonDistributable: true });
      } catch (error) {
        throw new PermanentJobError(`unreadable image configuration: ${errorMessage(error)}`);
      }
      for (const layer of source.layers) {
        const open = layer.open!;
        layer.open = () => {
          this.stats.layersOpened++;
          return open();
        };
      }
      await this.#d.vulns.refresh();
      let analysis;
      try {
        analysis = await analyzeImage(source, this.#d.vulns.matcher, this.#d.vulns.identity(), {
          limits: this.#s.limits,
          signal,
          ...(this.#s.secretsKey !== undefined ? { secretsKey: this.#s.secretsKey } : {}),
          ...(this.#s.threadMemoryMb !== undefined ? { threadMemoryMb: this.#s.threadMemoryMb } : {}),
        });
      } catch (error) {
        // A hostile or corrupt layer is a verdict on the image: retrying cannot help.
        if (error instanceof LayerError && error.code !== 'read-failed' && error.code !== 'aborted') throw new PermanentJobError(`${error.code}: ${error.message}`);
        throw error;
      }
      const merged = await this.#withBuilderSboms(digest, analysis.inventory, analysis.os);
      analysis = { ...analysis, ...merged };
      const now = this.#now();
      let holders: string[] = [];
      if (this.#s.sbom.attach) {
        // SBOMs are made from the stored result: it is stored first.
        await store.saveScan(digest, analysis, now);
        holders = await store.repositoriesOf(digest);
      } else {
        // The result is stored with the job's end, in one transaction.
        const result = analysis;
        let saved: () => void = () => undefined;
        await complete(async (tx) => {
          saved = await store.saveScanIn(tx, digest, result, now);
          holders = await store.repositoriesOf(digest, tx);
        });
        saved();
      }
      this.stats.scansCompleted++;
      const s = analysis.evaluation.summary;
      this.#log.info({ digest, repository: found.repository, packages: analysis.inventory.packages.length, findings: s.total, critical: s.bySeverity.critical }, 'image scanned');
      for (const repository of holders) {
        this.#d.events.publish({
          type: 'scan.completed',
          at: new Date(now),
          origin: undefined,
          repository,
          digest,
          outcome: 'success',
          packages: analysis.inventory.packages.length,
          summary: { ...s.bySeverity, total: s.total, fixable: s.fixable, malicious: s.malicious },
          secrets: analysis.secrets.length,
        });
      }
      if (this.#s.sbom.attach) await this.#attachSboms(digest, signal, complete, holders);
      return;
    }
    if (this.#s.sbom.attach) await this.#attachSboms(digest, signal, complete);
  }

  async #giveUp(job: ClaimedJob, error: unknown, complete: (write?: TxWrite) => Promise<void>): Promise<void> {
    const digest = job.digest;
    if (job.kind !== 'scan' || digest === undefined) {
      this.#log.error({ err: error, job: job.id }, 'scanner job failed for good');
      return;
    }
    const reason = errorMessage(error);
    // The failure is recorded with the job's end, in one transaction.
    let repositories: string[] = [];
    await complete(async (tx) => {
      await this.#d.store.markFailed(digest, reason, this.#now(), tx);
      repositories = await this.#d.store.repositoriesOf(digest, tx);
    });
    this.stats.scansFailed++;
    this.#log.warn({ digest, reason }, 'image scan failed');
    for (const repository of repositories) {
      this.#d.events.publish({ type: 'scan.completed', at: new Date(), origin: undefined, repository, digest, outcome: 'failure', reason });
    }
  }

  // ------------------------------------------------------------------------------------------
  // SBOMs

  /** The SBOM of a stored scan, or undefined when there is no complete scan. */
  async sbom(repository: string, digest: string, format: SbomFormat): Promise<Buffer | undefined> {
    const r = await this.#result(digest);
    if (!r || r.completedAt === undefined || !r.inventory) return undefined;
    const inv = r.inventory as StoredInventory;
    const subject: SbomSubject = { name: repository, digest, scannedAt: new Date(r.completedAt).toISOString(), os: r.os, registryHost: this.#s.sbom.registryHost, toolVersion: SCANNER_VERSION };
    return sbomBytes(
      format,
      subject,
      inv.packages.filter((p) => p.origin !== 'sbom'),
      inv.layers,
    );
  }

  /**
   * Pushes the SBOMs of `digest` as referrer artifacts into every repository holding it
   * (idempotent; `holders` when just read); what changed is recorded with the job's end (`complete`).
   */
  async #attachSboms(digest: string, signal: AbortSignal, complete: (write?: TxWrite) => Promise<void>, holders?: readonly string[]): Promise<void> {
    const { uploads, manifests } = this.#d;
    if (!uploads || !manifests) return;
    const changed: Array<{ repository: string; referrers: Record<string, string> }> = [];
    const record = async () => {
      if (changed.length === 0) return;
      await complete(async (tx) => {
        for (const c of changed) await this.#d.store.setReferrers(c.repository, digest, c.referrers, tx);
      });
      for (const c of changed) this.stats.sbomsAttached += Object.keys(c.referrers).length;
    };
    for (const repository of holders ?? (await this.#d.store.repositoriesOf(digest))) {
      if (signal.aborted) return record();
      const image = await this.#d.meta.getManifest(repository, digest);
      if (!image) continue;
      const row = await this.#d.store.image(repository, digest);
      const referrers: Record<string, string> = {};
      for (const format of this.#s.sbom.formats) {
        const bytes = await this.sbom(repository, digest, format);
        if (!bytes) return record();
        try {
          referrers[format] = await this.#pushReferrer(repository, { digest, mediaType: image.mediaType, size: image.size }, format, bytes);
        } catch (error) {
          this.#log.warn({ err: error, repository, digest, format }, 'could not attach the SBOM');
          continue;
        }
        const previous = row?.referrers?.[format];
        if (previous !== undefined && previous !== referrers[format]) {
          // A re-scan replaces the SBOM; the old one goes when deletion is allowed.
          await manifests.delete(repository, previous, systemOrigin()).catch(() => undefined);
        }
      }
      if (JSON.stringify(row?.referrers ?? {}) !== JSON.stringify(referrers)) changed.push({ repository, referrers });
    }
    await record();
  }

  async #pushReferrer(repository: string, subject: { digest: string; mediaType: string; size: number }, format: SbomFormat, bytes: Buffer): Promise<string> {
    const { uploads, manifests } = this.#d;
    const origin = systemOrigin();
    const empty = Buffer.from('{}');
    const emptyDigest = digestOf(empty);
    const blobDigest = digestOf(bytes);
    const mediaType = sbomMediaType(format);
    const r = await this.#result(subject.digest);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        artifactType: mediaType,
        config: { mediaType: MediaType.ociEmpty, digest: emptyDigest, size: 2, data: 'e30=' },
        layers: [{ mediaType, digest: blobDigest, size: bytes.length, annotations: { 'org.opencontainers.image.title': format === 'cyclonedx' ? 'sbom.cdx.json' : 'sbom.spdx.json' } }],
        subject,
        annotations: {
          'org.opencontainers.image.created': new Date(r?.completedAt ?? 0).toISOString(),
          'dev.portcullis.sbom.format': format === 'cyclonedx' ? 'CycloneDX 1.6' : 'SPDX 2.3',
          'dev.portcullis.scanner.version': SCANNER_VERSION,
        },
      }),
    );
    const digest = digestOf(manifest);
    // Already there (a re-push of the image, another scan job): nothing to write, no event.
    if (await this.#d.meta.getManifest(repository, digest)) return digest;
    for (const [blob, content] of [
      [emptyDigest, empty],
      [blobDigest, bytes],
    ] as const) {
      if (!(await this.#d.meta.linkedBlob(repository, blob))) await uploads!.monolithic(repository, blob, Readable.from([content]), content.length, origin);
    }
    await manifests!.put(repository, digest, manifest, MediaType.ociManifest, origin);
    return digest;
  }

  // ------------------------------------------------------------------------------------------
  // Re-evaluation

  /**
   * Re-evaluates every stored inventory not yet evaluated against the current database: pages of
   * compact match inputs, matched with the shared matcher, compared by fingerprint; only changed
   * images get their findings rewritten (and an event). No layer is read.
   */
  async rematch(signal?: AbortSignal): Promise<RematchReport> {
    const started = performance.now();
    await this.#d.vulns.refresh();
    const matcher = this.#d.vulns.matcher;
    const db = this.#d.vulns.identity();
    let after = '';
    let evaluated = 0;
    let changedCount = 0;
    for (;;) {
      signal?.throwIfAborted();
      const rows = await this.#d.store.rematchPage(after, this.#s.rematchPageSize, db.hash);
      if (rows.length === 0) break;
      after = rows.at(-1)!.digest;
      const changed: Array<{ digest: string; revision: number; evaluation: Evaluation; input: MatchInput }> = [];
      const unchanged: string[] = [];
      for (const row of rows) {
        // Refs and fingerprint first: an unchanged image (the usual case) needs nothing else.
        const groups = matcher.matchTuples(row.matchInput);
        const refs = refsOfGroups(groups);
        const fingerprint = fingerprintOf(refs);
        if (fingerprint === row.fingerprint) unchanged.push(row.digest);
        else changed.push({ digest: row.digest, revision: row.revision, evaluation: evaluationOf(groups, db, refs, fingerprint), input: row.matchInput });
      }
      const before = await this.#d.store.refsOf(changed.map((c) => c.digest));
      const written = await this.#d.store.applyEvaluations(changed, unchanged, db, this.#now());
      evaluated += rows.length;
      if (written.size > 0) {
        // Only the packages whose findings differ are looked at (old templates read by key).
        const diffs = new Map(changed.filter((c) => written.has(c.digest)).map((c) => [c.digest, diffGroups(before.get(c.digest) ?? '', c.evaluation)]));
        const oldTemplates = await this.#d.store.templates([...diffs.values()].flatMap((d) => d.flatMap((p) => p.removed)));
        const repositories = await this.#d.store.repositoriesOfMany([...diffs.keys()]);
        for (const c of changed) {
          const diff = diffs.get(c.digest);
          if (!diff) continue;
          changedCount++;
          const change = changeOf(diff, oldTemplates, (i) => c.input.packages[i]?.[1] ?? '');
          this.#publishChange(c.digest, change, c.evaluation, db.hash, repositories.get(c.digest) ?? []);
        }
      }
      // Let requests in between pages (SQLite reads are synchronous).
      await yieldNow();
    }
    this.stats.rematches++;
    this.stats.imagesReevaluated += evaluated;
    this.stats.findingsChanged += changedCount;
    const report = { evaluated, changed: changedCount, durationMs: Math.round(performance.now() - started), database: db.hash };
    if (evaluated > 0) this.#log.info({ rematch: report }, 'stored inventories re-evaluated');
    return report;
  }

  #publishChange(digest: string, change: FindingsChange, evaluation: Evaluation, database: string, repositories: readonly string[]): void {
    if (change.added.length + change.removed.length + change.changed.length === 0) return;
    const s = evaluation.summary;
    for (const repository of repositories) {
      this.#d.events.publish({
        type: 'scan.findings.changed',
        at: new Date(),
        origin: undefined,
        repository,
        digest,
        database,
        summary: { ...s.bySeverity, total: s.total, fixable: s.fixable, malicious: s.malicious },
        newCritical: change.newCritical,
        added: change.added,
        removed: change.removed,
        changed: change.changed,
      });
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reports

  /** The report of `digest` as seen from `repository`, or undefined when the registry never queued it. */
  async report(repository: string, digest: string): Promise<ScanReport | undefined> {
    const r = await this.#result(digest);
    if (!r) return undefined;
    const now = this.#now();
    return buildReport({
      repository,
      digest,
      status: r.status,
      reason: r.reason,
      completedAt: r.completedAt,
      scannerVersion: r.scannerVersion,
      os: r.os,
      inventory: r.inventory as StoredInventory | undefined,
      findings: r.findings,
      secrets: r.secrets as SecretFinding[],
      configFindings: r.configFindings as ConfigFinding[],
      dbHash: r.dbHash,
      dbUpdatedAt: r.dbUpdatedAt,
      evaluatedAt: r.evaluatedAt,
      currentDbHash: this.#d.vulns.identity().hash,
      maxAgeSeconds: this.#s.maxAgeSeconds,
      exemptions: await this.#d.exemptions.inForce(repository, now),
      vex: (await this.#d.vex?.forImage(repository, digest)) ?? [],
      exemptionWarnDays: this.#s.exemptions.warnDays,
      now,
    });
  }

  async #result(digest: string): Promise<Awaited<ReturnType<ScanStore['result']>>> {
    const stamp = await this.#d.store.stamp(digest);
    if (stamp === undefined) return undefined;
    const cached = this.#results.get(digest);
    if (cached?.stamp === stamp) {
      this.#results.delete(digest);
      this.#results.set(digest, cached);
      return cached.row;
    }
    const row = await this.#d.store.result(digest);
    if (!row) return undefined;
    this.#results.set(digest, { stamp, row });
    if (this.#results.size > 256) this.#results.delete(this.#results.keys().next().value!);
    return row;
  }

  async #warnExpiringExemptions(): Promise<void> {
    const now = this.#now();
    for (const e of await this.#d.exemptions.takeExpiring(now + this.#s.exemptions.warnDays * 86_400_000, now)) {
      this.#log.warn({ exemption: e.id, vulnerability: e.vulnerability, owner: e.owner, expiresAt: new Date(e.expiresAt).toISOString() }, 'an exemption expires soon');
      this.#d.events.publish({ type: 'scan.exemption.expiring', at: new Date(now), origin: undefined, ...(e.repository !== undefined ? { repository: e.repository } : {}), exemption: exemptionView(e) });
    }
  }
}
