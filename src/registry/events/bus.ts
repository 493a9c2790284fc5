/**
 * The typed event bus. The protocol core publishes one event per committed state change and
 * per pull; observers (audit, scanner, webhooks, metrics) subscribe. Handlers run after the
 * publishing request has moved on (next macrotask), and a failing handler is logged, never
 * propagated: observers cannot slow down or break the request path. What must not be lost is
 * the observer's business (a durable outbox), not the bus's.
 */

/** Where a change came from. */
export interface RequestOrigin {
  clientAddress: string;
  userAgent: string | undefined;
  requestId: string;
  /** Who acted; `anonymous` until access control lands. */
  actor: { kind: 'anonymous' | 'user' | 'robot' | 'system'; name?: string; /** How it authenticated: password, token, robot, refresh, system. */ auth?: string };
}

interface EventBase {
  at: Date;
  /** Absent for the registry's own actions (garbage collection, expiry). */
  origin: RequestOrigin | undefined;
}

export type RegistryEvent =
  | (EventBase & { type: 'blob.uploaded'; repository: string; digest: string; size: number })
  | (EventBase & { type: 'blob.mounted'; repository: string; digest: string; from: string | undefined })
  | (EventBase & { type: 'blob.pulled'; repository: string; digest: string; size: number; range: boolean })
  | (EventBase & { type: 'blob.deleted'; repository: string; digest: string })
  | (EventBase & { type: 'blob.collected'; digest: string; size: number })
  | (EventBase & { type: 'upload.cancelled' | 'upload.expired'; repository: string; uploadId: string })
  | (EventBase & {
      type: 'manifest.pushed';
      repository: string;
      digest: string;
      mediaType: string;
      artifactType: string | undefined;
      subject: string | undefined;
      size: number;
      /** True when these bytes were new to the repository (false on a re-push). */
      created: boolean;
      tag: string | undefined;
      /** The digest the tag pointed at before, when the push moved it. */
      previousTagTarget: string | undefined;
    })
  | (EventBase & { type: 'manifest.pulled'; repository: string; digest: string; mediaType: string; tag: string | undefined })
  | (EventBase & { type: 'manifest.deleted'; repository: string; digest: string; tags: string[] })
  /** A policy evaluation at an enforcement point (policy/enforcer.ts); `rules` lists the failed and errored rules. */
  | (EventBase & {
      type: 'policy.decision';
      repository: string;
      digest: string;
      tag: string | undefined;
      outcome: 'success' | 'denied';
      reason: string | undefined;
      point: 'push' | 'pull' | 'promotion' | 'admission';
      policy: { name: string; project: string; version: number; hash: string };
      rules: Array<{ rule: string; kind: string; mode: string; outcome: string; message?: string; facts: string[] }>;
      warnings: string[];
      /** At admission: where the image was to run (admission/controller.ts). */
      admission?: AdmissionFacts;
    })
  /**
   * Grace-aware admission (admission/controller.ts): `opened` when an enforced rule with
   * graceDays starts failing for a digest already deployed; `allowed` when a restart inside the
   * window was admitted with a warning instead of denied.
   */
  | (EventBase & {
      type: 'admission.grace';
      action: 'opened' | 'allowed';
      repository: string;
      digest: string;
      rule: string;
      policy: { name: string; project: string; version: number };
      reason: string;
      openedAt: string;
      until: string;
      admission?: AdmissionFacts;
    })
  /**
   * An image was promoted from one project to another (`promotion.completed`, with the
   * attestation referrer) or refused by the destination's policy (`promotion.denied`, nothing
   * written); `repository` and `tag` are the destination (policy/promotion/service.ts).
   */
  | (EventBase & {
      type: 'promotion.completed' | 'promotion.denied';
      repository: string;
      digest: string;
      tag: string | undefined;
      outcome: 'success' | 'denied';
      reason: string | undefined;
      id: string;
      source: string;
      sourceReference: string;
      policy: { name: string; project: string; version: number; hash: string } | undefined;
      attestation: string | undefined;
      copied: number;
    })
  /** The audit log nears (`warning`) or passes (`exceeded`: the oldest records are being archived) its size budget. */
  | (EventBase & { type: 'audit.budget'; level: 'warning' | 'exceeded'; usedBytes: number; budgetBytes: number })
  | (EventBase & { type: 'tag.deleted'; repository: string; tag: string; digest: string | undefined })
  /** An image's signatures and attestations were (re)verified under its project's trust policy (signatures/service.ts). */
  | (EventBase & {
      type: 'signature.verified';
      repository: string;
      digest: string;
      verdict: 'verified' | 'unsigned' | 'failed';
      outcome: 'success' | 'failure';
      /** What is missing, when not verified. */
      reason?: string;
      policyVersion: number;
      trigger: 'push' | 'pull' | 'api' | 'policy-engine';
      signatures: number;
      signers: string[];
      attestations: string[];
    })
  /** A pull was denied: the project requires a valid signature (signatures/gate.ts). */
  | (EventBase & { type: 'signature.pull.denied'; repository: string; digest: string; tag: string | undefined; reason: string; policyVersion: number })
  /** A project's trust policy was created, replaced or deleted (signatures/http.ts). */
  | (EventBase & { type: 'trust-policy.changed'; project: string; change: 'created' | 'updated' | 'deleted'; version: number; requireSignatureToPull: boolean; policyHash?: string; keys: string[] })
  /** Identity and access administration: who (origin.actor) did what (change) to whom (target). */
  | (EventBase & { type: 'access.changed'; change: AccessChange; target: AccessTarget; detail?: Record<string, unknown> })
  /** A credential check at the token endpoint, /v2/ (Basic) or /api/v1; never carries the secret. */
  | (EventBase & { type: 'auth.succeeded'; username: string; method: AuthMethod })
  | (EventBase & { type: 'auth.failed'; username: string; method: AuthMethod; reason: string })
  /** The scanner finished an image (`failure`: with the reason, e.g. a hostile layer). */
  | (EventBase & { type: 'scan.completed'; repository: string; digest: string; outcome: 'success' | 'failure'; reason?: string; packages?: number; summary?: ScanCounts; secrets?: number })
  /** New vulnerability data changed an image's findings (re-evaluation, no layer read). */
  | (EventBase & { type: 'scan.findings.changed'; repository: string; digest: string; database: string; summary: ScanCounts; newCritical: number; added: FindingBrief[]; removed: FindingBrief[]; changed: FindingBrief[] })
  | (EventBase & { type: 'scan.exemption.created' | 'scan.exemption.revoked' | 'scan.exemption.expiring'; repository?: string; exemption: Record<string, unknown> })
  | (EventBase & { type: 'vulndb.imported'; source: string; records: number; added: number; removed: number; changed: number })
  /** An anomaly rule fired (anomaly/detector.ts); `origin` is that of the event that tipped it. */
  | (EventBase & AlertFields & { type: 'alert.raised' })
  /** A project's webhook was created, changed or deleted (notifications/service.ts); never carries the secret. */
  | (EventBase & { type: 'webhook.changed'; project: string; change: 'created' | 'updated' | 'deleted'; webhook: { id: string; name: string; url: string; events: string[]; enabled: boolean }; secretChanged: boolean });

/** What an anomaly alert says: which rule, about whom, and the figures that triggered it. */
export interface AlertFields {
  id: string;
  rule: AlertRule;
  severity: 'warning' | 'critical';
  /** The identity (`user:alice`, `robot:ci`, `address:192.0.2.7`) or network the alert is about. */
  subject: string;
  project?: string;
  repository?: string;
  digest?: string;
  tag?: string;
  /** One sentence naming the rule, identity, counts, window and baseline. */
  reason: string;
  facts: Record<string, string | number | boolean | string[]>;
}

export type AlertRule = 'failed-logins' | 'new-network' | 'mass-deletion' | 'pull-volume' | 'robot-scope' | 'unsigned-push' | 'released-tag-moved';

/** Where an admitted (or refused) image was to run. */
export interface AdmissionFacts {
  cluster: string;
  namespace: string;
  workload: { kind: string; name: string };
  container: string;
  operation: string;
  dryRun: boolean;
  /** The workload already ran this digest (a restart or reschedule). */
  restart: boolean;
}

/** Findings of an image by severity. */
export interface ScanCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  none: number;
  unknown: number;
  total: number;
  fixable: number;
  malicious: number;
}

export interface FindingBrief {
  id: string;
  severity: string;
  package: string;
  installedVersion: string;
  fixAvailable: boolean;
}

/** `workload`: an OIDC token of a CI job or service account (federation); `certificate`: a robot's client certificate alone; `oidc`: an interactive OIDC login. */
export type AuthMethod = 'password' | 'token' | 'robot' | 'refresh' | 'workload' | 'certificate' | 'oidc';

export type AccessChange =
  | 'user.created' | 'user.updated' | 'user.deleted'
  | 'project.created' | 'project.updated' | 'project.deleted' | 'project.networks.updated'
  | 'member.added' | 'member.removed'
  | 'robot.created' | 'robot.revoked' | 'robot.deleted'
  | 'token.created' | 'token.revoked'
  | 'trust-rule.created' | 'trust-rule.revoked' | 'trust-rule.deleted'
  | 'robot.certificate.bound' | 'robot.certificate.unbound'
  | 'oidc.settings.updated';

export interface AccessTarget {
  kind: 'user' | 'project' | 'member' | 'robot' | 'token' | 'trust-rule' | 'oidc-provider';
  name: string;
  project?: string;
}

export type RegistryEventType = RegistryEvent['type'];
export type EventOf<T extends RegistryEventType> = Extract<RegistryEvent, { type: T }>;
type Handler<E> = (event: E) => void | Promise<void>;

export class EventBus {
  readonly #handlers = new Map<string, Set<Handler<RegistryEvent>>>();
  readonly #onHandlerError: (error: unknown, event: RegistryEvent) => void;

  constructor(options: { onHandlerError?: (error: unknown, event: RegistryEvent) => void } = {}) {
    // Never silent: without a logger, a failing observer is reported on stderr.
    this.#onHandlerError = options.onHandlerError ?? ((error, event) => console.error(`event handler for ${event.type} failed:`, error));
  }

  /** Subscribes to one event type, or `*` for all. Returns the unsubscribe function. */
  subscribe<T extends RegistryEventType>(type: T, handler: Handler<EventOf<T>>): () => void;
  subscribe(type: '*', handler: Handler<RegistryEvent>): () => void;
  subscribe(type: string, handler: Handler<never>): () => void {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, (set = new Set()));
    set.add(handler as Handler<RegistryEvent>);
    return () => set.delete(handler as Handler<RegistryEvent>);
  }

  /** Publishes after commit. Never throws; never waits for handlers. */
  publish(event: RegistryEvent): void {
    const specific = this.#handlers.get(event.type);
    const all = this.#handlers.get('*');
    if (!specific?.size && !all?.size) return;
    const handlers = [...(specific ?? []), ...(all ?? [])];
    setImmediate(() => {
      for (const handler of handlers) {
        try {
          const result = handler(event);
          if (result && typeof result.then === 'function') result.then(undefined, (error) => this.#onHandlerError(error, event));
        } catch (error) {
          this.#onHandlerError(error, event);
        }
      }
    });
  }
}
