/**
 * Bus events to webhook notifications: which project, which webhook event type, and the
 * CloudEvents 1.0 payload (structured mode, `application/cloudevents+json`).
 */
import { randomUUID } from 'node:crypto';
import { projectOf } from '../../oci/reference.ts';
import type { RegistryEvent } from '../events/bus.ts';

/** The event types a webhook may subscribe to. */
export const webhookEventTypes = [
  'push',
  'delete',
  'pull',
  'scan.completed',
  'vulnerability.critical',
  'policy.violation',
  'signature.missing',
  'signature.failed',
  'alert',
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number] | 'ping';

export interface Notification {
  project: string;
  type: WebhookEventType;
  /** The CloudEvent, serialised once and delivered to every matching webhook. */
  payload: string;
  eventId: string;
}

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

function actor(event: RegistryEvent): Record<string, unknown> | undefined {
  const a = event.origin?.actor;
  if (!a) return { kind: 'system', name: 'portcullis' };
  return { kind: a.kind, ...(a.name ? { name: a.name } : {}) };
}

/** The webhook event type of a bus event, or undefined when no webhook cares. */
export function webhookTypeOf(event: RegistryEvent): WebhookEventType | undefined {
  switch (event.type) {
    case 'manifest.pushed':
      return 'push';
    case 'manifest.deleted':
    case 'tag.deleted':
      return 'delete';
    case 'manifest.pulled':
      return 'pull';
    case 'scan.completed':
      return 'scan.completed';
    case 'scan.findings.changed':
      return event.newCritical > 0 ? 'vulnerability.critical' : undefined;
    case 'policy.decision':
      return event.outcome === 'denied' ? 'policy.violation' : undefined;
    case 'signature.verified':
      return event.verdict === 'unsigned' ? 'signature.missing' : event.verdict === 'failed' ? 'signature.failed' : undefined;
    case 'alert.raised':
      return event.project ? 'alert' : undefined;
    default:
      return undefined;
  }
}

function subjectOf(data: Record<string, unknown>): string | undefined {
  const repository = data.repository;
  if (typeof repository !== 'string') return undefined;
  if (typeof data.digest === 'string') return `${repository}@${data.digest}`;
  if (typeof data.tag === 'string') return `${repository}:${data.tag}`;
  return repository;
}

/** The project a notification of this event belongs to. */
export function projectOfEvent(event: RegistryEvent): string | undefined {
  if (event.type === 'alert.raised') return event.project;
  const repository = (event as { repository?: unknown }).repository;
  return typeof repository === 'string' ? projectOf(repository) : undefined;
}

/** The notification for a bus event (undefined when no webhook event type matches). */
export function notificationOf(event: RegistryEvent, source: string): Notification | undefined {
  const type = webhookTypeOf(event);
  if (!type) return undefined;
  const { type: _t, at, origin: _o, ...fields } = event as RegistryEvent & Record<string, unknown>;
  const project = projectOfEvent(event);
  if (!project) return undefined;
  const data: Record<string, unknown> = { event: event.type, ...fields, actor: actor(event) };
  if (type === 'vulnerability.critical') data.addedCritical = (fields.added as Array<{ severity: string }>).filter((f) => f.severity.toLowerCase() === 'critical');
  return cloudEvent(project, type, data, at, source);
}

export function cloudEvent(project: string, type: WebhookEventType, data: Record<string, unknown>, at: Date, source: string): Notification {
  const eventId = randomUUID();
  const subject = subjectOf(data);
  const event: CloudEvent = {
    specversion: '1.0',
    id: eventId,
    source,
    type: `io.portcullis.${type}`,
    ...(subject ? { subject } : {}),
    time: at.toISOString(),
    datacontenttype: 'application/json',
    data: { project, ...data },
  };
  return { project, type, payload: JSON.stringify(event), eventId };
}
