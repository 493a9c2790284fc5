/**
 * The anomaly rules' shared state in Redis (see state.ts). A module of its own so that ioredis is
 * loaded only by servers that use Redis.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { AnomalyState, Membership, PullCount, PullHistory } from './state.ts';

// KEYS[1] sorted set of occurrences; ARGV: now, windowMs, unique member
const hitScript = `
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
`;

// KEYS[1] sorted set member -> last seen, KEYS[2] when the set was started; ARGV: member, now, max, ttlMs
const rememberScript = `
local size = redis.call('ZCARD', KEYS[1])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
local others = redis.call('ZRANGE', KEYS[1], -11, -1)
local since = redis.call('GET', KEYS[2])
if size == 0 or not since then
  since = ARGV[2]
  redis.call('SET', KEYS[2], since)
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
local max = tonumber(ARGV[3])
if size + 1 > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - max) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
local status = 'new'
if size == 0 then status = 'first' elseif known then status = 'known' end
return {status, others, size, since}
`;

// KEYS[1] hash first, hour, count, baseline, alerted; ARGV: hour, pulls, alpha, alertedHour, ttlMs.
// The same arithmetic as rollPulls (rules.ts).
const pullsScript = `
local hour = tonumber(ARGV[1])
local pulls = tonumber(ARGV[2])
local a = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'first', 'hour', 'count', 'baseline', 'alerted')
local first, cur, count, baseline, alerted = hour, hour, 0, 0, -1
if h[2] then
  first, cur, count, baseline, alerted = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
end
if hour > cur then
  baseline = (a * count + (1 - a) * baseline) * (1 - a) ^ math.min(1000, hour - cur - 1)
  cur = hour
  count = 0
end
if hour == cur then count = count + pulls else baseline = baseline + a * (1 - a) ^ math.min(1000, cur - 1 - hour) * pulls end
if hour < first then first = hour end
alerted = math.max(alerted, tonumber(ARGV[4]))
local b = string.format('%.17g', baseline)
redis.call('HSET', KEYS[1], 'first', first, 'hour', cur, 'count', count, 'baseline', b, 'alerted', alerted)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {first, cur, count, b, alerted}
`;

type Scripted = Redis & {
  anomalyHit(key: string, ...args: Array<string | number>): Promise<number>;
  anomalyRemember(key: string, ...args: Array<string | number>): Promise<[string, string[], number, string]>;
};

/** How long a credential's networks and a robot's repositories are remembered without use. */
const MEMBERSHIP_TTL_MS = 90 * 86_400_000;
/** How long an identity's pull history is kept without pulls (its baseline has long decayed by then). */
const PULLS_TTL_MS = 30 * 86_400_000;

export class RedisAnomalyState implements AnomalyState {
  readonly #redis: Scripted;
  readonly #prefix: string;

  constructor(url: string, prefix: string) {
    const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    redis.defineCommand('anomalyHit', { numberOfKeys: 1, lua: hitScript });
    redis.defineCommand('anomalyRemember', { numberOfKeys: 2, lua: rememberScript });
    redis.defineCommand('anomalyPulls', { numberOfKeys: 1, lua: pullsScript });
    // Errors reach callers through their commands (the detector logs them); the connection keeps retrying.
    redis.on('error', () => undefined);
    this.#redis = redis as Scripted;
    this.#prefix = prefix;
  }

  async hit(key: string, now: number, windowMs: number): Promise<number> {
    return Number(await this.#redis.anomalyHit(`${this.#prefix}w:${key}`, now, windowMs, `${now}:${randomUUID()}`));
  }

  async remember(key: string, member: string, now: number, max: number): Promise<Membership> {
    const [status, others, size, since] = await this.#redis.anomalyRemember(`${this.#prefix}s:${key}`, `${this.#prefix}f:${key}`, member, now, max, MEMBERSHIP_TTL_MS);
    return { status: status as Membership['status'], others: others.filter((m) => m !== member).slice(-10), size: Number(size), since: Number(since) };
  }

  async claim(key: string, _now: number, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(`${this.#prefix}c:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async addPulls(counts: PullCount[], alpha: number): Promise<PullHistory[]> {
    if (counts.length === 0) return [];
    const pipeline = this.#redis.pipeline() as ReturnType<Redis['pipeline']> & { anomalyPulls(key: string, ...args: Array<string | number>): unknown };
    for (const c of counts) pipeline.anomalyPulls(`${this.#prefix}p:${c.key}`, c.hour, c.pulls, alpha, c.alertedHour, PULLS_TTL_MS);
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, reply]) => {
      if (error) throw error;
      const [firstHour, hour, count, baseline, alertedHour] = (reply as Array<number | string>).map(Number) as [number, number, number, number, number];
      return { firstHour, hour, count, baseline, alertedHour };
    });
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
