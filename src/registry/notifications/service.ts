/**
 * Webhook administration: validation (SSRF refusal of the target, event types), secrets sealed
 * at rest and shown only once when generated, the delivery log and redelivery. Authorisation is
 * the caller's (http.ts: project admins).
 */
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../oci/errors.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import type { WebhookSettings } from './config.ts';
import type { WebhookDispatcher } from './dispatcher.ts';
import { cloudEvent, type WebhookEventType } from './payload.ts';
import { generateSecret, type SecretBox } from './secrets.ts';
import { TargetRefused, type TargetPolicy } from './ssrf.ts';
import type { AttemptRecord, DeliveryRecord, DeliveryStatus, WebhookRecord, WebhookStore } from './store.ts';

export interface WebhookInput {
  name: string;
  url: string;
  events: string[];
  secret?: string | undefined;
  enabled?: boolean | undefined;
}

export interface WebhookView {
  id: string;
  project: string;
  name: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: string;
  createdBy?: string;
  updatedAt: string;
}

export interface DeliveryView {
  id: string;
  webhookId: string;
  event: string;
  eventId: string;
  status: DeliveryStatus;
  attempts: number;
  responseCode?: number;
  latencyMs?: number;
  error?: string;
  nextAttemptAt?: string;
  redeliveryOf?: string;
  createdAt: string;
  updatedAt: string;
}

function view(hook: WebhookRecord): WebhookView {
  return {
    id: hook.id,
    project: hook.project,
    name: hook.name,
    url: hook.url,
    events: hook.events,
    enabled: hook.enabled,
    createdAt: new Date(hook.createdAt).toISOString(),
    ...(hook.createdBy ? { createdBy: hook.createdBy } : {}),
    updatedAt: new Date(hook.updatedAt).toISOString(),
  };
}

function deliveryView(d: DeliveryRecord): DeliveryView {
  return {
    id: d.id,
    webhookId: d.webhookId,
    event: d.eventType,
    eventId: d.eventId,
    status: d.status,
    attempts: d.attempts,
    ...(d.responseCode !== undefined ? { responseCode: d.responseCode } : {}),
    ...(d.latencyMs !== undefined ? { latencyMs: d.latencyMs } : {}),
    ...(d.error !== undefined ? { error: d.error } : {}),
    ...(d.status === 'pending' ? { nextAttemptAt: new Date(d.nextAttemptAt).toISOString() } : {}),
    ...(d.redeliveryOf ? { redeliveryOf: d.redeliveryOf } : {}),
    createdAt: new Date(d.createdAt).toISOString(),
    updatedAt: new Date(d.updatedAt).toISOString(),
  };
}

function encodeCursor(d: DeliveryRecord): string {
  return Buffer.from(`${d.createdAt}:${d.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const match = /^(\d{1,15}):([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new RegistryError('INVALID_REQUEST', 'query.cursor: invalid cursor');
  return { createdAt: Number(match[1]), id: match[2]! };
}

export class WebhookService {
  readonly #store: WebhookStore;
  readonly #box: SecretBox;
  readonly #targets: TargetPolicy;
  readonly #dispatcher: WebhookDispatcher;
  readonly #events: EventBus;
  readonly #settings: WebhookSettings;

  constructor(deps: { store: WebhookStore; box: SecretBox; targets: TargetPolicy; dispatcher: WebhookDispatcher; events: EventBus }, settings: WebhookSettings) {
    this.#store = deps.store;
    this.#box = deps.box;
    this.#targets = deps.targets;
    this.#dispatcher = deps.dispatcher;
    this.#events = deps.events;
    this.#settings = settings;
  }

  async #checkUrl(url: string): Promise<void> {
    try {
      await this.#targets.check(url);
    } catch (error) {
      if (error instanceof TargetRefused) throw new RegistryError('INVALID_REQUEST', error.message);
      throw error;
    }
  }

  async #hook(project: string, id: string): Promise<WebhookRecord> {
    const hook = await this.#store.get(project, id);
    if (!hook) throw new RegistryError('NOT_FOUND', `no webhook ${id} in project ${project}`);
    return hook;
  }

  #changed(hook: WebhookRecord, change: 'created' | 'updated' | 'deleted', origin: RequestOrigin, secretChanged = false): void {
    this.#dispatcher.forgetProject(hook.project);
    // only the target's origin: some services (chat webhooks) carry a token in the path or query
    const target = new URL(hook.url).origin;
    this.#events.publish({ type: 'webhook.changed', at: new Date(), origin, project: hook.project, change, webhook: { id: hook.id, name: hook.name, url: target, events: hook.events, enabled: hook.enabled }, secretChanged });
  }

  async list(project: string): Promise<WebhookView[]> {
    return (await this.#store.list(project)).map(view);
  }

  async get(project: string, id: string): Promise<WebhookView> {
    return view(await this.#hook(project, id));
  }

  /** Creates a webhook; a generated secret is in the answer, once. */
  async create(project: string, input: WebhookInput, origin: RequestOrigin): Promise<WebhookView & { secret?: string }> {
    await this.#checkUrl(input.url);
    const generated = input.secret === undefined ? generateSecret() : undefined;
    const now = Date.now();
    const hook: WebhookRecord = {
      id: randomUUID(),
      project,
      name: input.name,
      url: input.url,
      events: [...new Set(input.events)],
      sealedSecret: this.#box.seal(input.secret ?? generated!),
      enabled: input.enabled ?? true,
      createdAt: now,
      createdBy: origin.actor.name,
      updatedAt: now,
    };
    const outcome = await this.#store.create(hook, this.#settings.maxPerProject);
    if (outcome === 'name-taken') throw new RegistryError('CONFLICT', `project ${project} already has a webhook named ${input.name}`);
    if (outcome === 'limit') throw new RegistryError('INVALID_REQUEST', `project ${project} has ${this.#settings.maxPerProject} webhooks, the most allowed (webhooks.maxPerProject)`);
    this.#changed(hook, 'created', origin, true);
    return { ...view(hook), ...(generated ? { secret: generated } : {}) };
  }

  async update(project: string, id: string, input: Partial<WebhookInput>, origin: RequestOrigin): Promise<WebhookView> {
    const hook = await this.#hook(project, id);
    if (input.url !== undefined) await this.#checkUrl(input.url);
    const next: WebhookRecord = {
      ...hook,
      name: input.name ?? hook.name,
      url: input.url ?? hook.url,
      events: input.events ? [...new Set(input.events)] : hook.events,
      enabled: input.enabled ?? hook.enabled,
      sealedSecret: input.secret !== undefined ? this.#box.seal(input.secret) : hook.sealedSecret,
      updatedAt: Date.now(),
    };
    const outcome = await this.#store.update(next);
    if (outcome === 'name-taken') throw new RegistryError('CONFLICT', `project ${project} already has a webhook named ${next.name}`);
    if (outcome === 'missing') throw new RegistryError('NOT_FOUND', `no webhook ${id} in project ${project}`);
    this.#changed(next, 'updated', origin, input.secret !== undefined);
    return view(next);
  }

  async delete(project: string, id: string, origin: RequestOrigin): Promise<void> {
    const hook = await this.#hook(project, id);
    if (!(await this.#store.delete(project, id))) throw new RegistryError('NOT_FOUND', `no webhook ${id} in project ${project}`);
    this.#changed(hook, 'deleted', origin);
  }

  async deliveries(project: string, id: string, query: { status?: DeliveryStatus | undefined; limit: number; cursor?: string | undefined }): Promise<{ deliveries: DeliveryView[]; nextCursor?: string }> {
    await this.#hook(project, id);
    const rows = await this.#store.deliveries(id, { status: query.status, limit: query.limit + 1, before: query.cursor ? decodeCursor(query.cursor) : undefined });
    const page = rows.slice(0, query.limit);
    return { deliveries: page.map(deliveryView), ...(rows.length > query.limit ? { nextCursor: encodeCursor(page.at(-1)!) } : {}) };
  }

  async delivery(project: string, id: string, deliveryId: string): Promise<DeliveryView & { attemptLog: Array<Omit<AttemptRecord, 'at'> & { at: string }>; payload: unknown }> {
    await this.#hook(project, id);
    const found = await this.#store.delivery(id, deliveryId);
    if (!found) throw new RegistryError('NOT_FOUND', `no delivery ${deliveryId} for webhook ${id}`);
    return {
      ...deliveryView(found.delivery),
      attemptLog: found.attempts.map((a) => ({ ...a, at: new Date(a.at).toISOString() })),
      payload: JSON.parse(found.delivery.payload) as unknown,
    };
  }

  /** Sends a delivery's payload again as a new delivery (same CloudEvent id: receivers deduplicate). */
  async redeliver(project: string, id: string, deliveryId: string): Promise<DeliveryView> {
    const hook = await this.#hook(project, id);
    const found = await this.#store.delivery(id, deliveryId);
    if (!found) throw new RegistryError('NOT_FOUND', `no delivery ${deliveryId} for webhook ${id}`);
    if (found.delivery.status === 'pending') throw new RegistryError('CONFLICT', `delivery ${deliveryId} is still pending (attempt ${found.delivery.attempts + 1} due ${new Date(found.delivery.nextAttemptAt).toISOString()})`);
    const d = found.delivery;
    const [newId] = await this.#dispatcher.enqueue([hook], { project, type: d.eventType as WebhookEventType, payload: d.payload, eventId: d.eventId }, d.id);
    const again = await this.#store.delivery(id, newId!);
    return deliveryView(again!.delivery);
  }

  /** Queues a `ping` event to this webhook (whatever its event types). */
  async ping(project: string, id: string, origin: RequestOrigin): Promise<DeliveryView> {
    const hook = await this.#hook(project, id);
    const notification = cloudEvent(project, 'ping', { webhook: hook.id, name: hook.name, actor: { kind: origin.actor.kind, ...(origin.actor.name ? { name: origin.actor.name } : {}) } }, new Date(), this.#settings.source);
    const [newId] = await this.#dispatcher.enqueue([hook], notification);
    const created = await this.#store.delivery(id, newId!);
    return deliveryView(created!.delivery);
  }
}
