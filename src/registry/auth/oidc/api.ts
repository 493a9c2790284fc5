/**
 * /api/v1 routes of OIDC login, added to the management API (api/management-api.ts) with their
 * OpenAPI entries:
 *
 * - `GET /oidc/providers` (user.manage): the configured providers and their mappings, whether
 *   their discovery document loads and offers the device flow. Never a secret.
 * - `GET /users/{user}/oidc` (the user, or user.manage): the provider accounts linked to a user,
 *   their last groups and when they were checked.
 * - `DELETE /users/{user}/oidc/{provider}` (user.manage): unlinks (the user must log in again;
 *   token issuance is denied until then, since nothing vouches for their groups).
 */
import { z } from 'zod';
import { RegistryError } from '../../../oci/errors.ts';
import type { ApiRoute, Context } from '../../api/management-api.ts';
import type { EventBus } from '../../events/bus.ts';
import type { AccessService } from '../access-service.ts';
import { roles } from '../identity.ts';
import type { OidcService } from './service.ts';

const mappingSchema = z.strictObject({ group: z.string(), project: z.string(), role: z.enum(roles), repositories: z.array(z.string()).optional() });

export const oidcProviderViewSchema = z
  .strictObject({
    name: z.string(),
    displayName: z.string(),
    issuer: z.string(),
    clientId: z.string(),
    confidential: z.boolean().describe('A client secret is configured (it is never shown).'),
    scopes: z.array(z.string()),
    usernameClaim: z.string(),
    groupsClaim: z.string(),
    groupMappings: z.array(mappingSchema),
    adminGroups: z.array(z.string()),
    autoOnboard: z.boolean(),
    requireMappedGroup: z.boolean(),
    allowedEmailDomains: z.array(z.string()),
    groupsCacheSeconds: z.number().int(),
    discovery: z.strictObject({ ok: z.boolean(), deviceFlow: z.boolean().optional(), error: z.string().optional() }),
  })
  .meta({ id: 'OidcProvider' });

export const oidcLinkSchema = z
  .strictObject({
    provider: z.string(),
    subject: z.string(),
    groups: z.array(z.string()),
    checkedAt: z.iso.datetime().describe('When the provider last vouched for these groups.'),
    refreshable: z.boolean().describe('A provider refresh token is held (otherwise token issuance is denied until the next login).'),
  })
  .meta({ id: 'OidcLink' });

const denied = () => new RegistryError('DENIED', 'requested access to the resource is denied');

export function oidcApi(deps: { oidc: OidcService; access: AccessService; events?: EventBus }): ApiRoute[] {
  const { oidc, access } = deps;
  const requireManager = async (c: Context) => {
    if (!(await access.can(c.actor, 'user.manage', { kind: 'system' }))) throw denied();
  };
  const userNamed = async (name: string) => {
    const user = await access.store.getUserByName(name);
    if (!user) throw new RegistryError('NOT_FOUND', 'user not found');
    return user;
  };
  return [
    {
      method: 'GET',
      path: '/oidc/providers',
      tag: 'oidc',
      summary: 'Configured OpenID providers, their mappings and discovery status (user.manage)',
      status: 200,
      response: z.array(oidcProviderViewSchema),
      handler: async (c) => {
        await requireManager(c);
        return Promise.all(
          [...oidc.providers.values()].map(async ({ config, client }) => {
            let discovery: { ok: boolean; deviceFlow?: boolean; error?: string };
            try {
              const metadata = await client.metadata();
              discovery = { ok: true, deviceFlow: metadata.device_authorization_endpoint !== undefined };
            } catch (error) {
              discovery = { ok: false, error: (error as Error).message };
            }
            return {
              name: config.name,
              displayName: config.displayName ?? config.name,
              issuer: config.issuer,
              clientId: config.clientId,
              confidential: config.clientSecret !== undefined || config.clientSecretFile !== undefined,
              scopes: config.scopes,
              usernameClaim: config.usernameClaim,
              groupsClaim: config.groupsClaim,
              groupMappings: config.groupMappings,
              adminGroups: config.adminGroups,
              autoOnboard: config.autoOnboard,
              requireMappedGroup: config.requireMappedGroup,
              allowedEmailDomains: config.allowedEmailDomains,
              groupsCacheSeconds: config.groupsCacheSeconds,
              discovery,
            };
          }),
        );
      },
    },
    {
      method: 'GET',
      path: '/users/{user}/oidc',
      tag: 'oidc',
      summary: "A user's linked OpenID provider accounts and last known groups (the user, or user.manage)",
      status: 200,
      response: z.array(oidcLinkSchema),
      handler: async (c) => {
        const self = c.actor.kind === 'user' && c.actor.name === c.params.user && c.actor.credential.kind !== 'system';
        if (!self) await requireManager(c);
        const user = await userNamed(c.params.user!);
        return (await oidc.store.identitiesOfUser(user.id)).map((link) => ({ provider: link.provider, subject: link.subject, groups: link.groups, checkedAt: link.checkedAt.toISOString(), refreshable: link.refreshToken !== undefined }));
      },
    },
    {
      method: 'DELETE',
      path: '/users/{user}/oidc/{provider}',
      tag: 'oidc',
      summary: 'Unlink a provider account: the user must log in again before tokens are issued (user.manage)',
      status: 204,
      handler: async (c) => {
        await requireManager(c);
        const user = await userNamed(c.params.user!);
        if (!(await oidc.store.deleteIdentities(user.id, c.params.provider!))) throw new RegistryError('NOT_FOUND', 'no such linked provider account');
        access.invalidate();
        deps.events?.publish({ type: 'access.changed', at: new Date(), origin: c.origin, change: 'user.updated', target: { kind: 'user', name: user.name }, detail: { changed: ['oidc'], unlinked: c.params.provider } });
        return undefined;
      },
    },
  ];
}
