/**
 * Edge state in Redis, shared by every replica. Each operation is one Lua script, so concurrent
 * replicas never lose an update; keys expire on their own (no sweeper).
 */
import { Redis } from 'ioredis';
import type { BackoffPolicy, BucketSpec, EdgeState, FailureCounters, FailureState, TakeResult, TokenBuckets } from './ports.ts';

// KEYS[1] hash {f: failures, b: blockedUntilMs}; ARGV: now, free, base, max, forget
const failScript = `
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0') + 1
local now = tonumber(ARGV[1])
local over = f - tonumber(ARGV[2])
local delay = 0
if over >= 0 then
  delay = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(over, 40))
end
local b = 0
if delay > 0 then b = now + delay end
redis.call('HSET', KEYS[1], 'f', f, 'b', b)
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[5]), math.ceil(delay)))
return {f, tostring(b)}
`;

// KEYS[1] hash {t: tokens, a: atMs}; ARGV: now, capacity, refillPerSecond, ttlMs
const takeScript = `
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local t = cap
local vals = redis.call('HMGET', KEYS[1], 't', 'a')
if vals[1] then
  t = math.min(cap, tonumber(vals[1]) + math.max(0, now - tonumber(vals[2])) * rate / 1000)
end
local allowed = 0
if t >= 1 then
  t = t - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(t), 'a', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {allowed, tostring(t)}
`;

type Scripted = Redis & {
  edgeFail(key: string, ...args: Array<string | number>): Promise<[number, string]>;
  edgeTake(key: string, ...args: Array<string | number>): Promise<[number, string]>;
};

export class RedisEdgeState implements EdgeState, FailureCounters, TokenBuckets {
  readonly #redis: Scripted;
  readonly #prefix: string;
  readonly failures: FailureCounters = this;
  readonly buckets: TokenBuckets = this;

  /** @param url e.g. `redis://127.0.0.1:6379`; @param prefix namespace of every key. */
  constructor(url: string, prefix = 'portcullis:edge:') {
    const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    redis.defineCommand('edgeFail', { numberOfKeys: 1, lua: failScript });
    redis.defineCommand('edgeTake', { numberOfKeys: 1, lua: takeScript });
    // Errors reach callers through their commands; the connection keeps retrying.
    redis.on('error', () => undefined);
    this.#redis = redis as Scripted;
    this.#prefix = prefix;
  }

  async get(key: string, nowMs: number): Promise<FailureState> {
    const [f, b] = await this.#redis.hmget(`${this.#prefix}f:${key}`, 'f', 'b');
    if (f === null) return { failures: 0, blockedUntilMs: 0 };
    const blockedUntilMs = Number(b ?? 0);
    return { failures: Number(f), blockedUntilMs: blockedUntilMs > nowMs ? blockedUntilMs : 0 };
  }

  async fail(key: string, policy: BackoffPolicy, nowMs: number): Promise<FailureState> {
    const [f, b] = await this.#redis.edgeFail(`${this.#prefix}f:${key}`, nowMs, policy.freeFailures, policy.baseDelayMs, policy.maxDelayMs, policy.forgetAfterMs);
    return { failures: Number(f), blockedUntilMs: Number(b) };
  }

  async clear(key: string): Promise<void> {
    await this.#redis.del(`${this.#prefix}f:${key}`);
  }

  async take(key: string, spec: BucketSpec, nowMs: number): Promise<TakeResult> {
    // A full bucket is the same as no bucket: keep the key only as long as refilling takes.
    const ttlMs = Math.ceil((spec.capacity / spec.refillPerSecond) * 1000) + 1000;
    const [allowed, left] = await this.#redis.edgeTake(`${this.#prefix}b:${key}`, nowMs, spec.capacity, spec.refillPerSecond, ttlMs);
    const tokens = Number(left);
    if (allowed === 1) return { allowed: true, retryAfterMs: 0, remaining: Math.floor(tokens) };
    return { allowed: false, retryAfterMs: Math.ceil(((1 - tokens) * 1000) / spec.refillPerSecond), remaining: 0 };
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
