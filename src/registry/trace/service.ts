/**
 * Traceability: records provenance facts as they arrive on the event bus and answers the
 * questions of an incident responder from the index (trace/store.ts), never by walking images:
 *
 * - the provenance graph of a digest: build sources (annotations, labels, verified SLSA provenance),
 *   base images and images built on it, index relations, signatures, SBOMs, findings, promotions
 *   and deployments;
 * - which images were built from a commit (or a source repository);
 * - which images have a vulnerability, and which running workloads are affected.
 *
 * Every answer is filtered by the caller's `canRead(repository)`: a fact about an image is shown
 * only when the caller can read a repository holding it.
 */
import { isIndexMediaType } from '../../oci/media-types.ts';
import type { EventBus, EventOf } from '../events/bus.ts';
import { classifyManifest, isLayerMediaType, readBounded } from '../scanner/image-source.ts';
import type { ScanReport } from '../scanner/report.ts';
import { COSIGN_TAG, isSignatureArtifactManifest, REFERRERS_TAG } from '../signatures/collect.ts';
import type { SignatureFactsProvider } from '../signatures/facts.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import { baseFromAnnotations, chainIds, configFacts, sourceFromAnnotations, sourceFromProvenance, type SourceFact } from './facts.ts';
import type { DeploymentFact, DeploymentSource, PromotionFact, PromotionSource } from './sources.ts';
import type { BaseRelation, FindingRow, StoredSource, TracedImage, TraceStore } from './store.ts';

/** Largest image configuration read (a few KiB normally; bounded against hostile ones). */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** Layer stacks indexed at most this deep (real images have tens of layers; a hostile one could list thousands). */
const MAX_INDEXED_LAYERS = 256;
const SBOM_TYPES = /spdx|cyclonedx|syft/i;
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'none', 'unknown'] as const;
/** Index rows one query reads at most (an answer beyond it says `truncated`). */
const MATCH_ROWS = 200_000;
/** Deployment lookups in flight at once (PostgreSQL answers them on several pool connections). */
const LOOKUPS_IN_FLIGHT = 8;

export type CanRead = (repository: string) => Promise<boolean>;

export interface TraceLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ScanReportReader {
  report(repository: string, digest: string): Promise<ScanReport | undefined>;
}

export interface TraceDeps {
  store: TraceStore;
  meta: MetadataStore;
  blobs: BlobStore;
  events: EventBus;
  signatures?: SignatureFactsProvider | undefined;
  scans?: ScanReportReader | undefined;
  deployments?: DeploymentSource | undefined;
  promotions?: PromotionSource | undefined;
  logger?: TraceLogger | undefined;
  now?: () => number;
}

export interface TraceLimits {
  /** Most rows a list query answers (`limit` is capped to it). */
  maxResults: number;
}

export interface SourceView {
  repository: string;
  how: StoredSource['how'];
  verified: boolean;
  sourceRepository?: string;
  sourceUri?: string;
  commit?: string;
  builder?: string;
  buildType?: string;
  created?: string;
  /** The index whose annotations said it, or the attestation artifact that verified it. */
  evidence?: string;
}

export interface ImageRef {
  repository: string;
  digest: string;
}

export interface TraceGraph {
  digest: string;
  images: Array<{ repository: string; mediaType: string; tags: string[]; layers: number; configDigest?: string; created?: string; pushedAt: string }>;
  sources: SourceView[];
  bases: Array<{ repository: string; how: BaseRelation['how']; digest: string; baseRepository?: string; baseName?: string; layers?: number }>;
  derived: Array<{ repository: string; digest: string; how: BaseRelation['how']; baseRepository: string }>;
  indexes: ImageRef[];
  children: ImageRef[];
  signatures: Array<{ repository: string; verdict: string; signers: string[]; attestations: string[]; policyVersion: number; verifiedAt: string }>;
  sboms: Array<{ repository: string; digest: string; artifactType: string }>;
  findings: FindingsSummary;
  promotions: Array<Omit<PromotionFact, 'at'> & { at: string }>;
  deployments: DeploymentView[];
}

export interface FindingsSummary {
  total: number;
  bySeverity: Record<(typeof SEVERITIES)[number], number>;
  fixable: number;
  /** The most severe findings (up to 20). */
  top: Array<{ id: string; severity: string; package: string; installedVersion: string; fixAvailable: boolean }>;
}

export type DeploymentView = Omit<DeploymentFact, 'firstSeen' | 'lastSeen'> & { firstSeen: string; lastSeen: string; /** The traced image this deployment runs (an index digest runs its platform image). */ via?: string };

export interface ImagesAnswer {
  images: Array<ImageRef & { sources?: SourceView[]; findings?: Array<{ id: string; package: string; installedVersion: string; severity: string; fixAvailable: boolean }> }>;
  truncated: boolean;
}

export interface DeploymentsAnswer extends ImagesAnswer {
  deployments: DeploymentView[];
}

export type ImagesQuery = { digest: string } | { commit: string; verifiedOnly?: boolean } | { sourceRepository: string; verifiedOnly?: boolean } | { vulnerability: string };

function viewOf(s: StoredSource): SourceView {
  return {
    repository: s.repository,
    how: s.how,
    verified: s.verified,
    ...(s.sourceRepository !== undefined ? { sourceRepository: s.sourceRepository } : {}),
    ...(s.sourceUri !== undefined ? { sourceUri: s.sourceUri } : {}),
    ...(s.commit !== undefined ? { commit: s.commit } : {}),
    ...(s.builder !== undefined ? { builder: s.builder } : {}),
    ...(s.buildType !== undefined ? { buildType: s.buildType } : {}),
    ...(s.created !== undefined ? { created: s.created } : {}),
    ...(s.ref !== '' ? { evidence: s.ref } : {}),
  };
}

function deploymentView(d: DeploymentFact, via?: string): DeploymentView {
  return { ...d, firstSeen: d.firstSeen.toISOString(), lastSeen: d.lastSeen.toISOString(), ...(via !== undefined && via !== d.digest ? { via } : {}) };
}

/** A per-query memo of `canRead` (one access check per repository). */
function memo(canRead: CanRead): CanRead {
  const seen = new Map<string, Promise<boolean>>();
  return (repository) => {
    let hit = seen.get(repository);
    if (!hit) seen.set(repository, (hit = canRead(repository).catch(() => false)));
    return hit;
  };
}

async function filter<T>(items: T[], visible: (item: T) => Promise<boolean>): Promise<T[]> {
  const keep = await Promise.all(items.map(visible));
  return items.filter((_, i) => keep[i]);
}

function summarise(rows: FindingRow[]): FindingsSummary {
  // rows repeat a finding per alias: count each (finding id, package, version) once
  const unique = new Map<string, FindingRow>();
  for (const r of rows) unique.set(`${r.findingId}\u0000${r.package}\u0000${r.installedVersion}`, r);
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as FindingsSummary['bySeverity'];
  let fixable = 0;
  for (const r of unique.values()) {
    bySeverity[(SEVERITIES as readonly string[]).includes(r.severity) ? (r.severity as keyof FindingsSummary['bySeverity']) : 'unknown']++;
    if (r.fixAvailable) fixable++;
  }
  const rank = (s: string) => {
    const i = (SEVERITIES as readonly string[]).indexOf(s);
    return i < 0 ? SEVERITIES.length : i;
  };
  const top = [...unique.values()]
    .sort((a, b) => rank(a.severity) - rank(b.severity) || a.findingId.localeCompare(b.findingId))
    .slice(0, 20)
    .map((r) => ({ id: r.findingId, severity: r.severity, package: r.package, installedVersion: r.installedVersion, fixAvailable: r.fixAvailable }));
  return { total: unique.size, bySeverity, fixable, top };
}

export class TraceService {
  readonly #d: TraceDeps;
  readonly #limits: TraceLimits;
  readonly #now: () => number;
  readonly #pending = new Set<Promise<void>>();

  constructor(deps: TraceDeps, limits: TraceLimits = { maxResults: 1000 }) {
    this.#d = deps;
    this.#limits = limits;
    this.#now = deps.now ?? Date.now;
  }

  get limits(): TraceLimits {
    return this.#limits;
  }

  /** Wires late sources (modules built after the trace). */
  setSources(sources: { deployments?: DeploymentSource | undefined; promotions?: PromotionSource | undefined }): void {
    if (sources.deployments) this.#d.deployments = sources.deployments;
    if (sources.promotions) this.#d.promotions = sources.promotions;
  }

  // --- recording ----------------------------------------------------------------------------------

  /** Subscribes to the bus. Returns the unsubscribe function. */
  subscribe(): () => void {
    const { events } = this.#d;
    const offs = [
      events.subscribe('manifest.pushed', (e) => this.#track(this.onManifestPushed(e), e)),
      events.subscribe('manifest.deleted', (e) => this.#track(this.#d.store.forget(e.repository, e.digest), e)),
      events.subscribe('signature.verified', (e) => this.#track(this.onSignatureVerified(e), e)),
      events.subscribe('scan.completed', (e) => (e.outcome === 'success' ? this.#track(this.onFindings(e.repository, e.digest), e) : undefined)),
      events.subscribe('scan.findings.changed', (e) => this.#track(this.onFindings(e.repository, e.digest), e)),
    ];
    return () => offs.forEach((off) => off());
  }

  #track(work: Promise<void>, event: { type: string }): Promise<void> {
    // a failed recording is logged and never affects the request that caused it
    const tracked = work.catch((err: unknown) => this.#d.logger?.error({ err, event: event.type }, 'trace: recording failed'));
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
    return tracked;
  }

  /**
   * Records the stored images the index has not seen — pushed before traceability was enabled, or
   * while a recording failed — and their scan findings. Pages through the metadata store (cost
   * proportional to the stored manifests, one index query per page); run in the background at
   * start. Signature verdicts join at the image's next verification. Returns how many it recorded.
   */
  async backfill(options: { pageSize?: number; signal?: AbortSignal } = {}): Promise<number> {
    const pageSize = options.pageSize ?? 500;
    let after: { repository: string; digest: string } | undefined;
    let recorded = 0;
    for (;;) {
      if (options.signal?.aborted) return recorded;
      const page = await this.#d.meta.listManifests(pageSize, after);
      const known = new Set((await this.#d.store.imagesOf(page.items.map((m) => m.digest))).map((i) => `${i.repository}@${i.digest}`));
      for (const m of page.items) {
        if (options.signal?.aborted) return recorded;
        if (known.has(`${m.repository}@${m.digest}`)) continue;
        try {
          if (await this.#recordImage(m.repository, m.digest)) {
            recorded++;
            await this.onFindings(m.repository, m.digest);
          }
        } catch (err) {
          this.#d.logger?.warn({ err, repository: m.repository, digest: m.digest }, 'trace: backfill of a stored image failed');
        }
      }
      if (!page.more) return recorded;
      const last = page.items.at(-1)!;
      after = { repository: last.repository, digest: last.digest };
    }
  }

  /** Resolves once recordings started so far have finished (tests, shutdown). */
  async idle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async onManifestPushed(e: EventOf<'manifest.pushed'>): Promise<void> {
    // signatures, attestations, SBOMs and other referrers are facts about their subject, not images
    if (e.subject !== undefined || (e.tag !== undefined && (COSIGN_TAG.test(e.tag) || REFERRERS_TAG.test(e.tag) || /^sha256-[a-f0-9]{64}\.sbom$/.test(e.tag)))) return;
    await this.#recordImage(e.repository, e.digest);
  }

  /** Indexes a stored image or index (not signature artifacts); false when it is not one. */
  async #recordImage(repository: string, digest: string): Promise<boolean> {
    const record = await this.#d.meta.getManifest(repository, digest);
    if (!record || isSignatureArtifactManifest(record.content)) return false;
    const kind = classifyManifest(record.content);
    const sources: SourceFact[] = [];
    const fromAnnotations = sourceFromAnnotations(record.annotations, 'annotation');
    if (fromAnnotations) sources.push(fromAnnotations);
    const image: TracedImage = { repository: repository, digest: digest, mediaType: record.mediaType, configDigest: undefined, layers: 0, topChain: undefined, created: undefined, pushedAt: this.#now() };
    let prefixChains: string[] = [];
    let children: string[] = [];
    if (kind.kind === 'index' && isIndexMediaType(record.mediaType)) {
      children = kind.manifests.map((m) => m.digest);
    } else if (kind.kind === 'image' && kind.layers.every((l) => isLayerMediaType(l.mediaType))) {
      const config = configFacts(await readBounded(await this.#d.blobs.read(kind.config.digest), MAX_CONFIG_BYTES, `configuration ${kind.config.digest}`));
      if (!config) {
        this.#d.logger?.warn({ repository: repository, digest: digest }, 'trace: the image configuration is not readable; recorded without layers');
      } else {
        const chains = chainIds(config.diffIds);
        image.layers = chains.length;
        image.created = config.created;
        if (chains.length <= MAX_INDEXED_LAYERS) {
          image.topChain = chains.at(-1);
          prefixChains = chains.slice(0, -1);
        } else {
          this.#d.logger?.warn({ repository: repository, digest: digest, layers: chains.length }, 'trace: too many layers to relate the image to base images');
        }
        const fromLabels = sourceFromAnnotations(config.labels, 'label');
        if (fromLabels) sources.push(fromLabels);
      }
      image.configDigest = kind.config.digest;
    } else {
      return false;
    }
    const annotatedBase = baseFromAnnotations(record.annotations);
    await this.#d.store.recordImage({ image, prefixChains, sources, annotatedBase, children }, this.#now());
    return true;
  }

  readonly #verifying = new Set<string>();

  async onSignatureVerified(e: EventOf<'signature.verified'>): Promise<void> {
    await this.#d.store.setVerdict({ repository: e.repository, digest: e.digest, verdict: e.verdict, signers: e.signers, attestations: e.attestations, policyVersion: e.policyVersion, verifiedAt: e.at.getTime() });
    const provider = this.#d.signatures;
    const key = `${e.repository}@${e.digest}`;
    // reading facts may itself verify (and publish) once more: never recurse
    if (!provider || this.#verifying.has(key)) return;
    this.#verifying.add(key);
    try {
      const facts = await provider.facts(e.repository, e.digest);
      const attestations = facts.attestedBy.filter((a) => a.predicateType.startsWith('https://slsa.dev/provenance/'));
      const sources = facts.provenance.map((p, i) => sourceFromProvenance(p, attestations[i]?.artifact ?? ''));
      await this.#d.store.setProvenance(e.repository, e.digest, sources, this.#now());
    } finally {
      this.#verifying.delete(key);
    }
  }

  async onFindings(repository: string, digest: string): Promise<void> {
    const report = await this.#d.scans?.report(repository, digest);
    if (!report || report.status !== 'complete') return;
    // an exemption accepts a risk (still affected); a VEX "not affected" statement says it is not
    const findings = [...report.findings, ...report.exempted.filter((f) => !f.vex)];
    const rows: Array<Omit<FindingRow, 'digest'>> = [];
    for (const f of findings) {
      for (const id of new Set([f.id, ...f.aliases, ...f.cves].map((x) => x.toUpperCase()))) {
        rows.push({ vulnerability: id, package: f.package.name, installedVersion: f.installedVersion, severity: f.severity, fixAvailable: f.fixAvailable, findingId: f.id });
      }
    }
    await this.#d.store.setFindings(digest, rows);
  }

  // --- queries ------------------------------------------------------------------------------------

  /** The provenance graph of `digest`, or undefined when the caller can read no repository holding it. */
  async graph(digest: string, canRead: CanRead): Promise<TraceGraph | undefined> {
    const can = memo(canRead);
    const { store, meta } = this.#d;
    const images = await filter(await store.images(digest), (i) => can(i.repository));
    if (images.length === 0) return undefined;
    const limit = this.#limits.maxResults;
    const [sources, bases, derived, parents, verdicts, findings] = await Promise.all([
      store.sources(digest),
      store.bases(digest),
      store.derived(digest, limit),
      store.parents(digest),
      store.verdicts(digest),
      store.findings(digest),
    ]);
    const out: TraceGraph = {
      digest,
      images: [],
      sources: (await filter(sources, (s) => can(s.repository))).map(viewOf),
      bases: (await filter(bases, async (b) => (await can(b.repository)) && (b.baseRepository === '' || (await can(b.baseRepository))))).map((b) => ({
        repository: b.repository,
        how: b.how,
        digest: b.baseDigest,
        ...(b.baseRepository !== '' ? { baseRepository: b.baseRepository } : {}),
        ...(b.baseName !== undefined ? { baseName: b.baseName } : {}),
        ...(b.baseLayers !== undefined ? { layers: b.baseLayers } : {}),
      })),
      derived: (await filter(derived, async (d) => (await can(d.repository)) && (await can(d.baseRepository || d.repository)))).map((d) => ({ repository: d.repository, digest: d.digest, how: d.how, baseRepository: d.baseRepository })),
      indexes: (await filter(parents, (p) => can(p.repository))).map((p) => ({ repository: p.repository, digest: p.parent })),
      children: [],
      signatures: (await filter(verdicts, (v) => can(v.repository))).map((v) => ({ repository: v.repository, verdict: v.verdict, signers: v.signers, attestations: v.attestations, policyVersion: v.policyVersion, verifiedAt: new Date(v.verifiedAt).toISOString() })),
      sboms: [],
      findings: summarise(findings),
      promotions: [],
      deployments: [],
    };
    // annotation bases name digests; show where the caller can read them here
    for (const b of out.bases) {
      if (b.how !== 'annotation' || b.digest === '') continue;
      const held = await filter(await store.images(b.digest), (i) => can(i.repository));
      if (held[0]) b.baseRepository = held[0].repository;
    }
    for (const image of images) {
      const [tags, referrers, children] = await Promise.all([meta.tagsOf(image.repository, digest), meta.listReferrers(image.repository, digest), store.children(image.repository, digest)]);
      out.images.push({
        repository: image.repository,
        mediaType: image.mediaType,
        tags: tags.sort(),
        layers: image.layers,
        ...(image.configDigest !== undefined ? { configDigest: image.configDigest } : {}),
        ...(image.created !== undefined ? { created: image.created } : {}),
        pushedAt: new Date(image.pushedAt).toISOString(),
      });
      for (const r of referrers) if (r.artifactType && SBOM_TYPES.test(r.artifactType)) out.sboms.push({ repository: image.repository, digest: r.digest, artifactType: r.artifactType });
      for (const c of children) out.children.push({ repository: image.repository, digest: c });
    }
    if (this.#d.promotions) {
      // both ends: a promotion names where an image went, which a reader of the source alone may not know
      const promotions = await filter(await this.#d.promotions.byDigest(digest, limit), async (p) => (await can(p.destinationRepository)) && (await can(p.sourceRepository)));
      out.promotions = promotions.map((p) => ({ ...p, at: p.at.toISOString() }));
    }
    // an index runs as its platform image: deployments of the indexes listing it count too
    const runAs = [digest, ...out.indexes.map((i) => i.digest)];
    out.deployments = await this.#deployments(runAs.map((d) => ({ digest: d, via: digest })), can, limit).then((r) => r.items);
    return out;
  }

  /** Images matching a query (digest, commit, source repository or vulnerability), readable by the caller. */
  async images(query: ImagesQuery, canRead: CanRead, limit = this.#limits.maxResults): Promise<ImagesAnswer> {
    const max = Math.min(limit, this.#limits.maxResults);
    const matched = await this.#match(query, memo(canRead));
    return { images: matched.images.slice(0, max), truncated: matched.truncated || matched.images.length > max };
  }

  /**
   * Where the images matching `query` run: the images (as {@link images}) and their deployments.
   * Deployments are looked up for every matching image, not only the `limit` listed.
   */
  async deployments(query: ImagesQuery, canRead: CanRead, limit = this.#limits.maxResults): Promise<DeploymentsAnswer> {
    const can = memo(canRead);
    const max = Math.min(limit, this.#limits.maxResults);
    const matched = await this.#match(query, can);
    const digests = [...new Set(matched.images.map((i) => i.digest))];
    // an index runs as its platform images: pods naming the index digest run an affected image
    const parents = await this.#d.store.parentsOf(digests);
    const targets = [...digests.map((d) => ({ digest: d, via: d })), ...(await filter(parents, (p) => can(p.repository))).map((p) => ({ digest: p.parent, via: p.child }))];
    const deployments = await this.#deployments(targets, can, max);
    return { images: matched.images.slice(0, max), deployments: deployments.items, truncated: matched.truncated || matched.images.length > max || deployments.truncated };
  }

  /** Every readable image matching `query`, sorted (bounded by {@link MATCH_ROWS} index rows). */
  async #match(query: ImagesQuery, can: CanRead): Promise<{ images: ImagesAnswer['images']; truncated: boolean }> {
    const { store } = this.#d;
    const byName = (a: ImageRef, b: ImageRef) => (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0);
    if ('vulnerability' in query) {
      const rows = await store.imagesWithVulnerability(query.vulnerability, MATCH_ROWS);
      // rows come sorted by repository and digest; one entry per image, findings de-duplicated
      const images: Array<ImageRef & { findings: Map<string, FindingRow> }> = [];
      for (const { repository, finding } of rows) {
        let last = images.at(-1);
        if (!last || last.repository !== repository || last.digest !== finding.digest) images.push((last = { repository, digest: finding.digest, findings: new Map() }));
        last.findings.set(`${finding.findingId} ${finding.package} ${finding.installedVersion}`, finding);
      }
      const visible = await filter(images, (i) => can(i.repository));
      return {
        images: visible.map((i) => ({
          repository: i.repository,
          digest: i.digest,
          findings: [...i.findings.values()].map((r) => ({ id: r.findingId, package: r.package, installedVersion: r.installedVersion, severity: r.severity, fixAvailable: r.fixAvailable })),
        })),
        truncated: rows.length >= MATCH_ROWS,
      };
    }
    let sources: StoredSource[];
    if ('digest' in query) {
      const images = await filter(await store.images(query.digest), (i) => can(i.repository));
      const facts = await filter(await store.sources(query.digest), (s) => can(s.repository));
      return { images: images.map((i) => ({ repository: i.repository, digest: i.digest, sources: facts.filter((s) => s.repository === i.repository).map(viewOf) })), truncated: false };
    } else if ('commit' in query) {
      sources = await store.sourcesByCommit(query.commit, { verifiedOnly: query.verifiedOnly ?? false, limit: MATCH_ROWS });
    } else {
      sources = await store.sourcesBySourceRepository(query.sourceRepository, { verifiedOnly: query.verifiedOnly ?? false, limit: MATCH_ROWS });
    }
    const visible = await filter(sources, (s) => can(s.repository));
    const grouped = new Map<string, { repository: string; digest: string; sources: SourceView[] }>();
    for (const s of visible) {
      const key = `${s.repository}@${s.digest}`;
      let g = grouped.get(key);
      if (!g) grouped.set(key, (g = { repository: s.repository, digest: s.digest, sources: [] }));
      g.sources.push(viewOf(s));
    }
    return { images: [...grouped.values()].sort(byName), truncated: sources.length >= MATCH_ROWS };
  }

  async #deployments(targets: Array<{ digest: string; via: string }>, can: CanRead, limit: number): Promise<{ items: DeploymentView[]; truncated: boolean }> {
    const source = this.#d.deployments;
    if (!source) return { items: [], truncated: false };
    const via = new Map(targets.map((t) => [t.digest, t.via]));
    const digests = [...via.keys()];
    let found: DeploymentFact[];
    // the filter may drop records: read past the limit so a reader still sees its own
    const want = limit * 4 + 1;
    if (source.byDigests) found = await source.byDigests(digests, want);
    else {
      found = [];
      for (let i = 0; i < digests.length && found.length < want; i += LOOKUPS_IN_FLIGHT) {
        const batch = await Promise.all(digests.slice(i, i + LOOKUPS_IN_FLIGHT).map((d) => source.byDigest(d, limit + 1)));
        found.push(...batch.flat());
      }
    }
    const items = (await filter(found, (d) => can(d.repository))).map((d) => deploymentView(d, via.get(d.digest)));
    items.sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0) || a.cluster.localeCompare(b.cluster) || a.namespace.localeCompare(b.namespace) || a.workloadName.localeCompare(b.workloadName) || a.container.localeCompare(b.container));
    return { items: items.slice(0, limit), truncated: items.length > limit || found.length >= want };
  }
}
