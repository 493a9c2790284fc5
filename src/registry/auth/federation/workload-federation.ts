/**
 * Workload identity federation: a CI job or Kubernetes service account presents its own OIDC
 * token (GitHub Actions, GitLab CI, a projected service-account token) instead of a stored
 * secret, and becomes a {@link WorkloadIdentity} with the grants of the trust rules it matches.
 *
 * Verification, in order (any failure denies):
 * 1. the token is a JWS of at most 16 KiB; its (unverified) `iss` names an issuer configured in
 *    `auth.federation.issuers` (project admins cannot make the registry fetch arbitrary URLs);
 * 2. some active rule exists for that issuer (no rule: no network call at all);
 * 3. the provider client (auth/oidc/provider-client.ts) verifies the signature with the issuer's
 *    JWKS from discovery (asymmetric algorithms only: no `none`, no HMAC; unknown `kid`s refetch
 *    the key set at most once per cooldown), `iss`, `aud` (one of the rules' audiences), `exp`,
 *    `nbf`, `iat` (with the configured leeway) and the maximum token age;
 * 4. the rules whose audience, subject pattern and claim conditions match are kept; none: denied;
 * 5. if a matching rule is single-use, the token's `jti` must not have been seen before.
 *
 * The identity is `workload:<iss>#<sub>`; its registry tokens expire no later than the presented
 * token and the shortest `maxLifetimeSeconds` of the matching rules.
 */
import { decodeJwt } from 'jose';
import type { CredentialRef, Grant, WorkloadIdentity } from '../identity.ts';
import { OidcError, OidcProviderClient } from '../oidc/provider-client.ts';
import type { FederationStore } from './store.ts';
import { ruleMismatch, type TrustRule } from './trust-rules.ts';

export interface FederationIssuer {
  issuer: string;
  /** Use this key set instead of the discovery document's `jwks_uri`. */
  jwksUri?: string;
  /** Restrict the accepted signature algorithms (default: the asymmetric ones the issuer announces). */
  algorithms?: string[];
}

/** A trust rule from the configuration file (id `config:<name>`). */
export interface ConfiguredTrustRule {
  name: string;
  project?: string;
  issuer: string;
  audience: string;
  subject: string;
  claims: Record<string, string | string[]>;
  grants: Grant[];
  maxLifetimeSeconds: number;
  singleUse: boolean;
}

export interface FederationSettings {
  /** User names that mark the password as a workload's OIDC token (`podman login -u oidc -p "$TOKEN"`). */
  usernames: string[];
  issuers: FederationIssuer[];
  rules: ConfiguredTrustRule[];
  clockSkewSeconds: number;
  /** Tokens issued (`iat`) longer ago than this are refused, whatever their `exp`. */
  maxTokenAgeSeconds: number;
  /** Upper bound of any rule's `maxLifetimeSeconds`. */
  maxLifetimeSeconds: number;
}

/** A refusal; `reason` is for logs and events (never contains the token). */
export class FederationError extends Error {
  override name = 'FederationError';
}

const TOKEN_LIMIT = 16 * 1024;

export const configRuleId = (name: string) => `config:${name}`;

function configuredRule(rule: ConfiguredTrustRule): TrustRule {
  return {
    id: configRuleId(rule.name),
    project: rule.project,
    name: rule.name,
    description: undefined,
    issuer: rule.issuer,
    audience: rule.audience,
    subject: rule.subject,
    claims: Object.fromEntries(Object.entries(rule.claims).map(([name, value]) => [name, Array.isArray(value) ? value : [value]])),
    grants: rule.grants,
    maxLifetimeSeconds: rule.maxLifetimeSeconds,
    singleUse: rule.singleUse,
    revokedAt: undefined,
    createdBy: 'configuration',
    createdAt: new Date(0),
  };
}

export class WorkloadFederation {
  readonly #store: FederationStore | undefined;
  readonly #settings: FederationSettings;
  readonly #clients = new Map<string, OidcProviderClient>();
  readonly #configured = new Map<string, TrustRule>();
  readonly #now: () => number;

  constructor(deps: { store?: FederationStore; fetch?: typeof fetch }, settings: FederationSettings, now: () => number = Date.now) {
    this.#store = deps.store;
    this.#settings = settings;
    this.#now = now;
    for (const issuer of settings.issuers) {
      this.#clients.set(issuer.issuer, new OidcProviderClient({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, algorithms: issuer.algorithms, clockToleranceSeconds: settings.clockSkewSeconds, fetch: deps.fetch, now }));
    }
    for (const rule of settings.rules) this.#configured.set(configRuleId(rule.name), configuredRule(rule));
  }

  /** True when `username` announces a workload token as the password. */
  isWorkloadUsername(username: string): boolean {
    return this.#settings.usernames.includes(username);
  }

  /** Issuers trust rules may name. */
  get issuers(): string[] {
    return [...this.#clients.keys()];
  }

  get maxLifetimeSeconds(): number {
    return this.#settings.maxLifetimeSeconds;
  }

  async #rulesFor(issuer: string): Promise<TrustRule[]> {
    const configured = [...this.#configured.values()].filter((rule) => rule.issuer === issuer);
    return [...configured, ...((await this.#store?.activeTrustRules(issuer)) ?? [])];
  }

  /** Verifies a workload's OIDC token. @throws FederationError */
  async authenticate(token: string): Promise<WorkloadIdentity> {
    if (token.length > TOKEN_LIMIT) throw new FederationError('token too large');
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw new FederationError('not a JWT');
    }
    const client = typeof issuer === 'string' ? this.#clients.get(issuer) : undefined;
    if (!client || typeof issuer !== 'string') throw new FederationError(`issuer ${JSON.stringify(String(issuer).slice(0, 200))} is not trusted`);
    const rules = await this.#rulesFor(issuer);
    if (rules.length === 0) throw new FederationError(`no trust rule for issuer ${issuer}`);
    let claims: Record<string, unknown>;
    try {
      claims = await client.verifyJwt(token, { audience: [...new Set(rules.map((rule) => rule.audience))], requiredClaims: ['sub'], maxTokenAgeSeconds: this.#settings.maxTokenAgeSeconds });
    } catch (error) {
      if (error instanceof OidcError) throw new FederationError(error.message);
      throw error;
    }
    const mismatches: string[] = [];
    const matching = rules.filter((rule) => {
      const mismatch = ruleMismatch(rule, claims);
      if (mismatch) mismatches.push(mismatch);
      return mismatch === undefined;
    });
    const subject = String(claims.sub);
    if (matching.length === 0) throw new FederationError(`no trust rule matches ${subject.slice(0, 200)} (mismatched: ${[...new Set(mismatches)].join(', ')})`);
    const expiresAt = Number(claims.exp) * 1000;
    if (matching.some((rule) => rule.singleUse)) {
      if (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > 256) throw new FederationError('a single-use trust rule needs a token with a jti');
      if (!this.#store || !(await this.#store.useTokenId(issuer, claims.jti, new Date(expiresAt)))) throw new FederationError('token already used (single-use trust rule)');
    }
    const lifetime = Math.min(this.#settings.maxLifetimeSeconds, ...matching.map((rule) => rule.maxLifetimeSeconds));
    return { ...this.#identity(issuer, subject, matching), expiresAt: Math.min(expiresAt, this.#now() + lifetime * 1000) };
  }

  #identity(issuer: string, subject: string, rules: TrustRule[]): WorkloadIdentity {
    const projects = new Set(rules.map((rule) => rule.project));
    const credential: CredentialRef = { kind: 'workload', rules: rules.map((rule) => rule.id) };
    return {
      kind: 'workload',
      issuer,
      subject,
      name: `workload:${issuer}#${subject}`,
      project: projects.size === 1 ? [...projects][0] : undefined,
      grants: rules.flatMap((rule) => rule.grants),
      credential,
    };
  }

  /**
   * The identity behind a registry token issued to a workload, if any of its rules is still
   * active (a revoked or deleted rule withdraws its grants from tokens already issued).
   */
  async resolve(name: string, credential: CredentialRef): Promise<WorkloadIdentity | undefined> {
    if (credential.kind !== 'workload' || !name.startsWith('workload:')) return undefined;
    // Issuer identifiers have no fragment, so the first '#' ends the issuer.
    const separator = name.indexOf('#');
    if (separator < 0) return undefined;
    const issuer = name.slice('workload:'.length, separator);
    const rules: TrustRule[] = [];
    for (const id of credential.rules.slice(0, 100)) {
      const rule = this.#configured.get(id) ?? (id.startsWith('config:') ? undefined : await this.#store?.getTrustRule(id));
      if (rule && !rule.revokedAt && rule.issuer === issuer) rules.push(rule);
    }
    if (rules.length === 0) return undefined;
    return this.#identity(issuer, name.slice(separator + 1), rules);
  }
}
