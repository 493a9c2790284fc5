/**
 * `portcullis admin project networks PROJECT ...`: a project's IP allow/deny lists on the stores
 * directly, through the same administration (validation) as /api/v1. Running servers apply the
 * change within auth.projectNetworksRefreshSeconds.
 */
import type { AccessService } from '../registry/auth/access-service.ts';
import type { EventBus } from '../registry/events/bus.ts';
import { cliAdministrator } from '../registry/auth/identity.ts';
import { ProjectNetworkAdministration, type ProjectNetworksView } from '../registry/auth/networks/project-networks.ts';
import type { ProjectNetworkStore } from '../registry/auth/networks/store.ts';
import { RegistryError } from '../oci/errors.ts';

export const networksUsage = `  portcullis admin project networks PROJECT [--allow CIDR]... [--deny CIDR]... [--clear]
      Shows the project's IP lists; with --allow/--deny replaces both lists (a list not given
      becomes empty), --clear removes them. Deny wins; an empty allow list means any address.`;

export const networksOptions = {
  allow: { type: 'string', multiple: true },
  deny: { type: 'string', multiple: true },
  clear: { type: 'boolean' },
} as const;

function print(view: ProjectNetworksView): void {
  console.log(`project ${view.project}`);
  console.log(`allow: ${view.allow.length > 0 ? view.allow.join(' ') : '(any address)'}`);
  console.log(`deny: ${view.deny.length > 0 ? view.deny.join(' ') : '(none)'}`);
}

export async function networksCommand(project: string | undefined, values: { allow?: string[]; deny?: string[]; clear?: boolean }, deps: { access: AccessService; store: ProjectNetworkStore | undefined; events?: EventBus }): Promise<number> {
  if (!project) throw new RegistryError('INVALID_REQUEST', 'missing PROJECT');
  if (!deps.store) throw new RegistryError('INVALID_REQUEST', 'this storage has no project IP lists');
  const admin = new ProjectNetworkAdministration({ access: deps.access, store: deps.store, events: deps.events });
  const changing = values.allow !== undefined || values.deny !== undefined;
  if (values.clear && changing) throw new RegistryError('INVALID_REQUEST', 'give either --clear or --allow/--deny');
  if (values.clear || changing) print(await admin.put(cliAdministrator, project, { allow: values.allow ?? [], deny: values.deny ?? [] }));
  else print(await admin.get(cliAdministrator, project));
  return 0;
}
