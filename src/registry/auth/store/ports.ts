/**
 * The access store: projects, memberships, users, robots, personal access tokens, refresh
 * tokens and token-signing keys. Split by capability; one SQL implementation (SQLite and
 * PostgreSQL) implements them all and passes `access-store.contract.ts`.
 *
 * Secrets are never stored: records hold SHA-256 hashes (generated secrets) or argon2id hashes
 * (passwords). Every method is one transaction. Times are `Date`s.
 */
import type { Grant, Role } from '../identity.ts';
import type { Visibility } from '../permissions.ts';

export interface ProjectRecord {
  name: string;
  visibility: Visibility;
  createdAt: Date;
  /** Name of the creating user, for information. */
  createdBy: string | undefined;
}

export interface ProjectStore {
  /** False when a project of that name exists. */
  createProject(project: { name: string; visibility: Visibility; createdBy: string | undefined }): Promise<boolean>;
  getProject(name: string): Promise<ProjectRecord | undefined>;
  /** Projects after `last` in name order. */
  listProjects(limit: number, last?: string): Promise<ProjectRecord[]>;
  /** False when unknown. */
  setProjectVisibility(name: string, visibility: Visibility): Promise<boolean>;
  /** Deletes the project with its memberships and project robots. False when unknown. */
  deleteProject(name: string): Promise<boolean>;
}

export type PrincipalKind = 'user' | 'group';

export interface MemberRecord {
  id: string;
  project: string;
  principalKind: PrincipalKind;
  /** User id, or group name. */
  principal: string;
  /** User name for users, the group name for groups. */
  principalName: string;
  role: Role;
  /** Repository patterns narrowing the role; undefined = whole project. */
  repositories: string[] | undefined;
  createdAt: Date;
}

export interface MembershipStore {
  /**
   * Grants `role` to a principal in a project, replacing the patterns of an existing grant of
   * the same role. Returns the grant's id. The project (and the user) must exist.
   */
  putMember(member: { project: string; principalKind: PrincipalKind; principal: string; role: Role; repositories: string[] | undefined }): Promise<string>;
  listMembers(project: string): Promise<MemberRecord[]>;
  /** False when unknown. */
  removeMember(project: string, id: string): Promise<boolean>;
  /** The role grants of a user (directly or through `groups`) in one project. */
  rolesOf(project: string, userId: string, groups: readonly string[]): Promise<Array<{ role: Role; repositories: string[] | undefined }>>;
  /** Names of the projects where the user (or one of `groups`) holds any role. */
  projectsOf(userId: string, groups: readonly string[]): Promise<string[]>;
}

export type UserSource = 'local' | 'oidc';

export interface UserRecord {
  id: string;
  name: string;
  /** argon2id PHC string; undefined for users without a local password (OIDC). */
  passwordHash: string | undefined;
  systemAdmin: boolean;
  canCreateProjects: boolean;
  disabled: boolean;
  email: string | undefined;
  source: UserSource;
  createdAt: Date;
  updatedAt: Date;
  /** Last password change: cached credential checks made before it are void. */
  passwordChangedAt: Date;
}

export interface NewUser {
  id: string;
  name: string;
  passwordHash: string | undefined;
  systemAdmin: boolean;
  canCreateProjects: boolean;
  email: string | undefined;
  source: UserSource;
}

export interface UserPatch {
  passwordHash?: string;
  systemAdmin?: boolean;
  canCreateProjects?: boolean;
  disabled?: boolean;
  email?: string | null;
}

export interface UserStore {
  /** False when the name is taken. */
  createUser(user: NewUser): Promise<boolean>;
  getUser(id: string): Promise<UserRecord | undefined>;
  getUserByName(name: string): Promise<UserRecord | undefined>;
  listUsers(limit: number, last?: string): Promise<UserRecord[]>;
  countUsers(): Promise<number>;
  /** False when unknown. Setting `passwordHash` moves `passwordChangedAt`. */
  updateUser(id: string, patch: UserPatch): Promise<boolean>;
  /** Deletes the user with memberships, personal access tokens and refresh tokens. */
  deleteUser(id: string): Promise<boolean>;
}

/** Common to robots and personal access tokens. */
export interface CredentialUsage {
  expiresAt: Date;
  revokedAt: Date | undefined;
  lastUsedAt: Date | undefined;
  lastUsedFrom: string | undefined;
}

export interface RobotRecord extends CredentialUsage {
  id: string;
  /** Full name: `robot$<name>` or `robot$<project>+<name>`. */
  name: string;
  project: string | undefined;
  description: string | undefined;
  grants: Grant[];
  secretHash: string;
  createdBy: string | undefined;
  createdAt: Date;
}

export interface RobotStore {
  /** False when a robot of that name exists. */
  createRobot(robot: Omit<RobotRecord, 'createdAt' | 'revokedAt' | 'lastUsedAt' | 'lastUsedFrom'>): Promise<boolean>;
  getRobot(id: string): Promise<RobotRecord | undefined>;
  /** Project robots of `project`, or system robots when `project` is undefined. */
  listRobots(project: string | undefined): Promise<RobotRecord[]>;
  /** Revokes (idempotent). False when unknown. */
  revokeRobot(id: string): Promise<boolean>;
  deleteRobot(id: string): Promise<boolean>;
  /** Records a use (time and client address). */
  touchRobot(id: string, from: string): Promise<void>;
}

export interface TokenRecord extends CredentialUsage {
  id: string;
  userId: string;
  name: string;
  grants: Grant[];
  /** May call the management API as the user. */
  management: boolean;
  secretHash: string;
  createdAt: Date;
}

export interface TokenStore {
  /** False when the user already has a token of that name. */
  createToken(token: Omit<TokenRecord, 'createdAt' | 'revokedAt' | 'lastUsedAt' | 'lastUsedFrom'>): Promise<boolean>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  listTokens(userId: string): Promise<TokenRecord[]>;
  revokeToken(id: string): Promise<boolean>;
  touchToken(id: string, from: string): Promise<void>;
}

export interface RefreshTokenRecord {
  id: string;
  subjectKind: 'user' | 'robot';
  subjectId: string;
  /** The credential the refresh token was obtained with (JSON of a CredentialRef). */
  credential: string;
  /** The audience it is bound to. */
  service: string;
  secretHash: string;
  expiresAt: Date;
  revokedAt: Date | undefined;
  createdAt: Date;
}

export interface RefreshTokenStore {
  createRefreshToken(token: Omit<RefreshTokenRecord, 'createdAt' | 'revokedAt'>): Promise<void>;
  getRefreshToken(id: string): Promise<RefreshTokenRecord | undefined>;
  revokeRefreshToken(id: string): Promise<boolean>;
  /** Removes refresh tokens that expired before `now` (housekeeping). Returns how many. */
  deleteExpiredRefreshTokens(): Promise<number>;
}

export interface SigningKeyRecord {
  kid: string;
  /** JWK (JSON) of the private key. */
  privateJwk: string;
  createdAt: Date;
}

export interface SigningKeyStore {
  /** All keys, newest first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Adds a key unless another one was created after `unlessNewerThan` (two replicas rotating at
   * once keep one new key). True when added.
   */
  addSigningKey(key: SigningKeyRecord, unlessNewerThan: Date): Promise<boolean>;
  deleteSigningKey(kid: string): Promise<void>;
}

export interface AccessStore extends ProjectStore, MembershipStore, UserStore, RobotStore, TokenStore, RefreshTokenStore, SigningKeyStore {
  /** Applies pending migrations of the access schema. Safe from several processes at once. */
  migrate(): Promise<void>;
}
