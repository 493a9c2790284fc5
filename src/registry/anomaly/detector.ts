/**
 * The anomaly detector: runs every enabled rule on the bus events and, for each alert, publishes
 * `alert.raised` (which the audit log records and webhooks deliver), writes a warning log line,
 * counts `portcullis_alerts_total{rule}` and keeps the latest alerts for GET /api/v1/alerts.
 *
 * Rule state that must see every replica's events (windows, learnt sets, pull counts, cooldowns)
 * goes through `AnomalyState`: this process's memory, or Redis shared by the replicas. Pull counts
 * are sent to it every `flushMs` (1 s) rather than per pull; images awaiting their signature stay
 * in this process.
 */
import { randomUUID } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { AlertFields, EventBus, RegistryEvent } from '../events/bus.ts';
import type { AnomalySettings } from './config.ts';
import {
  type AlertDraft,
  FailedLoginsRule,
  MassDeletionRule,
  NewNetworkRule,
  PullVolumeRule,
  ReleasedTagMovedRule,
  RobotScopeRule,
  type Rule,
  type SignatureRequirement,
  UnsignedPushRule,
} from './rules.ts';
import { type AnomalyState, MemoryAnomalyState } from './state.ts';

export interface Alert extends AlertFields {
  at: string;
  /** Who acted in the event that tipped the rule. */
  actor?: { kind: string; name?: string | undefined };
  clientAddress?: string;
}

export interface AlertLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AlertQuery {
  rule?: string;
  subject?: string;
  project?: string;
  since?: number;
  limit: number;
}

export class AnomalyDetector {
  readonly rules: Rule[];
  readonly #events: EventBus;
  readonly #settings: AnomalySettings;
  readonly #now: () => number;
  readonly #logger: AlertLogger | undefined;
  readonly #recent: Alert[] = [];
  readonly #state: AnomalyState;
  readonly #counter: Counter<'rule'> | undefined;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  /** Serialises rule evaluation so that counts see events in bus order. */
  #chain: Promise<void> = Promise.resolve();
  /** Work queued in the chain and not finished. */
  #pending = 0;

  constructor(
    deps: { events: EventBus; logger?: AlertLogger; metrics?: Registry | undefined; requiresSignature?: SignatureRequirement; now?: () => number; /** Shared counters (Redis); this process's memory when absent. */ state?: AnomalyState },
    settings: AnomalySettings,
  ) {
    this.#events = deps.events;
    this.#settings = settings;
    this.#now = deps.now ?? Date.now;
    this.#logger = deps.logger;
    const max = settings.maxTrackedIdentities;
    this.#state = deps.state ?? new MemoryAnomalyState(max);
    const rules: Rule[] = [];
    if (settings.failedLogins.enabled) rules.push(new FailedLoginsRule(settings.failedLogins, this.#state));
    if (settings.newNetwork.enabled) rules.push(new NewNetworkRule(settings.newNetwork, this.#state));
    if (settings.massDeletion.enabled) rules.push(new MassDeletionRule(settings.massDeletion, this.#state));
    if (settings.pullVolume.enabled) rules.push(new PullVolumeRule(settings.pullVolume, this.#state, max));
    if (settings.robotScope.enabled) rules.push(new RobotScopeRule(settings.robotScope, this.#state, max));
    if (settings.unsignedPush.enabled && deps.requiresSignature) rules.push(new UnsignedPushRule(settings.unsignedPush, max, deps.requiresSignature));
    if (settings.releasedTagMoved.enabled) rules.push(new ReleasedTagMovedRule(settings.releasedTagMoved));
    this.rules = rules;
    if (deps.metrics) this.#counter = new Counter({ name: 'portcullis_alerts_total', help: 'Anomaly alerts raised by rule', labelNames: ['rule'], registers: [deps.metrics] });
  }

  /**
   * Subscribes to the bus, checks deadlines every `tickMs` and sends locally counted pulls to the
   * shared state every `flushMs` (0: only when `tick` or `flush` is called).
   */
  start(tickMs = 5000, flushMs = 1000): void {
    this.#unsubscribe = this.#events.subscribe('*', (event) => {
      if (event.type !== 'alert.raised') void this.observe(event);
    });
    if (tickMs > 0) {
      this.#timer = setInterval(() => void this.tick(), tickMs);
      this.#timer.unref();
    }
    if (flushMs > 0) {
      this.#flushTimer = setInterval(() => void this.flush(), flushMs);
      this.#flushTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    if (this.#timer) clearInterval(this.#timer);
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    await this.idle();
    await this.flush();
    await this.idle();
    await this.#state.close();
  }

  /** Runs the rules on one event; resolves with the alerts raised. */
  observe(event: RegistryEvent): Promise<Alert[]> {
    // Nothing queued before it: run the rules now. Most events (every pull) tip nothing and every
    // rule answers at once, so they cost neither a place in the chain nor a promise per rule;
    // results that are promises (shared state) and alerts to raise still go through the chain,
    // which keeps later events behind them.
    if (this.#pending > 0) return this.#serial(() => this.#evaluate(event, this.#now()));
    const now = this.#now();
    const results = this.rules.map((rule) => this.#run(rule, event, () => rule.observe(event, now)));
    if (results.every(Array.isArray)) {
      const drafts = (results as AlertDraft[][]).flat();
      return drafts.length === 0 ? Promise.resolve([]) : this.#serial(() => this.#raise(drafts, now));
    }
    return this.#serial(async () => this.#raise((await Promise.all(results)).flat(), now));
  }

  async #evaluate(event: RegistryEvent, now: number): Promise<Alert[]> {
    const drafts: AlertDraft[] = [];
    for (const rule of this.rules) drafts.push(...(await this.#run(rule, event, () => rule.observe(event, now))));
    return await this.#raise(drafts, now);
  }

  /** A rule's answer; a failing rule is logged and counts as no alert. */
  #run(rule: Rule, event: RegistryEvent, observe: () => AlertDraft[] | Promise<AlertDraft[]>): AlertDraft[] | Promise<AlertDraft[]> {
    const failed = (error: unknown): AlertDraft[] => {
      this.#logger?.error({ err: error, rule: rule.name, event: event.type }, 'anomaly rule failed');
      return [];
    };
    try {
      const result = observe();
      return Array.isArray(result) ? result : result.then(undefined, failed);
    } catch (error) {
      return failed(error);
    }
  }

  /** Checks the rules' deadlines (unsigned images past their grace period). */
  tick(): Promise<Alert[]> {
    return this.#serial(async () => {
      const now = this.#now();
      const drafts: AlertDraft[] = [];
      for (const rule of this.rules) {
        try {
          if (rule.tick) drafts.push(...(await rule.tick(now)));
        } catch (error) {
          this.#logger?.error({ err: error, rule: rule.name }, 'anomaly rule failed');
        }
      }
      return await this.#raise(drafts, now);
    });
  }

  /**
   * Sends what the rules counted locally (pulls) to the shared state, then raises the alerts the
   * shared counts tip over (a burst spread over replicas). Not in the evaluation chain: events
   * keep being judged while the state answers.
   */
  async flush(): Promise<Alert[]> {
    const drafts: AlertDraft[] = [];
    for (const rule of this.rules) {
      try {
        if (rule.flush) drafts.push(...(await rule.flush()));
      } catch (error) {
        this.#logger?.error({ err: error, rule: rule.name }, 'anomaly rule failed');
      }
    }
    return drafts.length === 0 ? [] : await this.#serial(() => this.#raise(drafts, this.#now()));
  }

  /** Resolves once every event observed so far has been evaluated. */
  async idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.#chain;
  }

  /** The latest alerts, newest first. */
  recent(query: AlertQuery): Alert[] {
    const out: Alert[] = [];
    for (let i = this.#recent.length - 1; i >= 0 && out.length < query.limit; i--) {
      const a = this.#recent[i]!;
      if (query.rule && a.rule !== query.rule) continue;
      if (query.subject && a.subject !== query.subject) continue;
      if (query.project && a.project !== query.project) continue;
      if (query.since !== undefined && Date.parse(a.at) < query.since) continue;
      out.push(a);
    }
    return out;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#chain.then(work);
    this.#chain = result.then(
      () => void this.#pending--,
      () => void this.#pending--,
    );
    return result;
  }

  async #raise(drafts: AlertDraft[], now: number): Promise<Alert[]> {
    const raised: Alert[] = [];
    for (const { origin, ...draft } of drafts) {
      // volume rules cool down per identity; per-object rules per object
      const perObject = draft.rule === 'robot-scope' || draft.rule === 'unsigned-push' || draft.rule === 'released-tag-moved';
      const key = `${draft.rule}\u0000${draft.subject}${perObject ? `\u0000${draft.repository ?? ''}\u0000${draft.tag ?? ''}\u0000${draft.digest ?? ''}` : ''}`;
      // one alert per cooldown across replicas when the state is shared
      if (!(await this.#state.claim(`cd:${key}`, now, this.#settings.cooldownSeconds * 1000))) continue;
      const fields: AlertFields = { id: randomUUID(), ...draft };
      const alert: Alert = {
        ...fields,
        at: new Date(now).toISOString(),
        ...(origin && origin.actor.kind !== 'system' ? { actor: { kind: origin.actor.kind, name: origin.actor.name }, clientAddress: origin.clientAddress } : {}),
      };
      this.#recent.push(alert);
      if (this.#recent.length > this.#settings.recentAlerts) this.#recent.shift();
      this.#counter?.inc({ rule: alert.rule });
      this.#logger?.warn({ alert: { id: alert.id, rule: alert.rule, severity: alert.severity, subject: alert.subject, repository: alert.repository, facts: alert.facts } }, `anomaly alert: ${alert.reason}`);
      this.#events.publish({ type: 'alert.raised', at: new Date(now), origin, ...fields });
      raised.push(alert);
    }
    return raised;
  }
}
