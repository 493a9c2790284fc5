/**
 * Management of a project's trust rules (workload identity federation) and of robots' client
 * certificate bindings (mutual TLS). Both hand out robot-like access without a stored secret, so
 * both need `robot.manage` (project admins; `system.robot.manage` for system robots). Every change
 * is published as `access.changed`.
 */
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../../oci/errors.ts';
import type { AccessChange, AccessTarget, EventBus, RequestOrigin } from '../../events/bus.ts';
import type { AccessService } from '../access-service.ts';
import { type Action, type Grant, type Identity, repositoryActions } from '../identity.ts';
import type { Resource } from '../permissions.ts';
import { patternProblem, patternProject } from '../repository-pattern.ts';
import type { CertificateBinding, FederationStore } from './store.ts';
import { subjectPatternProblem, type TrustRule } from './trust-rules.ts';

export interface TrustRuleView {
  id: string;
  project: string;
  name: string;
  description?: string;
  issuer: string;
  audience: string;
  subject: string;
  claims: Record<string, string[]>;
  grants: Grant[];
  maxLifetimeSeconds: number;
  singleUse: boolean;
  revokedAt?: string;
  createdBy?: string;
  createdAt: string;
}

export interface TrustRuleInput {
  name: string;
  description?: string;
  issuer: string;
  audience?: string;
  subject: string;
  claims?: Record<string, string | string[]>;
  grants: Grant[];
  maxLifetimeSeconds?: number;
  singleUse?: boolean;
}

export interface CertificateBindingView {
  robot: string;
  spkiSha256?: string;
  subject?: string;
  san?: string;
  certificateOnly: boolean;
  createdAt: string;
}

export interface FederationAdministrationSettings {
  /** The configured issuers (rules may name only these). */
  issuers: () => string[];
  /** A rule's audience when none is given (the registry's service name). */
  defaultAudience: string;
  maxLifetimeSeconds: number;
  defaultLifetimeSeconds: number;
  now?: () => number;
}

const invalid = (message: string) => new RegistryError('INVALID_REQUEST', message);
const denied = () => new RegistryError('DENIED', 'requested access to the resource is denied');
const notFound = (what: string) => new RegistryError('NOT_FOUND', `${what} not found`);

function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function trustRuleView(rule: TrustRule): TrustRuleView {
  return compact({
    id: rule.id,
    project: rule.project ?? '',
    name: rule.name,
    description: rule.description,
    issuer: rule.issuer,
    audience: rule.audience,
    subject: rule.subject,
    claims: rule.claims,
    grants: rule.grants,
    maxLifetimeSeconds: rule.maxLifetimeSeconds,
    singleUse: rule.singleUse,
    revokedAt: rule.revokedAt?.toISOString(),
    createdBy: rule.createdBy,
    createdAt: rule.createdAt.toISOString(),
  });
}

export class FederationAdministration {
  readonly #access: AccessService;
  readonly #store: FederationStore;
  readonly #events: EventBus | undefined;
  readonly #settings: FederationAdministrationSettings;

  constructor(deps: { access: AccessService; store: FederationStore; events?: EventBus }, settings: FederationAdministrationSettings) {
    this.#access = deps.access;
    this.#store = deps.store;
    this.#events = deps.events;
    this.#settings = settings;
  }

  async #require(actor: Identity, action: Action, resource: Resource): Promise<void> {
    if (!(await this.#access.can(actor, action, resource))) throw denied();
  }

  #publish(origin: RequestOrigin | undefined, change: AccessChange, target: AccessTarget, detail?: Record<string, unknown>): void {
    this.#events?.publish({ type: 'access.changed', at: new Date((this.#settings.now ?? Date.now)()), origin, change, target, ...(detail ? { detail } : {}) });
    this.#access.invalidate();
  }

  // --- trust rules

  async listTrustRules(actor: Identity, project: string): Promise<TrustRuleView[]> {
    await this.#require(actor, 'robot.manage', { kind: 'project', name: project });
    return (await this.#store.listTrustRules(project)).map(trustRuleView);
  }

  async #rule(actor: Identity, project: string, id: string): Promise<TrustRule> {
    await this.#require(actor, 'robot.manage', { kind: 'project', name: project });
    const rule = await this.#store.getTrustRule(id);
    if (!rule || rule.project !== project) throw notFound('trust rule');
    return rule;
  }

  async getTrustRule(actor: Identity, project: string, id: string): Promise<TrustRuleView> {
    return trustRuleView(await this.#rule(actor, project, id));
  }

  async createTrustRule(actor: Identity, project: string, input: TrustRuleInput, origin?: RequestOrigin): Promise<TrustRuleView> {
    await this.#require(actor, 'robot.manage', { kind: 'project', name: project });
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(input.name)) throw invalid('a trust rule name is 1 to 64 characters [a-z0-9._-]');
    const issuers = this.#settings.issuers();
    if (!issuers.includes(input.issuer)) throw invalid(issuers.length === 0 ? 'no token issuer is configured (auth.federation.issuers)' : `issuer ${JSON.stringify(input.issuer.slice(0, 200))} is not one of the configured issuers: ${issuers.join(', ')}`);
    const subjectProblem = subjectPatternProblem(input.subject);
    if (subjectProblem) throw invalid(subjectProblem);
    if (input.grants.length === 0 || input.grants.length > 50) throw invalid('give 1 to 50 grants');
    const grants = input.grants.map((grant) => {
      if (grant.repositories.length === 0 || grant.repositories.length > 100) throw invalid('give 1 to 100 repository patterns per grant');
      for (const pattern of grant.repositories) {
        const problem = patternProblem(pattern);
        if (problem) throw invalid(problem);
        if (patternProject(pattern) !== project) throw invalid(`repository pattern ${JSON.stringify(pattern)} is outside project ${JSON.stringify(project)}`);
      }
      const actions = [...new Set(grant.actions)];
      if (actions.length === 0 || actions.some((a) => !repositoryActions.includes(a))) throw invalid(`grant actions are ${repositoryActions.join(', ')}`);
      return { repositories: [...grant.repositories], actions };
    });
    const maxLifetimeSeconds = input.maxLifetimeSeconds ?? Math.min(this.#settings.defaultLifetimeSeconds, this.#settings.maxLifetimeSeconds);
    if (maxLifetimeSeconds < 60 || maxLifetimeSeconds > this.#settings.maxLifetimeSeconds) throw invalid(`maxLifetimeSeconds is 60 to ${this.#settings.maxLifetimeSeconds}`);
    const claims = Object.fromEntries(Object.entries(input.claims ?? {}).map(([name, value]) => [name, Array.isArray(value) ? value : [value]]));
    const id = randomUUID();
    const created = await this.#store.createTrustRule({
      id,
      project,
      name: input.name,
      description: input.description,
      issuer: input.issuer,
      audience: input.audience ?? this.#settings.defaultAudience,
      subject: input.subject,
      claims,
      grants,
      maxLifetimeSeconds,
      singleUse: input.singleUse ?? false,
      createdBy: actor.kind === 'anonymous' ? undefined : actor.name,
    });
    if (!created) throw new RegistryError('CONFLICT', `project ${JSON.stringify(project)} already has a trust rule named ${JSON.stringify(input.name)}`);
    const rule = (await this.#store.getTrustRule(id))!;
    this.#publish(origin, 'trust-rule.created', { kind: 'trust-rule', name: rule.name, project }, { issuer: rule.issuer, audience: rule.audience, subject: rule.subject, claims: rule.claims, grants: rule.grants });
    return trustRuleView(rule);
  }

  async revokeTrustRule(actor: Identity, project: string, id: string, origin?: RequestOrigin): Promise<TrustRuleView> {
    const rule = await this.#rule(actor, project, id);
    await this.#store.revokeTrustRule(id);
    this.#publish(origin, 'trust-rule.revoked', { kind: 'trust-rule', name: rule.name, project });
    return trustRuleView((await this.#store.getTrustRule(id))!);
  }

  async deleteTrustRule(actor: Identity, project: string, id: string, origin?: RequestOrigin): Promise<void> {
    const rule = await this.#rule(actor, project, id);
    await this.#store.deleteTrustRule(id);
    this.#publish(origin, 'trust-rule.deleted', { kind: 'trust-rule', name: rule.name, project });
  }

  // --- robot client certificates

  async #robot(actor: Identity, id: string, project: string | undefined) {
    await this.#require(actor, project === undefined ? 'system.robot.manage' : 'robot.manage', project === undefined ? { kind: 'system' } : { kind: 'project', name: project });
    const robot = await this.#access.store.getRobot(id);
    if (!robot || robot.project !== project) throw notFound('robot');
    return robot;
  }

  async getRobotCertificate(actor: Identity, id: string, project: string | undefined): Promise<CertificateBindingView> {
    const robot = await this.#robot(actor, id, project);
    const binding = await this.#store.getRobotCertificate(id);
    if (!binding) throw notFound('certificate binding');
    return compact({ robot: robot.name, spkiSha256: binding.spkiSha256, subject: binding.subject, san: binding.san, certificateOnly: binding.certificateOnly, createdAt: binding.createdAt.toISOString() });
  }

  /** Binds a robot to a client certificate: from then on its secret is accepted only with that certificate. */
  async bindRobotCertificate(actor: Identity, id: string, project: string | undefined, input: Partial<CertificateBinding>, origin?: RequestOrigin): Promise<CertificateBindingView> {
    const robot = await this.#robot(actor, id, project);
    const spkiSha256 = input.spkiSha256?.toLowerCase().replace(/:/g, '');
    if (spkiSha256 !== undefined && !/^[0-9a-f]{64}$/.test(spkiSha256)) throw invalid('spkiSha256 is the SHA-256 of the certificate public key (SubjectPublicKeyInfo, DER), 64 hex digits');
    if (spkiSha256 === undefined && !input.subject && !input.san) throw invalid('give at least one of spkiSha256, subject and san');
    if (input.subject !== undefined && (input.subject.length === 0 || input.subject.length > 1024)) throw invalid('subject has 1 to 1024 characters');
    if (input.san !== undefined && !/^(DNS|URI|IP Address|email):\S{1,1000}$/.test(input.san)) throw invalid('san is one subjectAltName entry: DNS:name, URI:uri, IP Address:addr or email:addr');
    const binding: CertificateBinding = { spkiSha256, subject: input.subject, san: input.san, certificateOnly: input.certificateOnly ?? false };
    await this.#store.putRobotCertificate(id, binding);
    this.#publish(origin, 'robot.certificate.bound', compact({ kind: 'robot' as const, name: robot.name, project }), compact({ ...binding }));
    return this.getRobotCertificate(actor, id, project);
  }

  async unbindRobotCertificate(actor: Identity, id: string, project: string | undefined, origin?: RequestOrigin): Promise<void> {
    const robot = await this.#robot(actor, id, project);
    if (!(await this.#store.deleteRobotCertificate(id))) throw notFound('certificate binding');
    this.#publish(origin, 'robot.certificate.unbound', compact({ kind: 'robot' as const, name: robot.name, project }));
  }
}
