/**
 * Promotion: copies an image (manifest or index with every child) and what is attached to it
 * (OCI referrers: signatures, attestations, SBOMs, scan reports, and cosign's `sha256-<hex>.sig`,
 * `.att`, `.sbom` tags) from one repository to another by digest, when the destination
 * project's policy passes at enforcement point `promotion`.
 *
 * Nothing is copied byte for byte: blobs are linked into the destination from the source (a
 * cross-repository mount inside the registry). Everything lands in one metadata transaction
 * (`MetadataStore.putManifests`), so a refused or failing promotion leaves no tag, manifest or
 * blob link at the destination. The only bytes written are the registry's promotion
 * attestation (a DSSE envelope, see attestation.ts) and its small configs; when the transaction
 * fails they are unreferenced blobs the collector removes.
 *
 * Every promotion, allowed or refused, is recorded (store.ts) and published on the bus
 * (`promotion.completed` / `promotion.denied`, plus `policy.decision` and a `manifest.pushed`
 * per manifest written, so the audit log, scanner, signature verification and webhooks see it).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf } from '../../../oci/digest.ts';
import { RegistryError } from '../../../oci/errors.ts';
import { parseManifest } from '../../../oci/manifest.ts';
import { isNonDistributable } from '../../../oci/media-types.ts';
import { isRepositoryName, isTag, projectOf } from '../../../oci/reference.ts';
import type { EventBus, RequestOrigin } from '../../events/bus.ts';
import { cosignSignatureManifest, EMPTY_CONFIG, referrerManifest } from '../../signatures/signing.ts';
import { type BlobStore, ConcurrentDeletionError, type ManifestRecord, type ManifestWrite, type MetadataStore } from '../../storage/ports.ts';
import type { EnforcementPoint } from '../document.ts';
import type { CompiledPolicy, PolicyDecision } from '../evaluate.ts';
import type { PolicyInput } from '../input.ts';
import { COSIGN_ATTESTATION_ARTIFACT_TYPE, PROMOTION_ID_ANNOTATION, type PromotionPredicate, promotionLayer, type RegistryKey, signPromotion } from './attestation.ts';
import type { PromotionRecord, PromotionStore } from './store.ts';

/** What promotion needs of the policy enforcer (the same evaluator and input document as the gates). */
export interface PromotionPolicy {
  policyFor(project: string): Promise<CompiledPolicy | undefined>;
  storedImageInput(repository: string, digest: string, tag: string | undefined, point: EnforcementPoint, origin: RequestOrigin): Promise<PolicyInput | undefined>;
  publishDecision(decision: PolicyDecision, input: PolicyInput, origin: RequestOrigin): void;
}

/**
 * Signature facts of the source's artifacts verified under the DESTINATION project's trust
 * policy (what the destination will hold); undefined when signatures are not checked.
 */
export type DestinationSignatureFacts = (sourceRepository: string, digest: string, destinationRepository: string) => Promise<PolicyInput['signatures'] | undefined>;

export interface PromotionDeps {
  meta: MetadataStore;
  blobs: BlobStore;
  events: EventBus;
  policy: PromotionPolicy;
  store: PromotionStore;
  key: RegistryKey;
  signatureFacts?: DestinationSignatureFacts | undefined;
}

export interface PromotionSettings {
  /** The registry's name in attestations (auth.service or the listen address). */
  registryName: string;
  blobGraceMs: number;
  /** Manifests one promotion may copy at most (image, children, referrers, cosign tags). */
  maxManifests: number;
}

export interface PromotionRequest {
  /** `project/repo@sha256:...` or `project/repo:tag`. */
  source: string;
  /** `project/repo` (or `project/repo:tag`). */
  destination: string;
  tag?: string | undefined;
}

export interface PromotionResult {
  id: string;
  digest: string;
  source: { repository: string; reference: string };
  destination: { repository: string; tag: string | null };
  decision: 'allowed';
  policy: PromotionRecord['policy'] | null;
  warnings: string[];
  attestation: string;
  copied: { manifests: number; tags: string[]; blobsLinked: number };
}

const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;
/** Referrers of referrers (a signature on an SBOM) are followed this deep. */
const MAX_REFERRER_DEPTH = 3;

/** `repo@digest`, `repo:tag` (or a bare repository, for destinations). @throws NAME_INVALID / MANIFEST_INVALID */
export function parseRepositoryReference(text: string, what: string): { repository: string; tag: string | undefined; digest: string | undefined } {
  const at = text.indexOf('@');
  let rest = at >= 0 ? text.slice(0, at) : text;
  const digest = at >= 0 ? text.slice(at + 1) : undefined;
  if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw new RegistryError('DIGEST_INVALID', `${what}: the digest must be sha256:<64 hex>`);
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) throw new RegistryError('MANIFEST_INVALID', `${what}: invalid tag ${JSON.stringify(tag.slice(0, 200))}`);
  }
  if (!isRepositoryName(rest)) throw new RegistryError('NAME_INVALID', `${what}: invalid repository name ${JSON.stringify(rest.slice(0, 300))}`);
  return { repository: rest, tag, digest };
}

interface Plan {
  source: string;
  /** Writes in dependency order (children before indexes); the root carries the destination tag. */
  writes: ManifestWrite[];
  /** Blobs linked from the source. */
  blobs: Set<string>;
  /** Blobs the registry wrote (the attestation's). */
  own: Set<string>;
  /** The image: the root digest, then every manifest of its closure (index children). */
  image: string[];
  /** cosign tags copied (tag -> digest); `.att` of the root is rewritten with the promotion layer. */
  tags: Map<string, string>;
}

export class PromotionService {
  readonly #d: PromotionDeps;
  readonly #s: PromotionSettings;

  constructor(deps: PromotionDeps, settings: PromotionSettings) {
    this.#d = deps;
    this.#s = settings;
  }

  /** Resolves a request to source and destination (for authorisation before `promote`). */
  parse(request: PromotionRequest): { source: { repository: string; tag: string | undefined; digest: string | undefined }; destination: { repository: string; tag: string | undefined } } {
    if (typeof request.source !== 'string' || typeof request.destination !== 'string') throw new RegistryError('INVALID_REQUEST', 'give source ("project/repo@sha256:..." or "project/repo:tag") and destination ("project/repo")');
    const source = parseRepositoryReference(request.source, 'source');
    if (!source.tag && !source.digest) throw new RegistryError('INVALID_REQUEST', 'source: name a tag or a digest (project/repo:tag or project/repo@sha256:...)');
    const dest = parseRepositoryReference(request.destination, 'destination');
    if (dest.digest) throw new RegistryError('INVALID_REQUEST', 'destination: a repository (and optionally :tag), not a digest');
    if (request.tag !== undefined && (typeof request.tag !== 'string' || !isTag(request.tag))) throw new RegistryError('MANIFEST_INVALID', `tag: invalid tag ${JSON.stringify(String(request.tag).slice(0, 200))}`);
    if (request.tag !== undefined && dest.tag !== undefined && request.tag !== dest.tag) throw new RegistryError('INVALID_REQUEST', `destination names tag ${dest.tag} and tag is ${request.tag}`);
    if (dest.repository === source.repository) throw new RegistryError('INVALID_REQUEST', 'source and destination are the same repository');
    // By default the destination gets the source's tag (a promotion by digest stays untagged).
    const tag = request.tag ?? dest.tag ?? (source.digest ? undefined : source.tag);
    return { source, destination: { repository: dest.repository, tag } };
  }

  /**
   * True when the promotion would move an existing destination tag to another digest (a retag,
   * which needs the `retag` permission as at push). False when the source is unknown.
   */
  async movesTag(request: PromotionRequest): Promise<boolean> {
    const { source, destination } = this.parse(request);
    if (!destination.tag) return false;
    const current = await this.#d.meta.resolveTag(destination.repository, destination.tag);
    const digest = source.digest ?? (await this.#d.meta.resolveTag(source.repository, source.tag!));
    return current !== undefined && digest !== undefined && current !== digest;
  }

  async promote(request: PromotionRequest, origin: RequestOrigin): Promise<PromotionResult> {
    const { source, destination } = this.parse(request);
    const reference = source.digest ?? source.tag!;
    const digest = source.digest ?? (await this.#d.meta.resolveTag(source.repository, source.tag!));
    const root = digest ? await this.#d.meta.getManifest(source.repository, digest) : undefined;
    if (!digest || !root) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in repository ${source.repository}`);
    const id = randomUUID();
    const at = new Date();
    const plan = await this.#plan(source.repository, destination.repository, root, destination.tag);

    const decided = await this.#decide(source.repository, source.tag, destination.repository, destination.tag, digest, origin);
    const base = {
      id,
      createdAt: at,
      actor: { kind: origin.actor.kind, name: origin.actor.name },
      source: { repository: source.repository, reference },
      digest,
      destination: { repository: destination.repository, tag: destination.tag },
      policy: decided.decision?.policy,
    };
    if (decided.decision && !decided.decision.allowed) {
      const d = decided.decision;
      await this.#d.store.add({ ...base, decision: 'denied', denials: d.denials, attestation: undefined, copied: [] });
      this.#publish(base, 'denied', d.denials.join('; '), undefined, 0, origin);
      throw new RegistryError('DENIED', `promotion of ${source.repository}@${digest} to ${destination.repository} denied by policy ${d.policy.name} v${d.policy.version}: ${d.denials.join('; ')}`, {
        detail: { promotion: id, policy: d.policy, point: d.point, denials: d.denials, rules: d.rules.filter((r) => r.outcome === 'fail' || r.outcome === 'error') },
      });
    }

    const predicate: PromotionPredicate = {
      id,
      source: { repository: source.repository, reference, digest },
      destination: { repository: destination.repository, project: projectOf(destination.repository), tag: destination.tag ?? null },
      policy: decided.decision?.policy ?? null,
      decision: 'allowed',
      approver: { kind: origin.actor.kind, name: origin.actor.name ?? '' },
      promotedAt: at.toISOString(),
      registry: this.#s.registryName,
    };
    const attestation = await this.#attach(plan, destination.repository, root, predicate);
    const result = await this.#write(plan, destination.repository);
    // published before the record is stored: should storing fail, the audit log still has it
    plan.writes.forEach((w, i) => {
      const r = result[i]!;
      this.#d.events.publish({ type: 'manifest.pushed', at: new Date(), origin, repository: destination.repository, digest: w.digest, mediaType: w.mediaType, artifactType: w.artifactType, subject: w.subject, size: w.content.length, created: r.created, tag: w.tag, previousTagTarget: r.previousTagTarget });
    });
    const copied = [...new Set(plan.writes.map((w) => w.digest))];
    this.#publish(base, 'success', undefined, attestation, copied.length, origin);
    await this.#d.store.add({ ...base, decision: 'allowed', denials: [], attestation, copied });
    return {
      id,
      digest,
      source: base.source,
      destination: { repository: destination.repository, tag: destination.tag ?? null },
      decision: 'allowed',
      policy: decided.decision?.policy ?? null,
      warnings: decided.decision?.warnings ?? [],
      attestation,
      copied: { manifests: copied.length, tags: plan.writes.filter((w) => w.tag).map((w) => w.tag!), blobsLinked: plan.blobs.size },
    };
  }

  /**
   * The destination's policy at `promotion` over the source image: image facts of the source,
   * named as it will be at the destination, signature facts under the destination's trust
   * policy, the request's source, destination and actor. No decision when no policy applies or
   * the artifact is not an image (as at push).
   */
  async #decide(sourceRepository: string, sourceTag: string | undefined, destination: string, destinationTag: string | undefined, digest: string, origin: RequestOrigin): Promise<{ decision: PolicyDecision | undefined }> {
    const project = projectOf(destination);
    const policy = await this.#d.policy.policyFor(project);
    if (!policy?.appliesAt('promotion')) return { decision: undefined };
    const input = await this.#d.policy.storedImageInput(sourceRepository, digest, sourceTag, 'promotion', origin);
    if (!input) return { decision: undefined };
    const signatures = this.#d.signatureFacts ? await this.#d.signatureFacts(sourceRepository, digest, destination) : undefined;
    const previous = destinationTag ? await this.#d.meta.resolveTag(destination, destinationTag) : undefined;
    const promoted: PolicyInput = {
      ...input,
      image: { ...input.image, repository: destination, project, tags: destinationTag ? [destinationTag] : [] },
      signatures: signatures ?? input.signatures,
      request: { ...input.request, point: 'promotion', action: 'promote', previousTagTarget: previous ?? '', source: sourceRepository, destination },
    };
    const decision = policy.evaluate(promoted);
    this.#d.policy.publishDecision(decision, promoted, origin);
    return { decision };
  }

  /** The manifests and blobs to copy: the image closure, its referrers (recursively) and cosign tags. */
  async #plan(source: string, destination: string, root: ManifestRecord, tag: string | undefined): Promise<Plan> {
    const writes: ManifestWrite[] = [];
    const blobs = new Set<string>();
    const seen = new Set<string>();
    const tags = new Map<string, string>();
    const add = async (record: ManifestRecord, tag: string | undefined): Promise<string[]> => {
      if (seen.has(record.digest) && tag === undefined) return [];
      if (writes.length >= this.#s.maxManifests) throw new RegistryError('INVALID_REQUEST', `the image and its artifacts exceed ${this.#s.maxManifests} manifests; promotion refused`);
      const m = parseManifest(record.content, record.mediaType);
      const closure: string[] = [];
      if (!seen.has(record.digest)) {
        for (const child of m.manifests) {
          const c = await this.#d.meta.getManifest(source, child.digest);
          if (!c) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `child manifest ${child.digest} of ${record.digest} is not in ${source}`);
          closure.push(...(await add(c, undefined)));
        }
      }
      const own = [...(m.config ? [m.config] : []), ...m.layers].filter((d) => !isNonDistributable(d.mediaType)).map((d) => d.digest);
      for (const b of own) blobs.add(b);
      writes.push({ repository: destination, digest: record.digest, mediaType: m.mediaType, artifactType: m.artifactType, content: record.content, subject: m.subject?.digest, annotations: m.annotations, blobs: own, children: m.manifests.map((d) => d.digest), tag });
      seen.add(record.digest);
      return [record.digest, ...closure];
    };
    const subjects = await add(root, tag);
    // Referrers and cosign tags of every manifest of the image, then of those artifacts.
    let frontier = subjects;
    for (let depth = 0; depth < MAX_REFERRER_DEPTH && frontier.length > 0; depth++) {
      const next: string[] = [];
      for (const subject of frontier) {
        for (const r of await this.#d.meta.listReferrers(source, subject)) {
          if (seen.has(r.digest)) continue;
          const record = await this.#d.meta.getManifest(source, r.digest);
          if (record) next.push(...(await add(record, undefined)));
        }
        const hex = subject.slice('sha256:'.length);
        for (const tag of [...COSIGN_SUFFIXES.map((s) => `sha256-${hex}.${s}`), `sha256-${hex}`]) {
          const target = await this.#d.meta.resolveTag(source, tag);
          const record = target ? await this.#d.meta.getManifest(source, target) : undefined;
          if (!record) continue;
          tags.set(tag, record.digest);
          next.push(...(await add(record, tag)));
        }
      }
      frontier = next;
    }
    return { source, writes, blobs, own: new Set(), image: subjects, tags };
  }

  /**
   * Signs the promotion statement, stores its bytes, and adds to the plan: the OCI 1.1 referrer,
   * and the cosign `.att` tag of the digest (the source's attestation layers, those already at
   * the destination, and the promotion layer). Returns the referrer's digest.
   */
  async #attach(plan: Plan, destination: string, root: ManifestRecord, predicate: PromotionPredicate): Promise<string> {
    const children = plan.image.filter((d) => d !== root.digest);
    const envelope = signPromotion(this.#d.key, predicate, children);
    const envelopeDigest = digestOf(envelope);
    const layer = promotionLayer(envelope, envelopeDigest);
    const own = plan.own;
    own.add(envelopeDigest);
    own.add(digestOf(EMPTY_CONFIG));
    // each write is an fsync: in parallel
    const stored = [this.#storeBlob(envelope), this.#storeBlob(EMPTY_CONFIG)];
    // handled below by Promise.all; never an unhandled rejection if a read below throws first
    for (const p of stored) p.catch(() => undefined);
    // one referrer per manifest of the image, all over the same envelope
    let referrerDigest = '';
    for (const digest of plan.image) {
      const write = plan.writes.find((w) => w.digest === digest)!;
      const subject = { mediaType: write.mediaType, digest, size: write.content.length };
      const referrer = referrerManifest(COSIGN_ATTESTATION_ARTIFACT_TYPE, [layer], subject, { [PROMOTION_ID_ANNOTATION]: predicate.id, 'org.opencontainers.image.created': predicate.promotedAt });
      plan.writes.push(this.#write1(destination, referrer.manifest, undefined));
      if (digest === root.digest) referrerDigest = digestOf(referrer.manifest);
    }

    const attTag = `sha256-${root.digest.slice('sha256:'.length)}.att`;
    type Layer = { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
    const layers: Layer[] = [];
    // cosign appends to the tag: keep what the destination holds already (earlier promotions)
    const current = await this.#d.meta.resolveTag(destination, attTag);
    const existing = current ? await this.#d.meta.getManifest(destination, current) : undefined;
    if (existing) layers.push(...((JSON.parse(existing.content.toString('utf8')) as { layers?: Layer[] }).layers ?? []));
    const copiedAtt = plan.tags.get(attTag);
    if (copiedAtt) {
      const index = plan.writes.findIndex((w) => w.digest === copiedAtt && w.tag === attTag);
      const write = plan.writes[index]!;
      layers.push(...((JSON.parse(write.content.toString('utf8')) as { layers?: Layer[] }).layers ?? []));
      // the tag is rewritten below; the copied manifest stays as an untagged manifest
      plan.writes[index] = { ...write, tag: undefined };
    }
    const unique = new Map<string, Layer>();
    for (const l of [...layers, layer]) unique.set(`${l.digest}|${JSON.stringify(l.annotations ?? {})}`, l);
    const att = cosignSignatureManifest([...unique.values()] as never);
    stored.push(this.#storeBlob(att.config));
    await Promise.all(stored);
    own.add(digestOf(att.config));
    plan.writes.push(this.#write1(destination, att.manifest, attTag));
    return referrerDigest;
  }

  #write1(repository: string, content: Buffer, tag: string | undefined): ManifestWrite {
    const m = parseManifest(content, 'application/vnd.oci.image.manifest.v1+json');
    const blobs = [...(m.config ? [m.config] : []), ...m.layers].map((d) => d.digest);
    return { repository, digest: digestOf(content), mediaType: m.mediaType, artifactType: m.artifactType, content, subject: m.subject?.digest, annotations: m.annotations, blobs, children: [], tag };
  }

  /** Writes bytes the registry made (content-addressed; an unreferenced one is collected later). */
  async #storeBlob(content: Buffer): Promise<void> {
    const digest = digestOf(content);
    for (let attempt = 0; !(await this.#d.meta.recordBlob(digest, content.length, this.#s.blobGraceMs)); attempt++) {
      if (attempt > 200) throw new RegistryError('UNAVAILABLE', 'blob is being garbage-collected; retry');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    if (await this.#d.blobs.stat(digest)) return;
    const id = `promotion-${randomUUID()}`;
    await this.#d.blobs.createUpload(id);
    try {
      await this.#d.blobs.appendUpload(id, 0, Readable.from([content]));
      await this.#d.blobs.commitUpload(id, digest);
    } catch (error) {
      await this.#d.blobs.deleteUpload(id);
      throw error;
    }
  }

  /** One transaction: blob links, then every manifest. @throws RegistryError when something vanished meanwhile (nothing written). */
  async #write(plan: Plan, destination: string): Promise<Array<{ created: boolean; previousTagTarget: string | undefined }>> {
    const blobs = [...plan.blobs].filter((d) => !plan.own.has(d)).map((digest) => ({ digest, from: plan.source as string | undefined }));
    for (const digest of plan.own) blobs.push({ digest, from: undefined });
    let result;
    try {
      result = await this.#d.meta.putManifests({ repository: destination, blobs, manifests: plan.writes, graceMs: this.#s.blobGraceMs });
    } catch (error) {
      if (error instanceof ConcurrentDeletionError) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `${error.digest} was deleted during the promotion; nothing was written, retry`, { detail: { digest: error.digest } });
      throw error;
    }
    if (!result.ok) {
      const missing = [...result.missingBlobs, ...result.missingChildren];
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `${missing[0]} is no longer in ${plan.source}; nothing was written`, { detail: { missing } });
    }
    return result.results;
  }

  #publish(base: Pick<PromotionRecord, 'id' | 'source' | 'digest' | 'destination' | 'policy'>, outcome: 'success' | 'denied', reason: string | undefined, attestation: string | undefined, copied: number, origin: RequestOrigin): void {
    this.#d.events.publish({
      type: outcome === 'success' ? 'promotion.completed' : 'promotion.denied',
      at: new Date(),
      origin,
      repository: base.destination.repository,
      digest: base.digest,
      tag: base.destination.tag,
      outcome,
      reason,
      id: base.id,
      source: base.source.repository,
      sourceReference: base.source.reference,
      policy: base.policy,
      attestation,
      copied,
    });
  }
}
