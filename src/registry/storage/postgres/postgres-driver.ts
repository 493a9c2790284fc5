import pg from 'pg';
import type { Row, SqlDriver, SqlExecutor } from '../sql/driver.ts';

/** Attempts of a transaction that keeps failing with a deadlock or serialisation failure. */
const MAX_ATTEMPTS = 5;

/** PostgreSQL through `pg`'s connection pool; the scale-out metadata backend. */
export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly #pool: pg.Pool;

  constructor(options: { connectionString: string; max?: number }) {
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: options.max ?? 10 });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    this.#pool.on('error', () => undefined);
  }

  async all<T extends Row = Row>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.#pool.query(sql, params)).rows as T[];
  }

  async run(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.#pool.query(sql, params)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, lockKey?: number): Promise<T> {
    // A deadlock or serialisation failure aborts the whole transaction and nothing of it stays:
    // run it again (the store's transactions are plain functions of what they read).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#transactionOnce(fn, lockKey);
      } catch (error) {
        const code = (error as { code?: unknown })?.code;
        if ((code !== '40P01' && code !== '40001') || attempt >= MAX_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  async #transactionOnce<T>(fn: (tx: SqlExecutor) => Promise<T>, lockKey: number | undefined): Promise<T> {
    const client = await this.#pool.connect();
    const tx: SqlExecutor = {
      all: async <R extends Row>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as R[],
      run: async (sql, params = []) => (await client.query(sql, params)).rowCount ?? 0,
    };
    try {
      await client.query('BEGIN');
      if (lockKey !== undefined) await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  migrationTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.transaction(fn, 0x706f7274); // 'port'
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
