/**
 * Storage of per-project IP allow/deny lists, in the access database. The table is created by
 * access-track migration 4 ({@link projectNetworksMigration}); a row goes with its project (ON
 * DELETE CASCADE), so a project deleted and created again starts without lists. Only projects
 * that have lists have a row: the whole table is what every replica keeps in memory.
 */
import type { SqlDriver } from '../../storage/sql/driver.ts';
import type { Migration } from '../../storage/sql/migrations.ts';

export function projectNetworksMigration(dialect: 'sqlite' | 'postgres'): Migration {
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return {
    version: 4,
    description: 'per-project IP allow and deny lists',
    statements: [
      `CREATE TABLE project_networks (
         project ${name} PRIMARY KEY REFERENCES projects(name) ON DELETE CASCADE,
         allow_list TEXT NOT NULL,
         deny_list TEXT NOT NULL,
         updated_by TEXT,
         updated_at BIGINT NOT NULL)`,
    ],
  };
}

export interface ProjectNetworksRecord {
  project: string;
  /** CIDR blocks (or single addresses); empty: any address. */
  allow: string[];
  /** CIDR blocks; wins over `allow`. */
  deny: string[];
  updatedBy: string | undefined;
  updatedAt: Date;
}

export interface ProjectNetworkStore {
  /** Every project that has lists. */
  listProjectNetworks(): Promise<ProjectNetworksRecord[]>;
  getProjectNetworks(project: string): Promise<ProjectNetworksRecord | undefined>;
  /** Replaces the lists of an existing project; two empty lists remove the row. */
  putProjectNetworks(project: string, lists: { allow: string[]; deny: string[] }, updatedBy: string | undefined): Promise<void>;
}

type Row = Record<string, unknown>;

function toRecord(row: Row): ProjectNetworksRecord {
  return {
    project: String(row.project),
    allow: JSON.parse(String(row.allow_list)) as string[],
    deny: JSON.parse(String(row.deny_list)) as string[],
    updatedBy: row.updated_by === null || row.updated_by === undefined ? undefined : String(row.updated_by),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

export class SqlProjectNetworkStore implements ProjectNetworkStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  async listProjectNetworks(): Promise<ProjectNetworksRecord[]> {
    return (await this.#db.all('SELECT * FROM project_networks ORDER BY project')).map(toRecord);
  }

  async getProjectNetworks(project: string): Promise<ProjectNetworksRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM project_networks WHERE project = $1', [project]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async putProjectNetworks(project: string, lists: { allow: string[]; deny: string[] }, updatedBy: string | undefined): Promise<void> {
    if (lists.allow.length === 0 && lists.deny.length === 0) {
      await this.#db.run('DELETE FROM project_networks WHERE project = $1', [project]);
      return;
    }
    await this.#db.run(
      `INSERT INTO project_networks (project, allow_list, deny_list, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (project) DO UPDATE SET allow_list = excluded.allow_list, deny_list = excluded.deny_list, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
      [project, JSON.stringify(lists.allow), JSON.stringify(lists.deny), updatedBy ?? null, this.#now()],
    );
  }
}
