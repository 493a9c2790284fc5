/**
 * State the network edge keeps about clients: failed-login counters (brute-force protection) and
 * token buckets (rate limits). Two implementations pass the same contract suite
 * (test/edge/state.contract.ts): in memory (one process) and Redis (shared by every replica).
 * Times are passed in (milliseconds since the epoch) so that tests control the clock.
 */

/** What a failure counter knows about one key (an account or a client address). */
export interface FailureState {
  /** Consecutive failures not yet forgotten. */
  failures: number;
  /** Attempts are refused until this time (0: not blocked). */
  blockedUntilMs: number;
}

/** How failures turn into back-off: free attempts, then doubling delays up to a lockout. */
export interface BackoffPolicy {
  /** Failures before the first delay (at least 1): the `freeFailures`-th failure starts it. */
  freeFailures: number;
  /** The first delay; doubles with each further failure. */
  baseDelayMs: number;
  /** Longest delay (the lockout). */
  maxDelayMs: number;
  /** Failures are forgotten this long after the last one. */
  forgetAfterMs: number;
}

/** Delay after `failures` consecutive failures under `policy` (0 before the `freeFailures`-th). */
export function backoffDelayMs(policy: BackoffPolicy, failures: number): number {
  const over = failures - policy.freeFailures;
  if (over < 0) return 0;
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(over, 40));
}

export interface FailureCounters {
  get(key: string, nowMs: number): Promise<FailureState>;
  /** Counts one failure and returns the new state (atomically, across replicas for Redis). */
  fail(key: string, policy: BackoffPolicy, nowMs: number): Promise<FailureState>;
  /** Forgets a key (after a successful login). */
  clear(key: string): Promise<void>;
}

/** A token bucket: `capacity` tokens, refilled at `refillPerSecond`. */
export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

export interface TakeResult {
  allowed: boolean;
  /** When refused: how long until one token is available. */
  retryAfterMs: number;
  /** Tokens left after this take. */
  remaining: number;
}

export interface TokenBuckets {
  /** Takes one token from the bucket `key` if there is one. */
  take(key: string, spec: BucketSpec, nowMs: number): Promise<TakeResult>;
}

/** Both kinds of state, and how to release their resources. */
export interface EdgeState {
  failures: FailureCounters;
  buckets: TokenBuckets;
  close(): Promise<void>;
}
