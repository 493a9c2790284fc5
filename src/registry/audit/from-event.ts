/**
 * Bus events to audit entries. The mapping is generic on purpose: `action` is the event type,
 * `repository`/`digest`/`tag` are taken from the fields of those names, `reason` and `outcome`
 * likewise, and every other field (except the envelope) goes into `details`. A module that adds
 * an event type to the bus is audited without a change here; the few rules below only refine
 * what the generic mapping cannot know (a failed credential check is a `failure`, a push that
 * moved a tag is also a `tag.moved`).
 */
import type { RegistryEvent, RequestOrigin } from '../events/bus.ts';
import type { AuditActor, AuditEntry, AuditOutcome } from './record.ts';

const envelope = new Set(['type', 'at', 'origin', 'repository', 'digest', 'tag', 'reason', 'outcome']);

/** The actor of a request origin; the registry itself when there is none (GC, expiry). */
export function actorOf(origin: RequestOrigin | undefined): AuditActor {
  if (!origin) return { kind: 'system', name: 'portcullis' };
  const actor = origin.actor;
  return { kind: actor.kind, name: actor.name, auth: actor.auth ?? (actor.kind === 'anonymous' ? 'none' : undefined) };
}

function outcomeOf(type: string, explicit: unknown): AuditOutcome {
  if (explicit === 'success' || explicit === 'failure' || explicit === 'denied' || explicit === 'error') return explicit;
  if (type.endsWith('.failed') || type.endsWith('.failure') || type.endsWith('.rejected')) return 'failure';
  if (type.endsWith('.denied')) return 'denied';
  return 'success';
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The audit entries for one bus event (usually one; a push that moved a tag gives two). */
export function entriesFromEvent(event: RegistryEvent): AuditEntry[] {
  const e = event as unknown as Record<string, unknown> & { type: string; at: Date; origin: RequestOrigin | undefined };
  // Per pull, so plain loops: no key or entry arrays, no spreads (this server's young generation is
  // small, so every allocation per request shows up as scavenges).
  let details: Record<string, unknown> | undefined;
  for (const key in e) {
    const value = e[key];
    if (value === undefined || envelope.has(key) || !Object.hasOwn(e, key)) continue;
    (details ??= {})[key] = value;
  }
  const origin = e.origin;
  const entry: AuditEntry = {
    at: e.at,
    actor: actorOf(origin),
    client: origin?.clientAddress,
    userAgent: origin?.userAgent,
    requestId: origin?.requestId,
    action: e.type,
    repository: str(e.repository),
    digest: str(e.digest),
    tag: str(e.tag),
    outcome: outcomeOf(e.type, e.outcome),
    reason: str(e.reason),
    details,
  };
  // A credential check names the claimed account; an anonymous origin is the norm for a failure.
  if (e.type.startsWith('auth.') && typeof e.username === 'string' && (!entry.actor.name || entry.actor.kind === 'anonymous')) {
    entry.actor = { kind: entry.actor.kind === 'anonymous' ? 'user' : entry.actor.kind, name: e.username, auth: str(e.method) ?? entry.actor.auth };
  }
  const entries = [entry];
  if (e.type === 'manifest.pushed' && typeof e.tag === 'string' && typeof e.previousTagTarget === 'string' && e.previousTagTarget !== e.digest) {
    entries.push({ ...entry, action: 'tag.moved', details: { from: e.previousTagTarget } });
  }
  return entries;
}
