/**
 * Authentication (credentials -> {@link Identity}) and the asynchronous side of authorisation
 * (loading the facts {@link authorize} decides on). Every credential check goes through here:
 * the token endpoint, direct Basic auth on /v2/, the management API.
 *
 * Caches (per process):
 * - verified credentials: a successful password/secret check is remembered for
 *   `credentialCacheMs`, keyed by an HMAC of user name and password under a per-process random
 *   key (no plaintext, no reusable hash in memory), so that clients that send Basic credentials
 *   for every token request do not pay argon2 every time. A password change voids it (the entry
 *   remembers `passwordChangedAt`), as do revocations (identity revalidation below).
 * - identities: a resolved identity (user/robot record, token restriction, revocation state) is
 *   re-read from the store after `revalidateMs`, so revocations and disabled users take effect on
 *   every replica within that time, also for registry tokens already issued.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { RegistryError } from '../../oci/errors.ts';
import { projectOf } from '../../oci/reference.ts';
import type { AuthMethod, EventBus, RequestOrigin } from '../events/bus.ts';
import {
  type Action,
  type CredentialRef,
  type Identity,
  type ScopeAction,
  type Role,
  type UserIdentity,
  anonymous,
  scopeActions,
} from './identity.ts';
import { type PasswordPolicy, decoyHash, hashPassword, passwordProblem, verifyPassword } from './passwords.ts';
import { type ProjectFacts, type Resource, allowedScopeActions, authorize } from './permissions.ts';
import { type LoginGuard, noLoginGuard } from './ports.ts';
import type { AccessEntry } from './scope.ts';
import { generateSecret, parseSecret, randomPassword, secretMatches } from './secrets.ts';
import type { AccessStore, RobotRecord, TokenRecord, UserRecord } from './store/ports.ts';
import { FederationError, type WorkloadFederation } from './federation/workload-federation.ts';
import type { RobotCertificates } from './federation/robot-certificates.ts';
import type { ClientCertificate } from '../edge/client-certificate.ts';
import type { ProjectNetworkPolicy } from './networks/project-networks.ts';

/** How an identity is named inside a registry token (enough to resolve it again). */
export interface PrincipalClaim {
  kind: Identity['kind'];
  id?: string;
  credential?: CredentialRef;
  /** Groups from an identity provider (not stored locally). */
  groups?: string[];
}

/**
 * Users whose identity lives in an external provider (OIDC): their groups and administrator
 * status are re-read at authentication instead of trusted from the last login, and configured
 * group mappings add role grants (auth/oidc/service.ts).
 */
export interface ExternalDirectory {
  /** Current groups (and admin status, when the provider decides it) of `user`; a string is why the user is refused now. Throwing refuses too. */
  refresh(user: UserRecord): Promise<{ groups: string[]; systemAdmin?: boolean } | string>;
  /** Role grants in `project` from configuration (group mappings), for an external user. */
  configuredRoles(identity: UserIdentity, project: string): Promise<Array<{ role: Role; repositories: string[] | undefined }>>;
}

export interface AccessServiceOptions {
  passwordPolicy: PasswordPolicy;
  credentialCacheMs: number;
  revalidateMs: number;
  refreshTokenTtlMs: number;
  /** Create a missing project on a push token request by a user allowed to create projects. */
  autoCreateProjects: boolean;
  now?: () => number;
}

interface CachedCredential {
  principal: PrincipalClaim;
  passwordChangedAt: number | undefined;
  until: number;
}

interface CachedIdentity {
  identity: Identity | undefined;
  passwordChangedAt: number | undefined;
  until: number;
}

const CACHE_LIMIT = 10_000;
const TOUCH_INTERVAL_MS = 60_000;

function boundedSet<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= CACHE_LIMIT) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

export class AuthenticationError extends Error {
  override name = 'AuthenticationError';
}

export class AccessService {
  readonly store: AccessStore;
  readonly #events: EventBus | undefined;
  readonly #guard: LoginGuard;
  #directory: ExternalDirectory | undefined;
  readonly #federation: WorkloadFederation | undefined;
  readonly #certificates: RobotCertificates | undefined;
  #networks: ProjectNetworkPolicy | undefined;
  readonly #options: Required<AccessServiceOptions>;
  readonly #cacheKey = randomBytes(32);
  readonly #credentials = new Map<string, CachedCredential>();
  readonly #identities = new Map<string, CachedIdentity>();
  readonly #touched = new Map<string, number>();

  constructor(deps: { store: AccessStore; events?: EventBus; guard?: LoginGuard; federation?: WorkloadFederation; certificates?: RobotCertificates }, options: AccessServiceOptions) {
    this.store = deps.store;
    this.#events = deps.events;
    this.#guard = deps.guard ?? noLoginGuard;
    this.#federation = deps.federation;
    this.#certificates = deps.certificates;
    this.#options = { now: Date.now, ...options };
  }

  /** Plugs in the per-project IP lists (token grants and the catalog honour them). */
  setNetworkPolicy(networks: ProjectNetworkPolicy): void {
    this.#networks = networks;
  }

  /** Why `address` may not reach `project` (per-project IP lists), or undefined. */
  networkRefusal(project: string, address: string): string | undefined {
    return this.#networks?.refusal(project, address);
  }

  /**
   * For the HTTP APIs outside /v2/ that read or change a repository's data (scanner reports,
   * signatures, promotions): DENIED when the client address may not reach the repository's project.
   * Called once the caller is known to be allowed otherwise.
   */
  assertReachable(repository: string, address: string): void {
    const refused = this.#networks?.refusal(projectOf(repository), address);
    if (refused !== undefined) throw new RegistryError('DENIED', refused);
  }

  /** Plugs in the directory of external (OIDC) users. */
  setExternalDirectory(directory: ExternalDirectory): void {
    this.#directory = directory;
  }

  /** Fresh groups of an external user, or why they are refused (deny on error). */
  async #external(user: UserRecord): Promise<{ groups: string[]; systemAdmin?: boolean } | string> {
    if (user.source === 'local') return { groups: [] };
    if (!this.#directory) return 'no identity provider is configured for this user';
    try {
      return await this.#directory.refresh(user);
    } catch (error) {
      return `identity provider check failed: ${(error as Error).message}`;
    }
  }

  get passwordPolicy(): PasswordPolicy {
    return this.#options.passwordPolicy;
  }

  /** Forgets every cached credential and identity (after a change made in this process). */
  invalidate(): void {
    this.#credentials.clear();
    this.#identities.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Authentication
  // ---------------------------------------------------------------------------------------------

  /**
   * Checks a user name and a password, personal access token or robot secret.
   * @throws AuthenticationError (the message is safe to show: it never says which part was wrong)
   */
  async authenticate(username: string, password: string, origin: RequestOrigin, client?: ClientCertificate): Promise<Identity> {
    if (this.#federation?.isWorkloadUsername(username)) return this.#authenticateWorkload(this.#federation, password, origin);
    const attempt = { username: username.slice(0, 256), clientAddress: origin.clientAddress };
    const cacheKey = createHmac('sha256', this.#cacheKey).update(username).update('\0').update(password).update('\0').update(client?.spkiSha256 ?? '').digest('base64');
    const cached = this.#credentials.get(cacheKey);
    if (cached && cached.until > this.#options.now()) {
      const identity = await this.#resolveCached(cached.principal, cached.passwordChangedAt);
      if (identity) {
        this.#touch(identity, origin.clientAddress);
        return identity;
      }
      this.#credentials.delete(cacheKey);
    }
    await this.#guard.check(attempt);
    const secret = parseSecret(password);
    const method = secret ? (secret.kind === 'robot' ? 'robot' : secret.kind === 'token' ? 'token' : 'refresh') : 'password';
    let result: { principal: PrincipalClaim; identity: Identity; passwordChangedAt?: number } | string;
    if (!secret) result = await this.#checkPassword(username, password);
    else if (secret.kind === 'robot') result = await this.#checkRobot(username, secret.id, secret.random, client);
    else if (secret.kind === 'token') result = await this.#checkToken(username, secret.id, secret.random);
    else result = 'a refresh token is only accepted by the token endpoint';
    this.#guard.record(attempt, typeof result !== 'string');
    if (typeof result === 'string') {
      this.#publishAuth('auth.failed', attempt.username, method, origin, result);
      throw new AuthenticationError('invalid user name or password');
    }
    boundedSet(this.#credentials, cacheKey, { principal: result.principal, passwordChangedAt: result.passwordChangedAt, until: this.#options.now() + this.#options.credentialCacheMs });
    this.#publishAuth('auth.succeeded', attempt.username, method, origin);
    this.#touch(result.identity, origin.clientAddress);
    return result.identity;
  }

  /**
   * The robot a verified client certificate alone authenticates (a certificate-only binding), or
   * undefined when no such binding names the certificate (the caller stays anonymous).
   * @throws AuthenticationError when the binding's robot cannot log in (revoked, expired) or several match
   */
  async authenticateCertificate(client: ClientCertificate, origin: RequestOrigin): Promise<Identity | undefined> {
    const robotId = await this.#certificates?.robotFor(client);
    if (robotId === undefined) return undefined;
    const robot = robotId === 'ambiguous' ? undefined : await this.store.getRobot(robotId);
    const problem = robotId === 'ambiguous' ? 'the certificate matches several robots' : !robot ? 'unknown robot' : this.#credentialProblem(robot);
    if (problem || !robot) {
      this.#publishAuth('auth.failed', robot?.name ?? `certificate:${client.spkiSha256.slice(0, 16)}`, 'certificate', origin, problem ?? 'unknown robot');
      throw new AuthenticationError('the client certificate does not authenticate a usable robot');
    }
    const identity = this.#robotIdentity(robot, { kind: 'robot', id: robot.id });
    this.#publishAuth('auth.succeeded', robot.name, 'certificate', origin);
    this.#touch(identity, origin.clientAddress);
    return identity;
  }

  /**
   * A workload's OIDC token presented on its own (RFC 8693 token exchange).
   * @throws AuthenticationError
   */
  async authenticateWorkload(token: string, origin: RequestOrigin): Promise<Identity> {
    if (!this.#federation) throw new AuthenticationError('workload identity federation is not configured');
    return this.#authenticateWorkload(this.#federation, token, origin);
  }

  /**
   * A workload's OIDC token (workload identity federation). Not cached: every token is verified
   * (a signature check, no argon2), so single-use rules see every use. The guard counts failures
   * per address; its account key is the token's hash, so bad tokens cannot lock out other workloads.
   */
  async #authenticateWorkload(federation: WorkloadFederation, token: string, origin: RequestOrigin): Promise<Identity> {
    const attempt = { username: `oidc:${createHmac('sha256', this.#cacheKey).update(token).digest('base64url').slice(0, 22)}`, clientAddress: origin.clientAddress };
    await this.#guard.check(attempt);
    try {
      const identity = await federation.authenticate(token);
      this.#guard.record(attempt, true);
      this.#publishAuth('auth.succeeded', identity.name, 'workload', origin);
      return identity;
    } catch (error) {
      if (!(error instanceof FederationError)) throw error;
      this.#guard.record(attempt, false);
      this.#publishAuth('auth.failed', 'oidc', 'workload', origin, error.message);
      throw new AuthenticationError('invalid workload token');
    }
  }

  async #checkPassword(username: string, password: string): Promise<{ principal: PrincipalClaim; identity: Identity; passwordChangedAt: number } | string> {
    const user = await this.store.getUserByName(username);
    if (!user?.passwordHash) {
      await verifyPassword(password, await decoyHash());
      return user ? 'user has no local password' : 'unknown user';
    }
    if (!(await verifyPassword(password, user.passwordHash))) return 'wrong password';
    if (user.disabled) return 'user disabled';
    const credential: CredentialRef = { kind: 'password' };
    return { principal: { kind: 'user', id: user.id, credential }, identity: this.#userIdentity(user, credential, undefined, []), passwordChangedAt: user.passwordChangedAt.getTime() };
  }

  async #checkRobot(username: string, id: string, random: string, client: ClientCertificate | undefined): Promise<{ principal: PrincipalClaim; identity: Identity } | string> {
    const robot = await this.store.getRobot(id);
    if (!robot || !secretMatches(random, robot.secretHash)) return 'wrong robot secret';
    if (robot.name !== username) return 'robot secret presented with another user name';
    const problem = this.#credentialProblem(robot);
    if (problem) return `robot ${problem}`;
    const certificateProblem = await this.#certificates?.problem(robot.id, client);
    if (certificateProblem) return certificateProblem;
    const credential: CredentialRef = { kind: 'robot', id: robot.id };
    return { principal: { kind: 'robot', id: robot.id, credential }, identity: this.#robotIdentity(robot, credential) };
  }

  async #checkToken(username: string, id: string, random: string): Promise<{ principal: PrincipalClaim; identity: Identity } | string> {
    const token = await this.store.getToken(id);
    if (!token || !secretMatches(random, token.secretHash)) return 'wrong access token';
    const user = await this.store.getUser(token.userId);
    if (!user || user.name !== username) return 'access token presented with another user name';
    if (user.disabled) return 'user disabled';
    const problem = this.#credentialProblem(token);
    if (problem) return `access token ${problem}`;
    const external = await this.#external(user);
    if (typeof external === 'string') return external;
    const credential: CredentialRef = { kind: 'token', id: token.id };
    return { principal: { kind: 'user', id: user.id, credential }, identity: this.#userIdentity(user, credential, token, external.groups, external.systemAdmin) };
  }

  #credentialProblem(record: { revokedAt: Date | undefined; expiresAt: Date }): string | undefined {
    if (record.revokedAt) return 'revoked';
    if (record.expiresAt.getTime() <= this.#options.now()) return 'expired';
    return undefined;
  }

  #userIdentity(user: UserRecord, credential: CredentialRef, token: TokenRecord | undefined, groups: string[], systemAdmin = user.systemAdmin): UserIdentity {
    return {
      kind: 'user',
      id: user.id,
      name: user.name,
      systemAdmin,
      canCreateProjects: user.canCreateProjects,
      groups,
      restriction: token ? { grants: token.grants, management: token.management } : undefined,
      credential,
    };
  }

  #robotIdentity(robot: RobotRecord, credential: CredentialRef): Identity {
    return { kind: 'robot', id: robot.id, name: robot.name, project: robot.project, grants: robot.grants, credential };
  }

  /** Issues a refresh token (offline access) for an authenticated identity, bound to `service`. */
  async issueRefreshToken(identity: Identity, service: string): Promise<string> {
    if (identity.kind !== 'user' && identity.kind !== 'robot') throw new AuthenticationError('only users and robots get refresh tokens');
    const underlying = identity.credential.kind === 'refresh' ? identity.credential.via : identity.credential;
    const generated = generateSecret('refresh');
    let expiresAt = this.#options.now() + this.#options.refreshTokenTtlMs;
    if (identity.kind === 'robot') {
      const robot = await this.store.getRobot(identity.id);
      if (robot) expiresAt = Math.min(expiresAt, robot.expiresAt.getTime());
    }
    if (underlying.kind === 'token') {
      const token = await this.store.getToken(underlying.id);
      if (token) expiresAt = Math.min(expiresAt, token.expiresAt.getTime());
    }
    await this.store.createRefreshToken({
      id: generated.id,
      subjectKind: identity.kind,
      subjectId: identity.id,
      credential: JSON.stringify(underlying),
      service,
      secretHash: generated.hash,
      expiresAt: new Date(expiresAt),
    });
    return generated.secret;
  }

  /**
   * Checks a refresh token for `service` (refresh tokens are bound to one audience).
   * @throws AuthenticationError
   */
  async authenticateRefreshToken(presented: string, service: string, origin: RequestOrigin, client?: ClientCertificate): Promise<Identity> {
    const secret = parseSecret(presented);
    const attempt = { username: secret ? `refresh:${secret.id}` : 'refresh', clientAddress: origin.clientAddress };
    await this.#guard.check(attempt);
    let identity: Identity | undefined;
    let reason = 'malformed refresh token';
    if (secret?.kind === 'refresh') {
      const record = await this.store.getRefreshToken(secret.id);
      if (!record || !secretMatches(secret.random, record.secretHash)) reason = 'wrong refresh token';
      else if (record.service !== service) reason = 'refresh token issued for another service';
      else if (record.revokedAt || record.expiresAt.getTime() <= this.#options.now()) reason = 'refresh token revoked or expired';
      else {
        const via = JSON.parse(record.credential) as CredentialRef;
        identity = await this.resolve({ kind: record.subjectKind, id: record.subjectId, credential: { kind: 'refresh', id: record.id, via } });
        reason = 'the refresh token no longer grants anything (user disabled, or credential revoked)';
        if (identity?.kind === 'robot') {
          const certificateProblem = await this.#certificates?.problem(identity.id, client);
          if (certificateProblem) [identity, reason] = [undefined, certificateProblem];
        }
      }
    }
    this.#guard.record(attempt, identity !== undefined);
    if (!identity) {
      this.#publishAuth('auth.failed', attempt.username, 'refresh', origin, reason);
      throw new AuthenticationError('invalid refresh token');
    }
    this.#touch(identity, origin.clientAddress);
    return identity;
  }

  /**
   * The identity a registry token names, if it is still valid: the user exists and is enabled,
   * and the credential behind the token (access token, robot, refresh token) is neither revoked
   * nor expired. Cached for `revalidateMs`.
   */
  async resolve(principal: PrincipalClaim): Promise<Identity | undefined> {
    return this.#resolveCached(principal, undefined);
  }

  async #resolveCached(principal: PrincipalClaim, passwordChangedAt: number | undefined): Promise<Identity | undefined> {
    if (principal.kind === 'anonymous') return anonymous;
    const key = JSON.stringify(principal);
    const now = this.#options.now();
    let cached = this.#identities.get(key);
    if (!cached || cached.until <= now) {
      const loaded = await this.#load(principal);
      cached = { identity: loaded?.identity, passwordChangedAt: loaded?.passwordChangedAt, until: now + this.#options.revalidateMs };
      boundedSet(this.#identities, key, cached);
    }
    if (passwordChangedAt !== undefined && cached.passwordChangedAt !== passwordChangedAt) return undefined;
    return cached.identity;
  }

  async #load(principal: PrincipalClaim): Promise<{ identity: Identity; passwordChangedAt?: number } | undefined> {
    const credential = principal.credential;
    if (!principal.id || !credential) return undefined;
    if (credential.kind === 'refresh') {
      const record = await this.store.getRefreshToken(credential.id);
      if (!record || this.#credentialProblem(record)) return undefined;
      const inner = await this.#load({ ...principal, credential: credential.via });
      if (!inner) return undefined;
      return { identity: { ...inner.identity, credential } as Identity, passwordChangedAt: inner.passwordChangedAt };
    }
    if (principal.kind === 'robot') {
      if (credential.kind !== 'robot' || credential.id !== principal.id) return undefined;
      const robot = await this.store.getRobot(principal.id);
      return robot && !this.#credentialProblem(robot) ? { identity: this.#robotIdentity(robot, credential) } : undefined;
    }
    if (principal.kind === 'workload') {
      const identity = await this.#federation?.resolve(principal.id, credential);
      return identity ? { identity } : undefined;
    }
    if (principal.kind !== 'user') return undefined;
    const user = await this.store.getUser(principal.id);
    if (!user || user.disabled) return undefined;
    let token: TokenRecord | undefined;
    if (credential.kind === 'token') {
      token = await this.store.getToken(credential.id);
      if (!token || token.userId !== user.id || this.#credentialProblem(token)) return undefined;
    } else if (credential.kind !== 'password') {
      return undefined;
    }
    // A registry token carries the groups it was issued with; anything else asks the provider again.
    let groups = principal.groups ?? [];
    let systemAdmin = user.systemAdmin;
    if (principal.groups === undefined && user.source !== 'local') {
      const external = await this.#external(user);
      if (typeof external === 'string') return undefined;
      groups = external.groups;
      systemAdmin = external.systemAdmin ?? systemAdmin;
    }
    return { identity: this.#userIdentity(user, credential, token, groups, systemAdmin), passwordChangedAt: user.passwordChangedAt.getTime() };
  }

  /** How a registry token names `identity`. */
  principalOf(identity: Identity): PrincipalClaim {
    switch (identity.kind) {
      case 'anonymous':
        return { kind: 'anonymous' };
      case 'user':
        return { kind: 'user', id: identity.id, credential: identity.credential, ...(identity.groups.length > 0 ? { groups: identity.groups } : {}) };
      case 'robot':
        return { kind: 'robot', id: identity.id, credential: identity.credential };
      case 'workload':
        return { kind: 'workload', id: identity.name, credential: identity.credential };
    }
  }

  /** Records the last use of a robot or access token (at most once a minute per credential and process). */
  #touch(identity: Identity, from: string): void {
    const credential = identity.kind === 'user' || identity.kind === 'robot' ? identity.credential : undefined;
    const ref = credential?.kind === 'refresh' ? credential.via : credential;
    if (!ref || (ref.kind !== 'robot' && ref.kind !== 'token')) return;
    const key = `${ref.kind}:${ref.id}`;
    const now = this.#options.now();
    if ((this.#touched.get(key) ?? 0) > now - TOUCH_INTERVAL_MS) return;
    boundedSet(this.#touched, key, now);
    const write = ref.kind === 'robot' ? this.store.touchRobot(ref.id, from) : this.store.touchToken(ref.id, from);
    write.catch(() => this.#touched.delete(key));
  }

  #publishAuth(type: 'auth.succeeded' | 'auth.failed', username: string, method: AuthMethod, origin: RequestOrigin, reason?: string): void {
    const at = new Date(this.#options.now());
    if (type === 'auth.failed') this.#events?.publish({ type, at, origin, username, method, reason: reason ?? 'unknown' });
    else this.#events?.publish({ type, at, origin, username, method });
  }

  // ---------------------------------------------------------------------------------------------
  // Authorisation
  // ---------------------------------------------------------------------------------------------

  /** The facts about `project` that authorisation needs for `identity`; undefined when there is no such project. */
  async facts(project: string, identity: Identity): Promise<ProjectFacts | undefined> {
    const record = await this.store.getProject(project);
    if (!record) return undefined;
    const roles = identity.kind === 'user' && !identity.systemAdmin ? await this.store.rolesOf(project, identity.id, identity.groups) : [];
    if (identity.kind === 'user' && !identity.systemAdmin && identity.groups.length > 0 && this.#directory) roles.push(...(await this.#directory.configuredRoles(identity, project)));
    return { name: record.name, visibility: record.visibility, roles };
  }

  /** May `identity` perform `action` on `resource`? (Loads the facts, then {@link authorize}.) */
  async can(identity: Identity, action: Action, resource: Resource): Promise<boolean> {
    if (resource.kind === 'system') return authorize(identity, action, resource, undefined);
    const project = resource.kind === 'project' ? resource.name : projectOf(resource.name);
    return authorize(identity, action, resource, await this.facts(project, identity));
  }

  /**
   * The token's `access`: for each requested resource, the requested actions the identity holds
   * (`*` stands for every action). Never an error: what is not allowed is simply left out (spec).
   */
  async grantedAccess(identity: Identity, requested: AccessEntry[], origin: RequestOrigin): Promise<AccessEntry[]> {
    const granted: AccessEntry[] = [];
    for (const entry of requested) {
      if (entry.type === 'registry') {
        if (entry.name === 'catalog' && entry.actions.includes('*') && authorize(identity, 'catalog', { kind: 'system' }, undefined)) granted.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      if (entry.type !== 'repository') continue;
      const wanted = new Set<ScopeAction>(entry.actions.includes('*') ? scopeActions : scopeActions.filter((a) => entry.actions.includes(a)));
      if (wanted.size === 0) continue;
      // Per-project IP lists: from a refused address the scope is simply not granted (spec: never an error).
      if (this.#networks?.refusal(projectOf(entry.name), origin.clientAddress)) continue;
      let facts = await this.facts(projectOf(entry.name), identity);
      if (!facts && wanted.has('push')) facts = await this.#autoCreateProject(identity, projectOf(entry.name), origin);
      const actions = allowedScopeActions(identity, entry.name, facts).filter((a) => wanted.has(a));
      if (actions.length > 0) granted.push({ type: 'repository', name: entry.name, actions });
    }
    return granted;
  }

  async #autoCreateProject(identity: Identity, project: string, origin: RequestOrigin): Promise<ProjectFacts | undefined> {
    if (!this.#options.autoCreateProjects || identity.kind !== 'user' || !authorize(identity, 'project.create', { kind: 'system' }, undefined)) return undefined;
    if (await this.store.createProject({ name: project, visibility: 'private', createdBy: identity.name })) {
      await this.store.putMember({ project, principalKind: 'user', principal: identity.id, role: 'admin', repositories: undefined });
      this.#events?.publish({ type: 'access.changed', at: new Date(this.#options.now()), origin, change: 'project.created', target: { kind: 'project', name: project }, detail: { visibility: 'private', automatic: true } });
    }
    return this.facts(project, identity);
  }

  /**
   * A per-request filter for the catalog: may `identity` pull from the repository (from
   * `address`, when given, under the project's IP lists)? (Facts cached per project.)
   */
  catalogFilter(identity: Identity, address?: string): (repository: string) => Promise<boolean> {
    const byProject = new Map<string, Promise<ProjectFacts | undefined>>();
    return async (repository) => {
      const project = projectOf(repository);
      if (address !== undefined && this.#networks?.refusal(project, address)) return false;
      let facts = byProject.get(project);
      if (!facts) byProject.set(project, (facts = this.facts(project, identity)));
      return authorize(identity, 'pull', { kind: 'repository', name: repository }, await facts);
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Bootstrap
  // ---------------------------------------------------------------------------------------------

  /**
   * At first start (no user at all), creates the system administrator `admin` with `password`
   * (from PORTCULLIS_ADMIN_PASSWORD) or a random one, returned so the caller can show it once.
   * Never a fixed default. Concurrent starts create it once.
   */
  async bootstrapAdmin(password: string | undefined): Promise<{ created: false } | { created: true; generatedPassword: string | undefined }> {
    if ((await this.store.countUsers()) > 0) return { created: false };
    if (password !== undefined) {
      const problem = passwordProblem(password, 'admin', this.#options.passwordPolicy);
      if (problem) throw new RegistryError('DENIED', `PORTCULLIS_ADMIN_PASSWORD is refused: ${problem}`);
    }
    const chosen = password ?? randomPassword();
    const created = await this.store.createUser({
      id: randomUUID(),
      name: 'admin',
      passwordHash: await hashPassword(chosen),
      systemAdmin: true,
      canCreateProjects: true,
      email: undefined,
      source: 'local',
    });
    if (!created) return { created: false };
    this.#events?.publish({ type: 'access.changed', at: new Date(this.#options.now()), origin: undefined, change: 'user.created', target: { kind: 'user', name: 'admin' }, detail: { systemAdmin: true, bootstrap: true } });
    return { created: true, generatedPassword: password === undefined ? chosen : undefined };
  }
}
