/**
 * The admission enforcement point: an AdmissionReview's containers are evaluated with the same
 * evaluator and input document as push and pull, at point `admission`, with the Kubernetes facts
 * (namespace, workload, operation, when this workload first ran the digest) added.
 *
 * - Images of this registry (`registryHosts`) are resolved tag -> digest from the metadata store;
 *   images from elsewhere are denied, allowed, or verified against their registry (external.ts)
 *   by configuration; verified verdicts are cached like this registry's, per digest.
 * - On UPDATE only containers whose image changed are evaluated (a label edit or a finalizer
 *   removal must not be blocked by a digest that was admitted before).
 * - Grace: a restart of a workload that already ran the digest, failing only rules with
 *   `graceDays` whose failure started after the workload was admitted, is allowed with a warning
 *   until the window closes; a new deployment of the same digest is denied at once.
 * - Verdicts are cached per image facts (repository@digest) and per decision (policy hash + request
 *   facts); signature, scan, exemption and trust-policy events drop them at once.
 * - Allowed admissions that are not dry runs are recorded as deployment records.
 * Errors deny (the API server applies the webhook's failurePolicy only when it cannot call us).
 */
import { projectOf } from '../../oci/reference.ts';
import type { AdmissionFacts, EventBus, RequestOrigin } from '../events/bus.ts';
import { globToRegExp, type PolicyRule } from '../policy/document.ts';
import type { CompiledPolicy, PolicyDecision } from '../policy/evaluate.ts';
import type { PolicyInput } from '../policy/input.ts';
import type { MetadataStore } from '../storage/ports.ts';
import { type ImageReference, ImageReferenceError, parseImageReference, pinReference } from './reference.ts';
import { type AdmissionRequest, type AdmissionResponseBody, type ContainerRef, containersOf, InvalidObjectError, POD_SPEC_PATHS, workloadOf } from './review.ts';
import type { DeploymentStore } from './store.ts';
import { compileRegistryPatterns, externalPrecheck, type ExternalVerdict, type ExternalVerifier, type ExternalVerifySettings } from './external.ts';

/** What admission needs of the policy enforcer (policy/enforcer.ts). */
export interface AdmissionPolicy {
  policyFor(project: string): Promise<CompiledPolicy | undefined>;
  storedImageInput(repository: string, digest: string, tag: string | undefined, point: 'admission', origin: RequestOrigin): Promise<PolicyInput | undefined>;
}

export interface AdmissionSettings {
  registryHosts: string[];
  external: { action: 'deny' | 'allow' | 'verify'; allow: string[]; verify?: (Pick<ExternalVerifySettings, 'registries' | 'requireDigest'> & { policyProject?: string | null | undefined }) | undefined };
  unknownKinds: 'allow' | 'deny';
  namespaces: { include: string[]; exclude: string[] };
  cacheMs: number;
  cacheEntries: number;
}

export interface AdmissionDeps {
  policy: AdmissionPolicy;
  meta: MetadataStore;
  deployments: DeploymentStore;
  events: EventBus;
  /** Verifies images of other registries (admission.external.action verify). */
  external?: ExternalVerifier | undefined;
  now?: () => Date;
  logger?: { error(obj: object, msg: string): void } | undefined;
}

export interface ReviewContext {
  cluster: string;
  origin: RequestOrigin;
}

interface FactsEntry {
  input: PolicyInput | undefined;
  /** The verdict of an image of another registry (keys `external:…`). */
  external?: ExternalVerdict;
  expires: number;
  decisions: Map<string, PolicyDecision>;
}

interface ImageOutcome {
  container: ContainerRef;
  denials: string[];
  warnings: string[];
  record?: { digest: string; repository: string };
}

const DAY_MS = 86_400_000;

/**
 * Rules evaluated for images of other registries: those that need neither a scan nor this
 * registry's promotions, provenance or SBOM facts (CEL expressions naming `scan`, `promotions`,
 * `provenance` or `sboms` are left out too).
 */
function appliesToExternal(rule: PolicyRule): boolean {
  if (rule.kind === 'cel') return !/\b(scan|promotions|provenance|sboms)\b/.test(rule.expression);
  return rule.kind === 'signature-required' || rule.kind === 'forbidden-tags' || rule.kind === 'required-labels' || rule.kind === 'max-image-age';
}
const RECORD_REFRESH_MS = 60_000;
const SYSTEM_ORIGIN: RequestOrigin = { clientAddress: '', userAgent: undefined, requestId: 'admission', actor: { kind: 'system', name: 'admission' } };

export class AdmissionController {
  readonly #deps: AdmissionDeps;
  readonly #settings: AdmissionSettings;
  readonly #hosts: Set<string>;
  readonly #externalAllow: RegExp[];
  readonly #verifyPatterns: RegExp[];
  readonly #externalInflight = new Map<string, Promise<ExternalVerdict>>();
  readonly #facts = new Map<string, FactsEntry>();
  /** When each deployment record was last written by this process. */
  readonly #recorded = new Map<string, number>();
  readonly #now: () => Date;
  /** Evaluations (cache misses of the decision cache), for the benchmark and metrics. */
  evaluations = 0;

  constructor(deps: AdmissionDeps, settings: AdmissionSettings) {
    this.#deps = deps;
    this.#settings = settings;
    this.#hosts = new Set(settings.registryHosts.map((h) => h.toLowerCase()));
    this.#externalAllow = settings.external.allow.map((g) => globToRegExp(g));
    this.#verifyPatterns = compileRegistryPatterns(settings.external.verify?.registries ?? []);
    if (settings.external.action === 'verify' && !deps.external) throw new Error('admission.external.action verify needs an external verifier');
    this.#now = deps.now ?? (() => new Date());
  }

  /** The validating webhook. */
  async validate(request: AdmissionRequest, ctx: ReviewContext): Promise<AdmissionResponseBody> {
    const uid = request.uid;
    const scope = this.#scope(request);
    if ('answer' in scope) return { uid, ...scope.answer };
    const { containers, namespace, workload, kind } = scope;
    if (containers.length === 0) return { uid, allowed: true };
    const dryRun = request.dryRun === true;
    const who = request.userInfo?.username ?? '';
    const origin: RequestOrigin = { ...ctx.origin, actor: { kind: 'user', name: who || undefined, auth: 'kubernetes' } };

    const parsed = containers.map((c) => ({ container: c, ref: this.#parse(c.image) }));
    const resolved = await Promise.all(parsed.map(async (p) => ({ ...p, digest: p.ref instanceof Error || !this.#isOurs(p.ref) ? undefined : await this.#digestOf(p.ref) })));
    const digests = [...new Set(resolved.flatMap((r) => (r.digest ? [r.digest] : [])))];
    const firstAdmitted = await this.#deps.deployments.firstAdmitted({ cluster: ctx.cluster, namespace, workloadKind: workload.kind, workloadName: workload.name }, digests);
    const policies = new Map<string, Promise<CompiledPolicy | undefined>>();

    const outcomes: ImageOutcome[] = await Promise.all(resolved.map(async ({ container, ref, digest }): Promise<ImageOutcome> => {
      const label = `${container.list === 'containers' ? 'container' : container.list === 'initContainers' ? 'init container' : 'ephemeral container'} ${container.name}`;
      if (ref instanceof Error) return { container, denials: [`${label}: ${ref.message}`], warnings: [] };
      if (!this.#isOurs(ref)) {
        const name = `${ref.registry}/${ref.repository}`;
        if (this.#settings.external.action === 'allow' || this.#externalAllow.some((re) => re.test(name))) return { container, denials: [], warnings: [] };
        if (this.#settings.external.action === 'verify') {
          const verdict = await this.#external(ref);
          const result: ImageOutcome = { container, denials: [], warnings: [] };
          if (verdict.problems.length > 0) {
            const reason = `${ref.original}${verdict.digest && verdict.digest !== ref.digest ? ` (${verdict.digest})` : ''} from ${ref.registry} failed external verification: ${verdict.problems.join('; ')}`;
            if (this.#deps.external?.mode === 'warn') result.warnings.push(`${reason} (admission.external.verify.mode warn)`);
            else result.denials.push(`${label}: ${reason}`);
          }
          // The policy's rules that need no scan or promotion of this registry, over the fetched facts.
          const project = this.#settings.external.verify?.policyProject;
          if (!verdict.input || !project) return result;
          if (!policies.has(project)) policies.set(project, this.#deps.policy.policyFor(project));
          const policy = await policies.get(project)!;
          if (!policy?.appliesAt('admission')) return result;
          const facts: AdmissionFacts = { cluster: ctx.cluster, namespace, workload, container: container.name, operation: request.operation, dryRun, restart: false };
          const decision = this.#decide(policy, verdict.input, ref, facts, undefined, who, appliesToExternal);
          result.warnings.push(...decision.warnings.map((w) => `${ref.original}: ${w}`));
          if (!decision.allowed) result.denials.push(`${label}: ${ref.original} denied by policy ${decision.policy.name} v${decision.policy.version}: ${decision.denials.join('; ')}`);
          this.#publish(decision, verdict.input, ref, facts, result.denials.length === 0, origin);
          return result;
        }
        return { container, denials: [`${label}: image ${ref.original} is from ${ref.registry}, not this registry (admission.external denies other registries)`], warnings: [] };
      }
      if (!digest) return { container, denials: [`${label}: image ${ref.original}: ${ref.digest ? `manifest ${ref.digest} is` : `tag ${ref.tag ?? 'latest'} is`} not in repository ${ref.repository}`], warnings: [] };
      const project = projectOf(ref.repository);
      if (!policies.has(project)) policies.set(project, this.#deps.policy.policyFor(project));
      const policy = await policies.get(project)!;
      if (!policy?.appliesAt('admission')) return { container, denials: [], warnings: [], record: { digest, repository: ref.repository } };
      const restartAt = firstAdmitted.get(digest);
      const facts: AdmissionFacts = { cluster: ctx.cluster, namespace, workload, container: container.name, operation: request.operation, dryRun, restart: restartAt !== undefined };
      const input = await this.#input(ref.repository, digest);
      if (!input) return { container, denials: [`${label}: ${ref.original} (${digest}) is not an image (a referrer or another artifact)`], warnings: [] };
      const decision = this.#decide(policy, input, ref, facts, restartAt, who);
      const result: ImageOutcome = { container, denials: [], warnings: decision.warnings.map((w) => `${ref.original}: ${w}`), record: { digest, repository: ref.repository } };
      let allowed = decision.allowed;
      if (!allowed && restartAt) {
        const grace = await this.#grace(policy, decision, restartAt, facts, origin);
        if (grace) {
          allowed = true;
          result.warnings.push(...grace.map((w) => `${ref.original}: ${w}`));
        }
      }
      if (!allowed) result.denials.push(`${label}: ${ref.original} denied by policy ${decision.policy.name} v${decision.policy.version}: ${decision.denials.join('; ')}`);
      this.#publish(decision, input, ref, facts, allowed, origin);
      return result;
    }));

    const denials = outcomes.flatMap((o) => o.denials);
    const warnings = outcomes.flatMap((o) => o.warnings);
    if (denials.length > 0) {
      return { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: `portcullis denied ${kind} ${namespace}/${workload.name}: ${denials.join(' | ')}` }, warnings };
    }
    if (!dryRun) {
      const now = this.#now();
      const records = outcomes.flatMap((o) => (o.record ? [{ cluster: ctx.cluster, namespace, workloadKind: workload.kind, workloadName: workload.name, container: o.container.name, digest: o.record.digest, repository: o.record.repository, image: o.container.image }] : []))
        .filter((r) => this.#dueForRecording(r, now.getTime()));
      await this.#deps.deployments.record(records, now);
    }
    return { uid, allowed: true, warnings };
  }

  /** The mutating webhook: pins this registry's tags (and verified external ones) to the digest they point at now (JSONPatch). */
  async mutate(request: AdmissionRequest): Promise<AdmissionResponseBody> {
    const uid = request.uid;
    const scope = this.#scope(request);
    if ('answer' in scope) return { uid, ...(scope.answer.allowed ? { allowed: true } : scope.answer) };
    const patch: Array<{ op: 'replace'; path: string; value: string }> = [];
    await Promise.all(scope.containers.map(async (c) => {
      const ref = this.#parse(c.image);
      if (ref instanceof Error || ref.digest) return;
      let digest: string | undefined;
      if (this.#isOurs(ref)) digest = await this.#deps.meta.resolveTag(ref.repository, ref.tag ?? 'latest');
      else if (this.#settings.external.action === 'verify' && !this.#externalAllow.some((re) => re.test(`${ref.registry}/${ref.repository}`))) digest = (await this.#external(ref)).digest;
      if (!digest) return; // the validating webhook denies it with the reason
      patch.push({ op: 'replace', path: c.pointer, value: pinReference(c.image, digest) });
    }));
    if (patch.length === 0) return { uid, allowed: true };
    patch.sort((a, b) => a.path.localeCompare(b.path));
    return { uid, allowed: true, patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
  }

  /**
   * Drops cached verdicts when their facts change, and opens grace windows as soon as a new
   * finding (or a failed re-verification) makes a deployed digest fail a rule with graceDays.
   */
  subscribe(): () => void {
    const { events } = this.#deps;
    const digestChanged = (e: { repository: string; digest: string }) => {
      this.#facts.delete(`${e.repository}@${e.digest}`);
      this.#reviewDeployed(e.repository, e.digest).catch((error) => this.#deps.logger?.error({ err: error, digest: e.digest }, 'admission: grace review failed'));
    };
    const all = () => this.#facts.clear();
    const off = [
      events.subscribe('scan.completed', digestChanged),
      events.subscribe('scan.findings.changed', digestChanged),
      events.subscribe('signature.verified', digestChanged),
      events.subscribe('manifest.deleted', (e) => void this.#facts.delete(`${e.repository}@${e.digest}`)),
      events.subscribe('scan.exemption.created', all),
      events.subscribe('scan.exemption.revoked', all),
      events.subscribe('trust-policy.changed', all),
    ];
    return () => off.forEach((f) => f());
  }

  /**
   * Replicas of one workload are admitted again and again with the same facts: last-seen is
   * refreshed at most once a minute per record, which keeps writes off the hot path.
   */
  #dueForRecording(r: { cluster: string; namespace: string; workloadKind: string; workloadName: string; container: string; digest: string; image: string }, now: number): boolean {
    const key = [r.cluster, r.namespace, r.workloadKind, r.workloadName, r.container, r.digest, r.image].join('\n');
    const last = this.#recorded.get(key);
    if (last !== undefined && now - last < RECORD_REFRESH_MS && now >= last) return false;
    if (this.#recorded.size >= 100_000) this.#recorded.clear();
    this.#recorded.set(key, now);
    return true;
  }

  /** Another `host[:port]` of this registry (the bound port when server.listen asks for port 0). */
  addRegistryHost(host: string): void {
    this.#hosts.add(host.toLowerCase());
  }

  /** Drops every cached verdict (a policy document changed). */
  invalidate(): void {
    this.#facts.clear();
  }

  /** Common checks of both webhooks: operation, sub-resource, kind, namespace, object shape. */
  #scope(request: AdmissionRequest): { answer: Omit<AdmissionResponseBody, 'uid'> } | { containers: ContainerRef[]; namespace: string; workload: { kind: string; name: string }; kind: string } {
    if (request.operation === 'DELETE' || request.operation === 'CONNECT') return { answer: { allowed: true } };
    if (request.subResource && request.subResource !== 'ephemeralcontainers') return { answer: { allowed: true } };
    const kind = request.kind.kind;
    const known = POD_SPEC_PATHS[kind];
    if (!known || known.group !== request.kind.group) {
      if (this.#settings.unknownKinds === 'allow') return { answer: { allowed: true, warnings: [`portcullis does not evaluate ${request.kind.group || 'core'}/${kind}`] } };
      return { answer: { allowed: false, status: { code: 400, reason: 'BadRequest', message: `portcullis admission evaluates pods and workloads with a pod template, not ${request.kind.group || 'core'}/${request.kind.version}/${kind} (admission.unknownKinds: deny)` } } };
    }
    const object = request.object;
    if (!object) return { answer: { allowed: false, status: { code: 400, reason: 'BadRequest', message: `request.object is missing for ${request.operation} of ${kind}` } } };
    const meta = (object['metadata'] ?? {}) as Record<string, unknown>;
    const namespace = request.namespace || (typeof meta['namespace'] === 'string' ? meta['namespace'] : '');
    if (!this.#selected(namespace)) return { answer: { allowed: true } };
    // Updates during deletion (finalizers) must never be blocked.
    if (request.operation === 'UPDATE' && meta['deletionTimestamp']) return { answer: { allowed: true } };
    let containers: ContainerRef[];
    try {
      containers = containersOf(kind, object);
      if (request.operation === 'UPDATE' && request.oldObject) {
        let before: ContainerRef[] = [];
        try {
          before = containersOf(kind, request.oldObject);
        } catch {
          // a malformed old object: evaluate everything
        }
        const old = new Set(before.map((c) => `${c.pointer}\n${c.image}`));
        containers = containers.filter((c) => !old.has(`${c.pointer}\n${c.image}`));
      }
    } catch (error) {
      if (!(error instanceof InvalidObjectError)) throw error;
      return { answer: { allowed: false, status: { code: 400, reason: 'BadRequest', message: `malformed ${kind}: ${error.message}` } } };
    }
    return { containers, namespace, workload: workloadOf(kind, object, request.name), kind };
  }

  #selected(namespace: string): boolean {
    const { include, exclude } = this.#settings.namespaces;
    if (exclude.includes(namespace)) return false;
    return include.length === 0 || include.includes(namespace);
  }

  #parse(image: string): ImageReference | ImageReferenceError {
    try {
      return parseImageReference(image);
    } catch (error) {
      if (error instanceof ImageReferenceError) return error;
      throw error;
    }
  }

  #isOurs(ref: ImageReference): boolean {
    return this.#hosts.has(ref.registry);
  }

  /**
   * The verdict on an image of another registry: checks that need no request, then the verdict
   * cached for the tag or digest, else a verification (one at a time per reference). Errors are
   * not cached: the next review asks again.
   */
  async #external(ref: ImageReference): Promise<ExternalVerdict> {
    const problems = externalPrecheck(this.#settings.external.verify ?? { registries: [], requireDigest: false }, this.#verifyPatterns, ref);
    if (problems.length > 0) return { digest: ref.digest, problems, error: false, signers: [] };
    const name = `${ref.registry}/${ref.repository}`;
    const digestKey = (d: string) => `external:${name}@${d}`;
    const key = ref.digest ? digestKey(ref.digest) : `external:${name}:${ref.tag ?? 'latest'}`;
    const cached = (k: string) => {
      const hit = this.#facts.get(k);
      return hit?.external && hit.expires > Date.now() ? hit.external : undefined;
    };
    const hit = cached(key);
    if (hit) return hit;
    let pending = this.#externalInflight.get(key);
    if (!pending) {
      pending = this.#deps.external!.verify(ref, (d) => cached(digestKey(d))).then((verdict) => {
        if (!verdict.error && this.#settings.cacheMs > 0) {
          const expires = Date.now() + this.#settings.cacheMs;
          for (const k of new Set([key, ...(verdict.digest ? [digestKey(verdict.digest)] : [])])) this.#remember(k, { input: undefined, external: verdict, expires, decisions: new Map() });
        }
        return verdict;
      }).finally(() => this.#externalInflight.delete(key));
      this.#externalInflight.set(key, pending);
    }
    return pending;
  }

  /** The digest the runtime will pull: the written digest (when stored here) or the tag's target now. */
  async #digestOf(ref: ImageReference): Promise<string | undefined> {
    if (ref.digest) return (await this.#deps.meta.getManifest(ref.repository, ref.digest)) ? ref.digest : undefined;
    return this.#deps.meta.resolveTag(ref.repository, ref.tag ?? 'latest');
  }

  /** The image's facts (config, scan, signatures), cached per repository@digest. */
  async #input(repository: string, digest: string): Promise<PolicyInput | undefined> {
    const key = `${repository}@${digest}`;
    const now = Date.now();
    const hit = this.#facts.get(key);
    if (hit && hit.expires > now) return hit.input;
    const input = await this.#deps.policy.storedImageInput(repository, digest, undefined, 'admission', SYSTEM_ORIGIN);
    if (this.#settings.cacheMs > 0) this.#remember(key, { input, expires: now + this.#settings.cacheMs, decisions: new Map() });
    return input;
  }

  /** Caches an entry, dropping the oldest when full. */
  #remember(key: string, entry: FactsEntry): void {
    if (this.#facts.size >= this.#settings.cacheEntries) this.#facts.delete(this.#facts.keys().next().value!);
    this.#facts.set(key, entry);
  }

  #decide(policy: CompiledPolicy, base: PolicyInput, ref: ImageReference, facts: AdmissionFacts, restartAt: Date | undefined, who: string, only?: (rule: PolicyRule) => boolean): PolicyDecision {
    const firstAdmitted = restartAt?.toISOString() ?? '';
    // Without tag or digest the runtime pulls `latest`: that is the tag forbidden-tags rules see.
    const tag = ref.tag ?? (ref.digest ? undefined : 'latest');
    const key = [policy.hash, tag ?? '', facts.namespace, facts.workload.kind, facts.workload.name, facts.operation, firstAdmitted, who].join('\n');
    const entry = this.#facts.get(`${base.image.repository}@${base.image.digest}`);
    const cached = entry?.decisions.get(key);
    if (cached) return cached;
    this.evaluations++;
    const input: PolicyInput = {
      ...base,
      image: { ...base.image, tags: tag ? [tag] : [] },
      request: { ...base.request, point: 'admission', action: 'admit', who: { kind: 'user', name: who }, previousTagTarget: '' },
      admission: { namespace: facts.namespace, workload: facts.workload, operation: facts.operation, firstAdmitted },
      now: this.#now().toISOString(),
    };
    const decision = policy.evaluate(input, only);
    if (entry && entry.decisions.size < 1000) entry.decisions.set(key, decision);
    return decision;
  }

  /**
   * Warnings instead of denials when every failed enforced rule has graceDays, its window opened
   * after this workload first ran the digest, and has not closed; undefined otherwise.
   */
  async #grace(policy: CompiledPolicy, decision: PolicyDecision, restartAt: Date, facts: AdmissionFacts, origin: RequestOrigin): Promise<string[] | undefined> {
    const failed = decision.rules.filter((r) => r.mode === 'enforce' && (r.outcome === 'fail' || r.outcome === 'error'));
    const defs = new Map<string, PolicyRule>(policy.document.rules.map((r) => [r.name, r]));
    if (failed.some((r) => defs.get(r.rule)?.graceDays === undefined)) return undefined;
    const now = this.#now();
    const project = policy.document.metadata.project;
    const warnings: string[] = [];
    const allowedEvents: Array<() => void> = [];
    for (const r of failed) {
      const days = defs.get(r.rule)!.graceDays!;
      const { window, opened } = await this.#deps.deployments.openGrace({ digest: decision.digest, project, rule: r.rule, openedAt: now, reason: r.message ?? r.facts.join('; ') });
      const until = new Date(window.openedAt.getTime() + days * DAY_MS);
      const event = (action: 'opened' | 'allowed') => this.#deps.events.publish({
        type: 'admission.grace', at: now, origin, action, repository: decision.repository, digest: decision.digest, rule: r.rule,
        policy: { name: decision.policy.name, project: decision.policy.project, version: decision.policy.version }, reason: window.reason, openedAt: window.openedAt.toISOString(), until: until.toISOString(), admission: facts,
      });
      if (opened) event('opened');
      if (window.openedAt < restartAt || now >= until) return undefined;
      warnings.push(`rule ${r.rule}: ${r.message ?? r.facts.join('; ')} (grace period until ${until.toISOString()}: ${facts.workload.kind}/${facts.workload.name} already ran this digest; new deployments are denied)`);
      allowedEvents.push(() => event('allowed'));
    }
    for (const e of allowedEvents) e();
    return warnings;
  }

  #publish(decision: PolicyDecision, input: PolicyInput, ref: ImageReference, facts: AdmissionFacts, allowed: boolean, origin: RequestOrigin): void {
    this.#deps.events.publish({
      type: 'policy.decision',
      at: this.#now(),
      origin,
      repository: decision.repository,
      digest: decision.digest,
      tag: ref.tag ?? input.image.tags[0],
      outcome: allowed ? 'success' : 'denied',
      reason: decision.denials.join('; ') || undefined,
      point: 'admission',
      policy: decision.policy,
      rules: decision.rules.filter((r) => r.outcome !== 'pass' && r.outcome !== 'skipped'),
      warnings: decision.warnings,
      admission: facts,
    });
  }

  /** After new findings or a re-verification of a deployed digest: open (or close) its grace windows. */
  async #reviewDeployed(repository: string, digest: string): Promise<void> {
    if (!(await this.#deps.deployments.isDeployed(digest))) return;
    const policy = await this.#deps.policy.policyFor(projectOf(repository));
    if (!policy?.appliesAt('admission')) return;
    const base = await this.#deps.policy.storedImageInput(repository, digest, undefined, 'admission', SYSTEM_ORIGIN);
    if (!base) return;
    const now = this.#now();
    const decision = policy.evaluate({ ...base, request: { ...base.request, point: 'admission', action: 'admit' }, now: now.toISOString() });
    const project = policy.document.metadata.project;
    const passing: string[] = [];
    for (const rule of policy.document.rules) {
      if (rule.graceDays === undefined || rule.mode !== 'enforce') continue;
      const result = decision.rules.find((r) => r.rule === rule.name);
      if (!result || result.outcome === 'skipped') continue;
      if (result.outcome === 'pass') {
        passing.push(rule.name);
        continue;
      }
      const reason = result.message ?? result.facts.join('; ');
      const { window, opened } = await this.#deps.deployments.openGrace({ digest, project, rule: rule.name, openedAt: now, reason });
      if (opened) {
        this.#deps.events.publish({
          type: 'admission.grace', at: now, origin: undefined, action: 'opened', repository, digest, rule: rule.name,
          policy: { name: decision.policy.name, project: decision.policy.project, version: decision.policy.version }, reason, openedAt: window.openedAt.toISOString(), until: new Date(window.openedAt.getTime() + rule.graceDays * DAY_MS).toISOString(),
        });
      }
    }
    if (passing.length > 0) await this.#deps.deployments.closeGrace(digest, project, passing);
  }
}

