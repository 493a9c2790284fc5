/**
 * `auth.federation`: workload identity federation (docs/auth.md). Issuers are configured here
 * (only these may be named by trust rules, so a project admin cannot make the registry fetch an
 * arbitrary URL); rules come from the API per project, or from this file for the whole registry.
 */
import { z } from 'zod';
import { repositoryActions } from '../identity.ts';
import { isAcceptableProviderUrl } from '../oidc/provider-client.ts';
import { patternProblem, patternProject } from '../repository-pattern.ts';
import { subjectPatternProblem } from './trust-rules.ts';

const issuerUrl = z.string().refine(isAcceptableProviderUrl, 'expected an https URL (http only on loopback)');

export const claimConditionsSchema = z
  .record(z.string().min(1).max(200), z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(50)]))
  .refine((claims) => Object.keys(claims).length <= 20, 'at most 20 claim conditions')
  .refine((claims) => !Object.keys(claims).some((name) => ['iss', 'aud', 'sub', 'exp', 'nbf', 'iat'].includes(name)), 'iss, aud and sub have their own fields (issuer, audience, subject); exp, nbf and iat are checked always');

const configuredRuleSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
    /** Confine the grants to one project (optional for rules from the configuration file). */
    project: z.string().min(1).optional(),
    issuer: issuerUrl,
    audience: z.string().min(1).max(512),
    subject: z.string().superRefine((value, ctx) => {
      const problem = subjectPatternProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    claims: claimConditionsSchema.default({}),
    grants: z
      .array(
        z.strictObject({
          repositories: z.array(z.string().superRefine((value, ctx) => {
            const problem = patternProblem(value);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          })).min(1),
          actions: z.array(z.enum(repositoryActions)).min(1),
        }),
      )
      .min(1),
    maxLifetimeSeconds: z.number().int().min(60).max(3600).default(300),
    singleUse: z.boolean().default(false),
  })
  .superRefine((rule, ctx) => {
    if (rule.project === undefined) return;
    for (const grant of rule.grants) for (const pattern of grant.repositories) if (patternProject(pattern) !== rule.project) ctx.addIssue({ code: 'custom', path: ['grants'], message: `repository pattern ${pattern} is outside project ${rule.project}` });
  });

export const federationSchema = z
  .strictObject({
    /** User names whose password is a workload's OIDC token (`podman login -u oidc -p "$TOKEN"`); no local user can have them. */
    usernames: z.array(z.string().min(1).max(64)).default(['oidc', '$oidc']),
    /** Trusted token issuers (exact `iss`), e.g. https://token.actions.githubusercontent.com. Discovery at `<issuer>/.well-known/openid-configuration`. */
    issuers: z
      .array(
        z.strictObject({
          issuer: issuerUrl,
          /** Key set URL instead of the discovery document's `jwks_uri`. */
          jwksUri: issuerUrl.optional(),
          /** Accepted signature algorithms (asymmetric only); default: what the issuer announces. */
          algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1).optional(),
        }),
      )
      .default([]),
    /** Registry-wide trust rules (project rules are managed through /api/v1/projects/{project}/trust-rules). */
    rules: z.array(configuredRuleSchema).default([]),
    /** Leeway for `exp`, `nbf` and `iat` of presented tokens. */
    clockSkewSeconds: z.number().int().nonnegative().max(300).default(30),
    /** A presented token issued longer ago than this is refused (Kubernetes rotates projected tokens at 80% of their lifetime). */
    maxTokenAgeSeconds: z.number().int().min(60).max(86_400).default(3600),
    /** Upper bound of a rule's maxLifetimeSeconds (registry tokens never live longer than auth.registryTokens.ttlSeconds either). */
    maxLifetimeSeconds: z.number().int().min(60).max(3600).default(900),
  })
  .superRefine((federation, ctx) => {
    const issuers = new Set(federation.issuers.map((issuer) => issuer.issuer));
    federation.rules.forEach((rule, index) => {
      if (!issuers.has(rule.issuer)) ctx.addIssue({ code: 'custom', path: ['rules', index, 'issuer'], message: `issuer ${rule.issuer} is not in auth.federation.issuers` });
    });
    if (new Set(federation.rules.map((rule) => rule.name)).size !== federation.rules.length) ctx.addIssue({ code: 'custom', path: ['rules'], message: 'rule names must be unique' });
  });

export type FederationConfig = z.infer<typeof federationSchema>;
