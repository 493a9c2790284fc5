/**
 * Durable scan jobs: a work queue in the scanner's tables (`scan_jobs`), safe for several
 * replicas and for restarts.
 *
 * Claiming is an optimistic compare-and-set: a worker lists a few ready jobs (or takes the id of
 * one it just enqueued), then moves one to `running` with an `UPDATE ... WHERE id = $1 AND <still
 * ready> RETURNING *` and a fresh random lease token. Both engines re-check the condition on the
 * row they lock (PostgreSQL re-evaluates the WHERE clause after waiting for a concurrent update),
 * so exactly one claimant gets the row back.
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
import type { Row, SqlDriver, SqlExecutor } from '../storage/sql/driver.ts';

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
  /** What the worker's {@link WorkerHooks.onClaimed} returned (in the claim's transaction). */
  started?: unknown;
}

/** Writes that join a queue transaction. */
export type TxWrite = (tx: SqlExecutor) => Promise<void>;

/** Runs in the transaction that claims `job` (the job's row is written first). */
export type ClaimHook = (tx: SqlExecutor, job: ClaimedJob) => Promise<unknown>;

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
   * Returns true when a new job row was created. `before` and `after` run in the same transaction,
   * before and after the job's row is written (write rows in the order images, jobs, results:
   * PostgreSQL transactions locking rows of two tables in opposite orders can deadlock).
   */
  async enqueue(job: JobRequest, now: number, options: { replace?: boolean; delayMs?: number; before?: TxWrite; after?: TxWrite } = {}): Promise<boolean> {
    const payload = JSON.stringify(job.payload ?? {});
    const runAfter = now + (options.delayMs ?? 0);
    const params = [job.id, job.kind, job.repository ?? null, job.digest ?? null, payload, job.priority ?? 1, runAfter, now];
    const insert = `INSERT INTO scan_jobs (id, kind, repository, digest, payload, priority, state, run_after, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8) ON CONFLICT (id)`;
    const { before, after } = options;
    // DO NOTHING returns no row when the job existed.
    if (!options.replace && !before && !after) return (await this.#db.all(`${insert} DO NOTHING RETURNING id`, params)).length > 0;
    return this.#db.transaction(async (tx) => {
      await before?.(tx);
      let created: boolean;
      if (options.replace) {
        created = (await tx.all('SELECT 1 FROM scan_jobs WHERE id = $1', [job.id])).length === 0;
        await tx.run(
          `${insert} DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at,
             requeue = CASE WHEN scan_jobs.state = 'running' THEN 1 ELSE 0 END,
             run_after = CASE WHEN scan_jobs.state = 'running' THEN scan_jobs.run_after ELSE excluded.run_after END,
             attempts = CASE WHEN scan_jobs.state = 'running' THEN scan_jobs.attempts ELSE 0 END`,
          params,
        );
      } else {
        created = (await tx.all(`${insert} DO NOTHING RETURNING id`, params)).length > 0;
      }
      await after?.(tx);
      return created;
    });
  }

  /**
   * Claims up to `max` ready jobs for `leaseMs`, found by polling (other replicas' jobs, retries
   * that became due, jobs left by a stopped process). `onClaimed` runs in each claim's transaction.
   */
  async claim(max: number, now: number, leaseMs: number, onClaimed?: ClaimHook): Promise<ClaimedJob[]> {
    if (max <= 0) return [];
    const candidates = await this.#db.all<{ id: string }>(`SELECT id FROM scan_jobs WHERE ${READY.replaceAll('$2', '$1')} ORDER BY priority, run_after LIMIT $2`, [now, max * 2]);
    return this.claimIds(candidates.map((c) => c.id), now, leaseMs, onClaimed, max);
  }

  /** Claims the named jobs (in order, up to `max`) that are ready; others are skipped. */
  async claimIds(ids: readonly string[], now: number, leaseMs: number, onClaimed?: ClaimHook, max = ids.length): Promise<ClaimedJob[]> {
    const claimed: ClaimedJob[] = [];
    for (const id of ids) {
      if (claimed.length >= max) break;
      const job = await this.#claimOne(id, now, leaseMs, onClaimed);
      if (job) claimed.push(job);
    }
    return claimed;
  }

  async #claimOne(id: string, now: number, leaseMs: number, onClaimed: ClaimHook | undefined): Promise<ClaimedJob | undefined> {
    const token = randomBytes(12).toString('hex');
    // The compare-and-set: no row when the job is gone, not ready, or another worker was faster.
    const update = async (db: SqlExecutor) =>
      (
        await db.all(
          `UPDATE scan_jobs SET state = 'running', lease_token = $3, lease_until = $4, attempts = attempts + 1, requeue = 0, updated_at = $2
           WHERE id = $1 AND ${READY} RETURNING *`,
          [id, now, token, now + leaseMs],
        )
      )[0];
    if (!onClaimed) {
      const row = await update(this.#db);
      return row ? claimedJob(row, token) : undefined;
    }
    return this.#db.transaction(async (tx) => {
      const row = await update(tx);
      if (!row) return undefined;
      const job = claimedJob(row, token);
      job.started = await onClaimed(tx, job);
      return job;
    });
  }

  /** Extends a lease; false when it was lost (the job must stop). */
  async heartbeat(job: ClaimedJob, now: number, leaseMs: number): Promise<boolean> {
    return (await this.#db.run('UPDATE scan_jobs SET lease_until = $3, updated_at = $4 WHERE id = $1 AND lease_token = $2', [job.id, job.leaseToken, now + leaseMs, now])) === 1;
  }

  /**
   * Finishes a job (deleted, or queued again when re-enqueued meanwhile), with `write` in the same
   * transaction (it runs even when the lease was lost, as a separate write would). Returns true
   * when the job was queued again.
   */
  async complete(job: ClaimedJob, now: number, write?: TxWrite): Promise<boolean> {
    const finish = async (db: SqlExecutor) => {
      if ((await db.run('DELETE FROM scan_jobs WHERE id = $1 AND lease_token = $2 AND requeue = 0', [job.id, job.leaseToken])) === 1) return false;
      return (
        (await db.run(
          `UPDATE scan_jobs SET state = 'queued', requeue = 0, attempts = 0, lease_token = NULL, lease_until = NULL, run_after = $3, updated_at = $3 WHERE id = $1 AND lease_token = $2`,
          [job.id, job.leaseToken, now],
        )) === 1
      );
    };
    if (!write) return finish(this.#db);
    return this.#db.transaction(async (tx) => {
      const requeued = await finish(tx);
      await write(tx);
      return requeued;
    });
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

/**
 * Runs a claimed job. `complete` finishes it with `write` in the same transaction (a result that
 * must not be recorded without the job ending, or the other way round); a handler that does not
 * call it has its job completed when it returns.
 */
export type JobHandler = (job: ClaimedJob, signal: AbortSignal, complete: (write?: TxWrite) => Promise<void>) => Promise<void>;

export interface WorkerHooks {
  /**
   * A job failed for good (after its last attempt, or permanently). It ends with `complete`, whose
   * `write` (the failure's record) joins the job's completion; called by the worker when the hook does not.
   */
  onGiveUp(job: ClaimedJob, error: unknown, complete: (write?: TxWrite) => Promise<void>): Promise<void>;
  onError(error: unknown, job?: ClaimedJob): void;
  /** Runs in the transaction claiming `job`; what it returns is `job.started`. */
  onClaimed?: ClaimHook;
}

/**
 * Runs jobs with bounded concurrency. Each running job's lease is renewed every third of
 * `leaseMs`; a lost lease aborts the job's signal.
 *
 * Jobs enqueued in this process are named to {@link wake}, which claims them by id while there are
 * free slots for all of them. The queue is polled at start, every `pollMs` (other replicas' jobs,
 * retries that became due, jobs of a stopped process), when more jobs were named than slots were
 * free (then the queue's order decides: priority first), and again as soon as a slot frees after
 * a poll that filled every slot (more may be ready).
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
  /** Ids enqueued here and not yet tried. */
  readonly #named = new Set<string>();
  /** The next pump polls the queue. */
  #pollDue = false;
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
    this.#pollDue = true;
    this.wake();
  }

  /** Looks for work now: the job `id` (just enqueued in this process), or else any ready job. */
  wake(id?: string): void {
    if (this.#stopped) return;
    if (id !== undefined) this.#named.add(id);
    else this.#pollDue = true;
    this.#pump();
  }

  #pump(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void this.#claim().finally(() => {
      this.#pumping = false;
      if (this.#again) {
        this.#again = false;
        this.#pump();
      } else this.#schedule();
    });
  }

  /** Polls every `pollMs`, however busy this process is with its own jobs. */
  #schedule(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.wake();
    }, this.#options.pollMs);
    this.#timer.unref();
  }

  async #claim(): Promise<void> {
    try {
      let free = this.#options.concurrency - this.#running.size;
      if (free <= 0) return;
      const jobs: ClaimedJob[] = [];
      if (this.#named.size > free) {
        // A backlog: the queue's order (priority first) decides, as it does for other replicas.
        this.#named.clear();
        this.#pollDue = true;
      } else if (this.#named.size > 0) {
        const ids = [...this.#named];
        this.#named.clear();
        jobs.push(...(await this.#queue.claimIds(ids, this.#now(), this.#options.leaseMs, this.#hooks.onClaimed)));
        free -= jobs.length;
      }
      if (this.#pollDue && free > 0) {
        this.#pollDue = false;
        const polled = await this.#queue.claim(free, this.#now(), this.#options.leaseMs, this.#hooks.onClaimed);
        // All slots filled: more may be ready, look again when one frees.
        if (polled.length === free) this.#pollDue = true;
        jobs.push(...polled);
      }
      for (const job of jobs) {
        const run = this.#run(job).finally(() => {
          this.#running.delete(run);
          this.#pump();
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
    let completed = false;
    const complete = async (write?: TxWrite): Promise<void> => {
      if (completed) throw new Error(`job ${job.id} completed twice`);
      completed = true;
      // Re-enqueued while running: it runs again here (and is claimable by any replica).
      if (await this.#queue.complete(job, this.#now(), write)) this.wake(job.id);
    };
    const giveUp = async (error: unknown): Promise<void> => {
      await this.#hooks.onGiveUp(job, error, complete);
      if (!completed) await complete();
    };
    try {
      if (job.attempts > this.#options.maxAttempts) {
        await giveUp(new Error(`gave up after ${job.attempts - 1} attempts${job.lastError ? `; last error: ${job.lastError}` : ''}`));
        return;
      }
      await this.#handlers[job.kind](job, controller.signal, complete);
      if (!completed) await complete();
    } catch (error) {
      if (completed) {
        // The job's outcome is recorded; what failed after it changes nothing of the job.
        this.#hooks.onError(error, job);
        return;
      }
      if (controller.signal.aborted && this.#stopped) {
        // Shutting down: hand the job back at once (this attempt does not count).
        await this.#queue.release(job, this.#now()).catch((inner) => this.#hooks.onError(inner, job));
        return;
      }
      const permanent = error instanceof PermanentJobError;
      try {
        if (permanent || job.attempts >= this.#options.maxAttempts) {
          await giveUp(error);
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
    this.#timer = undefined;
    for (const c of this.#controllers) c.abort(new Error('shutting down'));
    await this.idle();
  }
}

function claimedJob(row: Row, leaseToken: string): ClaimedJob {
  return {
    id: String(row.id),
    kind: String(row.kind) as JobKind,
    repository: row.repository === null ? undefined : String(row.repository),
    digest: row.digest === null ? undefined : String(row.digest),
    payload: JSON.parse(String(row.payload ?? '{}')) as Record<string, unknown>,
    attempts: Number(row.attempts),
    leaseToken,
    lastError: row.last_error === null ? undefined : String(row.last_error),
  };
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
