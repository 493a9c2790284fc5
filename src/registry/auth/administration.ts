/**
 * Identity and access administration: users, projects, members, robot accounts and personal
 * access tokens. Used by the management API (/api/v1) and by `portcullis admin`. Every operation
 * is authorised through {@link AccessService.can} (the permission table), validated, and
 * published on the event bus as `access.changed` (who did what to whom). Secrets are returned
 * once, at creation, and never again.
 */
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../oci/errors.ts';
import type { AccessChange, AccessTarget, EventBus, RequestOrigin } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import type { AccessService } from './access-service.ts';
import { type Action, type Grant, type Identity, type Role, repositoryActions, roles } from './identity.ts';
import { hashPassword, passwordProblem, verifyPassword } from './passwords.ts';
import type { Resource, Visibility } from './permissions.ts';
import { patternProblem, patternProject } from './repository-pattern.ts';
import { generateSecret } from './secrets.ts';
import type { MemberRecord, ProjectRecord, RobotRecord, TokenRecord, UserRecord } from './store/ports.ts';

export interface UserView {
  name: string;
  systemAdmin: boolean;
  canCreateProjects: boolean;
  disabled: boolean;
  email?: string;
  source: 'local' | 'oidc';
  createdAt: string;
}

export interface ProjectView {
  name: string;
  visibility: Visibility;
  createdAt: string;
  createdBy?: string;
}

export interface MemberView {
  id: string;
  kind: 'user' | 'group';
  name: string;
  role: Role;
  repositories?: string[];
}

interface CredentialView {
  id: string;
  grants: Grant[];
  expiresAt: string;
  revokedAt?: string;
  createdAt: string;
  lastUsedAt?: string;
  lastUsedFrom?: string;
}

export interface RobotView extends CredentialView {
  name: string;
  project?: string;
  description?: string;
  createdBy?: string;
}

export interface TokenView extends CredentialView {
  name: string;
  management: boolean;
}

export interface AdministrationOptions {
  robotMaxLifetimeDays: number;
  tokenMaxLifetimeDays: number;
  now?: () => number;
}

const userNameGrammar = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const projectNameGrammar = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const credentialNameGrammar = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const DAY = 86_400_000;

const iso = (date: Date | undefined) => date?.toISOString();

/** True when `actor` is the (real) user `name`. */
function isSelf(actor: Identity, name: string): boolean {
  return actor.kind === 'user' && actor.name === name && actor.credential.kind !== 'system';
}

function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function userView(user: UserRecord): UserView {
  return compact({ name: user.name, systemAdmin: user.systemAdmin, canCreateProjects: user.canCreateProjects, disabled: user.disabled, email: user.email, source: user.source, createdAt: user.createdAt.toISOString() });
}

function projectView(project: ProjectRecord): ProjectView {
  return compact({ name: project.name, visibility: project.visibility, createdAt: project.createdAt.toISOString(), createdBy: project.createdBy });
}

function memberView(member: MemberRecord): MemberView {
  return compact({ id: member.id, kind: member.principalKind, name: member.principalName, role: member.role, repositories: member.repositories });
}

function credentialView(record: RobotRecord | TokenRecord): CredentialView {
  return compact({
    id: record.id,
    grants: record.grants,
    expiresAt: record.expiresAt.toISOString(),
    revokedAt: iso(record.revokedAt),
    createdAt: record.createdAt.toISOString(),
    lastUsedAt: iso(record.lastUsedAt),
    lastUsedFrom: record.lastUsedFrom,
  });
}

function robotView(robot: RobotRecord): RobotView {
  return compact({ ...credentialView(robot), name: robot.name, project: robot.project, description: robot.description, createdBy: robot.createdBy });
}

function tokenView(token: TokenRecord): TokenView {
  return compact({ ...credentialView(token), name: token.name, management: token.management });
}

const invalid = (message: string) => new RegistryError('INVALID_REQUEST', message);
const denied = () => new RegistryError('DENIED', 'requested access to the resource is denied');
const notFound = (what: string) => new RegistryError('NOT_FOUND', `${what} not found`);
const conflict = (message: string) => new RegistryError('CONFLICT', message);

export class Administration {
  readonly #access: AccessService;
  readonly #meta: MetadataStore | undefined;
  readonly #events: EventBus | undefined;
  readonly #options: Required<AdministrationOptions>;

  constructor(deps: { access: AccessService; meta?: MetadataStore; events?: EventBus }, options: AdministrationOptions) {
    this.#access = deps.access;
    this.#meta = deps.meta;
    this.#events = deps.events;
    this.#options = { now: Date.now, ...options };
  }

  get #store() {
    return this.#access.store;
  }

  async #require(actor: Identity, action: Action, resource: Resource): Promise<void> {
    if (!(await this.#access.can(actor, action, resource))) throw denied();
  }

  #publish(origin: RequestOrigin | undefined, change: AccessChange, target: AccessTarget, detail?: Record<string, unknown>): void {
    this.#events?.publish({ type: 'access.changed', at: new Date(this.#options.now()), origin, change, target, ...(detail ? { detail } : {}) });
    // Roles, grants and credentials changed: cached decisions of this process are stale.
    this.#access.invalidate();
  }

  // --- the caller

  /** The caller's own account (users) or a description of the robot. */
  async whoami(actor: Identity): Promise<{ kind: Identity['kind']; name?: string; user?: UserView }> {
    if (actor.kind === 'user' && actor.credential.kind !== 'system') {
      const user = await this.#store.getUser(actor.id);
      return { kind: 'user', name: actor.name, ...(user ? { user: userView(user) } : {}) };
    }
    return actor.kind === 'anonymous' ? { kind: 'anonymous' } : { kind: actor.kind, name: actor.name };
  }

  // --- users

  async #userNamed(name: string): Promise<UserRecord> {
    const user = await this.#store.getUserByName(name);
    if (!user) throw notFound(`user ${JSON.stringify(name)}`);
    return user;
  }

  /** Own account: `account.manage`; anybody else's: `user.manage`. */
  async #requireAccount(actor: Identity, name: string): Promise<void> {
    await this.#require(actor, isSelf(actor, name) ? 'account.manage' : 'user.manage', { kind: 'system' });
  }

  async listUsers(actor: Identity, options: { limit?: number; last?: string } = {}): Promise<UserView[]> {
    await this.#require(actor, 'user.manage', { kind: 'system' });
    return (await this.#store.listUsers(Math.min(options.limit ?? 1000, 1000), options.last)).map(userView);
  }

  async getUser(actor: Identity, name: string): Promise<UserView> {
    await this.#requireAccount(actor, name);
    return userView(await this.#userNamed(name));
  }

  async createUser(actor: Identity, input: { name: string; password?: string; systemAdmin?: boolean; canCreateProjects?: boolean; email?: string; source?: 'local' | 'oidc' }, origin?: RequestOrigin): Promise<UserView> {
    await this.#require(actor, 'user.manage', { kind: 'system' });
    if (!userNameGrammar.test(input.name)) throw invalid('a user name is 1 to 64 characters [a-z0-9._-], starting with a letter or digit');
    if (input.source === 'oidc' && input.password !== undefined) throw invalid('a user of source oidc has no password (it logs in through its identity provider)');
    if (input.password !== undefined) {
      const problem = passwordProblem(input.password, input.name, this.#access.passwordPolicy);
      if (problem) throw invalid(problem);
    }
    const created = await this.#store.createUser({
      id: randomUUID(),
      name: input.name,
      passwordHash: input.password === undefined ? undefined : await hashPassword(input.password),
      systemAdmin: input.systemAdmin ?? false,
      canCreateProjects: input.canCreateProjects ?? false,
      email: input.email,
      source: input.source ?? 'local',
    });
    if (!created) throw conflict(`user ${JSON.stringify(input.name)} exists`);
    this.#publish(origin, 'user.created', { kind: 'user', name: input.name }, { systemAdmin: input.systemAdmin ?? false, canCreateProjects: input.canCreateProjects ?? false });
    return userView(await this.#userNamed(input.name));
  }

  /**
   * Changes a user. Users may change their own password (giving the current one) and e-mail;
   * the rest needs `user.manage`. Nobody disables or demotes themselves (no accidental lock-out).
   */
  async updateUser(
    actor: Identity,
    name: string,
    input: { password?: string; currentPassword?: string; systemAdmin?: boolean; canCreateProjects?: boolean; disabled?: boolean; email?: string | null },
    origin?: RequestOrigin,
  ): Promise<UserView> {
    const privileged = input.systemAdmin !== undefined || input.canCreateProjects !== undefined || input.disabled !== undefined;
    const self = isSelf(actor, name);
    if (privileged || !self) await this.#require(actor, 'user.manage', { kind: 'system' });
    else await this.#requireAccount(actor, name);
    const user = await this.#userNamed(name);
    if (self && (input.disabled === true || input.systemAdmin === false)) throw invalid('you cannot disable or demote yourself');
    let passwordHash: string | undefined;
    if (input.password !== undefined) {
      const problem = passwordProblem(input.password, name, this.#access.passwordPolicy);
      if (problem) throw invalid(problem);
      const manager = await this.#access.can(actor, 'user.manage', { kind: 'system' });
      if (self && !manager && !(input.currentPassword !== undefined && user.passwordHash && (await verifyPassword(input.currentPassword, user.passwordHash)))) {
        throw invalid('changing your own password needs the current one (currentPassword)');
      }
      passwordHash = await hashPassword(input.password);
    }
    await this.#store.updateUser(user.id, compact({ passwordHash, systemAdmin: input.systemAdmin, canCreateProjects: input.canCreateProjects, disabled: input.disabled, email: input.email }));
    const changed = Object.keys(compact({ password: input.password, systemAdmin: input.systemAdmin, canCreateProjects: input.canCreateProjects, disabled: input.disabled, email: input.email }));
    this.#publish(origin, 'user.updated', { kind: 'user', name }, { changed });
    return userView(await this.#userNamed(name));
  }

  async deleteUser(actor: Identity, name: string, origin?: RequestOrigin): Promise<void> {
    await this.#require(actor, 'user.manage', { kind: 'system' });
    if (isSelf(actor, name)) throw invalid('you cannot delete yourself');
    const user = await this.#userNamed(name);
    await this.#store.deleteUser(user.id);
    this.#publish(origin, 'user.deleted', { kind: 'user', name });
  }

  // --- projects

  async listProjects(actor: Identity): Promise<ProjectView[]> {
    const visible: ProjectView[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await this.#store.listProjects(500, last);
      for (const project of page) if (await this.#access.can(actor, 'project.read', { kind: 'project', name: project.name })) visible.push(projectView(project));
      if (page.length < 500) return visible;
      last = page[page.length - 1]!.name;
    }
  }

  async getProject(actor: Identity, name: string): Promise<ProjectView> {
    await this.#require(actor, 'project.read', { kind: 'project', name });
    const project = await this.#store.getProject(name);
    if (!project) throw notFound(`project ${JSON.stringify(name)}`);
    return projectView(project);
  }

  /** Creates a project; a creator who is not a system administrator becomes its admin. */
  async createProject(actor: Identity, input: { name: string; visibility?: Visibility }, origin?: RequestOrigin): Promise<ProjectView> {
    await this.#require(actor, 'project.create', { kind: 'system' });
    if (!projectNameGrammar.test(input.name) || input.name.length > 64) throw invalid('a project name is one repository path component ([a-z0-9] separated by ., _, __ or -), at most 64 characters');
    const visibility = input.visibility ?? 'private';
    const creator = actor.kind === 'user' && actor.credential.kind !== 'system' ? actor : undefined;
    if (!(await this.#store.createProject({ name: input.name, visibility, createdBy: creator?.name }))) throw conflict(`project ${JSON.stringify(input.name)} exists`);
    if (creator && !creator.systemAdmin) await this.#store.putMember({ project: input.name, principalKind: 'user', principal: creator.id, role: 'admin', repositories: undefined });
    this.#publish(origin, 'project.created', { kind: 'project', name: input.name }, { visibility });
    return this.getProject(actor, input.name);
  }

  async updateProject(actor: Identity, name: string, input: { visibility?: Visibility }, origin?: RequestOrigin): Promise<ProjectView> {
    await this.#require(actor, 'project.update', { kind: 'project', name });
    if (input.visibility !== undefined) await this.#store.setProjectVisibility(name, input.visibility);
    this.#publish(origin, 'project.updated', { kind: 'project', name }, compact({ visibility: input.visibility }));
    return this.getProject(actor, name);
  }

  /** Deletes an empty project (its repositories must be deleted first) with its members and robots. */
  async deleteProject(actor: Identity, name: string, origin?: RequestOrigin): Promise<void> {
    await this.#require(actor, 'project.delete', { kind: 'project', name });
    if (this.#meta) {
      const next = await this.#meta.listRepositories(1, `${name}/`);
      if ((await this.#meta.repositoryExists(name)) || next.items[0]?.startsWith(`${name}/`)) throw conflict(`project ${JSON.stringify(name)} still has repositories; delete them first`);
    }
    await this.#store.deleteProject(name);
    this.#publish(origin, 'project.deleted', { kind: 'project', name });
  }

  // --- members

  async listMembers(actor: Identity, project: string): Promise<MemberView[]> {
    await this.#require(actor, 'project.read', { kind: 'project', name: project });
    return (await this.#store.listMembers(project)).map(memberView);
  }

  /** Grants a role to a user or a group (an identity-provider group), optionally narrowed to repository patterns. */
  async addMember(actor: Identity, project: string, input: { user?: string; group?: string; role: Role; repositories?: string[] }, origin?: RequestOrigin): Promise<MemberView> {
    await this.#require(actor, 'member.manage', { kind: 'project', name: project });
    if ((input.user === undefined) === (input.group === undefined)) throw invalid('give exactly one of user and group');
    if (!roles.includes(input.role)) throw invalid(`role must be one of ${roles.join(', ')}`);
    if (input.repositories !== undefined) this.#checkPatterns(input.repositories, project);
    let principal: string;
    if (input.user !== undefined) principal = (await this.#userNamed(input.user)).id;
    else if (/^[A-Za-z0-9][A-Za-z0-9 ._:@/-]{0,127}$/.test(input.group!)) principal = input.group!;
    else throw invalid('a group name is 1 to 128 characters');
    const principalKind = input.user !== undefined ? 'user' : 'group';
    const id = await this.#store.putMember({ project, principalKind, principal, role: input.role, repositories: input.repositories });
    const name = input.user ?? input.group!;
    this.#publish(origin, 'member.added', { kind: 'member', name, project }, compact({ principalKind, role: input.role, repositories: input.repositories }));
    return compact({ id, kind: principalKind, name, role: input.role, repositories: input.repositories });
  }

  async removeMember(actor: Identity, project: string, id: string, origin?: RequestOrigin): Promise<void> {
    await this.#require(actor, 'member.manage', { kind: 'project', name: project });
    const member = (await this.#store.listMembers(project)).find((m) => m.id === id);
    if (!member || !(await this.#store.removeMember(project, id))) throw notFound('membership');
    this.#publish(origin, 'member.removed', { kind: 'member', name: member.principalName, project }, { principalKind: member.principalKind, role: member.role });
  }

  #checkPatterns(patterns: string[], project: string | undefined): void {
    if (patterns.length === 0 || patterns.length > 100) throw invalid('give 1 to 100 repository patterns');
    for (const pattern of patterns) {
      const problem = patternProblem(pattern);
      if (problem) throw invalid(problem);
      if (project !== undefined && patternProject(pattern) !== project) throw invalid(`repository pattern ${JSON.stringify(pattern)} is outside project ${JSON.stringify(project)}`);
    }
  }

  #checkGrants(grants: Grant[], project: string | undefined): Grant[] {
    if (grants.length === 0 || grants.length > 50) throw invalid('give 1 to 50 grants');
    return grants.map((grant) => {
      this.#checkPatterns(grant.repositories, project);
      const actions = [...new Set(grant.actions)];
      if (actions.length === 0 || actions.some((a) => !repositoryActions.includes(a))) throw invalid(`grant actions are ${repositoryActions.join(', ')}`);
      return { repositories: [...grant.repositories], actions };
    });
  }

  #expiry(input: { expiresAt?: string; expiresInDays?: number }, maxDays: number): Date {
    const now = this.#options.now();
    let at: number;
    if (input.expiresInDays !== undefined) at = now + input.expiresInDays * DAY;
    else if (input.expiresAt !== undefined) at = Date.parse(input.expiresAt);
    else throw invalid('an expiry is mandatory (expiresInDays or expiresAt)');
    if (!Number.isFinite(at) || at <= now) throw invalid('the expiry must be in the future');
    if (at > now + maxDays * DAY) throw invalid(`the expiry is at most ${maxDays} days away`);
    return new Date(at);
  }

  // --- robots

  #robotResource(project: string | undefined): { action: Action; resource: Resource } {
    return project === undefined ? { action: 'system.robot.manage', resource: { kind: 'system' } } : { action: 'robot.manage', resource: { kind: 'project', name: project } };
  }

  /** Project robots of `project`, or system robots. */
  async listRobots(actor: Identity, project: string | undefined): Promise<RobotView[]> {
    const { action, resource } = this.#robotResource(project);
    await this.#require(actor, action, resource);
    return (await this.#store.listRobots(project)).map(robotView);
  }

  /**
   * Creates a robot account: a project robot (grants within its project) or a system robot;
   * mandatory expiry at most `robotMaxLifetimeDays` away. Returns the secret, once.
   */
  async createRobot(
    actor: Identity,
    input: { project?: string; name: string; description?: string; grants: Grant[]; expiresAt?: string; expiresInDays?: number },
    origin?: RequestOrigin,
  ): Promise<{ robot: RobotView; secret: string }> {
    const { action, resource } = this.#robotResource(input.project);
    await this.#require(actor, action, resource);
    if (!credentialNameGrammar.test(input.name)) throw invalid('a robot name is 1 to 64 characters [a-z0-9._-]');
    if (input.description !== undefined && input.description.length > 500) throw invalid('the description has at most 500 characters');
    const grants = this.#checkGrants(input.grants, input.project);
    const expiresAt = this.#expiry(input, this.#options.robotMaxLifetimeDays);
    const fullName = input.project === undefined ? `robot$${input.name}` : `robot$${input.project}+${input.name}`;
    const generated = generateSecret('robot');
    const created = await this.#store.createRobot({
      id: generated.id,
      name: fullName,
      project: input.project,
      description: input.description,
      grants,
      secretHash: generated.hash,
      expiresAt,
      createdBy: actor.kind === 'anonymous' ? undefined : actor.name,
    });
    if (!created) throw conflict(`robot ${JSON.stringify(fullName)} exists`);
    this.#publish(origin, 'robot.created', compact({ kind: 'robot' as const, name: fullName, project: input.project }), { grants, expiresAt: expiresAt.toISOString() });
    return { robot: robotView((await this.#store.getRobot(generated.id))!), secret: generated.secret };
  }

  async #robot(actor: Identity, id: string, project: string | undefined): Promise<RobotRecord> {
    const { action, resource } = this.#robotResource(project);
    await this.#require(actor, action, resource);
    const robot = await this.#store.getRobot(id);
    if (!robot || robot.project !== project) throw notFound('robot');
    return robot;
  }

  async revokeRobot(actor: Identity, id: string, project: string | undefined, origin?: RequestOrigin): Promise<RobotView> {
    const robot = await this.#robot(actor, id, project);
    await this.#store.revokeRobot(id);
    this.#publish(origin, 'robot.revoked', compact({ kind: 'robot' as const, name: robot.name, project }));
    return robotView((await this.#store.getRobot(id))!);
  }

  async deleteRobot(actor: Identity, id: string, project: string | undefined, origin?: RequestOrigin): Promise<void> {
    const robot = await this.#robot(actor, id, project);
    await this.#store.deleteRobot(id);
    this.#publish(origin, 'robot.deleted', compact({ kind: 'robot' as const, name: robot.name, project }));
  }

  // --- personal access tokens

  async listTokens(actor: Identity, username: string): Promise<TokenView[]> {
    await this.#requireAccount(actor, username);
    return (await this.#store.listTokens((await this.#userNamed(username)).id)).map(tokenView);
  }

  /**
   * Creates a personal access token for the caller (only users create their own tokens): it
   * acts as the user, narrowed to `grants` (and to /api/v1 only with `management`). Returns the
   * secret, once.
   */
  async createToken(
    actor: Identity,
    input: { name: string; grants: Grant[]; management?: boolean; expiresAt?: string; expiresInDays?: number },
    origin?: RequestOrigin,
  ): Promise<{ token: TokenView; secret: string }> {
    if (actor.kind !== 'user' || actor.credential.kind === 'system') throw denied();
    await this.#require(actor, 'account.manage', { kind: 'system' });
    if (!credentialNameGrammar.test(input.name)) throw invalid('a token name is 1 to 64 characters [a-z0-9._-]');
    const grants = this.#checkGrants(input.grants, undefined);
    const expiresAt = this.#expiry(input, this.#options.tokenMaxLifetimeDays);
    const generated = generateSecret('token');
    const management = input.management ?? false;
    if (!(await this.#store.createToken({ id: generated.id, userId: actor.id, name: input.name, grants, management, secretHash: generated.hash, expiresAt }))) {
      throw conflict(`you already have a token named ${JSON.stringify(input.name)}`);
    }
    this.#publish(origin, 'token.created', { kind: 'token', name: `${actor.name}/${input.name}` }, { grants, management, expiresAt: expiresAt.toISOString() });
    return { token: tokenView((await this.#store.getToken(generated.id))!), secret: generated.secret };
  }

  async revokeToken(actor: Identity, username: string, id: string, origin?: RequestOrigin): Promise<TokenView> {
    await this.#requireAccount(actor, username);
    const user = await this.#userNamed(username);
    const token = await this.#store.getToken(id);
    if (!token || token.userId !== user.id) throw notFound('token');
    await this.#store.revokeToken(id);
    this.#publish(origin, 'token.revoked', { kind: 'token', name: `${username}/${token.name}` });
    return tokenView((await this.#store.getToken(id))!);
  }
}
