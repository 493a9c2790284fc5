/**
 * `portcullis admin` commands that manage what exists (the rest of the /api/v1 operations, for
 * automation): disabling and deleting users, changing and deleting projects, listing and removing
 * role grants, listing and deleting robots, listing and revoking personal access tokens. Same
 * validation as the API; they run as the system administrator on the stores directly.
 */
import { RegistryError } from '../oci/errors.ts';
import type { Administration } from '../registry/auth/administration.ts';
import { cliAdministrator } from '../registry/auth/identity.ts';

export const manageUsage = `  portcullis admin user disable|enable|delete NAME
  portcullis admin project update NAME (--public | --private)
  portcullis admin project delete NAME          (its repositories must be deleted first)
  portcullis admin member list PROJECT
  portcullis admin member remove PROJECT ID
  portcullis admin robot list [--project PROJECT]
  portcullis admin robot delete ID [--project PROJECT]
  portcullis admin token list USER
  portcullis admin token revoke USER ID
      (personal access tokens are created by their owners, through /api/v1 or portcullis login)`;

export const manageOptions = { private: { type: 'boolean' } } as const;

const need = (value: string | undefined, what: string): string => {
  if (!value) throw new RegistryError('INVALID_REQUEST', `missing ${what}`);
  return value;
};

/** Runs the command if it is one of these; undefined when it is not. */
export async function manageCommand(command: string, args: { name: string | undefined; extra: string | undefined }, values: { public?: boolean; private?: boolean; project?: string }, admin: Administration): Promise<number | undefined> {
  const actor = cliAdministrator;
  const { name, extra } = args;
  switch (command) {
    case 'user disable':
    case 'user enable': {
      const user = await admin.updateUser(actor, need(name, 'NAME'), { disabled: command === 'user disable' });
      console.log(`user ${user.name} is ${user.disabled ? 'disabled' : 'enabled'}`);
      return 0;
    }
    case 'user delete':
      await admin.deleteUser(actor, need(name, 'NAME'));
      console.log(`deleted user ${name}`);
      return 0;
    case 'project update': {
      if (values.public === values.private) throw new RegistryError('INVALID_REQUEST', 'give one of --public and --private');
      const project = await admin.updateProject(actor, need(name, 'NAME'), { visibility: values.public ? 'public' : 'private' });
      console.log(`project ${project.name} is ${project.visibility}`);
      return 0;
    }
    case 'project delete':
      await admin.deleteProject(actor, need(name, 'NAME'));
      console.log(`deleted project ${name}`);
      return 0;
    case 'member list':
      for (const member of await admin.listMembers(actor, need(name, 'PROJECT'))) {
        console.log(`${member.id} ${member.kind} ${member.name} ${member.role}${member.repositories ? ` (${member.repositories.join(', ')})` : ''}`);
      }
      return 0;
    case 'member remove':
      await admin.removeMember(actor, need(name, 'PROJECT'), need(extra, 'ID'));
      console.log(`removed role grant ${extra} from ${name}`);
      return 0;
    case 'robot list':
      for (const robot of await admin.listRobots(actor, values.project)) {
        console.log(`${robot.id} ${robot.name} expires ${robot.expiresAt}${robot.revokedAt ? ' [revoked]' : ''}${robot.lastUsedAt ? ` last used ${robot.lastUsedAt} from ${robot.lastUsedFrom ?? '?'}` : ''}`);
      }
      return 0;
    case 'robot delete':
      await admin.deleteRobot(actor, need(name, 'ID'), values.project);
      console.log(`deleted robot ${name}`);
      return 0;
    case 'token list':
      for (const token of await admin.listTokens(actor, need(name, 'USER'))) {
        console.log(`${token.id} ${token.name} expires ${token.expiresAt}${token.revokedAt ? ' [revoked]' : ''}${token.management ? ' [management]' : ''}`);
      }
      return 0;
    case 'token revoke': {
      const token = await admin.revokeToken(actor, need(name, 'USER'), need(extra, 'ID'));
      console.log(`revoked token ${token.name} of ${name}`);
      return 0;
    }
  }
  return undefined;
}
