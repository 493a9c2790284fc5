/**
 * Anomaly rules. Each one watches a few bus events and keeps small per-identity state (bounded
 * maps, least recently seen forgotten first); `observe` returns the alerts an event tips over,
 * `tick` those a deadline produces. Time comes from the caller (`now`), never from the clock, so
 * that scenarios are scripted, not slept through.
 */
import { isIP } from 'node:net';
import { projectOf } from '../../oci/reference.ts';
import type { AlertFields, AlertRule, RegistryEvent, RequestOrigin } from '../events/bus.ts';
import type { AnomalySettings } from './config.ts';
import type { AnomalyState } from './state.ts';

/** An alert before it gets its id and time. */
export type AlertDraft = Omit<AlertFields, 'id'> & { origin: RequestOrigin | undefined };

export interface Rule {
  readonly name: AlertRule;
  observe(event: RegistryEvent, now: number): AlertDraft[] | Promise<AlertDraft[]>;
  tick?(now: number): AlertDraft[] | Promise<AlertDraft[]>;
  /** Sends what the rule counted locally to the shared state; returns the alerts the shared counts tip over. */
  flush?(): Promise<AlertDraft[]>;
}

/** A Map with an entry bound: touching a key makes it the newest; the oldest goes first. */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, V>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as K);
  }
  delete(key: K): void {
    this.#map.delete(key);
  }
  get size(): number {
    return this.#map.size;
  }
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries();
  }
}

/** `user:alice`, `robot:robot$ci`, or `address:192.0.2.7` for an anonymous client. */
export function identityOf(origin: RequestOrigin | undefined): string | undefined {
  if (!origin) return undefined;
  const { kind, name } = origin.actor;
  if (kind === 'system') return undefined;
  if (kind === 'anonymous' || !name) return `address:${origin.clientAddress}`;
  return `${kind}:${name}`;
}

/** The network of an address: IPv4 /24 (`192.0.2.0/24`), IPv6 /64; undefined for a non-address. */
export function networkOf(address: string, ipv4Prefix: number, ipv6Prefix: number): string | undefined {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  const plain = mapped ? mapped[1]! : address;
  const version = isIP(plain);
  if (version === 4) {
    const value = plain.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
    const masked = ipv4Prefix === 0 ? 0 : Math.floor(value / 2 ** (32 - ipv4Prefix)) * 2 ** (32 - ipv4Prefix);
    return `${[24, 16, 8, 0].map((shift) => Math.floor(masked / 2 ** shift) % 256).join('.')}/${ipv4Prefix}`;
  }
  if (version === 6) {
    const groups = expandIpv6(plain);
    let bits = ipv6Prefix;
    const out = groups.map((g) => {
      const keep = Math.max(0, Math.min(16, bits));
      bits -= 16;
      return keep === 16 ? g : keep === 0 ? 0 : g & (0xffff << (16 - keep)) & 0xffff;
    });
    return `${out.map((g) => g.toString(16)).join(':')}/${ipv6Prefix}`;
  }
  return undefined;
}

function expandIpv6(address: string): number[] {
  const [head = '', tail] = address.split('%')[0]!.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ipv4Groups(g) : [parseInt(g, 16)])));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function ipv4Groups(dotted: string): number[] {
  const [a, b, c, d] = dotted.split('.').map(Number) as [number, number, number, number];
  return [a * 256 + b, c * 256 + d];
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/** 1. Repeated failed logins, per claimed account and per client address (shared state). */
export class FailedLoginsRule implements Rule {
  readonly name = 'failed-logins' as const;
  readonly #state: AnomalyState;
  readonly #s: AnomalySettings['failedLogins'];

  constructor(settings: AnomalySettings['failedLogins'], state: AnomalyState) {
    this.#s = settings;
    this.#state = state;
  }

  // Not async: every other event (a pull) is answered at once, without a promise.
  observe(event: RegistryEvent, now: number): AlertDraft[] | Promise<AlertDraft[]> {
    return event.type === 'auth.failed' ? this.#failed(event, now) : [];
  }

  async #failed(event: Extract<RegistryEvent, { type: 'auth.failed' }>, now: number): Promise<AlertDraft[]> {
    const windowMs = this.#s.windowSeconds * 1000;
    const alerts: AlertDraft[] = [];
    const perAccount = await this.#state.hit(`fl:a:${event.username}`, now, windowMs);
    const address = event.origin?.clientAddress;
    const perAddress = address ? await this.#state.hit(`fl:ip:${address}`, now, windowMs) : 0;
    if (perAccount >= this.#s.perAccount) {
      alerts.push({
        rule: this.name,
        severity: 'warning',
        subject: `user:${event.username}`,
        reason: `${perAccount} failed logins for account ${event.username} within ${minutes(windowMs)} (threshold ${this.#s.perAccount}); last from ${address ?? 'unknown'}`,
        facts: { account: event.username, failures: perAccount, threshold: this.#s.perAccount, windowSeconds: this.#s.windowSeconds, lastAddress: address ?? 'unknown', lastReason: event.reason },
        origin: event.origin,
      });
    }
    if (address && perAddress >= this.#s.perAddress) {
      alerts.push({
        rule: this.name,
        severity: 'warning',
        subject: `address:${address}`,
        reason: `${perAddress} failed logins from ${address} within ${minutes(windowMs)} (threshold ${this.#s.perAddress}); last for account ${event.username}`,
        facts: { address, failures: perAddress, threshold: this.#s.perAddress, windowSeconds: this.#s.windowSeconds, lastAccount: event.username },
        origin: event.origin,
      });
    }
    return alerts;
  }
}

/**
 * 2. A credential used from a network it was never used from (shared state). The first network an
 * identity is seen from is learnt silently; so is everything while the identity is unknown.
 */
export class NewNetworkRule implements Rule {
  readonly name = 'new-network' as const;
  readonly #state: AnomalyState;
  readonly #s: AnomalySettings['newNetwork'];

  constructor(settings: AnomalySettings['newNetwork'], state: AnomalyState) {
    this.#s = settings;
    this.#state = state;
  }

  observe(event: RegistryEvent, now: number): AlertDraft[] | Promise<AlertDraft[]> {
    return event.type === 'auth.succeeded' && event.origin ? this.#succeeded(event, event.origin, now) : [];
  }

  async #succeeded(event: Extract<RegistryEvent, { type: 'auth.succeeded' }>, origin: RequestOrigin, now: number): Promise<AlertDraft[]> {
    const network = networkOf(origin.clientAddress, this.#s.ipv4PrefixLength, this.#s.ipv6PrefixLength);
    if (!network) return [];
    const identity = `${event.method === 'robot' ? 'robot' : 'user'}:${event.username}`;
    const seen = await this.#state.remember(`nn:${identity}`, network, now, this.#s.maxNetworksPerIdentity);
    if (seen.status !== 'new') return [];
    return [
      {
        rule: this.name,
        severity: 'warning',
        subject: identity,
        reason: `${identity} authenticated (${event.method}) from ${origin.clientAddress}, network ${network}, for the first time; known networks: ${seen.others.slice(-5).join(', ')}`,
        facts: { identity, address: origin.clientAddress, network, method: event.method, knownNetworks: seen.others },
        origin,
      },
    ];
  }
}

/** 3. Mass deletion: manifest and tag deletions by one identity within a window (shared state). */
export class MassDeletionRule implements Rule {
  readonly name = 'mass-deletion' as const;
  readonly #state: AnomalyState;
  readonly #s: AnomalySettings['massDeletion'];

  constructor(settings: AnomalySettings['massDeletion'], state: AnomalyState) {
    this.#s = settings;
    this.#state = state;
  }

  observe(event: RegistryEvent, now: number): AlertDraft[] | Promise<AlertDraft[]> {
    return event.type === 'manifest.deleted' || event.type === 'tag.deleted' ? this.#deleted(event, now) : [];
  }

  async #deleted(event: Extract<RegistryEvent, { type: 'manifest.deleted' | 'tag.deleted' }>, now: number): Promise<AlertDraft[]> {
    const identity = identityOf(event.origin);
    if (!identity) return [];
    const count = await this.#state.hit(`md:${identity}`, now, this.#s.windowSeconds * 1000);
    if (count < this.#s.threshold) return [];
    return [
      {
        rule: this.name,
        severity: 'critical',
        subject: identity,
        project: projectOf(event.repository),
        repository: event.repository,
        reason: `${identity} deleted ${count} manifests or tags within ${minutes(this.#s.windowSeconds * 1000)} (threshold ${this.#s.threshold}); latest in ${event.repository}`,
        facts: { identity, deletions: count, threshold: this.#s.threshold, windowSeconds: this.#s.windowSeconds, lastRepository: event.repository },
        origin: event.origin,
      },
    ];
  }
}

/** An identity's hourly manifest pulls (shared state, and each replica's view of it). */
export interface PullHistory {
  firstHour: number;
  /** The current clock hour and its pulls so far. */
  hour: number;
  count: number;
  /** EWMA of completed hours' pulls (hours without pulls count as 0). */
  baseline: number;
  /** The last hour an alert was raised for (-1: never). */
  alertedHour: number;
}

/**
 * Adds `pulls` counted in clock hour `hour` to a history (a new one when undefined), in place:
 * a later hour first completes the current one into the baseline, then the silent hours between;
 * an hour already completed (a replica's late count) goes into the baseline with the weight that
 * hour has in it, as if it had been counted in time. The Lua of RedisAnomalyState does the same.
 */
export function rollPulls(h: PullHistory | undefined, hour: number, pulls: number, alpha: number): PullHistory {
  if (!h) return { firstHour: hour, hour, count: pulls, baseline: 0, alertedHour: -1 };
  if (hour > h.hour) {
    h.baseline = (alpha * h.count + (1 - alpha) * h.baseline) * (1 - alpha) ** Math.min(1000, hour - h.hour - 1);
    h.hour = hour;
    h.count = 0;
  }
  if (hour === h.hour) h.count += pulls;
  else h.baseline += alpha * (1 - alpha) ** Math.min(1000, h.hour - 1 - hour) * pulls;
  h.firstHour = Math.min(h.firstHour, hour);
  return h;
}

/** This replica's view of an identity's history, with the latest pull (for the alert). */
interface PullView extends PullHistory {
  repository: string;
  origin: RequestOrigin | undefined;
}

/**
 * 4. Pull volume: this hour's manifest pulls against the identity's baseline, an exponentially
 * weighted moving average of its hourly pulls. Alerts once per hour when the count reaches
 * `multiplier` x baseline and `minPulls`, after `learningHours` of history.
 *
 * A pull costs no round trip to the shared state: it is added to this replica's view of the
 * identity's history (judged at once) and to the counts not yet sent. `flush` (every second, from
 * the detector) adds those counts to the shared history, which comes back with every replica's
 * pulls in it and replaces the view: a burst spread over replicas is judged on its total there.
 */
export class PullVolumeRule implements Rule {
  readonly name = 'pull-volume' as const;
  readonly #s: AnomalySettings['pullVolume'];
  readonly #state: AnomalyState;
  readonly #maxTracked: number;
  readonly #views: BoundedMap<string, PullView>;
  /** Pulls per identity and hour not yet in the shared state. */
  #unsent: BoundedMap<string, Array<{ hour: number; pulls: number }>>;
  #flushing = false;

  constructor(settings: AnomalySettings['pullVolume'], state: AnomalyState, maxTracked: number) {
    this.#s = settings;
    this.#state = state;
    this.#maxTracked = maxTracked;
    this.#views = new BoundedMap(maxTracked);
    this.#unsent = new BoundedMap(maxTracked);
  }

  /** The identity's baseline as this replica last knew it (tests and the API). */
  baseline(identity: string): number | undefined {
    return this.#views.get(identity)?.baseline;
  }

  observe(event: RegistryEvent, now: number): AlertDraft[] {
    if (event.type !== 'manifest.pulled') return [];
    const identity = identityOf(event.origin);
    if (!identity) return [];
    const hour = Math.floor(now / 3_600_000);
    let view = this.#views.get(identity);
    if (view) rollPulls(view, hour, 1, this.#s.alpha);
    else this.#views.set(identity, (view = { ...rollPulls(undefined, hour, 1, this.#s.alpha), repository: event.repository, origin: event.origin }));
    view.repository = event.repository;
    view.origin = event.origin;
    addUnsent(this.#unsent, identity, hour, 1);
    return this.#judge(identity, view);
  }

  async flush(): Promise<AlertDraft[]> {
    if (this.#flushing || this.#unsent.size === 0) return [];
    const sent = this.#unsent;
    this.#unsent = new BoundedMap(this.#maxTracked);
    const sentCounts = [...sent.entries()].flatMap(([identity, hours]) => hours.map(({ hour, pulls }) => ({ identity, hour, pulls })));
    this.#flushing = true;
    let shared: PullHistory[];
    try {
      shared = await this.#state.addPulls(
        sentCounts.map(({ identity, hour, pulls }) => ({ key: `pv:${identity}`, hour, pulls, alertedHour: this.#views.get(identity)?.alertedHour ?? -1 })),
        this.#s.alpha,
      );
    } catch (error) {
      // sent again with the next flush (the latest day of hours at most)
      for (const { identity, hour, pulls } of sentCounts) addUnsent(this.#unsent, identity, hour, pulls);
      throw error;
    } finally {
      this.#flushing = false;
    }
    // each identity's history after its last count, plus what was pulled here meanwhile
    const latest = new Map<string, PullHistory>();
    sentCounts.forEach(({ identity }, i) => latest.set(identity, shared[i]!));
    const alerts: AlertDraft[] = [];
    for (const [identity, history] of latest) {
      const view = this.#views.get(identity);
      if (!view) continue;
      const alertedHour = Math.max(view.alertedHour, history.alertedHour);
      Object.assign(view, history, { alertedHour });
      for (const { hour, pulls } of this.#unsent.get(identity) ?? []) rollPulls(view, hour, pulls, this.#s.alpha);
      alerts.push(...this.#judge(identity, view));
    }
    return alerts;
  }

  #judge(identity: string, h: PullView): AlertDraft[] {
    const learnt = h.hour - h.firstHour >= this.#s.learningHours;
    const threshold = Math.max(this.#s.minPulls, this.#s.multiplier * h.baseline);
    if (!learnt || h.count < threshold || h.alertedHour >= h.hour) return [];
    h.alertedHour = h.hour;
    const baseline = Math.round(h.baseline * 10) / 10;
    return [
      {
        rule: this.name,
        severity: 'warning',
        subject: identity,
        project: projectOf(h.repository),
        repository: h.repository,
        reason: `${identity} pulled ${h.count} manifests this hour, ${baseline > 0 ? `${Math.round((h.count / h.baseline) * 10) / 10}x` : 'far above'} its baseline of ${baseline} per hour (alert at ${this.#s.multiplier}x and at least ${this.#s.minPulls})`,
        facts: { identity, pullsThisHour: h.count, baselinePerHour: baseline, multiplier: this.#s.multiplier, minPulls: this.#s.minPulls, windowSeconds: 3600, lastRepository: h.repository },
        origin: h.origin,
      },
    ];
  }
}

function addUnsent(unsent: BoundedMap<string, Array<{ hour: number; pulls: number }>>, identity: string, hour: number, pulls: number): void {
  let hours = unsent.get(identity);
  if (!hours) unsent.set(identity, (hours = []));
  const entry = hours.find((e) => e.hour === hour);
  if (entry) entry.pulls += pulls;
  else {
    hours.push({ hour, pulls });
    hours.sort((a, b) => a.hour - b.hour);
    if (hours.length > 24) hours.shift();
  }
}

/** How long a robot's repository confirmed in the shared set is taken as known without asking again. */
const ROBOT_KNOWN_MS = 60_000;

/**
 * 5. Robot scope: during `learningDays` after a robot is first seen its repositories are learnt;
 * afterwards a repository outside that set raises an alert (once: it is then learnt). The set
 * (and when it was started) is shared between replicas (`AnomalyState.remember`); a repository
 * confirmed there is then taken as known here for a minute, so a robot pulling the blobs of an
 * image asks the shared state once, not once per blob.
 */
export class RobotScopeRule implements Rule {
  readonly name = 'robot-scope' as const;
  readonly #state: AnomalyState;
  readonly #s: AnomalySettings['robotScope'];
  /** `robot\0repository` -> when the shared set last confirmed it. */
  readonly #confirmed: BoundedMap<string, number>;

  constructor(settings: AnomalySettings['robotScope'], state: AnomalyState, maxTracked: number) {
    this.#s = settings;
    this.#state = state;
    this.#confirmed = new BoundedMap(maxTracked);
  }

  observe(event: RegistryEvent, now: number): AlertDraft[] | Promise<AlertDraft[]> {
    if (!event.origin || event.origin.actor.kind !== 'robot' || !event.origin.actor.name) return [];
    if (!('repository' in event) || typeof event.repository !== 'string') return [];
    if (!/^(manifest|blob|tag)\./.test(event.type)) return [];
    const confirmed = this.#confirmed.get(`${event.origin.actor.name}\u0000${event.repository}`);
    if (confirmed !== undefined && now - confirmed < ROBOT_KNOWN_MS) return [];
    return this.#used(event, event.origin, event.origin.actor.name, event.repository, now);
  }

  async #used(event: RegistryEvent, origin: RequestOrigin, robot: string, repository: string, now: number): Promise<AlertDraft[]> {
    const seen = await this.#state.remember(`rs:${robot}`, repository, now, this.#s.maxRepositoriesPerRobot);
    this.#confirmed.set(`${robot}\u0000${repository}`, now);
    const learning = now - seen.since < this.#s.learningDays * 86_400_000;
    if (seen.status !== 'new' || learning) return [];
    return [
      {
        rule: this.name,
        severity: 'warning',
        subject: `robot:${robot}`,
        project: projectOf(repository),
        repository,
        reason: `robot ${robot} used ${repository} (${event.type}), outside the ${seen.size} repositories it used since ${new Date(seen.since).toISOString()}`,
        facts: { robot, repository, action: event.type, usualRepositories: seen.others, learningDays: this.#s.learningDays },
        origin,
      },
    ];
  }
}

/** Whether a project's trust policy requires a valid signature to pull (signatures module). */
export type SignatureRequirement = (project: string) => Promise<boolean>;

interface PendingImage {
  repository: string;
  digest: string;
  deadline: number;
  origin: RequestOrigin | undefined;
  verdict: string;
  reason: string | undefined;
}

/**
 * 6. An image pushed into a project that requires signatures and still not verified after
 * `graceSeconds` (cosign and notation sign after the push, so a fresh push is always unsigned).
 * The push-time verdict opens the case; a later `verified` verdict for the digest closes it.
 */
export class UnsignedPushRule implements Rule {
  readonly name = 'unsigned-push' as const;
  readonly #pending: BoundedMap<string, PendingImage>;
  readonly #s: AnomalySettings['unsignedPush'];
  readonly #requires: SignatureRequirement;

  constructor(settings: AnomalySettings['unsignedPush'], maxTracked: number, requires: SignatureRequirement) {
    this.#s = settings;
    this.#pending = new BoundedMap(maxTracked);
    this.#requires = requires;
  }

  observe(event: RegistryEvent, now: number): AlertDraft[] {
    if (event.type === 'manifest.deleted') {
      this.#pending.delete(`${event.repository}@${event.digest}`);
      return [];
    }
    if (event.type !== 'signature.verified') return [];
    const key = `${event.repository}@${event.digest}`;
    if (event.verdict === 'verified') {
      this.#pending.delete(key);
      return [];
    }
    if (event.trigger === 'push' && this.#pending.get(key) === undefined) {
      this.#pending.set(key, { repository: event.repository, digest: event.digest, deadline: now + this.#s.graceSeconds * 1000, origin: event.origin, verdict: event.verdict, reason: event.reason });
    }
    return [];
  }

  async tick(now: number): Promise<AlertDraft[]> {
    const due = [...this.#pending.entries()].filter(([, p]) => p.deadline <= now);
    const alerts: AlertDraft[] = [];
    for (const [key, p] of due) {
      const project = projectOf(p.repository);
      // a failed lookup leaves the case open for the next tick rather than dropping it
      if (!(await this.#requires(project))) {
        this.#pending.delete(key);
        continue;
      }
      this.#pending.delete(key);
      const pusher = identityOf(p.origin) ?? 'unknown';
      alerts.push({
        rule: this.name,
        severity: 'critical',
        subject: pusher,
        project,
        repository: p.repository,
        digest: p.digest,
        reason: `${p.repository}@${p.digest} pushed by ${pusher} into project ${project}, which requires signatures, is still ${p.verdict} ${this.#s.graceSeconds} s later${p.reason ? ` (${p.reason})` : ''}`,
        facts: { identity: pusher, verdict: p.verdict, graceSeconds: this.#s.graceSeconds, ...(p.reason ? { verificationReason: p.reason } : {}) },
        origin: p.origin,
      });
    }
    return alerts;
  }
}

/** 7. A tag that looks like a released version re-pointed to another manifest. */
export class ReleasedTagMovedRule implements Rule {
  readonly name = 'released-tag-moved' as const;
  readonly #pattern: RegExp;

  constructor(settings: AnomalySettings['releasedTagMoved']) {
    this.#pattern = new RegExp(settings.pattern);
  }

  observe(event: RegistryEvent): AlertDraft[] {
    if (event.type !== 'manifest.pushed' || !event.tag || !event.previousTagTarget || event.previousTagTarget === event.digest) return [];
    if (!this.#pattern.test(event.tag)) return [];
    const identity = identityOf(event.origin) ?? 'system';
    return [
      {
        rule: this.name,
        severity: 'critical',
        subject: identity,
        project: projectOf(event.repository),
        repository: event.repository,
        digest: event.digest,
        tag: event.tag,
        reason: `released tag ${event.repository}:${event.tag} moved by ${identity} from ${event.previousTagTarget} to ${event.digest}`,
        facts: { identity, tag: event.tag, from: event.previousTagTarget, to: event.digest, pattern: this.#pattern.source },
        origin: event.origin,
      },
    ];
  }
}
