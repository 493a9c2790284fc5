/**
 * Shared state of the rules that must see every replica's events: sliding-window counts (failed
 * logins, deletions), the networks a credential was used from, and alert cooldowns. In memory by
 * default; in Redis when the edge uses Redis (`edge.redisUrl`), so that an attacker spreading
 * attempts over replicas behind a load balancer is still counted once. Each Redis operation is one
 * Lua script (atomic across replicas); keys expire on their own.
 *
 * Pull baselines and robots' repository sets stay per process (see docs/notifications.md).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { BoundedMap } from './rules.ts';

export interface Membership {
  /** `first`: nothing was known for the key (learnt silently); `known`; `new`: other members exist. */
  status: 'first' | 'known' | 'new';
  /** Other members, most recent last (up to 10). */
  others: string[];
}

export interface AnomalyState {
  /** Records an occurrence at `now` under `key`; returns how many fall within the last `windowMs`. */
  hit(key: string, now: number, windowMs: number): Promise<number>;
  /** Records `member` (seen at `now`) in the set `key`, keeping the `max` most recent. */
  remember(key: string, member: string, now: number, max: number): Promise<Membership>;
  /** True once per `ttlMs` for a key (the caller may alert); false while it is claimed. */
  claim(key: string, now: number, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryAnomalyState implements AnomalyState {
  readonly #windows: BoundedMap<string, number[]>;
  readonly #sets: BoundedMap<string, BoundedMap<string, number>>;
  readonly #claims: BoundedMap<string, number>;

  constructor(maxKeys: number) {
    this.#windows = new BoundedMap(maxKeys);
    this.#sets = new BoundedMap(maxKeys);
    this.#claims = new BoundedMap(maxKeys);
  }

  async hit(key: string, now: number, windowMs: number): Promise<number> {
    let times = this.#windows.get(key);
    if (!times) this.#windows.set(key, (times = []));
    times.push(now);
    while (times.length > 0 && times[0]! <= now - windowMs) times.shift();
    return times.length;
  }

  async remember(key: string, member: string, now: number, max: number): Promise<Membership> {
    let set = this.#sets.get(key);
    if (!set) {
      set = new BoundedMap(max);
      set.set(member, now);
      this.#sets.set(key, set);
      return { status: 'first', others: [] };
    }
    const known = set.get(member) !== undefined;
    const others = [...set.entries()].map(([m]) => m).filter((m) => m !== member).slice(-10);
    set.set(member, now);
    return { status: known ? 'known' : 'new', others };
  }

  async claim(key: string, now: number, ttlMs: number): Promise<boolean> {
    const last = this.#claims.get(key);
    if (last !== undefined && now - last < ttlMs) return false;
    this.#claims.set(key, now);
    return true;
  }

  async close(): Promise<void> {}
}

// KEYS[1] sorted set of occurrences; ARGV: now, windowMs, unique member
const hitScript = `
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
`;

// KEYS[1] sorted set member -> last seen; ARGV: member, now, max, ttlMs
const rememberScript = `
local size = redis.call('ZCARD', KEYS[1])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
local others = redis.call('ZRANGE', KEYS[1], -11, -1)
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
local max = tonumber(ARGV[3])
if size + 1 > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - max) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
local status = 'new'
if size == 0 then status = 'first' elseif known then status = 'known' end
return {status, others}
`;

type Scripted = Redis & {
  anomalyHit(key: string, ...args: Array<string | number>): Promise<number>;
  anomalyRemember(key: string, ...args: Array<string | number>): Promise<[string, string[]]>;
};

/** How long a credential's networks are remembered without use. */
const MEMBERSHIP_TTL_MS = 90 * 86_400_000;

export class RedisAnomalyState implements AnomalyState {
  readonly #redis: Scripted;
  readonly #prefix: string;

  constructor(url: string, prefix: string) {
    const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    redis.defineCommand('anomalyHit', { numberOfKeys: 1, lua: hitScript });
    redis.defineCommand('anomalyRemember', { numberOfKeys: 1, lua: rememberScript });
    // Errors reach callers through their commands (the detector logs them); the connection keeps retrying.
    redis.on('error', () => undefined);
    this.#redis = redis as Scripted;
    this.#prefix = prefix;
  }

  async hit(key: string, now: number, windowMs: number): Promise<number> {
    return Number(await this.#redis.anomalyHit(`${this.#prefix}w:${key}`, now, windowMs, `${now}:${randomUUID()}`));
  }

  async remember(key: string, member: string, now: number, max: number): Promise<Membership> {
    const [status, others] = await this.#redis.anomalyRemember(`${this.#prefix}s:${key}`, member, now, max, MEMBERSHIP_TTL_MS);
    return { status: status as Membership['status'], others: others.filter((m) => m !== member).slice(-10) };
  }

  async claim(key: string, _now: number, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(`${this.#prefix}c:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
