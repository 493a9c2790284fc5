/**
 * The signature capability of the registry: per-project trust policies, verification of the
 * signatures and attestations attached to an image (found in the registry's own storage), verdicts
 * cached per repository, digest and policy hash (the hash covers the policy version, keys, roots,
 * identities and requirements, so any change recomputes), the pull decision for "require a valid
 * signature to pull", and the facts the policy engine consumes.
 *
 * Caches: verdicts and policies in memory for `cacheSeconds` (another replica's change is seen
 * within that time; this process's own changes at once), verdicts in the store until they are
 * `maxVerdictAgeSeconds` old (certificates and signatures expire, so a verdict is not forever).
 * New or removed signature artifacts invalidate their subject's verdict through bus events.
 */
import { isIndexMediaType } from '../../oci/media-types.ts';
import type { Config } from '../config/schema.ts';
import { projectOf } from '../../oci/reference.ts';
import type { EventBus, EventOf, RequestOrigin } from '../events/bus.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import { VerificationCache } from './cache.ts';
import { COSIGN_TAG, REFERRERS_TAG, collectArtifacts, isSignatureArtifactManifest, storeReader, verifyCollected, type CollectedVerification } from './collect.ts';
import { factsOf, type SignatureFacts, type SignatureFactsProvider } from './facts.ts';
import { compilePolicy, TrustPolicySchema, type CompiledPolicy } from './policy.ts';
import type { SignatureStore, TrustPolicyDocument, TrustPolicyRecord } from './store.ts';
import { errorMessage } from './util.ts';

export interface SignatureServiceOptions {
  /** `host[:port]` clients use to name this registry (Notation trust policies select by `registry/repository`). */
  registryHost: string;
  /** Verdicts kept in memory at most. */
  cacheEntries: number;
  /** Memory cache lifetime of verdicts and policies (how soon another replica's change is seen). */
  cacheSeconds: number;
  /** A stored verdict older than this is recomputed (expiring certificates, signatures, CRLs). */
  maxVerdictAgeSeconds: number;
  /** Signature artifacts read per image at most (the rest are reported as not read). */
  maxArtifacts: number;
  /** Verify an image when it, or a signature for it, is pushed (projects with a trust policy only). */
  verifyOnPush: boolean;
  now?: () => number;
}

export type VerificationTrigger = 'push' | 'pull' | 'api' | 'policy-engine';

/** A verification result as the API shows it and the cache keeps it. */
export interface SignatureStatus extends CollectedVerification {
  repository: string;
  project: string;
  trustPolicy: { configured: boolean; version: number; requireSignatureToPull: boolean };
}

export interface ProjectPolicy {
  project: string;
  record: TrustPolicyRecord | undefined;
  compiled: CompiledPolicy;
  /** Why the stored policy cannot be used (it no longer compiles); `compiled` then trusts nothing. */
  error?: string;
}

/** The project's stored trust policy cannot be used: verification cannot be decided. */
export class PolicyUnusable extends Error {
  override name = 'PolicyUnusable';
}

export type PullDecision =
  | { allowed: true; why: 'no-enforcement' | 'verified' | 'signature-artifact' | 'covered-by-index'; coveredBy?: string }
  | { allowed: false; status: SignatureStatus; message: string };

/** Input of PUT /api/v1/projects/{project}/trust-policy. */
export const TrustPolicyDocumentSchema = TrustPolicySchema.omit({ version: true });

/** The policy of a project without one: nothing is trusted. */
const NO_POLICY = compilePolicy({ version: 0 });

interface Cached<T> {
  value: T;
  at: number;
}

type CachedStatus = SignatureStatus & { readonly [cachedAt]?: number };
const cachedAt = Symbol('cachedAt');

export class SignatureService implements SignatureFactsProvider {
  readonly #meta: MetadataStore;
  readonly #blobs: BlobStore;
  readonly #store: SignatureStore;
  readonly #events: EventBus;
  readonly #log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void } | undefined;
  readonly #options: SignatureServiceOptions;
  readonly #now: () => number;
  readonly #verdicts: VerificationCache<CachedStatus>;
  readonly #policies = new Map<string, Cached<ProjectPolicy>>();
  readonly #parents = new Map<string, Cached<string[]>>();
  /** Whether a manifest (immutable by digest) is a signature artifact. */
  readonly #artifactKinds = new Map<string, boolean>();
  readonly #inflight = new Map<string, Promise<SignatureStatus>>();

  constructor(
    deps: { meta: MetadataStore; blobs: BlobStore; store: SignatureStore; events: EventBus; logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void } },
    options: SignatureServiceOptions,
  ) {
    this.#meta = deps.meta;
    this.#blobs = deps.blobs;
    this.#store = deps.store;
    this.#events = deps.events;
    this.#log = deps.logger;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#verdicts = new VerificationCache<CachedStatus>(options.cacheEntries);
  }

  // --- trust policies -----------------------------------------------------------------------------

  /** The project's policy, compiled (memory-cached for `cacheSeconds`). Throws when a stored policy no longer compiles. */
  async policy(project: string, options: { fresh?: boolean } = {}): Promise<ProjectPolicy> {
    const hit = this.#policies.get(project);
    const now = this.#now();
    if (hit && !options.fresh && now - hit.at < this.#options.cacheSeconds * 1000) return hit.value;
    const record = await this.#store.getPolicy(project);
    let value: ProjectPolicy;
    try {
      value = { project, record, compiled: record ? compilePolicy({ ...record.policy, version: record.version }) : NO_POLICY };
    } catch (err) {
      // kept (not thrown) so that projects without enforcement still pull; verification refuses to decide
      value = { project, record, compiled: NO_POLICY, error: errorMessage(err) };
      this.#log?.error({ project, version: record?.version, err: value.error }, 'stored trust policy does not compile');
    }
    this.#policies.set(project, { value, at: now });
    if (this.#policies.size > 10_000) this.#policies.delete(this.#policies.keys().next().value as string);
    return value;
  }

  /** Validates a policy document (zod, then keys, certificates and trust roots parse). Throws a readable message. */
  validatePolicy(input: unknown): TrustPolicyDocument {
    const parsed = TrustPolicyDocumentSchema.safeParse(input);
    if (!parsed.success) throw new PolicyInvalid(parsed.error.issues.map((i) => `${i.path.join('.') || 'policy'}: ${i.message}`).join('; '));
    try {
      compilePolicy({ ...parsed.data, version: 1 });
    } catch (err) {
      throw new PolicyInvalid(errorMessage(err).replace(/^invalid trust policy: /, ''));
    }
    return parsed.data;
  }

  async putPolicy(
    project: string,
    input: { policy: unknown; requireSignatureToPull: boolean },
    options: { expectedVersion?: number; origin?: RequestOrigin } = {},
  ): Promise<{ record: TrustPolicyRecord; created: boolean; policyHash: string }> {
    const policy = this.validatePolicy(input.policy);
    const before = await this.#store.getPolicy(project);
    const record = await this.#store.putPolicy(project, { policy, requireSignatureToPull: input.requireSignatureToPull, updatedBy: options.origin?.actor.name }, options.expectedVersion);
    this.#policies.delete(project);
    const compiled = (await this.policy(project)).compiled;
    this.#events.publish({
      type: 'trust-policy.changed',
      at: new Date(this.#now()),
      origin: options.origin,
      project,
      change: before ? 'updated' : 'created',
      version: record.version,
      requireSignatureToPull: record.requireSignatureToPull,
      policyHash: compiled.hash,
      keys: policy.keys.map((k) => k.name),
    });
    return { record, created: !before, policyHash: compiled.hash };
  }

  async deletePolicy(project: string, options: { expectedVersion?: number; origin?: RequestOrigin } = {}): Promise<boolean> {
    const version = await this.#store.deletePolicy(project, options.origin?.actor.name, options.expectedVersion);
    this.#policies.delete(project);
    if (version === undefined) return false;
    this.#events.publish({ type: 'trust-policy.changed', at: new Date(this.#now()), origin: options.origin, project, change: 'deleted', version, requireSignatureToPull: false, keys: [] });
    return true;
  }

  // --- verification -------------------------------------------------------------------------------

  /** The verdict for `digest` in `repository`: from memory, the store, or computed now. */
  async status(repository: string, digest: string, trigger: VerificationTrigger = 'api', origin?: RequestOrigin): Promise<SignatureStatus> {
    const pp = usable(await this.policy(projectOf(repository)));
    const hit = this.#peek(repository, digest, pp);
    if (hit) return hit;
    const stored = await this.#store.getVerdict(repository, digest);
    if (stored && stored.policyHash === pp.compiled.hash && this.#now() - stored.verifiedAt.getTime() < this.#options.maxVerdictAgeSeconds * 1000) {
      try {
        const status = JSON.parse(stored.result) as SignatureStatus;
        this.#remember(status);
        return status;
      } catch {
        // unreadable: recompute
      }
    }
    return this.verify(repository, digest, trigger, origin, pp);
  }

  /** Verifies now (deduplicating concurrent requests), stores and caches the verdict, and publishes it. */
  async verify(repository: string, digest: string, trigger: VerificationTrigger, origin?: RequestOrigin, pp?: ProjectPolicy): Promise<SignatureStatus> {
    const policy = usable(pp ?? (await this.policy(projectOf(repository))));
    const key = `${repository}@${digest}|${policy.compiled.hash}`;
    const running = this.#inflight.get(key);
    if (running) return running;
    const work = this.#compute(repository, digest, policy, trigger, origin).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, work);
    return work;
  }

  async #compute(repository: string, digest: string, pp: ProjectPolicy, trigger: VerificationTrigger, origin: RequestOrigin | undefined): Promise<SignatureStatus> {
    const collected = await collectArtifacts(storeReader(this.#meta, this.#blobs, repository), digest, { maxArtifacts: this.#options.maxArtifacts });
    const v = verifyCollected(digest, collected, pp.compiled, { now: new Date(this.#now()), notationRepository: `${this.#options.registryHost}/${repository}` });
    const status: SignatureStatus = {
      ...v,
      cacheKey: `${repository}@${v.cacheKey}`,
      repository,
      project: pp.project,
      trustPolicy: { configured: !!pp.record, version: pp.record?.version ?? 0, requireSignatureToPull: pp.record?.requireSignatureToPull ?? false },
    };
    if (status.verdict !== 'verified' && !pp.record) status.missing.unshift(`project ${pp.project} has no trust policy, so nothing is trusted`);
    await this.#store.putVerdict({
      repository,
      digest,
      policyHash: status.policyHash,
      policyVersion: status.policyVersion,
      verdict: status.verdict,
      result: JSON.stringify(status),
      verifiedAt: new Date(status.verifiedAt),
    });
    this.#remember(status);
    const signers = status.signatures.filter((s) => s.ok).map((s) => describeSigner(s.signer));
    this.#events.publish({
      type: 'signature.verified',
      at: new Date(this.#now()),
      origin,
      repository,
      digest,
      verdict: status.verdict,
      outcome: status.verdict === 'verified' ? 'success' : 'failure',
      ...(status.missing.length > 0 ? { reason: status.missing.join('; ') } : {}),
      policyVersion: status.policyVersion,
      trigger,
      signatures: status.signatures.length,
      signers,
      attestations: status.attestations.filter((a) => a.ok).map((a) => a.predicateType ?? 'unknown'),
    });
    return status;
  }

  #peek(repository: string, digest: string, pp: ProjectPolicy): SignatureStatus | undefined {
    const hit = this.#verdicts.get(`${repository}@${digest}`, pp.compiled.hash);
    if (!hit) return undefined;
    const at = hit[cachedAt] ?? 0;
    const now = this.#now();
    if (now - at >= this.#options.cacheSeconds * 1000) return undefined;
    if (now - Date.parse(hit.verifiedAt) >= this.#options.maxVerdictAgeSeconds * 1000) return undefined;
    return hit;
  }

  #remember(status: SignatureStatus): void {
    const entry: CachedStatus = Object.defineProperty({ ...status }, cachedAt, { value: this.#now(), enumerable: false });
    this.#verdicts.set(entry, `${status.repository}@${status.digest}|${status.policyHash}`);
  }

  /** Drops what is cached for a digest (memory and store), e.g. when its signatures changed. */
  async forget(repository: string, digest: string): Promise<void> {
    this.#verdicts.forgetDigest(`${repository}@${digest}`);
    await this.#store.deleteVerdicts(repository, digest);
  }

  // --- enforcement and facts ----------------------------------------------------------------------

  /**
   * Whether a pull of `digest` may proceed: always without a policy that requires signatures;
   * otherwise if the image is verified, is itself a signature or attestation artifact (clients must
   * be able to fetch those to verify), or is listed by a verified index in the repository.
   */
  async pullDecision(repository: string, digest: string): Promise<PullDecision> {
    const pp = await this.policy(projectOf(repository));
    if (!pp.record?.requireSignatureToPull) return { allowed: true, why: 'no-enforcement' };
    usable(pp);
    const cached = this.#peek(repository, digest, pp);
    if (cached?.verdict === 'verified') return { allowed: true, why: 'verified' };
    if (await this.#isSignatureArtifact(repository, digest)) return { allowed: true, why: 'signature-artifact' };
    const status = cached ?? (await this.status(repository, digest, 'pull'));
    if (status.verdict === 'verified') return { allowed: true, why: 'verified' };
    for (const parent of await this.#parentsOf(repository, digest)) {
      const ps = await this.status(repository, parent, 'pull');
      if (ps.verdict === 'verified') return { allowed: true, why: 'covered-by-index', coveredBy: parent };
    }
    const missing = status.missing.length > 0 ? status.missing.join('; ') : status.verdict;
    return {
      allowed: false,
      status,
      message: `project ${pp.project} requires a valid signature to pull (trust policy version ${pp.record.version}); ${repository}@${digest}: ${missing}`,
    };
  }

  /** Signature facts for the policy engine (a verified index listing the manifest counts for it). */
  async facts(repository: string, digest: string): Promise<SignatureFacts> {
    const status = await this.status(repository, digest, 'policy-engine');
    if (status.verdict !== 'verified') {
      for (const parent of await this.#parentsOf(repository, digest)) {
        const ps = await this.status(repository, parent, 'policy-engine');
        if (ps.verdict === 'verified') return factsOf(status, ps);
      }
    }
    return factsOf(status);
  }

  async #isSignatureArtifact(repository: string, digest: string): Promise<boolean> {
    const key = `${repository}@${digest}`;
    const known = this.#artifactKinds.get(key);
    if (known !== undefined) return known;
    const record = await this.#meta.getManifest(repository, digest);
    if (!record) return false;
    const kind = isSignatureArtifactManifest(record.content);
    this.#artifactKinds.set(key, kind);
    if (this.#artifactKinds.size > this.#options.cacheEntries) this.#artifactKinds.delete(this.#artifactKinds.keys().next().value as string);
    return kind;
  }

  async #parentsOf(repository: string, digest: string): Promise<string[]> {
    const key = `${repository}@${digest}`;
    const hit = this.#parents.get(key);
    const now = this.#now();
    if (hit && now - hit.at < this.#options.cacheSeconds * 1000) return hit.value;
    const parents = await this.#store.parentsOf(repository, digest);
    this.#parents.set(key, { value: parents, at: now });
    if (this.#parents.size > this.#options.cacheEntries) this.#parents.delete(this.#parents.keys().next().value as string);
    return parents;
  }

  // --- events -------------------------------------------------------------------------------------

  /** Subscribes to the bus: pushes (re)verify, deletions invalidate. Returns the unsubscribe function. */
  subscribe(): () => void {
    const offs = [
      this.#events.subscribe('manifest.pushed', (e) => this.#track(this.onManifestPushed(e))),
      this.#events.subscribe('manifest.deleted', (e) => this.#track(this.onManifestDeleted(e))),
      this.#events.subscribe('tag.deleted', (e) => this.#track(this.onTagDeleted(e))),
    ];
    return () => offs.forEach((off) => off());
  }

  readonly #pending = new Set<Promise<void>>();

  #track(work: Promise<void>): Promise<void> {
    this.#pending.add(work);
    void work.then(
      () => this.#pending.delete(work),
      () => this.#pending.delete(work),
    );
    return work;
  }

  /** Resolves once event-driven verifications started so far have finished (tests; shutdown). */
  async idle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /**
   * A signature or attestation artifact (cosign tag, or a referrer whose layers are signature
   * envelopes) re-verifies its claimed subject (the payload decides whether it counts); an image
   * is verified itself; an index records which manifests it lists.
   */
  async onManifestPushed(e: EventOf<'manifest.pushed'>): Promise<void> {
    const { repository, digest } = e;
    if (isIndexMediaType(e.mediaType)) await this.#recordIndex(repository, digest);
    const tagMatch = e.tag ? (COSIGN_TAG.exec(e.tag) ?? REFERRERS_TAG.exec(e.tag)) : null;
    let subject: string | undefined;
    if (tagMatch) subject = `sha256:${tagMatch[1]}`;
    else if (e.subject && (await this.#isSignatureArtifact(repository, digest))) subject = e.subject;
    else if (!e.subject && (await this.#isSignatureArtifact(repository, digest))) return; // a fallback index or a stray envelope: nothing to verify
    const target = subject ?? digest;
    if (subject) {
      // the subject's signatures changed: drop what any replica would read back
      this.#verdicts.forgetDigest(`${repository}@${subject}`);
      await this.#store.deleteVerdicts(repository, subject);
    }
    if (!this.#options.verifyOnPush) return;
    const pp = await this.policy(projectOf(repository));
    if (!pp.record) return;
    await this.verify(repository, target, 'push', e.origin, pp);
  }

  async onManifestDeleted(e: EventOf<'manifest.deleted'>): Promise<void> {
    const subjects = e.tags.map((t) => COSIGN_TAG.exec(t)).filter((m) => m !== null).map((m) => `sha256:${m[1]}`);
    await this.#store.deleteIndex(e.repository, e.digest);
    for (const [k] of this.#parents) if (k.startsWith(`${e.repository}@`)) this.#parents.delete(k);
    if (subjects.length > 0) {
      for (const s of subjects) await this.forget(e.repository, s);
      return;
    }
    // a referrer's subject is no longer known once it is gone: forget the repository's verdicts
    this.#verdicts.forgetPrefix(`${e.repository}@`);
    await this.#store.deleteVerdicts(e.repository);
  }

  async onTagDeleted(e: EventOf<'tag.deleted'>): Promise<void> {
    const m = COSIGN_TAG.exec(e.tag);
    if (m) await this.forget(e.repository, `sha256:${m[1]}`);
  }

  async #recordIndex(repository: string, digest: string): Promise<void> {
    const record = await this.#meta.getManifest(repository, digest);
    if (!record) return;
    let children: string[] = [];
    try {
      const parsed = JSON.parse(record.content.toString('utf8')) as { manifests?: { digest?: unknown }[] };
      children = (parsed.manifests ?? []).map((m) => m?.digest).filter((d): d is string => typeof d === 'string');
    } catch (err) {
      this.#log?.warn({ err: errorMessage(err), repository, digest }, 'index content is not JSON');
      return;
    }
    await this.#store.addIndexChildren(repository, digest, children);
    for (const c of children) this.#parents.delete(`${repository}@${c}`);
  }
}

export class PolicyInvalid extends Error {
  override name = 'PolicyInvalid';
}

function usable(pp: ProjectPolicy): ProjectPolicy {
  if (pp.error) throw new PolicyUnusable(`the trust policy of project ${pp.project} (version ${pp.record?.version}) cannot be used: ${pp.error}`);
  return pp;
}

function describeSigner(s: unknown): string {
  if (!s || typeof s !== 'object') return 'unknown';
  const v = s as Record<string, unknown>;
  if (v['kind'] === 'key') return `key ${String(v['keyName'] ?? String(v['keyId']).slice(0, 16))}`;
  if (v['kind'] === 'certificate') return `certificate ${String(v['subjectAlternativeName'] ?? '?')} (${String(v['issuer'] ?? '?')})`;
  if (v['kind'] === 'notation') return `notation ${String(v['subject'])}`;
  return 'unknown';
}

/** The service's settings from the configuration (its slice, and the listen address as the default registry host). */
export function signatureSettings(config: Pick<Config, 'signatures' | 'server'>): SignatureServiceOptions {
  const c = config.signatures;
  return {
    registryHost: c.registryHost ?? config.server.listen,
    cacheEntries: c.cacheEntries,
    cacheSeconds: c.cacheSeconds,
    maxVerdictAgeSeconds: c.maxVerdictAgeSeconds,
    maxArtifacts: c.maxArtifactsPerImage,
    verifyOnPush: c.verifyOnPush,
  };
}
