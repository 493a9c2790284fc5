/**
 * The webhook API under /api/v1/projects/{project}/webhooks, served by the management API (same
 * authentication, validation, error format and OpenAPI document). Every operation needs
 * `project.update` on the project (project admins and system administrators): webhook targets
 * and delivery payloads describe the project's activity.
 */
import { z } from 'zod';
import { RegistryError } from '../../oci/errors.ts';
import type { ApiRoute } from '../api/management-api.ts';
import type { AccessService } from '../auth/access-service.ts';
import type { Identity } from '../auth/identity.ts';
import { webhookEventTypes } from './payload.ts';
import type { WebhookService } from './service.ts';

/** The management API's route shape (api/management-api.ts). */
export type WebhookApiRoute = ApiRoute;

const timestamp = z.iso.datetime();
const eventsField = z.array(z.enum(webhookEventTypes)).min(1).max(webhookEventTypes.length).describe(`Event types: ${webhookEventTypes.join(', ')}.`);
const secretField = z.string().min(16).max(256).describe('HMAC-SHA256 key (16 to 256 characters). Never shown again; omit on creation to have one generated and shown once.');

export const createWebhookSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    url: z.url().max(2048).describe('http(s) target; refused when it resolves to a private, loopback or link-local address (webhooks.allowedNetworks)'),
    events: eventsField,
    secret: secretField.optional(),
    enabled: z.boolean().optional(),
  })
  .meta({ id: 'CreateWebhook' });

export const updateWebhookSchema = z
  .strictObject({
    name: createWebhookSchema.shape.name.optional(),
    url: createWebhookSchema.shape.url.optional(),
    events: eventsField.optional(),
    secret: secretField.optional(),
    enabled: z.boolean().optional(),
  })
  .meta({ id: 'UpdateWebhook' });

export const webhookSchema = z
  .strictObject({
    id: z.string(),
    project: z.string(),
    name: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    enabled: z.boolean(),
    createdAt: timestamp,
    createdBy: z.string().optional(),
    updatedAt: timestamp,
  })
  .meta({ id: 'Webhook' });

export const createdWebhookSchema = webhookSchema.extend({ secret: z.string().optional().describe('The generated secret, present only when none was given: shown this once.') }).meta({ id: 'CreatedWebhook' });

export const deliverySchema = z
  .strictObject({
    id: z.string(),
    webhookId: z.string(),
    event: z.string(),
    eventId: z.string().describe('The CloudEvent id (the same for a redelivery)'),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    responseCode: z.number().int().optional(),
    latencyMs: z.number().int().optional(),
    error: z.string().optional(),
    nextAttemptAt: timestamp.optional(),
    redeliveryOf: z.string().optional(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .meta({ id: 'WebhookDelivery' });

export const deliveryDetailSchema = deliverySchema
  .extend({
    attemptLog: z.array(z.strictObject({ attempt: z.number().int(), at: timestamp, responseCode: z.number().int().optional(), latencyMs: z.number().int(), error: z.string().optional() })),
    payload: z.unknown().describe('The CloudEvent sent'),
  })
  .meta({ id: 'WebhookDeliveryDetail' });

export const deliveryQuerySchema = z.strictObject({
  status: z.enum(['pending', 'delivered', 'failed']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});

/** Actions without parameters take an empty object (or no body). */
const noBody = z.strictObject({}).describe('No parameters: send {} or no body');

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function webhookApi(deps: { service: WebhookService; access: Pick<AccessService, 'can'> }): WebhookApiRoute[] {
  const { service, access } = deps;
  /** The project, once the caller may administer it; ids are checked before any lookup. */
  const allowed = async (ctx: { actor: Identity; params: Record<string, string> }): Promise<string> => {
    const project = ctx.params.project!;
    if (!(await access.can(ctx.actor, 'project.update', { kind: 'project', name: project }))) throw new RegistryError('DENIED', `project.update on ${project} is not allowed`);
    for (const key of ['id', 'delivery']) {
      const value = ctx.params[key];
      if (value !== undefined && !uuid.test(value)) throw new RegistryError('NOT_FOUND', `no ${key === 'id' ? 'webhook' : 'delivery'} ${value.slice(0, 64)}`);
    }
    return project;
  };
  const base = '/projects/{project}/webhooks';
  const tag = 'webhooks';
  return [
    { method: 'GET', path: base, tag, summary: "List the project's webhooks (project.update; secrets are never shown)", status: 200, response: z.array(webhookSchema), handler: async (c) => service.list(await allowed(c)) },
    { method: 'POST', path: base, tag, summary: 'Create a webhook (project.update); a generated secret is shown once', body: createWebhookSchema, status: 201, response: createdWebhookSchema, handler: async (c) => service.create(await allowed(c), c.body, c.origin) },
    { method: 'GET', path: `${base}/{id}`, tag, summary: 'Get a webhook (project.update)', status: 200, response: webhookSchema, handler: async (c) => service.get(await allowed(c), c.params.id!) },
    { method: 'PATCH', path: `${base}/{id}`, tag, summary: 'Change a webhook: target, events, secret, enabled (project.update)', body: updateWebhookSchema, status: 200, response: webhookSchema, handler: async (c) => service.update(await allowed(c), c.params.id!, c.body, c.origin) },
    { method: 'DELETE', path: `${base}/{id}`, tag, summary: 'Delete a webhook with its delivery log (project.update)', status: 204, handler: async (c) => service.delete(await allowed(c), c.params.id!, c.origin) },
    { method: 'POST', path: `${base}/{id}/ping`, tag, summary: 'Queue a ping event to the webhook (project.update)', body: noBody, status: 202, response: deliverySchema, handler: async (c) => service.ping(await allowed(c), c.params.id!, c.origin) },
    {
      method: 'GET',
      path: `${base}/{id}/deliveries`,
      tag,
      summary: 'The delivery log, newest first (project.update)',
      query: deliveryQuerySchema,
      status: 200,
      response: z.strictObject({ deliveries: z.array(deliverySchema), nextCursor: z.string().optional() }),
      handler: async (c) => service.deliveries(await allowed(c), c.params.id!, c.query),
    },
    { method: 'GET', path: `${base}/{id}/deliveries/{delivery}`, tag, summary: 'A delivery with its attempts and payload (project.update)', status: 200, response: deliveryDetailSchema, handler: async (c) => service.delivery(await allowed(c), c.params.id!, c.params.delivery!) },
    {
      method: 'POST',
      path: `${base}/{id}/deliveries/{delivery}/redeliver`,
      tag,
      summary: 'Send a finished delivery again, as a new delivery with the same CloudEvent id (project.update)',
      body: noBody,
      status: 202,
      response: deliverySchema,
      handler: async (c) => service.redeliver(await allowed(c), c.params.id!, c.params.delivery!),
    },
  ];
}
