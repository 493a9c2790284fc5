/**
 * The audit record: what is stored, how it is serialised canonically, and how it is chained.
 *
 * One record is one flat row (no JSON document per record): time, actor (kind, name, how
 * authenticated), client address, user agent, request id, action, target (repository, digest,
 * tag), outcome, reason, and a small `details` object for what is specific to the action (sizes,
 * media types, the previous target of a moved tag). Records are numbered `seq` = 1, 2, 3, ...
 *
 * The chain: `hash = SHA-256(prevHash || canonical(record))`, where `prevHash` is the `hash` of
 * the record before (32 zero bytes before the first). `canonical` is the JSON array of the
 * fields in a fixed order (absent = null) with `details` as the exact stored text, so the
 * verifier hashes exactly what is stored and no JSON re-serialisation enters the proof. `seq` is
 * deliberately not hashed: the order is proven by the links, which lets the verifier tell a
 * reordered or inserted record from an altered one (checkpoints sign `seq` and `hash` together,
 * so the numbering is still covered).
 */
import { hash } from 'node:crypto';

/** `success`: done; `failure`: attempted and failed (bad password); `denied`: refused by a gate or policy; `error`: the registry failed. */
export type AuditOutcome = 'success' | 'failure' | 'denied' | 'error';
export const auditOutcomes: readonly AuditOutcome[] = ['success', 'failure', 'denied', 'error'];

/** Who acted. `kind` is `anonymous`, `user`, `robot` or `system` today; new kinds need no change here. */
export interface AuditActor {
  kind: string;
  name?: string | undefined;
  /** How the actor authenticated: `password`, `token`, `robot`, `refresh`, `anonymous`, ... */
  auth?: string | undefined;
}

/** What a module hands to the audit log. */
export interface AuditEntry {
  /** When it happened; defaults to when it was appended. */
  at?: Date;
  actor: AuditActor;
  client?: string | undefined;
  userAgent?: string | undefined;
  requestId?: string | undefined;
  /** Dotted verb, e.g. `manifest.pushed`, `auth.failed`, `policy.denied`, `config.changed`. */
  action: string;
  repository?: string | undefined;
  digest?: string | undefined;
  tag?: string | undefined;
  outcome: AuditOutcome;
  reason?: string | undefined;
  /** Small, flat, JSON-serialisable facts specific to the action. Never secrets. */
  details?: Record<string, unknown> | undefined;
}

/** The stored fields of a record that the hash covers (null = absent). */
export interface RecordFields {
  at: number;
  actorKind: string;
  actorName: string | null;
  actorAuth: string | null;
  client: string | null;
  userAgent: string | null;
  requestId: string | null;
  action: string;
  repository: string | null;
  digest: string | null;
  tag: string | null;
  outcome: string;
  reason: string | null;
  /** `details` as stored: compact JSON text with sorted keys, or null. */
  details: string | null;
}

/** A stored record with its place in the chain. */
export interface StoredRecord extends RecordFields {
  seq: number;
  prevHash: Buffer;
  hash: Buffer;
}

/** A record as the API, CLI and forwarders present it. */
export interface AuditRecord {
  seq: number;
  time: string;
  actor: AuditActor;
  client?: string;
  userAgent?: string;
  requestId?: string;
  action: string;
  repository?: string;
  digest?: string;
  tag?: string;
  outcome: string;
  reason?: string;
  details?: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = Buffer.alloc(32);

/** Longest stored length of free-text fields (a user agent is attacker-controlled). */
const MAX_TEXT = 512;

function text(value: string | undefined | null, max = MAX_TEXT): string | null {
  if (value === undefined || value === null || value === '') return null;
  return value.length > max ? value.slice(0, max) : value;
}

/** JSON with object keys sorted at every level, so equal details give equal text. */
export function sortedJson(value: unknown): string {
  // The common case, a flat object of primitives, without a replacer (several times faster).
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    let flat = true;
    let sorted = true;
    for (let i = 0; i < keys.length && flat; i++) {
      const v = (value as Record<string, unknown>)[keys[i]!];
      flat = v === null || typeof v !== 'object';
      if (i > 0 && keys[i - 1]! > keys[i]!) sorted = false;
    }
    // Keys already in order (events build their details that way): a plain object serialises as
    // is (another prototype could bring a toJSON of its own).
    const proto: unknown = Object.getPrototypeOf(value);
    if (flat && sorted && (proto === Object.prototype || proto === null)) return JSON.stringify(value);
    if (flat) {
      const entries = Object.entries(value as Record<string, unknown>);
      return JSON.stringify(Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    }
  }
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

function hasDefined(object: Record<string, unknown>): boolean {
  for (const key in object) if (object[key] !== undefined && Object.hasOwn(object, key)) return true;
  return false;
}

/** Normalises an entry into the stored fields (truncating free text, dropping empty details). */
export function fieldsOf(entry: AuditEntry, now: number): RecordFields {
  const details = entry.details && hasDefined(entry.details) ? sortedJson(entry.details) : null;
  return {
    at: entry.at ? entry.at.getTime() : now,
    actorKind: text(entry.actor.kind, 32) ?? 'anonymous',
    actorName: text(entry.actor.name, 256),
    actorAuth: text(entry.actor.auth, 32),
    client: text(entry.client, 64),
    userAgent: text(entry.userAgent),
    requestId: text(entry.requestId, 128),
    action: text(entry.action, 64) ?? 'unknown',
    repository: text(entry.repository, 1024),
    digest: text(entry.digest, 256),
    tag: text(entry.tag, 256),
    outcome: entry.outcome,
    reason: text(entry.reason, 1024),
    details: details && details.length > 4096 ? sortedJson({ truncated: true, length: details.length }) : details,
  };
}

/** The canonical serialisation the hash covers (version 1). */
export function canonical(f: RecordFields): string {
  return JSON.stringify([
    1,
    f.at,
    f.actorKind,
    f.actorName,
    f.actorAuth,
    f.client,
    f.userAgent,
    f.requestId,
    f.action,
    f.repository,
    f.digest,
    f.tag,
    f.outcome,
    f.reason,
    f.details,
  ]);
}

/** Reused input buffer of {@link chainHash} (synchronous, so never shared between two calls). */
let scratch = Buffer.allocUnsafeSlow(16 * 1024);

/** `SHA-256(prevHash || canonical(fields))`. */
export function chainHash(prevHash: Uint8Array, fields: RecordFields): Buffer {
  const text = canonical(fields);
  const most = prevHash.length + text.length * 3;
  if (most > scratch.length) scratch = Buffer.allocUnsafeSlow(most);
  scratch.set(prevHash);
  const length = prevHash.length + scratch.write(text, prevHash.length);
  // Hex and back is about three times cheaper than asking for a Buffer (which gets a backing
  // store of its own per call; this one comes from the small-buffer pool).
  return Buffer.from(hash('sha256', scratch.subarray(0, length), 'hex'), 'hex');
}

/** The presentation of a stored record (API, CLI, export, forwarding). */
export function presentRecord(r: StoredRecord): AuditRecord {
  const actor: AuditActor = { kind: r.actorKind };
  if (r.actorName !== null) actor.name = r.actorName;
  if (r.actorAuth !== null) actor.auth = r.actorAuth;
  const out: AuditRecord = { seq: r.seq, time: new Date(r.at).toISOString(), actor, action: r.action, outcome: r.outcome, prevHash: r.prevHash.toString('hex'), hash: r.hash.toString('hex') };
  if (r.client !== null) out.client = r.client;
  if (r.userAgent !== null) out.userAgent = r.userAgent;
  if (r.requestId !== null) out.requestId = r.requestId;
  if (r.repository !== null) out.repository = r.repository;
  if (r.digest !== null) out.digest = r.digest;
  if (r.tag !== null) out.tag = r.tag;
  if (r.reason !== null) out.reason = r.reason;
  if (r.details !== null) {
    try {
      out.details = JSON.parse(r.details) as Record<string, unknown>;
    } catch {
      out.details = { unparseable: r.details };
    }
  }
  // Key order is fixed for readable JSON Lines: move hashes last.
  const { prevHash, hash, ...rest } = out;
  return { ...rest, prevHash, hash };
}

/**
 * The stored fields of an exported record (the inverse of {@link presentRecord}), for verifying
 * archives. `details` is re-serialised with JSON.stringify, which reproduces the stored text
 * because that text was itself produced by JSON.stringify over sorted keys.
 */
export function storedFromPresented(r: AuditRecord): StoredRecord {
  return {
    seq: r.seq,
    at: Date.parse(r.time),
    actorKind: r.actor.kind,
    actorName: r.actor.name ?? null,
    actorAuth: r.actor.auth ?? null,
    client: r.client ?? null,
    userAgent: r.userAgent ?? null,
    requestId: r.requestId ?? null,
    action: r.action,
    repository: r.repository ?? null,
    digest: r.digest ?? null,
    tag: r.tag ?? null,
    outcome: r.outcome,
    reason: r.reason ?? null,
    details: r.details === undefined ? null : JSON.stringify(r.details),
    prevHash: Buffer.from(r.prevHash, 'hex'),
    hash: Buffer.from(r.hash, 'hex'),
  };
}
