/**
 * Policy at the push and pull gates: gathers the input document's facts for a request (image
 * config, tag state, scan report, signature facts), evaluates the project's policy (else the
 * global one), publishes a `policy.decision` event, and denies with OCI `DENIED` naming the
 * failed rules. `warn` rules are returned to the client as `Warning: 299` headers. Any failure
 * while gathering facts or evaluating denies (the core turns a non-RegistryError into DENIED).
 */
import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import type { ParsedManifest } from '../../oci/manifest.ts';
import { projectOf } from '../../oci/reference.ts';
import type { ManifestPushGate, PullGate } from '../distribution/gates.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import type { ScanReport } from '../scanner/report.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import { type EnforcementPoint, parseImageReference } from './document.ts';
import type { CompiledPolicy, PolicyDecision } from './evaluate.ts';
import { completeInput, type PolicyInput } from './input.ts';

/** Where policies come from: the project's own, else the global default (undefined: no policy). */
export interface PolicySource {
  policyFor(project: string): Promise<CompiledPolicy | undefined>;
}

/**
 * The signature facts policy consumes (a structural subset of signatures/facts.ts
 * `SignatureFactsProvider`, so the signature service plugs in without this module importing it).
 */
export interface SignatureFactsProvider {
  facts(repository: string, digest: string): Promise<{
    verdict: string;
    signedBy: Array<{ signer: { kind: string; keyId?: string; keyName?: string; subject?: string } }>;
    attestedBy: Array<{ predicateType: string }>;
    /** Facts of verified SLSA provenance attestations (signatures/intoto.ts ProvenanceFacts). */
    provenance?: Array<{ predicateType: string; builderId?: string; buildType?: string; sourceRepository?: string; sourceDigest?: Record<string, string> }>;
    missing: string[];
  }>;
}

/** The scanner's report for an image (exemptions applied), when scanning is enabled. */
export interface ScanReportProvider {
  report(repository: string, digest: string): Promise<ScanReport | undefined>;
}

export interface PolicyEnforcerDeps {
  source: PolicySource;
  meta: MetadataStore;
  blobs: BlobStore;
  events: EventBus;
  scans?: ScanReportProvider | undefined;
  signatures?: SignatureFactsProvider | undefined;
  /** Verified promotion attestations of an image (policy/promotion/facts.ts). */
  promotions?: { facts(repository: string, digest: string): Promise<PolicyInput['promotions']> } | undefined;
}

const CONFIG_MAX_BYTES = 4 * 1024 * 1024;
export const IMAGE_CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
/** Legacy cosign tags (`sha256-<hex>.sig|.att|.sbom`) carry signatures, not images. */
const COSIGN_TAG = /^sha256-[0-9a-f]{64}(\.[a-z]+)?$/;
/** Layers of cosign signature and attestation manifests (no runtime runs these). */
const SIGNATURE_LAYER_TYPES = new Set(['application/vnd.dev.cosign.simplesigning.v1+json', 'application/vnd.dsse.envelope.v1+json']);
const MAX_WARNINGS_PENDING = 10_000;
/** How long resolved `allowed-base-images` references are reused. */
export const BASE_IMAGE_TTL_MS = 30_000;
const BASE_IMAGE_MISS_TTL_MS = 2_000;
const MAX_BASE_PLATFORMS = 32;
const SBOM_PREDICATES: Array<[RegExp, 'cyclonedx' | 'spdx']> = [[/^https:\/\/cyclonedx\.org\/bom(\/|$)/, 'cyclonedx'], [/^https:\/\/spdx\.dev\/Document(\/|$)/, 'spdx']];

function quoteWarning(text: string): string {
  return `299 - "${text.replace(/[\\"]/g, '\\$&').replace(/[\r\n]+/g, ' ').slice(0, 1000)}"`;
}

export class PolicyEnforcer {
  readonly #deps: PolicyEnforcerDeps;
  /** Warnings for requests in flight, by request id, written as headers in onSend. */
  readonly #warnings = new Map<string, string[]>();
  readonly #resolving = new WeakMap<CompiledPolicy, Promise<void>>();

  constructor(deps: PolicyEnforcerDeps) {
    this.#deps = deps;
  }

  /** The manifest push gate. Referrers (signatures, SBOMs) and non-image artifacts are not evaluated. */
  readonly pushGate: ManifestPushGate = async (r) => {
    if (r.manifest.subject || (r.tag && COSIGN_TAG.test(r.tag))) return;
    const isIndex = r.manifest.manifests.length > 0 || r.manifest.config === undefined;
    if (!isIndex && !IMAGE_CONFIG_TYPES.has(r.manifest.config?.mediaType ?? '')) return;
    const policy = await this.policyFor(projectOf(r.repository));
    if (!policy?.appliesAt('push')) return;
    const previous = r.tag ? await this.#deps.meta.resolveTag(r.repository, r.tag) : undefined;
    const input = await this.#input('push', r.repository, r.digest, r.tag, r.manifest.mediaType, r.manifest, r.content.length, r.origin, previous, policy);
    this.#enforce(policy, input, r.origin);
  };

  /** The manifest pull gate (GET and HEAD). */
  readonly pullGate: PullGate = async (r) => {
    // cosign reads signatures by their tag (`sha256-<hex>.sig`): not evaluated, as at push
    if (r.tag && COSIGN_TAG.test(r.tag)) return;
    const policy = await this.policyFor(projectOf(r.repository));
    if (!policy?.appliesAt('pull')) return;
    const record = r.record;
    if (record.subject) return;
    const parsed = storedManifest(record);
    if (parsed.config && !IMAGE_CONFIG_TYPES.has(parsed.config.mediaType)) return;
    // a cosign tag-scheme signature or attestation fetched by digest (verifiers do): not an image
    if (parsed.layers.length > 0 && parsed.layers.every((l) => SIGNATURE_LAYER_TYPES.has(l.mediaType))) return;
    const input = await this.#input('pull', r.repository, r.digest, r.tag, r.mediaType, parsed, record.size, r.origin, undefined, policy);
    this.#enforce(policy, input, r.origin);
  };

  /**
   * Tag deletion (`DELETE /v2/NAME/manifests/TAG`): the core has no delete gate, so this hook
   * evaluates the push-point `immutable-tags` rules with `request.action == "delete"` before the
   * route runs (after authentication hooks); deletion by digest is checked for each of its tags.
   */
  async checkTagDelete(repository: string, tag: string, origin: RequestOrigin): Promise<void> {
    const policy = await this.#deps.source.policyFor(projectOf(repository));
    if (!policy?.appliesAt('push')) return;
    const digest = await this.#deps.meta.resolveTag(repository, tag);
    if (!digest) return;
    const input = completeInput({
      image: { digest, repository, project: projectOf(repository), tags: [tag] },
      request: { point: 'push', action: 'delete', who: { kind: origin.actor.kind, name: origin.actor.name ?? '' } },
    });
    const decision = policy.evaluate(input, (rule) => rule.kind === 'immutable-tags');
    if (decision.rules.every((r) => r.outcome === 'skipped')) return;
    this.#publish(decision, input, origin);
    if (!decision.allowed) throw new RegistryError('DENIED', `denied by policy ${decision.policy.name} v${decision.policy.version}: ${decision.denials.join('; ')}`);
  }

  /**
   * The decision the policy would take for a stored image at `point`, without enforcing or
   * publishing it (`portcullis policy explain`, the API). Undefined when the image is unknown or
   * no policy applies.
   */
  async explain(repository: string, reference: string, point: EnforcementPoint, origin: RequestOrigin): Promise<PolicyDecision | undefined> {
    const tag = reference.includes(':') ? undefined : reference;
    const digest = tag ? await this.#deps.meta.resolveTag(repository, tag) : reference;
    const record = digest ? await this.#deps.meta.getManifest(repository, digest) : undefined;
    const policy = await this.policyFor(projectOf(repository));
    if (!record || !policy) return undefined;
    const input = await this.#input(point, repository, record.digest, tag, record.mediaType, storedManifest(record), record.size, origin, point === 'push' ? record.digest : undefined, policy);
    return policy.evaluate(input);
  }

  /** The policy that applies to `project` (its own, else the global one), its base images resolved. */
  async policyFor(project: string): Promise<CompiledPolicy | undefined> {
    const policy = await this.#deps.source.policyFor(project);
    if (policy) await this.resolveBaseImages(policy);
    return policy;
  }

  /**
   * Resolves the `allowed-base-images` references of `policy` to their layer lists in this
   * registry (an index: one list per platform manifest), kept on the compiled policy for
   * BASE_IMAGE_TTL_MS so a moved tag is seen soon without a lookup per request.
   */
  async resolveBaseImages(policy: CompiledPolicy, now = Date.now()): Promise<void> {
    if (policy.baseImageRefs.length === 0 || now - policy.baseImagesAt < BASE_IMAGE_TTL_MS) return;
    // concurrent requests after expiry share one resolution
    let pending = this.#resolving.get(policy);
    if (!pending) {
      pending = (async () => {
        const resolved = new Map<string, string[][] | string>();
        await Promise.all(policy.baseImageRefs.map(async (ref) => void resolved.set(ref, await this.#baseLayers(ref))));
        policy.baseImages = resolved;
        // a reference that did not resolve (a base not pushed yet) is retried sooner
        policy.baseImagesAt = [...resolved.values()].some((v) => typeof v === 'string') ? now - BASE_IMAGE_TTL_MS + BASE_IMAGE_MISS_TTL_MS : now;
      })().finally(() => this.#resolving.delete(policy));
      this.#resolving.set(policy, pending);
    }
    await pending;
  }

  async #baseLayers(ref: string): Promise<string[][] | string> {
    const parsed = parseImageReference(ref);
    if (!parsed) return 'is not a valid reference';
    const digest = parsed.digest ?? (await this.#deps.meta.resolveTag(parsed.repository, parsed.tag!));
    const record = digest ? await this.#deps.meta.getManifest(parsed.repository, digest) : undefined;
    if (!record) return 'is not in this registry';
    const manifest = storedManifest(record);
    if (manifest.manifests.length === 0) return manifest.layers.length > 0 ? [manifest.layers.map((l) => l.digest)] : 'has no layers';
    const lists: string[][] = [];
    for (const child of manifest.manifests.slice(0, MAX_BASE_PLATFORMS)) {
      const c = await this.#deps.meta.getManifest(parsed.repository, child.digest);
      const layers = c ? storedManifest(c).layers.map((l) => l.digest) : [];
      if (layers.length > 0) lists.push(layers);
    }
    return lists.length > 0 ? lists : 'has no platform manifest with layers in this registry';
  }

  /**
   * The input document for a stored image at `point`, for enforcement points outside the
   * manifest gates (admission, promotion); the caller adds its request facts. Undefined when the
   * manifest is unknown or is a referrer or non-image artifact (not evaluated, as at pull).
   */
  async storedImageInput(repository: string, digest: string, tag: string | undefined, point: EnforcementPoint, origin: RequestOrigin): Promise<PolicyInput | undefined> {
    const record = await this.#deps.meta.getManifest(repository, digest);
    if (!record || record.subject) return undefined;
    const parsed = storedManifest(record);
    if (parsed.config && !IMAGE_CONFIG_TYPES.has(parsed.config.mediaType)) return undefined;
    return this.#input(point, repository, record.digest, tag, record.mediaType, parsed, record.size, origin, undefined);
  }

  /** Publishes a decision taken outside the gates (admission) as a `policy.decision` event. */
  publishDecision(decision: PolicyDecision, input: PolicyInput, origin: RequestOrigin): void {
    this.#publish(decision, input, origin);
  }

  /** Writes pending `Warning` headers on the response of the request that caused them; guards tag deletion. */
  register(app: FastifyInstance): void {
    app.addHook('preHandler', async (request) => {
      if (request.method !== 'DELETE') return;
      const target = manifestDeleteTarget(request.url);
      if (!target) return;
      const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: { kind: 'anonymous' } };
      // Deleting by digest removes the manifest's tags with it: each of them must allow its deletion.
      const tags = target.tag !== undefined ? [target.tag] : await this.#deps.meta.tagsOf(target.repository, target.digest!);
      for (const tag of tags) await this.checkTagDelete(target.repository, tag, origin);
    });
    app.addHook('onSend', async (request, reply, payload) => {
      const warnings = this.#warnings.get(String(request.id));
      if (warnings) {
        this.#warnings.delete(String(request.id));
        reply.header('Warning', warnings.map(quoteWarning));
      }
      return payload;
    });
    app.addHook('onResponse', async (request) => {
      this.#warnings.delete(String(request.id));
    });
  }

  /** Evaluates, publishes the decision, and throws DENIED when an enforced rule failed. */
  #enforce(policy: CompiledPolicy, input: PolicyInput, origin: RequestOrigin): PolicyDecision {
    const decision = policy.evaluate(input);
    this.#publish(decision, input, origin);
    if (decision.warnings.length > 0 && this.#warnings.size < MAX_WARNINGS_PENDING) {
      this.#warnings.set(origin.requestId, [...(this.#warnings.get(origin.requestId) ?? []), ...decision.warnings]);
    }
    if (!decision.allowed) {
      throw new RegistryError('DENIED', `denied by policy ${decision.policy.name} v${decision.policy.version}: ${decision.denials.join('; ')}`, {
        detail: { policy: decision.policy, point: decision.point, denials: decision.denials },
      });
    }
    return decision;
  }

  #publish(decision: PolicyDecision, input: PolicyInput, origin: RequestOrigin): void {
    this.#deps.events.publish({
      type: 'policy.decision',
      at: new Date(),
      origin,
      repository: decision.repository,
      digest: decision.digest,
      tag: input.image.tags[0],
      outcome: decision.allowed ? 'success' : 'denied',
      reason: decision.denials.join('; ') || undefined,
      point: decision.point,
      policy: decision.policy,
      rules: decision.rules.filter((r) => r.outcome !== 'pass' && r.outcome !== 'skipped'),
      warnings: decision.warnings,
    });
  }

  /** `policy`: the one to evaluate, when known (facts no rule of it reads are not gathered). */
  async #input(point: EnforcementPoint, repository: string, digest: string, tag: string | undefined, mediaType: string, manifest: ParsedManifest, manifestSize: number, origin: RequestOrigin, previousTagTarget: string | undefined, policy?: CompiledPolicy): Promise<PolicyInput> {
    const config = await this.#imageConfig(manifest);
    const size = manifestSize + (manifest.config?.size ?? 0) + manifest.layers.reduce((n, l) => n + l.size, 0);
    const [report, signatures, promotions] = await Promise.all([
      point === 'push' || !this.#deps.scans ? undefined : this.#deps.scans.report(repository, digest),
      this.#deps.signatures && point !== 'push' ? this.#deps.signatures.facts(repository, digest) : undefined,
      this.#deps.promotions && point !== 'push' ? this.#deps.promotions.facts(repository, digest) : undefined,
    ]);
    return completeInput({
      image: {
        digest,
        repository,
        project: projectOf(repository),
        tags: tag ? [tag] : [],
        mediaType,
        platform: { os: config?.os ?? '', architecture: config?.architecture ?? '', variant: config?.variant ?? '' },
        labels: config?.config?.Labels ?? {},
        annotations: manifest.annotations ?? {},
        created: config?.created ?? '',
        size,
        layers: manifest.layers.map((l) => l.digest),
        platformLayers: manifest.manifests.length > 0 && (policy?.usesPlatformLayers ?? true) ? await this.#platformLayers(repository, manifest) : [],
      },
      scan: report ? scanFacts(report) : {},
      signatures: signatures
        ? {
            verdict: signatures.verdict,
            signers: signatures.signedBy.map((s) => (s.signer.keyName ?? s.signer.keyId ?? s.signer.subject ?? s.signer.kind)),
            attestations: signatures.attestedBy.map((a) => a.predicateType),
            missing: signatures.missing,
          }
        : {},
      request: { point, action: point, who: { kind: origin.actor.kind, name: origin.actor.name ?? '' }, previousTagTarget: previousTagTarget ?? '' },
      promotions: promotions ?? [],
      provenance: (signatures?.provenance ?? []).map(provenanceFact),
      sboms: sbomFacts(signatures?.attestedBy ?? [], report?.builderSboms ?? []),
    });
  }

  /** The layer lists of an index's platform images stored in `repository` (BuildKit attestation manifests left out). */
  async #platformLayers(repository: string, index: ParsedManifest): Promise<string[][]> {
    const children = index.manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest').slice(0, MAX_BASE_PLATFORMS);
    const lists = await Promise.all(children.map(async (m) => {
      const record = await this.#deps.meta.getManifest(repository, m.digest);
      return record ? storedManifest(record).layers.map((l) => l.digest) : [];
    }));
    return lists.filter((l) => l.length > 0);
  }

  /** The image config (labels, created, platform), read when small; undefined for indexes. */
  async #imageConfig(manifest: ParsedManifest): Promise<ImageConfig | undefined> {
    const d = manifest.config;
    if (!d || !IMAGE_CONFIG_TYPES.has(d.mediaType)) return undefined;
    if (d.size > CONFIG_MAX_BYTES) throw new RegistryError('DENIED', `image config of ${d.size} bytes is too large for policy evaluation`);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of (await this.#deps.blobs.read(d.digest)) as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > CONFIG_MAX_BYTES) throw new RegistryError('DENIED', 'image config is too large for policy evaluation');
      chunks.push(chunk);
    }
    return imageConfigFacts(Buffer.concat(chunks));
  }
}

/** The facts of an image config (JSON) the input document uses; fields of the wrong type are dropped. */
export function imageConfigFacts(bytes: Buffer): ImageConfig {
  const value = JSON.parse(bytes.toString('utf8')) as ImageConfig;
  const labels = value.config?.Labels;
  const clean: Record<string, string> = {};
  if (labels && typeof labels === 'object') for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') clean[k] = v;
  return {
    os: typeof value.os === 'string' ? value.os : undefined,
    architecture: typeof value.architecture === 'string' ? value.architecture : undefined,
    variant: typeof value.variant === 'string' ? value.variant : undefined,
    created: typeof value.created === 'string' ? value.created : undefined,
    config: { Labels: clean },
  };
}

/** A stored manifest's parts the input document needs. */
function storedManifest(record: { content: Buffer; mediaType: string; artifactType: string | undefined; annotations: Record<string, string> | undefined }): ParsedManifest {
  const manifest = JSON.parse(record.content.toString('utf8')) as Partial<ParsedManifest>;
  return {
    mediaType: record.mediaType,
    artifactType: record.artifactType,
    config: manifest.config,
    layers: manifest.layers ?? [],
    manifests: manifest.manifests ?? [],
    subject: undefined,
    annotations: record.annotations,
  };
}

export interface ImageConfig {
  os?: string | undefined;
  architecture?: string | undefined;
  variant?: string | undefined;
  created?: string | undefined;
  config?: { Labels?: Record<string, string> | null };
}

function provenanceFact(p: NonNullable<Awaited<ReturnType<SignatureFactsProvider['facts']>>['provenance']>[number]): PolicyInput['provenance'][number] {
  const d = p.sourceDigest ?? {};
  return { predicateType: p.predicateType, builder: p.builderId ?? '', sourceRepository: p.sourceRepository ?? '', commit: d['gitCommit'] ?? d['sha1'] ?? d['sha256'] ?? '', buildType: p.buildType ?? '' };
}

/** SBOMs from verified attestations (CycloneDX/SPDX predicates) and from builder SBOMs in the scan report. */
export function sbomFacts(attestedBy: Array<{ predicateType: string }>, attached: Array<{ format: 'cyclonedx' | 'spdx' }>): PolicyInput['sboms'] {
  const out: PolicyInput['sboms'] = [];
  for (const a of attestedBy) {
    const format = SBOM_PREDICATES.find(([re]) => re.test(a.predicateType))?.[1];
    if (format) out.push({ format, origin: 'attested', verified: true });
  }
  for (const b of attached) out.push({ format: b.format, origin: 'attached', verified: false });
  return out;
}

/** The scan part of the input document from a scanner report (exempted findings excluded). */
export function scanFacts(report: ScanReport): Partial<PolicyInput['scan']> {
  const s = report.summary.bySeverity;
  return {
    status: report.status,
    scannedAt: report.scannedAt ?? '',
    summary: { total: report.summary.total, critical: s.critical, high: s.high, medium: s.medium, low: s.low, fixable: report.summary.fixable },
    findings: report.findings.map((f) => ({
      id: f.id,
      severity: f.severity,
      ...(f.score !== undefined ? { score: f.score } : {}),
      fixAvailable: f.fixAvailable,
      package: { name: f.package.name, version: f.package.version },
    })),
    licences: report.licences ?? [],
  };
}

/** The repository and tag or digest of `DELETE /v2/<name>/manifests/<reference>` (percent-decoded). */
function manifestDeleteTarget(url: string): { repository: string; tag?: string; digest?: string } | undefined {
  const path = url.split('?', 1)[0]!;
  const at = path.lastIndexOf('/manifests/');
  if (!path.startsWith('/v2/') || at < 0) return undefined;
  let reference: string;
  try {
    reference = decodeURIComponent(path.slice(at + '/manifests/'.length));
  } catch {
    return undefined; // not a reference: the route answers it
  }
  const repository = path.slice('/v2/'.length, at);
  if (/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(reference)) return { repository, tag: reference };
  if (/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(reference)) return { repository, digest: reference };
  return undefined;
}
