/**
 * The one seam between the SQL metadata store and a database engine. Statements are written
 * once, with PostgreSQL-style `$1` placeholders; each driver adapts them. Timestamps are stored
 * as BIGINT milliseconds since the epoch so both engines agree.
 */
export type Row = Record<string, unknown>;

export interface SqlExecutor {
  all<T extends Row = Row>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Executes a statement; returns the number of rows changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /** SQLite: the database file (absent for PostgreSQL). */
  readonly file?: string;
  /** Runs `fn` in one transaction (serialisable against other writers of the same rows). */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Runs `fn` in a transaction holding the engine's migration lock (several processes may start at once). */
  migrationTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
