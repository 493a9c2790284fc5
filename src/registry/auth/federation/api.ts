/**
 * /api/v1 routes of workload identity federation (trust rules per project) and of robot client
 * certificate bindings, added to the management API (api/management-api.ts) with their OpenAPI
 * entries.
 */
import { z } from 'zod';
import type { ApiRoute } from '../../api/management-api.ts';
import { grantSchema } from '../../api/schemas.ts';
import type { FederationAdministration } from './administration.ts';
import { claimConditionsSchema } from './config.ts';

const timestamp = z.iso.datetime();

export const trustRuleSchema = z
  .strictObject({
    id: z.string(),
    project: z.string(),
    name: z.string(),
    description: z.string().optional(),
    issuer: z.string().describe('Token issuer (`iss`), one of auth.federation.issuers.'),
    audience: z.string().describe('The token `aud` must contain this.'),
    subject: z.string().describe('Glob over `sub`: `*` within a segment (segments end at `:` and `/`), `**` across segments.'),
    claims: z.record(z.string(), z.array(z.string())).describe('Claim conditions: every claim must match one of its globs; nested claims as paths (`kubernetes.io/namespace`).'),
    grants: z.array(grantSchema),
    maxLifetimeSeconds: z.number().int(),
    singleUse: z.boolean(),
    revokedAt: timestamp.optional(),
    createdBy: z.string().optional(),
    createdAt: timestamp,
  })
  .meta({ id: 'TrustRule' });

export const createTrustRuleSchema = z.strictObject({
  name: z.string().min(1).max(64),
  description: z.string().max(500).optional(),
  issuer: z.string().min(1).max(512),
  audience: z.string().min(1).max(512).optional().describe("Default: the registry's service name (auth.service)."),
  subject: z.string().min(1).max(512),
  claims: claimConditionsSchema.optional(),
  grants: z.array(grantSchema).min(1).max(50),
  maxLifetimeSeconds: z.number().int().min(60).max(3600).optional().describe('Lifetime cap of the registry tokens issued through this rule.'),
  singleUse: z.boolean().optional().describe('Accept each token (jti) once: for one-shot token exchanges, not for podman/docker logins (they re-send the token).'),
});

export const certificateBindingSchema = z
  .strictObject({
    robot: z.string(),
    spkiSha256: z.string().optional(),
    subject: z.string().optional(),
    san: z.string().optional(),
    certificateOnly: z.boolean(),
    createdAt: timestamp,
  })
  .meta({ id: 'RobotCertificate' });

export const bindCertificateSchema = z.strictObject({
  spkiSha256: z.string().max(200).optional().describe('SHA-256 of the DER SubjectPublicKeyInfo, hex (`openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`).'),
  subject: z.string().max(1024).optional().describe('Subject DN as the registry sees it, e.g. `CN=ci,O=example`.'),
  san: z.string().max(1024).optional().describe('One subjectAltName entry: `DNS:ci.example.com`, `URI:spiffe://example/ci`.'),
  certificateOnly: z.boolean().optional().describe('The certificate alone authenticates the robot at the token endpoint (default: only together with the secret).'),
});

export function federationRoutes(admin: FederationAdministration): ApiRoute[] {
  const base = '/projects/{project}/trust-rules';
  return [
    { method: 'GET', path: base, tag: 'trust-rules', summary: 'List workload identity trust rules (robot.manage)', status: 200, response: z.array(trustRuleSchema), handler: (c) => admin.listTrustRules(c.actor, c.params.project!) },
    {
      method: 'POST',
      path: base,
      tag: 'trust-rules',
      summary: 'Create a trust rule: OIDC tokens of a configured issuer matching audience, subject and claims get these grants (robot.manage)',
      body: createTrustRuleSchema,
      status: 201,
      response: trustRuleSchema,
      handler: (c) => admin.createTrustRule(c.actor, c.params.project!, c.body, c.origin),
    },
    { method: 'GET', path: `${base}/{id}`, tag: 'trust-rules', summary: 'Get a trust rule (robot.manage)', status: 200, response: trustRuleSchema, handler: (c) => admin.getTrustRule(c.actor, c.params.project!, c.params.id!) },
    { method: 'POST', path: `${base}/{id}/revoke`, tag: 'trust-rules', summary: 'Revoke a trust rule: no new tokens, issued ones stop working (robot.manage)', status: 200, response: trustRuleSchema, handler: (c) => admin.revokeTrustRule(c.actor, c.params.project!, c.params.id!, c.origin) },
    { method: 'DELETE', path: `${base}/{id}`, tag: 'trust-rules', summary: 'Delete a trust rule (robot.manage)', status: 204, handler: (c) => admin.deleteTrustRule(c.actor, c.params.project!, c.params.id!, c.origin) },
    { method: 'GET', path: '/projects/{project}/robots/{id}/certificate', tag: 'robots', summary: "A project robot's client certificate binding (robot.manage)", status: 200, response: certificateBindingSchema, handler: (c) => admin.getRobotCertificate(c.actor, c.params.id!, c.params.project!) },
    {
      method: 'POST',
      path: '/projects/{project}/robots/{id}/certificate',
      tag: 'robots',
      summary: 'Bind a project robot to a client certificate (mutual TLS): its secret is then accepted only with it (robot.manage)',
      body: bindCertificateSchema,
      status: 200,
      response: certificateBindingSchema,
      handler: (c) => admin.bindRobotCertificate(c.actor, c.params.id!, c.params.project!, c.body, c.origin),
    },
    { method: 'DELETE', path: '/projects/{project}/robots/{id}/certificate', tag: 'robots', summary: 'Remove the client certificate binding (robot.manage)', status: 204, handler: (c) => admin.unbindRobotCertificate(c.actor, c.params.id!, c.params.project!, c.origin) },
    { method: 'GET', path: '/robots/{id}/certificate', tag: 'robots', summary: "A system robot's client certificate binding (system.robot.manage)", status: 200, response: certificateBindingSchema, handler: (c) => admin.getRobotCertificate(c.actor, c.params.id!, undefined) },
    { method: 'POST', path: '/robots/{id}/certificate', tag: 'robots', summary: 'Bind a system robot to a client certificate (system.robot.manage)', body: bindCertificateSchema, status: 200, response: certificateBindingSchema, handler: (c) => admin.bindRobotCertificate(c.actor, c.params.id!, undefined, c.body, c.origin) },
    { method: 'DELETE', path: '/robots/{id}/certificate', tag: 'robots', summary: 'Remove the client certificate binding (system.robot.manage)', status: 204, handler: (c) => admin.unbindRobotCertificate(c.actor, c.params.id!, undefined, c.origin) },
  ];
}
