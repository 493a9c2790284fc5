/**
 * OIDC login and the directory of OIDC users.
 *
 * - {@link OidcService.completeLogin} turns a provider's token answer (code flow or device flow)
 *   into a local user: the ID token is validated (provider-client.ts), the user name comes from
 *   the configured claim, the user is found by its link (provider, `sub`), or linked to a user an
 *   administrator created with source `oidc`, or created (`autoOnboard`); denied users (disabled,
 *   e-mail domain, no mapped group, name taken by a local user, not onboarded) get an
 *   {@link OidcDenied} with a reason that is safe to show, and an `auth.failed` event.
 * - As the {@link ExternalDirectory} of the access service, {@link OidcService.refresh} re-reads
 *   an OIDC user's groups at authentication (a personal access token at the token endpoint,
 *   /api/v1, Basic on /v2/): with the stored provider refresh token it asks the provider for a
 *   fresh ID token (and userinfo when the ID token has no groups). A refusal (user removed or
 *   disabled at the provider, token revoked) or any error denies. The answer is reused for
 *   `groupsCacheSeconds` (recorded in the database, so every replica shares the window).
 * - Group mappings from the configuration become role grants ({@link OidcService.configuredRoles});
 *   admin groups make the user a system administrator (and stop doing so when the group goes).
 *   Mappings, admin groups and onboarding may be changed through /api/v1 over the configuration
 *   file ({@link OidcService.settings}, oidc/settings.ts).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { EventBus, RequestOrigin } from '../../events/bus.ts';
import type { ExternalDirectory } from '../access-service.ts';
import type { Role, UserIdentity } from '../identity.ts';
import type { UserRecord } from '../store/ports.ts';
import type { OidcConfig, OidcProviderConfig } from './config.ts';
import { type IdTokenClaims, OidcError, OidcProviderClient, type TokenSet } from './provider-client.ts';
import { effectiveProvider, OidcSettings } from './settings.ts';
import type { SqlOidcStore } from './store.ts';
import type { AccessStore } from '../store/ports.ts';

/** A login refused by policy (not an error of the provider); `reason` is shown to the user. */
export class OidcDenied extends Error {
  override name = 'OidcDenied';
  readonly username: string | undefined;
  constructor(reason: string, username?: string) {
    super(reason);
    this.username = username;
  }
}

export interface ConfiguredProvider {
  /** In force: the configuration file's values with the API's settings over them. */
  config: OidcProviderConfig;
  /** As the configuration file gives it (the defaults of the API's settings). */
  readonly file: OidcProviderConfig;
  client: OidcProviderClient;
}

export interface LoginResult {
  user: UserRecord;
  provider: string;
  groups: string[];
  systemAdmin: boolean;
}

const userNameGrammar = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Glob over group names: `*` any run of characters, `?` one; everything else literal. */
export function groupMatches(pattern: string, group: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === group;
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(group);
}

/** The role grants `groups` earn in `project` under a provider's mappings. */
export function mappedRoles(config: OidcProviderConfig, groups: readonly string[], project: string): Array<{ role: Role; repositories: string[] | undefined }> {
  const roles: Array<{ role: Role; repositories: string[] | undefined }> = [];
  for (const mapping of config.groupMappings) {
    if (mapping.project !== project || !groups.some((group) => groupMatches(mapping.group, group))) continue;
    roles.push({ role: mapping.role, repositories: mapping.repositories });
  }
  return roles;
}

/** The groups claim as a list of strings (one string is one group; anything else: none). */
export function groupsOf(claims: Record<string, unknown>, claim: string): string[] | undefined {
  const value = claims[claim];
  if (value === undefined) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((group): group is string => typeof group === 'string' && group.length > 0 && group.length <= 256).slice(0, 1000);
  return [];
}

/** Lower-cased claim value made to fit the user name grammar (`Alice@Example.com` -> `alice-example.com`). */
export function usernameFrom(config: OidcProviderConfig, claims: Record<string, unknown>): string | undefined {
  const value = claims[config.usernameClaim];
  if (typeof value !== 'string' || value === '') return undefined;
  const name = `${config.usernamePrefix}${value}`.toLowerCase().replace(/[^a-z0-9._-]/g, '-');
  return userNameGrammar.test(name) ? name : undefined;
}

export class OidcService implements ExternalDirectory {
  readonly providers = new Map<string, ConfiguredProvider>();
  readonly store: SqlOidcStore;
  readonly config: OidcConfig;
  /** Mappings, admin groups and onboarding changed through /api/v1. */
  readonly settings: OidcSettings;
  readonly #users: AccessStore;
  readonly #events: EventBus | undefined;
  readonly #now: () => number;
  /** One refresh per user at a time in this process (refresh tokens may rotate). */
  readonly #inflight = new Map<string, Promise<{ groups: string[]; systemAdmin?: boolean } | string>>();
  /** userId -> provider name, for configured roles. */
  readonly #providerOf = new Map<string, string>();

  private constructor(deps: { users: AccessStore; store: SqlOidcStore; events?: EventBus; now?: () => number; settingsRefreshMs?: number }, config: OidcConfig) {
    this.#users = deps.users;
    this.store = deps.store;
    this.#events = deps.events;
    this.#now = deps.now ?? Date.now;
    this.config = config;
    this.settings = new OidcSettings(deps.store, {
      refreshMs: deps.settingsRefreshMs ?? 10_000,
      now: this.#now,
      apply: (records) => {
        for (const [name, provider] of this.providers) provider.config = effectiveProvider(provider.file, records.get(name)?.overrides);
      },
    });
  }

  /**
   * Reads client secret files (fails, naming the file, when one cannot be read) and the settings
   * changed through the API. `settingsRefreshMs`: how old those may get before a re-read.
   */
  static async create(deps: { users: AccessStore; store: SqlOidcStore; events?: EventBus; now?: () => number; fetch?: typeof fetch; settingsRefreshMs?: number }, config: OidcConfig): Promise<OidcService> {
    const service = new OidcService(deps, config);
    for (const provider of config.providers) {
      let secret = provider.clientSecret;
      if (provider.clientSecretFile !== undefined) {
        try {
          secret = (await readFile(provider.clientSecretFile, 'utf8')).trim();
        } catch (error) {
          throw new Error(`auth.oidc provider ${provider.name}: cannot read clientSecretFile ${provider.clientSecretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
        if (secret === '') throw new Error(`auth.oidc provider ${provider.name}: clientSecretFile ${provider.clientSecretFile} is empty`);
      }
      const client = new OidcProviderClient({
        issuer: provider.issuer,
        clientId: provider.clientId,
        clientSecret: secret,
        tokenEndpointAuthMethod: provider.tokenEndpointAuthMethod,
        timeoutMs: provider.timeoutSeconds * 1000,
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
        ...(deps.now ? { now: deps.now } : {}),
      });
      deps.store.sealer.setKey(provider.name, config.tokenEncryptionKey ?? secret);
      service.providers.set(provider.name, { config: provider, file: provider, client });
    }
    await service.settings.load();
    return service;
  }

  provider(name: string): ConfiguredProvider | undefined {
    return this.providers.get(name);
  }

  /**
   * Validates the provider's answer and logs the user in (creating or updating them).
   * @throws OidcDenied (policy) or OidcError (validation, provider)
   */
  async completeLogin(providerName: string, tokens: TokenSet, options: { nonce: string | undefined; origin: RequestOrigin }): Promise<LoginResult> {
    await this.settings.fresh();
    const provider = this.providers.get(providerName);
    if (!provider) throw new OidcDenied(`unknown identity provider ${providerName}`);
    try {
      if (!tokens.id_token) throw new OidcError('invalid_token', 'the provider answered without an ID token (is openid in the scopes?)');
      const claims = await this.#claims(provider, tokens, options.nonce);
      const result = await this.#login(provider, claims, tokens.refresh_token, options.origin);
      this.#events?.publish({ type: 'auth.succeeded', at: new Date(this.#now()), origin: options.origin, username: result.user.name, method: 'oidc' });
      return result;
    } catch (error) {
      const username = error instanceof OidcDenied ? (error.username ?? `oidc:${providerName}`) : `oidc:${providerName}`;
      this.#events?.publish({ type: 'auth.failed', at: new Date(this.#now()), origin: options.origin, username, method: 'oidc', reason: (error as Error).message });
      throw error;
    }
  }

  /** Reports a login that failed before tokens were obtained (bad state, provider error) on the bus. */
  publishFailure(providerName: string, reason: string, origin: RequestOrigin): void {
    this.#events?.publish({ type: 'auth.failed', at: new Date(this.#now()), origin, username: `oidc:${providerName}`, method: 'oidc', reason });
  }

  /** ID-token claims, completed from userinfo when the ID token lacks the groups or username claim. */
  async #claims(provider: ConfiguredProvider, tokens: TokenSet, nonce: string | undefined): Promise<IdTokenClaims> {
    const claims = await provider.client.verifyIdToken(tokens.id_token!, nonce === undefined ? {} : { nonce });
    const { groupsClaim, usernameClaim } = provider.config;
    if ((claims[groupsClaim] === undefined || claims[usernameClaim] === undefined) && (await provider.client.metadata()).userinfo_endpoint) {
      const info = await provider.client.userinfo(tokens.access_token, claims.sub);
      for (const [name, value] of Object.entries(info)) if (claims[name] === undefined) claims[name] = value;
    }
    return claims;
  }

  #policyProblem(config: OidcProviderConfig, claims: Record<string, unknown>, groups: string[]): string | undefined {
    if (config.allowedEmailDomains.length > 0) {
      const email = typeof claims.email === 'string' ? claims.email.toLowerCase() : undefined;
      const domain = email?.slice(email.lastIndexOf('@') + 1);
      if (!email || claims.email_verified === false || !domain || !config.allowedEmailDomains.some((allowed) => allowed.toLowerCase() === domain)) return 'your e-mail domain is not allowed on this registry (or the provider sent no verified e-mail)';
    }
    if (config.requireMappedGroup && !groups.some((group) => config.adminGroups.includes(group) || config.groupMappings.some((mapping) => groupMatches(mapping.group, group)))) {
      return 'you are in no group that has access to this registry';
    }
    return undefined;
  }

  async #login(provider: ConfiguredProvider, claims: IdTokenClaims, refreshToken: string | undefined, origin: RequestOrigin): Promise<LoginResult> {
    const config = provider.config;
    const groups = groupsOf(claims, config.groupsClaim) ?? [];
    const link = await this.store.getIdentity(config.name, claims.sub);
    let user = link ? await this.#users.getUser(link.userId) : undefined;
    const username = user?.name ?? usernameFrom(config, claims);
    if (!username) throw new OidcDenied(`the provider's ${config.usernameClaim} claim is missing or cannot be a user name ([a-z0-9._-], at most 64)`);
    const problem = this.#policyProblem(config, claims, groups);
    if (problem) throw new OidcDenied(problem, username);
    if (!user) {
      const existing = await this.#users.getUserByName(username);
      if (existing) {
        if (existing.source !== 'oidc') throw new OidcDenied(`the user name ${username} belongs to a local user`, username);
        const links = await this.store.identitiesOfUser(existing.id);
        if (links.some((other) => other.provider === config.name)) throw new OidcDenied(`the user name ${username} is linked to another account of this provider`, username);
        user = existing;
      } else {
        if (!config.autoOnboard) throw new OidcDenied(`user ${username} is not registered here (ask an administrator to create it with source oidc)`, username);
        const email = typeof claims.email === 'string' && claims.email_verified !== false ? claims.email.slice(0, 256) : undefined;
        const systemAdmin = groups.some((group) => config.adminGroups.includes(group));
        if (!(await this.#users.createUser({ id: randomUUID(), name: username, passwordHash: undefined, systemAdmin, canCreateProjects: false, email, source: 'oidc' }))) {
          throw new OidcDenied(`the user name ${username} was just taken`, username);
        }
        user = (await this.#users.getUserByName(username))!;
        this.#events?.publish({ type: 'access.changed', at: new Date(this.#now()), origin: { ...origin, actor: { kind: 'user', name: username, auth: 'oidc' } }, change: 'user.created', target: { kind: 'user', name: username }, detail: { source: 'oidc', provider: config.name, systemAdmin, onboarding: true } });
      }
    }
    if (user.disabled) throw new OidcDenied(`user ${user.name} is disabled`, user.name);
    const systemAdmin = await this.#syncAdmin(config, user, groups);
    await this.store.putIdentity({ provider: config.name, subject: claims.sub, userId: user.id, refreshToken, groups });
    this.#providerOf.set(user.id, config.name);
    return { user, provider: config.name, groups, systemAdmin };
  }

  /** With admin groups configured, membership decides system administration (both ways). */
  async #syncAdmin(config: OidcProviderConfig, user: UserRecord, groups: readonly string[]): Promise<boolean> {
    if (config.adminGroups.length === 0) return user.systemAdmin;
    const admin = groups.some((group) => config.adminGroups.includes(group));
    if (admin !== user.systemAdmin) {
      await this.#users.updateUser(user.id, { systemAdmin: admin });
      this.#events?.publish({ type: 'access.changed', at: new Date(this.#now()), origin: undefined, change: 'user.updated', target: { kind: 'user', name: user.name }, detail: { changed: ['systemAdmin'], systemAdmin: admin, reason: `admin group membership at ${config.name}` } });
    }
    return admin;
  }

  // ---------------------------------------------------------------------------------------------
  // ExternalDirectory
  // ---------------------------------------------------------------------------------------------

  async refresh(user: UserRecord): Promise<{ groups: string[]; systemAdmin?: boolean } | string> {
    await this.settings.fresh();
    let running = this.#inflight.get(user.id);
    if (!running) {
      running = this.#refresh(user).finally(() => this.#inflight.delete(user.id));
      this.#inflight.set(user.id, running);
    }
    return running;
  }

  async #refresh(user: UserRecord): Promise<{ groups: string[]; systemAdmin?: boolean } | string> {
    const links = await this.store.identitiesOfUser(user.id);
    const link = links.find((candidate) => this.providers.has(candidate.provider));
    if (!link) return links.length > 0 ? `identity provider ${links[0]!.provider} is no longer configured` : 'the user has never logged in through an identity provider';
    const provider = this.providers.get(link.provider)!;
    const config = provider.config;
    this.#providerOf.set(user.id, config.name);
    if (this.#now() - link.checkedAt.getTime() < config.groupsCacheSeconds * 1000) {
      return { groups: link.groups, ...(config.adminGroups.length > 0 ? { systemAdmin: link.groups.some((group) => config.adminGroups.includes(group)) } : {}) };
    }
    if (!link.refreshToken) return `no usable refresh token from ${config.name} (log in again)`;
    let tokens: TokenSet;
    try {
      tokens = await provider.client.refresh(link.refreshToken);
    } catch (error) {
      if (error instanceof OidcError && error.code === 'grant_refused') {
        // The provider no longer vouches for the user: forget the token so later checks fail fast.
        await this.store.dropRefreshToken(link.provider, link.subject);
        return `${config.name} refused to refresh the login (${error.providerError ?? 'refused'}): log in again`;
      }
      throw error;
    }
    let claims: Record<string, unknown>;
    if (tokens.id_token) {
      claims = await this.#claims(provider, tokens, undefined);
      if (claims.sub !== link.subject) return `${config.name} answered for another subject`;
    } else {
      claims = await provider.client.userinfo(tokens.access_token, link.subject);
    }
    const groups = groupsOf(claims, config.groupsClaim) ?? [];
    const problem = this.#policyProblem(config, claims, groups);
    if (problem) return problem;
    const systemAdmin = await this.#syncAdmin(config, user, groups);
    await this.store.putIdentity({ provider: config.name, subject: link.subject, userId: user.id, refreshToken: tokens.refresh_token, groups });
    return { groups, ...(config.adminGroups.length > 0 ? { systemAdmin } : {}) };
  }

  async configuredRoles(identity: UserIdentity, project: string): Promise<Array<{ role: Role; repositories: string[] | undefined }>> {
    await this.settings.fresh();
    let providerName = this.#providerOf.get(identity.id);
    if (providerName === undefined) {
      providerName = (await this.store.identitiesOfUser(identity.id)).find((link) => this.providers.has(link.provider))?.provider;
      if (providerName === undefined) return [];
      this.#providerOf.set(identity.id, providerName);
    }
    const provider = this.providers.get(providerName);
    return provider ? mappedRoles(provider.config, identity.groups, project) : [];
  }

  /** Projects where `identity` holds a role (memberships and mappings): the default scope of a personal access token made at login. */
  async projectsOf(identity: UserIdentity): Promise<string[]> {
    await this.settings.fresh();
    const projects = new Set(await this.#users.projectsOf(identity.id, identity.groups));
    const providerName = this.#providerOf.get(identity.id);
    const config = providerName === undefined ? undefined : this.providers.get(providerName)?.config;
    for (const mapping of config?.groupMappings ?? []) if (identity.groups.some((group) => groupMatches(mapping.group, group))) projects.add(mapping.project);
    if (identity.systemAdmin) for (const project of await this.#users.listProjects(1000)) projects.add(project.name);
    return [...projects].sort();
  }
}
