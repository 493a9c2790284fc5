/**
 * `portcullis admin ...`: identity and access administration straight on the stores, as the
 * system administrator (for bootstrapping and automation; the same operations as /api/v1, with
 * the same validation and events). Secrets are printed once, to stdout. Every change is audited
 * (actor `cli:<os user>`, admin-audit.ts).
 */
import { parseArgs } from 'node:util';
import { AccessService } from '../registry/auth/access-service.ts';
import { Administration } from '../registry/auth/administration.ts';
import { type Grant, type RepositoryAction, type Role, cliAdministrator } from '../registry/auth/identity.ts';
import { openStores } from '../registry/app/build-app.ts';
import { ConfigError, loadConfig } from '../registry/config/load.ts';
import { randomPassword } from '../registry/auth/secrets.ts';
import { RegistryError } from '../oci/errors.ts';
import { federationCommand, federationOptions, federationUsage } from './admin-federation.ts';
import { networksCommand, networksOptions, networksUsage } from './admin-networks.ts';
import { manageCommand, manageOptions, manageUsage } from './admin-manage.ts';
import { type CliAudit, openCliAudit } from './admin-audit.ts';

export const adminUsage = `portcullis admin - identity and access administration (runs on the stores directly)

Usage:
  portcullis admin user create NAME [--password-stdin | --oidc] [--system-admin] [--can-create-projects] [--email ADDR]
      Without --password-stdin a random password is generated and printed once; --oidc: a user
      without password who logs in through an OpenID provider (linked at the first login).
  portcullis admin user set-password NAME --password-stdin
  portcullis admin user list
  portcullis admin project create NAME [--public]
  portcullis admin project list
${networksUsage}
  portcullis admin member add PROJECT (--user NAME | --group NAME) --role reader|developer|maintainer|admin [--repository GLOB]...
  portcullis admin robot create NAME [--project PROJECT] --grant ACTIONS=GLOB[,GLOB...]... --expires-in-days N [--description TEXT]
      ACTIONS: pull, push, delete, retag; e.g. --grant pull,push=team-a/app/** ; prints the
      robot's user name and its secret once.
  portcullis admin robot revoke ID [--project PROJECT]
${manageUsage}
${federationUsage}
Common options: --config FILE, --data-dir DIR`;

const options = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  'password-stdin': { type: 'boolean' },
  oidc: { type: 'boolean' },
  'system-admin': { type: 'boolean' },
  'can-create-projects': { type: 'boolean' },
  email: { type: 'string' },
  public: { type: 'boolean' },
  user: { type: 'string' },
  group: { type: 'string' },
  role: { type: 'string' },
  repository: { type: 'string', multiple: true },
  project: { type: 'string' },
  grant: { type: 'string', multiple: true },
  'expires-in-days': { type: 'string' },
  description: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...federationOptions,
  ...networksOptions,
  ...manageOptions,
} as const;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** `pull,push=team-a/**,team-b/x` -> a grant. */
export function parseGrant(text: string): Grant {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new RegistryError('INVALID_REQUEST', `--grant ${JSON.stringify(text)}: expected ACTIONS=GLOB[,GLOB...]`);
  return { actions: text.slice(0, eq).split(',') as RepositoryAction[], repositories: text.slice(eq + 1).split(',') };
}

/** Runs `portcullis admin ...`; returns the exit code. */
export async function adminMain(argv: string[]): Promise<number> {
  const opened: { audit?: CliAudit } = {};
  let code = await adminCommand(argv, opened);
  // The change is made; a record that could not be written fails the command (exit 1).
  const problem = await opened.audit?.close();
  if (problem) {
    console.error(`portcullis admin: ${problem}`);
    code = 1;
  }
  return code;
}

async function adminCommand(argv: string[], opened: { audit?: CliAudit }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${adminUsage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [noun, verb, name] = positionals;
  if (values.help || !noun) {
    console.log(adminUsage);
    return values.help ? 0 : 2;
  }
  let config;
  try {
    const overrides = values['data-dir'] ? [{ path: ['storage', 'dataDir'], value: values['data-dir'] }] : [];
    config = await loadConfig({ file: values.config, overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  const stores = await openStores(config);
  try {
    const { events } = (opened.audit = await openCliAudit(config));
    const a = config.auth;
    const access = new AccessService(
      { store: stores.access! },
      { passwordPolicy: a.passwords, credentialCacheMs: 0, revalidateMs: 1000, refreshTokenTtlMs: a.registryTokens.refreshTtlDays * 86_400_000, autoCreateProjects: false },
    );
    const admin = new Administration({ access, meta: stores.meta, events }, { robotMaxLifetimeDays: a.robots.maxLifetimeDays, tokenMaxLifetimeDays: a.personalTokens.maxLifetimeDays });
    const actor = cliAdministrator;
    const need = (value: string | undefined, what: string): string => {
      if (!value) throw new RegistryError('INVALID_REQUEST', `missing ${what}`);
      return value;
    };
    switch (`${noun} ${verb ?? ''}`) {
      case 'user create': {
        if (values.oidc && values['password-stdin']) throw new RegistryError('INVALID_REQUEST', '--oidc users have no password: leave out --password-stdin');
        const generated = values['password-stdin'] || values.oidc ? undefined : randomPassword();
        const password = values.oidc ? undefined : (generated ?? (await readStdin()));
        const user = await admin.createUser(actor, { name: need(name, 'NAME'), password, systemAdmin: values['system-admin'] ?? false, canCreateProjects: values['can-create-projects'] ?? false, email: values.email, ...(values.oidc ? { source: 'oidc' as const } : {}) });
        console.log(`created user ${user.name}${user.systemAdmin ? ' (system administrator)' : ''}`);
        if (generated) console.log(`password: ${generated}\n(shown only this once)`);
        return 0;
      }
      case 'user set-password': {
        if (!values['password-stdin']) throw new RegistryError('INVALID_REQUEST', 'give the new password on stdin with --password-stdin');
        await admin.updateUser(actor, need(name, 'NAME'), { password: await readStdin() });
        console.log(`password of ${name} changed`);
        return 0;
      }
      case 'user list':
        for (const user of await admin.listUsers(actor)) console.log(`${user.name}${user.systemAdmin ? ' [system admin]' : ''}${user.disabled ? ' [disabled]' : ''}`);
        return 0;
      case 'project create': {
        const project = await admin.createProject(actor, { name: need(name, 'NAME'), visibility: values.public ? 'public' : 'private' });
        console.log(`created ${project.visibility} project ${project.name}`);
        return 0;
      }
      case 'project list':
        for (const project of await admin.listProjects(actor)) console.log(`${project.name} (${project.visibility})`);
        return 0;
      case 'project networks':
        return await networksCommand(name, values, { access, store: stores.projectNetworks, events });
      case 'member add': {
        const member = await admin.addMember(actor, need(name, 'PROJECT'), { user: values.user, group: values.group, role: need(values.role, '--role') as Role, repositories: values.repository });
        console.log(`${member.kind} ${member.name} is ${member.role} in ${name}${member.repositories ? ` (${member.repositories.join(', ')})` : ''}`);
        return 0;
      }
      case 'robot create': {
        const grants = (values.grant ?? []).map(parseGrant);
        const days = Number(need(values['expires-in-days'], '--expires-in-days (robots must expire)'));
        const { robot, secret } = await admin.createRobot(actor, { project: values.project, name: need(name, 'NAME'), description: values.description, grants, expiresInDays: days });
        console.log(`created robot ${robot.name} (id ${robot.id}), expires ${robot.expiresAt}`);
        console.log(`user name: ${robot.name}\nsecret: ${secret}\n(shown only this once)`);
        return 0;
      }
      case 'robot revoke': {
        const robot = await admin.revokeRobot(actor, need(name, 'ID'), values.project);
        console.log(`revoked robot ${robot.name}`);
        return 0;
      }
    }
    const managed = await manageCommand(`${noun} ${verb ?? ''}`, { name, extra: positionals[3] }, values, admin);
    if (managed !== undefined) return managed;
    const federation = await federationCommand(`${noun} ${verb ?? ''}`, name, values, { access, store: stores.federation, config, grants: (values.grant ?? []).map(parseGrant), events });
    if (federation !== undefined) return federation;
    console.error(`unknown command ${JSON.stringify(`admin ${positionals.join(' ')}`)}\n\n${adminUsage}`);
    return 2;
  } catch (error) {
    if (error instanceof RegistryError) {
      console.error(`portcullis admin: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await stores.close();
  }
}
