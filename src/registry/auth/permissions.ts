/**
 * Authorisation: the one place that decides whether an identity may perform an action.
 * Everything else (token issuance, direct Basic auth on /v2/, the catalog filter, the management
 * API, the CLI) asks {@link authorize}; nothing else reads roles or grants.
 *
 * Permissions are data: {@link rolePermissions} maps each project role to its actions.
 */
import { projectOf } from '../../oci/reference.ts';
import {
  type Action,
  type Grant,
  type Identity,
  type ProjectAction,
  type RepositoryAction,
  type Role,
  type ScopeAction,
  repositoryActions,
  scopeActions,
} from './identity.ts';
import { matchesAny } from './repository-pattern.ts';

/** Project roles -> the actions they allow (on the project's repositories and on the project). */
export const rolePermissions: Readonly<Record<Role, readonly (RepositoryAction | ProjectAction)[]>> = {
  reader: ['pull', 'project.read'],
  developer: ['pull', 'push', 'project.read'],
  maintainer: ['pull', 'push', 'delete', 'retag', 'promote', 'project.read'],
  admin: ['pull', 'push', 'delete', 'retag', 'promote', 'project.read', 'project.update', 'project.delete', 'member.manage', 'robot.manage'],
};

/** What everyone (anonymous included) may do in a public project. */
export const publicPermissions: readonly Action[] = ['pull', 'project.read'];

export type Visibility = 'private' | 'public';

/** A role held by the identity (directly or through a group) in one project. */
export interface RoleGrant {
  role: Role;
  /** Repository patterns narrowing the grant; undefined = the whole project. */
  repositories: string[] | undefined;
}

/** What authorisation needs to know about the project in question. */
export interface ProjectFacts {
  name: string;
  visibility: Visibility;
  /** The identity's role grants in this project (already filtered to the identity and its groups). */
  roles: RoleGrant[];
}

export type Resource =
  | { kind: 'repository'; name: string }
  | { kind: 'project'; name: string }
  | { kind: 'system' };

const repositoryActionSet = new Set<Action>(repositoryActions);

function isRepositoryAction(action: Action): action is RepositoryAction {
  return repositoryActionSet.has(action);
}

function grantsAllow(grants: readonly Grant[], action: RepositoryAction, repository: string): boolean {
  return grants.some((grant) => grant.actions.includes(action) && matchesAny(grant.repositories, repository));
}

/**
 * Decides. `project` describes the project of the resource (undefined when it does not exist:
 * nothing can be done in a project that does not exist, not even by a system administrator;
 * creating it is `project.create` on the system).
 *
 * Rules, in order:
 * 1. system actions: `catalog` for everyone (the listing is filtered by `pull`); `account.manage`
 *    (one's own password and tokens) for users; `project.create`
 *    for system administrators and users allowed to create projects; the rest for system
 *    administrators only;
 * 2. public projects: `pull` and `project.read` for everyone, robots and restricted tokens too
 *    (anonymous may do it anyway, and clients send their credentials for every pull);
 * 3. robots and workloads: exactly their grants (repository actions only; a project robot's
 *    grants never reach outside its project);
 * 4. users: system administrators may do everything; others what their role grants in the
 *    project allow (a grant narrowed by patterns allows repository actions on matching
 *    repositories and `project.read`, never project-wide administration);
 * 5. a restricted user (personal access token) additionally needs the restriction to cover a
 *    repository action, and `management` for any other action.
 */
export function authorize(identity: Identity, action: Action, resource: Resource, project: ProjectFacts | undefined): boolean {
  if (resource.kind === 'system') {
    if (action === 'catalog') return true;
    if (identity.kind !== 'user' || (identity.restriction && !identity.restriction.management)) return false;
    if (action === 'account.manage') return true;
    if (action === 'project.create') return identity.systemAdmin || identity.canCreateProjects;
    return identity.systemAdmin && (action === 'user.manage' || action === 'system.robot.manage' || action === 'audit.read');
  }
  const projectName = resource.kind === 'project' ? resource.name : projectOf(resource.name);
  if (!project || project.name !== projectName) return false;
  const onRepository = resource.kind === 'repository';
  if (onRepository !== isRepositoryAction(action)) return false;
  if (project.visibility === 'public' && publicPermissions.includes(action)) return true;

  switch (identity.kind) {
    case 'anonymous':
      return false;
    case 'robot':
    case 'workload':
      if (!onRepository || !isRepositoryAction(action)) return false;
      if (identity.project !== undefined && identity.project !== projectName) return false;
      return grantsAllow(identity.grants, action, resource.name);
    case 'user': {
      const restriction = identity.restriction;
      if (restriction) {
        if (isRepositoryAction(action) ? !onRepository || !grantsAllow(restriction.grants, action, resource.name) : !restriction.management) return false;
      }
      if (identity.systemAdmin) return true;
      return project.roles.some((grant) => {
        if (!rolePermissions[grant.role].includes(action as RepositoryAction | ProjectAction)) return false;
        if (grant.repositories === undefined) return true;
        if (action === 'project.read') return true;
        return onRepository && matchesAny(grant.repositories, resource.name);
      });
    }
  }
}

/** The Docker scope actions `identity` may perform on `repository` (for token issuance). */
export function allowedScopeActions(identity: Identity, repository: string, project: ProjectFacts | undefined): ScopeAction[] {
  return scopeActions.filter((action) => authorize(identity, action, { kind: 'repository', name: repository }, project));
}
