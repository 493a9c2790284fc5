/**
 * Shared state of the rules that must see every replica's events: sliding-window counts (failed
 * logins, deletions), learnt sets (the networks a credential was used from, the repositories a
 * robot uses, with when each set was started), per-identity hourly pull counts with their EWMA
 * baseline, and alert cooldowns. In memory by default; in Redis when the edge uses Redis
 * (`edge.redisUrl`), so that an attacker spreading attempts over replicas behind a load balancer
 * is still counted once. Each Redis operation is one Lua script (atomic across replicas); keys
 * expire on their own. Pulls are not sent one by one: the pull-volume rule counts them in the
 * process and flushes the counts every second (`addPulls`, one pipelined round trip). The Redis
 * implementation is `redis-state.ts`, loaded only when Redis is configured.
 */
import { BoundedMap, type PullHistory, rollPulls } from './rules.ts';

export type { PullHistory } from './rules.ts';

export interface Membership {
  /** `first`: nothing was known for the key (learnt silently); `known`; `new`: other members exist. */
  status: 'first' | 'known' | 'new';
  /** Other members, most recent last (up to 10). */
  others: string[];
  /** Members before this one was recorded. */
  size: number;
  /** When the set was started (its first member recorded), ms. */
  since: number;
}

/** Pulls of one identity counted by one replica in one clock hour, not yet in the shared state. */
export interface PullCount {
  key: string;
  /** Clock hour (ms since the epoch / 3 600 000). */
  hour: number;
  pulls: number;
  /** The last hour this replica alerted for the identity (-1: never). */
  alertedHour: number;
}

export interface AnomalyState {
  /** Records an occurrence at `now` under `key`; returns how many fall within the last `windowMs`. */
  hit(key: string, now: number, windowMs: number): Promise<number>;
  /** Records `member` (seen at `now`) in the set `key`, keeping the `max` most recent. */
  remember(key: string, member: string, now: number, max: number): Promise<Membership>;
  /** True once per `ttlMs` for a key (the caller may alert); false while it is claimed. */
  claim(key: string, now: number, ttlMs: number): Promise<boolean>;
  /**
   * Adds each count, in order, to its key's hourly history (EWMA with `alpha` of completed hours,
   * see `rollPulls`; a count for an hour already completed goes into the baseline with that hour's
   * weight); returns each key's history after its count.
   */
  addPulls(counts: PullCount[], alpha: number): Promise<PullHistory[]>;
  close(): Promise<void>;
}

export class MemoryAnomalyState implements AnomalyState {
  readonly #windows: BoundedMap<string, number[]>;
  readonly #sets: BoundedMap<string, { since: number; members: BoundedMap<string, number> }>;
  readonly #claims: BoundedMap<string, number>;
  readonly #pulls: BoundedMap<string, PullHistory>;

  constructor(maxKeys: number) {
    this.#windows = new BoundedMap(maxKeys);
    this.#sets = new BoundedMap(maxKeys);
    this.#claims = new BoundedMap(maxKeys);
    this.#pulls = new BoundedMap(maxKeys);
  }

  async hit(key: string, now: number, windowMs: number): Promise<number> {
    let times = this.#windows.get(key);
    if (!times) this.#windows.set(key, (times = []));
    times.push(now);
    while (times.length > 0 && times[0]! <= now - windowMs) times.shift();
    return times.length;
  }

  async remember(key: string, member: string, now: number, max: number): Promise<Membership> {
    const set = this.#sets.get(key);
    if (!set) {
      const members = new BoundedMap<string, number>(max);
      members.set(member, now);
      this.#sets.set(key, { since: now, members });
      return { status: 'first', others: [], size: 0, since: now };
    }
    const { members } = set;
    const size = members.size;
    const known = members.get(member) !== undefined;
    const others = [...members.entries()].map(([m]) => m).filter((m) => m !== member).slice(-10);
    members.set(member, now);
    return { status: known ? 'known' : 'new', others, size, since: set.since };
  }

  async claim(key: string, now: number, ttlMs: number): Promise<boolean> {
    const last = this.#claims.get(key);
    if (last !== undefined && now - last < ttlMs) return false;
    this.#claims.set(key, now);
    return true;
  }

  async addPulls(counts: PullCount[], alpha: number): Promise<PullHistory[]> {
    return counts.map(({ key, hour, pulls, alertedHour }) => {
      const history = rollPulls(this.#pulls.get(key), hour, pulls, alpha);
      history.alertedHour = Math.max(history.alertedHour, alertedHour);
      this.#pulls.set(key, history);
      return { ...history };
    });
  }

  async close(): Promise<void> {}
}
