/**
 * Who is asking. Every credential (password, personal access token, robot secret, refresh token,
 * registry token, and later an OIDC ID token or a federated workload token) is turned into one
 * {@link Identity}; authorisation (permissions.ts) only ever looks at identities.
 *
 * Two families:
 * - principals with *roles* (users, local or OIDC): their rights come from project memberships
 *   of the user or of one of its `groups` (groups come from an identity provider; local users
 *   have none), optionally narrowed by a {@link Restriction} (a personal access token's scope);
 * - principals with *grants* only (robots, federated workloads): they can do exactly what their
 *   grants list, whatever their creator can do.
 */

/** The Docker token scope actions (`*` expands to these). */
export const scopeActions = ['pull', 'push', 'delete'] as const;
export type ScopeAction = (typeof scopeActions)[number];

/**
 * What can be done to a repository: the scope actions, `retag` (moving an existing tag to
 * another manifest, checked when the manifest is pushed; a push that creates a tag or re-pushes
 * the same manifest needs `push` only), and `promote` (copying an image into the repository from
 * another project through POST /api/v1/promotions, with `pull` on the source and `push` here).
 */
export const repositoryActions = [...scopeActions, 'retag', 'promote'] as const;
export type RepositoryAction = (typeof repositoryActions)[number];

/** Project administration. */
export const projectActions = ['project.read', 'project.update', 'project.delete', 'member.manage', 'robot.manage'] as const;
export type ProjectAction = (typeof projectActions)[number];

/**
 * Registry-wide actions. `catalog` is allowed to everyone (the listing is filtered by `pull`);
 * `account.manage` is a user's own password and personal access tokens.
 */
export const systemActions = ['catalog', 'account.manage', 'project.create', 'user.manage', 'system.robot.manage', 'audit.read'] as const;
export type SystemAction = (typeof systemActions)[number];

export type Action = RepositoryAction | ProjectAction | SystemAction;

export const roles = ['reader', 'developer', 'maintainer', 'admin'] as const;
export type Role = (typeof roles)[number];

/** Actions on repositories matching any of the glob patterns (full names, e.g. `team-a/app/**`). */
export interface Grant {
  repositories: string[];
  actions: RepositoryAction[];
}

/** Narrows a user's rights (a personal access token): repository grants, and whether /api/v1 may be used. */
export interface Restriction {
  grants: Grant[];
  management: boolean;
}

/** Which credential proved the identity (for revocation checks, audit and last-used records). */
export type CredentialRef =
  | { kind: 'anonymous' }
  | { kind: 'password' }
  | { kind: 'token'; id: string }
  | { kind: 'robot'; id: string }
  | { kind: 'refresh'; id: string; via: CredentialRef }
  /** An OIDC token from a trusted issuer, accepted by these trust rules (ids). */
  | { kind: 'workload'; rules: string[] }
  /** A browser or CLI login at an OpenID provider (a session, before any personal access token). */
  | { kind: 'oidc'; provider: string }
  /** A local administrator acting through the CLI on the store directly. */
  | { kind: 'system' };

export interface AnonymousIdentity {
  kind: 'anonymous';
}

export interface UserIdentity {
  kind: 'user';
  id: string;
  name: string;
  systemAdmin: boolean;
  canCreateProjects: boolean;
  /** Group names from an identity provider; memberships of these groups apply. */
  groups: string[];
  restriction: Restriction | undefined;
  credential: CredentialRef;
}

export interface RobotIdentity {
  kind: 'robot';
  id: string;
  /** `robot$<name>` (system) or `robot$<project>+<name>` (project). */
  name: string;
  /** Set for project robots: grants outside the project never apply. */
  project: string | undefined;
  grants: Grant[];
  credential: CredentialRef;
}

/**
 * A federated workload (CI job, Kubernetes service account) that presented its own OIDC token
 * (auth/federation/); its grants are those of the trust rules that matched the token, and
 * authorisation treats it like a robot.
 */
export interface WorkloadIdentity {
  kind: 'workload';
  issuer: string;
  subject: string;
  /** e.g. `workload:<issuer>#<subject>` for logs. */
  name: string;
  project: string | undefined;
  grants: Grant[];
  credential: CredentialRef;
  /** Registry tokens issued to it expire by then (ms; the rules' maximum lifetime, the presented token's expiry). */
  expiresAt?: number;
}

export type Identity = AnonymousIdentity | UserIdentity | RobotIdentity | WorkloadIdentity;

export const anonymous: AnonymousIdentity = Object.freeze({ kind: 'anonymous' });

/** The system administrator as which `portcullis admin` commands act. */
export const cliAdministrator: UserIdentity = Object.freeze<UserIdentity>({
  kind: 'user',
  id: 'system',
  name: 'system',
  systemAdmin: true,
  canCreateProjects: true,
  groups: [],
  restriction: undefined,
  credential: { kind: 'system' },
});

/** Name shown in logs and events. */
export function identityName(identity: Identity): string | undefined {
  return identity.kind === 'anonymous' ? undefined : identity.name;
}

/** The `actor` of an event: kind, name and how it authenticated. */
export function actorOf(identity: Identity): { kind: 'anonymous' | 'user' | 'robot' | 'system'; name?: string; auth?: string } {
  switch (identity.kind) {
    case 'anonymous':
      return { kind: 'anonymous' };
    case 'user':
      return identity.credential.kind === 'system' ? { kind: 'system', name: identity.name, auth: 'system' } : { kind: 'user', name: identity.name, auth: identity.credential.kind };
    case 'robot':
    case 'workload':
      return { kind: 'robot', name: identity.name, auth: identity.credential.kind };
  }
}
