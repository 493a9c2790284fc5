/**
 * Durable scan jobs: a work queue in the scanner's tables (`scan_jobs`), safe for several
 * replicas and for restarts.
 *
 * Claiming is an optimistic compare-and-set: a worker lists a few ready jobs, then moves one to
 * `running` with an `UPDATE ... WHERE id = $1 AND <still ready>` and a fresh random lease token.
 * Both engines re-check the condition on the row they lock (PostgreSQL re-evaluates the WHERE
 * clause after waiting for a concurrent update), so exactly one claimant sees "1 row changed".
 * Every later write of the job (heartbeat, retry, completion) names the lease token: a worker whose
 * lease ran out (it hung, or its process died) and was taken over can no longer touch the job.
 *
 * A job whose lease expires (crash, kill) is claimable again: that is how work survives restarts.
 * Failures are retried with exponential back-off and jitter up to `maxAttempts`; a
 * {@link PermanentJobError} (a hostile or corrupt image) ends the job at once. Finished jobs are
 * deleted (results live in `scan_results`); re-enqueueing a running job sets `requeue`, so it runs
 * once more after the current run instead of being lost or run twice at the same time.
 */
import { randomBytes } from 'node:crypto';
import type { SqlDriver } from '../storage/sql/driver.ts';

export type JobKind = 'scan' | 'rematch' | 'builder-sbom';

export interface JobRequest {
  /** Unique key: at most one pending job per key (`scan:<repo>@<digest>`, `rematch`). */
  id: string;
  kind: JobKind;
  repository?: string;
  digest?: string;
  payload?: Record<string, unknown>;
  /** Lower runs first. */
  priority?: number;
}

export interface ClaimedJob {
  id: string;
  kind: JobKind;
  repository: string | undefined;
  digest: string | undefined;
  payload: Record<string, unknown>;
  /** This claim included (1 on the first run). */
  attempts: number;
  leaseToken: string;
  lastError: string | undefined;
}

export interface QueuedJobView {
  id: string;
  kind: JobKind;
  repository: string | undefined;
  digest: string | undefined;
  state: 'queued' | 'running';
  attempts: number;
  runAfter: number;
  lastError: string | undefined;
}

/** A failure that retrying cannot cure (hostile layer, not an image). */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

const READY = `((state = 'queued' AND run_after <= $2) OR (state = 'running' AND lease_until < $2))`;

export class JobQueue {
  readonly #db: SqlDriver;

  constructor(db: SqlDriver) {
    this.#db = db;
  }

  /**
   * Adds a job. When one with the same id is pending it is left alone, unless `replace`: then its
   * payload is replaced and it runs (again) as soon as possible — after the current run if running.
   * Returns true when a new job row was created.
   */
  async enqueue(job: JobRequest, now: number, options: { replace?: boolean; delayMs?: number } = {}): Promise<boolean> {
    const payload = JSON.stringify(job.payload ?? {});
    const runAfter = now + (options.delayMs ?? 0);
    const conflict = options.replace
      ? `DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at,
           requeue = CASE WHEN scan_jobs.state = 'running' THEN 1 ELSE 0 END,
           run_after = CASE WHEN scan_jobs.state = 'running' THEN scan_jobs.run_after ELSE excluded.run_after END,
           attempts = CASE WHEN scan_jobs.state = 'running' THEN scan_jobs.attempts ELSE 0 END`
      : 'DO NOTHING';
    const before = await this.#db.all('SELECT 1 FROM scan_jobs WHERE id = $1', [job.id]);
    await this.#db.run(
      `INSERT INTO scan_jobs (id, kind, repository, digest, payload, priority, state, run_after, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8) ON CONFLICT (id) ${conflict}`,
      [job.id, job.kind, job.repository ?? null, job.digest ?? null, payload, job.priority ?? 1, runAfter, now],
    );
    return before.length === 0;
  }

  /** Claims up to `max` ready jobs for `leaseMs`. */
  async claim(max: number, now: number, leaseMs: number): Promise<ClaimedJob[]> {
    if (max <= 0) return [];
    const candidates = await this.#db.all<{ id: string }>(`SELECT id FROM scan_jobs WHERE ${READY.replaceAll('$2', '$1')} ORDER BY priority, run_after LIMIT $2`, [now, max * 2]);
    const claimed: ClaimedJob[] = [];
    for (const { id } of candidates) {
      if (claimed.length >= max) break;
      const token = randomBytes(12).toString('hex');
      const changed = await this.#db.run(
        `UPDATE scan_jobs SET state = 'running', lease_token = $3, lease_until = $4, attempts = attempts + 1, requeue = 0, updated_at = $2
         WHERE id = $1 AND ${READY}`,
        [id, now, token, now + leaseMs],
      );
      if (changed !== 1) continue; // another worker was faster
      const row = (await this.#db.all('SELECT * FROM scan_jobs WHERE id = $1 AND lease_token = $2', [id, token]))[0];
      if (!row) continue;
      claimed.push({
        id,
        kind: String(row.kind) as JobKind,
        repository: row.repository === null ? undefined : String(row.repository),
        digest: row.digest === null ? undefined : String(row.digest),
        payload: JSON.parse(String(row.payload ?? '{}')) as Record<string, unknown>,
        attempts: Number(row.attempts),
        leaseToken: token,
        lastError: row.last_error === null ? undefined : String(row.last_error),
      });
    }
    return claimed;
  }

  /** Extends a lease; false when it was lost (the job must stop). */
  async heartbeat(job: ClaimedJob, now: number, leaseMs: number): Promise<boolean> {
    return (await this.#db.run('UPDATE scan_jobs SET lease_until = $3, updated_at = $4 WHERE id = $1 AND lease_token = $2', [job.id, job.leaseToken, now + leaseMs, now])) === 1;
  }

  /** Finishes a job (deleted, or queued again when re-enqueued meanwhile). */
  async complete(job: ClaimedJob, now: number): Promise<void> {
    const deleted = await this.#db.run('DELETE FROM scan_jobs WHERE id = $1 AND lease_token = $2 AND requeue = 0', [job.id, job.leaseToken]);
    if (deleted === 0) {
      await this.#db.run(
        `UPDATE scan_jobs SET state = 'queued', requeue = 0, attempts = 0, lease_token = NULL, lease_until = NULL, run_after = $3, updated_at = $3 WHERE id = $1 AND lease_token = $2`,
        [job.id, job.leaseToken, now],
      );
    }
  }

  /** Schedules another attempt at `runAfter`. */
  async retry(job: ClaimedJob, error: string, runAfter: number, now: number): Promise<void> {
    await this.#db.run(
      `UPDATE scan_jobs SET state = 'queued', lease_token = NULL, lease_until = NULL, last_error = $3, run_after = $4, updated_at = $5 WHERE id = $1 AND lease_token = $2`,
      [job.id, job.leaseToken, error.slice(0, 2000), runAfter, now],
    );
  }

  /** Gives a job back unfinished (shutdown); the attempt does not count. */
  async release(job: ClaimedJob, now: number): Promise<void> {
    await this.#db.run(
      `UPDATE scan_jobs SET state = 'queued', lease_token = NULL, lease_until = NULL, attempts = attempts - 1, run_after = $3, updated_at = $3 WHERE id = $1 AND lease_token = $2`,
      [job.id, job.leaseToken, now],
    );
  }

  /** Pending and running jobs (for status pages and tests). */
  async list(limit = 100): Promise<QueuedJobView[]> {
    const rows = await this.#db.all('SELECT * FROM scan_jobs ORDER BY priority, run_after LIMIT $1', [limit]);
    return rows.map((r) => ({
      id: String(r.id),
      kind: String(r.kind) as JobKind,
      repository: r.repository === null ? undefined : String(r.repository),
      digest: r.digest === null ? undefined : String(r.digest),
      state: String(r.state) as 'queued' | 'running',
      attempts: Number(r.attempts),
      runAfter: Number(r.run_after),
      lastError: r.last_error === null ? undefined : String(r.last_error),
    }));
  }

  async pending(): Promise<number> {
    return Number((await this.#db.all('SELECT COUNT(*) AS n FROM scan_jobs'))[0]?.n ?? 0);
  }
}

export interface WorkerOptions {
  /** Jobs run at the same time in this process. */
  concurrency: number;
  /** How often to look for jobs when idle (other replicas' jobs, retries that became due). */
  pollMs: number;
  leaseMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  now?: () => number;
}

export type JobHandler = (job: ClaimedJob, signal: AbortSignal) => Promise<void>;

export interface WorkerHooks {
  /** A job failed for good (after its last attempt, or permanently). */
  onGiveUp(job: ClaimedJob, error: unknown): Promise<void>;
  onError(error: unknown, job?: ClaimedJob): void;
}

/**
 * Runs jobs with bounded concurrency. Each running job's lease is renewed every third of
 * `leaseMs`; a lost lease aborts the job's signal.
 */
export class JobWorker {
  readonly #queue: JobQueue;
  readonly #handlers: Record<JobKind, JobHandler>;
  readonly #hooks: WorkerHooks;
  readonly #options: WorkerOptions;
  readonly #now: () => number;
  readonly #running = new Set<Promise<void>>();
  #stopped = true;
  #timer: NodeJS.Timeout | undefined;
  #pumping = false;
  #again = false;
  readonly #controllers = new Set<AbortController>();

  constructor(queue: JobQueue, handlers: Record<JobKind, JobHandler>, hooks: WorkerHooks, options: WorkerOptions) {
    this.#queue = queue;
    this.#handlers = handlers;
    this.#hooks = hooks;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.wake();
  }

  /** Looks for work now (called after a local enqueue). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void this.#pump().finally(() => {
      this.#pumping = false;
      if (this.#again) {
        this.#again = false;
        this.wake();
      } else this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), this.#options.pollMs);
    this.#timer.unref();
  }

  async #pump(): Promise<void> {
    try {
      const free = this.#options.concurrency - this.#running.size;
      if (free <= 0) return;
      const jobs = await this.#queue.claim(free, this.#now(), this.#options.leaseMs);
      for (const job of jobs) {
        const run = this.#run(job).finally(() => {
          this.#running.delete(run);
          this.wake();
        });
        this.#running.add(run);
      }
    } catch (error) {
      this.#hooks.onError(error);
    }
  }

  async #run(job: ClaimedJob): Promise<void> {
    const controller = new AbortController();
    this.#controllers.add(controller);
    const beat = setInterval(() => {
      this.#queue
        .heartbeat(job, this.#now(), this.#options.leaseMs)
        .then((ok) => {
          if (!ok) controller.abort(new Error('lease lost'));
        })
        .catch((error) => this.#hooks.onError(error, job));
    }, Math.max(50, Math.floor(this.#options.leaseMs / 3)));
    beat.unref();
    try {
      if (job.attempts > this.#options.maxAttempts) {
        await this.#hooks.onGiveUp(job, new Error(`gave up after ${job.attempts - 1} attempts${job.lastError ? `; last error: ${job.lastError}` : ''}`));
        await this.#queue.complete(job, this.#now());
        return;
      }
      await this.#handlers[job.kind](job, controller.signal);
      await this.#queue.complete(job, this.#now());
    } catch (error) {
      if (controller.signal.aborted && this.#stopped) {
        // Shutting down: hand the job back at once (this attempt does not count).
        await this.#queue.release(job, this.#now()).catch((inner) => this.#hooks.onError(inner, job));
        return;
      }
      const permanent = error instanceof PermanentJobError;
      try {
        if (permanent || job.attempts >= this.#options.maxAttempts) {
          await this.#hooks.onGiveUp(job, error);
          await this.#queue.complete(job, this.#now());
        } else {
          const delay = Math.min(this.#options.retryMaxMs, this.#options.retryBaseMs * 2 ** (job.attempts - 1));
          const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
          await this.#queue.retry(job, errorMessage(error), this.#now() + jittered, this.#now());
        }
      } catch (inner) {
        this.#hooks.onError(inner, job);
      }
    } finally {
      clearInterval(beat);
      this.#controllers.delete(controller);
    }
  }

  /** Jobs running in this process now. */
  get active(): number {
    return this.#running.size;
  }

  /** Waits until no job runs in this process (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** Stops claiming, aborts running jobs and waits for them to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const c of this.#controllers) c.abort(new Error('shutting down'));
    await this.idle();
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
