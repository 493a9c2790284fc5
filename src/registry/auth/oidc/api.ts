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
 * - `GET`/`PUT`/`DELETE /oidc/providers/{provider}/settings` (system administrators): the group
 *   mappings, admin groups and onboarding switch in force, set through the API over the
 *   configuration file (oidc/settings.ts). Client secrets are configuration-only: the body
 *   refuses them, the answers never carry them.
 */
import { z } from 'zod';
import { RegistryError } from '../../../oci/errors.ts';
import type { ApiRoute, Context } from '../../api/management-api.ts';
import type { EventBus } from '../../events/bus.ts';
import type { AccessService } from '../access-service.ts';
import { roles } from '../identity.ts';
import { checkGroupMappings, groupMappingSchema } from './config.ts';
import type { OidcService } from './service.ts';
import { overridableFields, settingsProblem } from './settings.ts';
import type { OidcSettingsOverrides } from './store.ts';

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

const settingsShape = {
  groupMappings: z.array(mappingSchema),
  adminGroups: z.array(z.string()),
  autoOnboard: z.boolean(),
};

export const oidcSettingsSchema = z
  .strictObject({
    provider: z.string(),
    ...settingsShape,
    overridden: z.array(z.enum(overridableFields)).describe('The fields set through the API; the others are the configuration file\'s.'),
    defaults: z.strictObject(settingsShape).describe('The configuration file\'s values (in force for every field not overridden).'),
    updatedBy: z.string().optional(),
    updatedAt: z.iso.datetime().optional(),
  })
  .meta({ id: 'OidcSettings' });

const secretsRefused = 'only groupMappings, adminGroups and autoOnboard can be set through the API (issuer, client id and client secret are configuration-only)';

export const putOidcSettingsSchema = z
  .strictObject(
    {
      groupMappings: z.array(groupMappingSchema).max(1000).optional().describe('Group name or glob (* ?) -> project role, optionally narrowed to repository patterns of that project. Omitted: the configuration file\'s.'),
      adminGroups: z.array(z.string().min(1).max(256)).max(100).optional().describe('Members are system administrators (checked at every token issuance). Omitted: the configuration file\'s.'),
      autoOnboard: z.boolean().optional().describe('Create unknown users at their first login. Omitted: the configuration file\'s.'),
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? `${secretsRefused}; not ${issue.keys.join(', ')}` : undefined) },
  )
  .superRefine((body, ctx) => checkGroupMappings(body.groupMappings ?? [], ctx, ['groupMappings']));

const denied = () => new RegistryError('DENIED', 'requested access to the resource is denied');

export function oidcApi(deps: { oidc: OidcService; access: AccessService; events?: EventBus }): ApiRoute[] {
  const { oidc, access } = deps;
  const requireManager = async (c: Context) => {
    if (!(await access.can(c.actor, 'user.manage', { kind: 'system' }))) throw denied();
  };
  const requireSystemAdmin = requireManager;
  const providerNamed = (name: string) => {
    const provider = oidc.provider(name);
    if (!provider) throw new RegistryError('NOT_FOUND', `no identity provider ${name} is configured`);
    return provider;
  };
  const settingsView = (name: string) => {
    const { config, file } = providerNamed(name);
    const record = oidc.settings.get(name);
    const pick = (from: typeof config) => ({ groupMappings: from.groupMappings, adminGroups: from.adminGroups, autoOnboard: from.autoOnboard });
    return {
      provider: name,
      ...pick(config),
      overridden: overridableFields.filter((field) => record?.overrides[field] !== undefined),
      defaults: pick(file),
      ...(record?.updatedBy ? { updatedBy: record.updatedBy } : {}),
      ...(record ? { updatedAt: record.updatedAt.toISOString() } : {}),
    };
  };
  const userNamed = async (name: string) => {
    const user = await access.store.getUserByName(name);
    if (!user) throw new RegistryError('NOT_FOUND', 'user not found');
    return user;
  };
  const settingsPath = '/oidc/providers/{provider}/settings';
  return [
    {
      method: 'GET',
      path: settingsPath,
      tag: 'oidc',
      summary: "The provider's group mappings, admin groups and onboarding switch in force, and the configuration file's defaults (system administrators)",
      status: 200,
      response: oidcSettingsSchema,
      handler: async (c) => {
        await requireSystemAdmin(c);
        await oidc.settings.fresh();
        return settingsView(c.params.provider!);
      },
    },
    {
      method: 'PUT',
      path: settingsPath,
      tag: 'oidc',
      summary: "Override the provider's group mappings, admin groups or onboarding switch (omitted fields: the configuration file's); applies at the next authentication, on other replicas within auth.revalidateSeconds (system administrators)",
      body: putOidcSettingsSchema,
      status: 200,
      response: oidcSettingsSchema,
      handler: async (c) => {
        await requireSystemAdmin(c);
        const provider = providerNamed(c.params.provider!);
        const body = c.body as OidcSettingsOverrides;
        const overrides: OidcSettingsOverrides = {};
        for (const field of overridableFields) if (body[field] !== undefined) Object.assign(overrides, { [field]: body[field] });
        const problem = settingsProblem({ ...provider.file, ...overrides });
        if (problem) throw new RegistryError('INVALID_REQUEST', problem);
        const empty = Object.keys(overrides).length === 0;
        await oidc.settings.put(provider.file.name, empty ? undefined : overrides, c.actor.kind === 'anonymous' ? undefined : c.actor.name);
        access.invalidate();
        deps.events?.publish({ type: 'access.changed', at: new Date(), origin: c.origin, change: 'oidc.settings.updated', target: { kind: 'oidc-provider', name: provider.file.name }, detail: { overridden: Object.keys(overrides), ...overrides } });
        return settingsView(provider.file.name);
      },
    },
    {
      method: 'DELETE',
      path: settingsPath,
      tag: 'oidc',
      summary: "Drop the settings made through the API: the configuration file's values apply again (system administrators)",
      status: 204,
      handler: async (c) => {
        await requireSystemAdmin(c);
        const provider = providerNamed(c.params.provider!);
        await oidc.settings.put(provider.file.name, undefined, undefined);
        access.invalidate();
        deps.events?.publish({ type: 'access.changed', at: new Date(), origin: c.origin, change: 'oidc.settings.updated', target: { kind: 'oidc-provider', name: provider.file.name }, detail: { overridden: [], reset: true } });
        return undefined;
      },
    },
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
