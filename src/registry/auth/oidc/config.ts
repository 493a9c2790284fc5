/**
 * The `auth.oidc` section of the configuration (one schema: config/schema.ts embeds it).
 *
 * ```yaml
 * auth:
 *   oidc:
 *     providers:
 *       - name: corp
 *         issuer: https://id.example.com/realms/corp
 *         clientId: portcullis
 *         clientSecretFile: /run/secrets/oidc-client-secret
 *         groupMappings:
 *           - { group: registry-team-a-devs, project: team-a, role: developer }
 *           - { group: "ci-*", project: ci, role: maintainer, repositories: ["ci/images/**"] }
 *         adminGroups: [registry-admins]
 * ```
 */
import { z } from 'zod';
import { roles } from '../identity.ts';
import { patternProblem, patternProject } from '../repository-pattern.ts';
import { isAcceptableProviderUrl } from './provider-client.ts';

export const groupMappingSchema = z.strictObject({
  /** A group name, or a glob over group names (`*` any run of characters, `?` one). */
  group: z.string().min(1).max(256),
  project: z.string().regex(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/, 'a project name (the first component of a repository name)'),
  role: z.enum(roles),
  /** Narrow the role to these repository globs (full names, `team-a/app/**`); default: the whole project. */
  repositories: z.array(z.string().min(1).max(256)).min(1).optional(),
});

export type GroupMapping = z.infer<typeof groupMappingSchema>;

/** Repository patterns of mappings that are malformed or outside their project (for the config and the API). */
export function checkGroupMappings(mappings: readonly GroupMapping[], ctx: z.RefinementCtx, path: PropertyKey[]): void {
  mappings.forEach((mapping, index) => {
    for (const pattern of mapping.repositories ?? []) {
      const problem = patternProblem(pattern) ?? (patternProject(pattern) === mapping.project ? undefined : `repository pattern ${pattern} is outside project ${mapping.project}`);
      if (problem) ctx.addIssue({ code: 'custom', path: [...path, index, 'repositories'], message: problem });
    }
  });
}

export const oidcProviderSchema = z
  .strictObject({
    /** Short name used in URLs and by `portcullis login --oidc --provider NAME`. */
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes'),
    displayName: z.string().min(1).max(100).optional(),
    /** Issuer identifier; the discovery document is read from `<issuer>/.well-known/openid-configuration`. https, or http on loopback. */
    issuer: z.string().refine(isAcceptableProviderUrl, 'an https URL (http only on a loopback host)'),
    clientId: z.string().min(1).max(512),
    /** Confidential client. Omit both for a public client (PKCE only). */
    clientSecret: z.string().min(1).optional(),
    clientSecretFile: z.string().min(1).optional(),
    tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default(['openid', 'profile', 'email', 'offline_access', 'groups']),
    /** Claim whose value becomes the user name (must fit the user name rules); `sub` works everywhere. */
    usernameClaim: z.string().min(1).default('preferred_username'),
    /** Prepended to the claim value, to keep providers' users apart (e.g. `corp-`). */
    usernamePrefix: z.string().max(32).default(''),
    /** Claim holding the group list (an array of strings, or one string). */
    groupsClaim: z.string().min(1).default('groups'),
    groupMappings: z.array(groupMappingSchema).default([]),
    /** Members of any of these groups are system administrators (checked at every token issuance). */
    adminGroups: z.array(z.string().min(1)).default([]),
    /** Create unknown users at their first login; otherwise only users an administrator created (source oidc) may log in. */
    autoOnboard: z.boolean().default(true),
    /** Refuse users in no mapped group (groupMappings or adminGroups). */
    requireMappedGroup: z.boolean().default(false),
    /** Only these e-mail domains (of a verified `email` claim) may log in; empty: any. */
    allowedEmailDomains: z.array(z.string().min(1)).default([]),
    /** Group membership is re-read from the provider (refresh grant) at a token issuance at most this often per user. */
    groupsCacheSeconds: z.number().int().min(0).max(3600).default(60),
    /** Timeout of calls to the provider. */
    timeoutSeconds: z.number().int().min(1).max(60).default(10),
  })
  .superRefine((provider, ctx) => {
    if (provider.clientSecret !== undefined && provider.clientSecretFile !== undefined) ctx.addIssue({ code: 'custom', path: ['clientSecretFile'], message: 'give clientSecret or clientSecretFile, not both' });
    const confidential = provider.clientSecret !== undefined || provider.clientSecretFile !== undefined;
    if (!confidential && provider.tokenEndpointAuthMethod !== undefined && provider.tokenEndpointAuthMethod !== 'none') ctx.addIssue({ code: 'custom', path: ['tokenEndpointAuthMethod'], message: `${provider.tokenEndpointAuthMethod} needs clientSecret or clientSecretFile` });
    checkGroupMappings(provider.groupMappings, ctx, ['groupMappings']);
    if (!provider.scopes.includes('openid')) ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'scopes must include openid' });
    if (provider.requireMappedGroup && provider.groupMappings.length === 0 && provider.adminGroups.length === 0) ctx.addIssue({ code: 'custom', path: ['requireMappedGroup'], message: 'requireMappedGroup without groupMappings or adminGroups would refuse everyone' });
  });

export const oidcSchema = z
  .strictObject({
    providers: z.array(oidcProviderSchema).default([]),
    /** Public base URL of the registry (`https://registry.example.com`), for the redirect URI `<base>/auth/oidc/callback`; default: the scheme and host of the request. */
    publicUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Browser sessions after a login (to create personal access tokens) last this long. */
    sessionMinutes: z.number().int().min(1).max(1440).default(30),
    /** Personal access tokens issued by `portcullis login --oidc` live this long (at most auth.personalTokens.maxLifetimeDays). */
    cliTokenDays: z.number().int().min(1).max(3650).default(30),
    /** Key (32+ characters) encrypting the providers' refresh tokens at rest; default: derived from the provider's client secret. */
    tokenEncryptionKey: z.string().min(32).optional(),
  })
  .superRefine((oidc, ctx) => {
    const seen = new Set<string>();
    oidc.providers.forEach((provider, index) => {
      if (seen.has(provider.name)) ctx.addIssue({ code: 'custom', path: ['providers', index, 'name'], message: `provider name ${provider.name} is used twice` });
      seen.add(provider.name);
    });
  });

export type OidcConfig = z.infer<typeof oidcSchema>;
export type OidcProviderConfig = z.infer<typeof oidcProviderSchema>;
