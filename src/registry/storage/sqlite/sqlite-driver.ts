import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { Row, SqlDriver, SqlExecutor } from '../sql/driver.ts';
import { startCheckpoints, stopCheckpoints } from './checkpointer.ts';

/** How long to keep retrying while another connection holds SQLite's write lock. */
const BUSY_DEADLINE_MS = 10_000;
/**
 * WAL pages after which a COMMIT on the event loop checkpoints by itself: only a safety net, the
 * checkpointer thread copies the WAL back long before (SQLite's default is 1,000).
 */
const SAFETY_AUTOCHECKPOINT_PAGES = 16_000;

/**
 * SQLite through Node's built-in `node:sqlite` (no native addon to build), in WAL mode.
 * `DatabaseSync` has one connection, so transactions are serialised with a promise queue:
 * while one is open, no other statement may interleave on the connection.
 *
 * Lock waits are asynchronous: SQLite's own busy timeout sleeps synchronously, which would block
 * the event loop and so starve another connection of this same process (a second store, a CLI
 * command run in-process) that holds the lock and is waiting for its next turn. The busy timeout
 * is therefore 0 once the connection is set up, and `BEGIN IMMEDIATE` and autocommit statements
 * retry SQLITE_BUSY with a timer instead.
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  #queue: Promise<unknown> = Promise.resolve();

  readonly file: string;
  readonly #checkpointed: boolean;

  constructor(path: string) {
    this.file = path;
    this.#db = new DatabaseSync(path, { timeout: 5000 });
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
    this.#db.exec('PRAGMA busy_timeout = 0');
    // Checkpoints run on a thread of their own (see checkpointer.ts); not for in-memory databases.
    this.#checkpointed = path !== '' && path !== ':memory:' && !path.startsWith('file:');
    if (this.#checkpointed) {
      this.#db.exec(`PRAGMA wal_autocheckpoint = ${SAFETY_AUTOCHECKPOINT_PAGES}`);
      startCheckpoints(path);
    }
  }

  #prepare(sql: string) {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql.replace(/\$(\d+)/g, '?$1'));
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #allNow<T extends Row>(sql: string, params: unknown[] = []): T[] {
    return this.#prepare(sql).all(...(params.map(toSqlite) as SQLInputValue[])) as T[];
  }

  #runNow(sql: string, params: unknown[] = []): number {
    return Number(this.#prepare(sql).run(...(params.map(toSqlite) as SQLInputValue[])).changes);
  }

  readonly #direct: SqlExecutor = {
    all: async (sql, params) => this.#allNow(sql, params),
    run: async (sql, params) => this.#runNow(sql, params),
  };

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  all<T extends Row = Row>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.#exclusive(() => retryWhileBusy(() => this.#allNow<T>(sql, params)));
  }

  run(sql: string, params?: unknown[]): Promise<number> {
    return this.#exclusive(() => retryWhileBusy(() => this.#runNow(sql, params)));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      await retryWhileBusy(() => this.#db.exec('BEGIN IMMEDIATE'));
      try {
        const result = await fn(this.#direct);
        this.#db.exec('COMMIT');
        return result;
      } catch (error) {
        // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL).
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    });
  }

  migrationTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    // BEGIN IMMEDIATE takes SQLite's write lock, which is the migration lock.
    return this.transaction(fn);
  }

  async close(): Promise<void> {
    await this.#queue;
    // The checkpointer's connection goes first, so that closing this last one removes the WAL.
    if (this.#checkpointed) await stopCheckpoints(this.file);
    this.#db.close();
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown })?.errcode;
  // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes.
  return typeof code === 'number' && ((code & 0xff) === 5 || (code & 0xff) === 6);
}

async function retryWhileBusy<T>(fn: () => T): Promise<T> {
  const deadline = Date.now() + BUSY_DEADLINE_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function toSqlite(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value;
}
