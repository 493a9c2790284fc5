/**
 * Bounded drivers: a fixed number of operations over N workers with a deadline, and a
 * fixed-duration request loop recording latencies.
 */
import { performance } from 'node:perf_hooks';

export interface OpsResult {
  done: number;
  failed: number;
  elapsedMs: number;
  firstError?: Error;
  /** True when the deadline stopped the run before `count` operations. */
  capped: boolean;
}

/**
 * Runs `op(i)` for i = 0..count-1 on `concurrency` workers. No new operation starts after
 * `maxMs`. Errors are counted; with `stopOnError` the first one ends the run.
 */
export async function runOps(options: { count: number; concurrency: number; maxMs: number; stopOnError?: boolean }, op: (index: number) => Promise<unknown>): Promise<OpsResult> {
  const start = performance.now();
  const deadline = start + options.maxMs;
  let next = 0;
  let done = 0;
  let failed = 0;
  let firstError: Error | undefined;
  let stop = false;
  const worker = async () => {
    while (!stop && next < options.count && performance.now() < deadline) {
      const index = next++;
      try {
        await op(index);
        done++;
      } catch (error) {
        failed++;
        firstError ??= error as Error;
        if (options.stopOnError !== false) stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  return { done, failed, elapsedMs: performance.now() - start, capped: done + failed < options.count, ...(firstError ? { firstError } : {}) };
}

export interface LoadResult {
  requests: number;
  failed: number;
  elapsedMs: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: Error;
}

/**
 * `connections` loops each issuing one request at a time for `durationMs` (at most
 * `maxRequests` in all). `op` throws on a wrong answer.
 */
export async function loadTest(options: { connections: number; durationMs: number; maxRequests: number }, op: () => Promise<void>): Promise<LoadResult> {
  const latencies = new Float64Array(options.maxRequests);
  let count = 0;
  let failed = 0;
  let firstError: Error | undefined;
  const start = performance.now();
  const end = start + options.durationMs;
  const worker = async () => {
    while (count < options.maxRequests && performance.now() < end) {
      const t0 = performance.now();
      try {
        await op();
        latencies[count++] = performance.now() - t0;
      } catch (error) {
        failed++;
        firstError ??= error as Error;
        if (failed > 100) return;
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  const elapsedMs = performance.now() - start;
  const sorted = latencies.subarray(0, count).sort();
  return {
    requests: count,
    failed,
    elapsedMs,
    reqPerSec: (count / elapsedMs) * 1000,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    ...(firstError ? { firstError } : {}),
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}
