/**
 * WAL checkpoints off the event loop. SQLite checkpoints inside the COMMIT that crosses
 * `wal_autocheckpoint` pages: on this kind of machine one takes about 10 ms (a thousand page
 * writes and two fsyncs), during which the whole server stands still, and under a push load they
 * were a third of the time spent in SQLite. Here one worker thread per process keeps a second
 * connection to each database file and runs `PRAGMA wal_checkpoint(PASSIVE)` every
 * `INTERVAL_MS`: a passive checkpoint never waits for a lock and costs next to nothing when there
 * is nothing to copy (the thread's code is checkpoint-thread.js). The event loop's connection
 * keeps a high autocheckpoint threshold as a safety net should this thread fall behind or die.
 */
import { Worker } from 'node:worker_threads';

const INTERVAL_MS = 200;
const CLOSE_DEADLINE_MS = 5_000;

type ToThread = { open: string } | { close: string; ack: number };
type FromThread = { closed: number };

let thread: Worker | undefined;
const users = new Map<string, number>();
const closing = new Map<number, () => void>();
let nextAck = 0;
let restarts = 0;
const MAX_RESTARTS = 3;

function worker(): Worker {
  if (!thread) {
    // Small heap limits: it holds a few connections, and the thread is part of the server's RSS.
    const started = new Worker(new URL('./checkpoint-thread.js', import.meta.url), { workerData: { intervalMs: INTERVAL_MS }, resourceLimits: { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 1 } });
    started.on('message', (message: FromThread) => {
      closing.get(message.closed)?.();
      closing.delete(message.closed);
      if (closing.size === 0) started.unref();
    });
    // A dead checkpointer is not fatal: the connection's own autocheckpoint takes over.
    started.on('error', () => undefined);
    started.on('exit', () => {
      for (const done of closing.values()) done();
      closing.clear();
      if (thread !== started) return;
      thread = undefined;
      // Started again for the databases still open, a few times at most (a thread that keeps dying
      // leaves checkpoints to the connections' own threshold).
      if (users.size > 0 && restarts++ < MAX_RESTARTS) {
        const next = worker();
        for (const path of users.keys()) next.postMessage({ open: path } satisfies ToThread);
      }
    });
    // After the listeners: attaching a 'message' listener refs the thread again.
    started.unref();
    thread = started;
  }
  return thread;
}

/** Starts background checkpoints of the database at `path` (counted: one per open driver). */
export function startCheckpoints(path: string): void {
  const count = users.get(path) ?? 0;
  users.set(path, count + 1);
  if (count === 0) worker().postMessage({ open: path } satisfies ToThread);
}

/** Stops them once no driver of `path` is left; resolves when the thread's connection is closed. */
export function stopCheckpoints(path: string): Promise<void> {
  const count = users.get(path) ?? 0;
  if (count > 1) {
    users.set(path, count - 1);
    return Promise.resolve();
  }
  users.delete(path);
  const running = thread;
  if (!running) return Promise.resolve();
  const ack = ++nextAck;
  return new Promise<void>((resolve) => {
    // Closing a database never hangs on this thread: past the deadline it goes on without the answer.
    const deadline = setTimeout(() => {
      closing.delete(ack);
      if (closing.size === 0) running.unref();
      resolve();
    }, CLOSE_DEADLINE_MS);
    closing.set(ack, () => {
      clearTimeout(deadline);
      resolve();
    });
    // Held until the answer comes: an unref'd thread's reply would not keep the process waiting.
    running.ref();
    running.postMessage({ close: path, ack } satisfies ToThread);
  });
}
