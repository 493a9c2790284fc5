/** In-memory edge state: one process only (a replica set needs the Redis implementation). */
import { type BackoffPolicy, backoffDelayMs, type BucketSpec, type EdgeState, type FailureCounters, type FailureState, type TakeResult, type TokenBuckets } from './ports.ts';

/** Entries kept at most per map; the oldest are dropped first (bounded memory under address floods). */
const maxEntries = 100_000;

function bounded<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > maxEntries) map.delete(map.keys().next().value as K);
}

export class MemoryFailureCounters implements FailureCounters {
  readonly #entries = new Map<string, FailureState & { expiresMs: number }>();

  #read(key: string, nowMs: number): FailureState {
    const entry = this.#entries.get(key);
    if (!entry || entry.expiresMs <= nowMs) return { failures: 0, blockedUntilMs: 0 };
    return { failures: entry.failures, blockedUntilMs: entry.blockedUntilMs > nowMs ? entry.blockedUntilMs : 0 };
  }

  async get(key: string, nowMs: number): Promise<FailureState> {
    return this.#read(key, nowMs);
  }

  async fail(key: string, policy: BackoffPolicy, nowMs: number): Promise<FailureState> {
    // Read and write in one synchronous step (no await between them: concurrent failures all count).
    const failures = this.#read(key, nowMs).failures + 1;
    const delay = backoffDelayMs(policy, failures);
    const state = { failures, blockedUntilMs: delay > 0 ? nowMs + delay : 0 };
    bounded(this.#entries, key, { ...state, expiresMs: nowMs + Math.max(policy.forgetAfterMs, delay) });
    return state;
  }

  async clear(key: string): Promise<void> {
    this.#entries.delete(key);
  }
}

export class MemoryTokenBuckets implements TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; atMs: number }>();

  async take(key: string, spec: BucketSpec, nowMs: number): Promise<TakeResult> {
    const bucket = this.#buckets.get(key);
    let tokens = spec.capacity;
    if (bucket) tokens = Math.min(spec.capacity, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * spec.refillPerSecond) / 1000);
    if (tokens >= 1) {
      bounded(this.#buckets, key, { tokens: tokens - 1, atMs: nowMs });
      return { allowed: true, retryAfterMs: 0, remaining: Math.floor(tokens - 1) };
    }
    bounded(this.#buckets, key, { tokens, atMs: nowMs });
    return { allowed: false, retryAfterMs: Math.ceil(((1 - tokens) * 1000) / spec.refillPerSecond), remaining: 0 };
  }
}

export function memoryEdgeState(): EdgeState {
  return { failures: new MemoryFailureCounters(), buckets: new MemoryTokenBuckets(), close: async () => undefined };
}
