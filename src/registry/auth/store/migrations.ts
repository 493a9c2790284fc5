/**
 * Versioned migrations of the access schema, recorded in `access_schema_migrations` (a track of
 * its own, so the access store and the metadata store evolve independently in one database).
 * Never edit a released migration; add a new one.
 */
import type { SqlDriver } from '../../storage/sql/driver.ts';
import type { Migration } from '../../storage/sql/migrations.ts';
import { oidcMigration, oidcSettingsMigration } from '../oidc/store.ts';
import { federationMigration } from '../federation/store.ts';
import { projectNetworksMigration } from '../networks/store.ts';

export function accessMigrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  // Listings are in byte order whatever the database locale.
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return [
    {
      version: 1,
      description: 'projects, members, users, robots, personal access tokens, refresh tokens, signing keys',
      statements: [
        `CREATE TABLE projects (name ${name} PRIMARY KEY, visibility TEXT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT)`,
        `CREATE TABLE users (
           id TEXT PRIMARY KEY,
           name ${name} NOT NULL UNIQUE,
           password_hash TEXT,
           system_admin INTEGER NOT NULL DEFAULT 0,
           can_create_projects INTEGER NOT NULL DEFAULT 0,
           disabled INTEGER NOT NULL DEFAULT 0,
           email TEXT,
           source TEXT NOT NULL,
           created_at BIGINT NOT NULL,
           updated_at BIGINT NOT NULL,
           password_changed_at BIGINT NOT NULL)`,
        `CREATE TABLE project_members (
           id TEXT PRIMARY KEY,
           project ${name} NOT NULL REFERENCES projects(name),
           principal_kind TEXT NOT NULL,
           principal TEXT NOT NULL,
           role TEXT NOT NULL,
           repositories TEXT,
           created_at BIGINT NOT NULL,
           UNIQUE (project, principal_kind, principal, role))`,
        `CREATE INDEX project_members_principal ON project_members (principal_kind, principal)`,
        `CREATE TABLE robots (
           id TEXT PRIMARY KEY,
           name ${name} NOT NULL UNIQUE,
           project ${name} REFERENCES projects(name),
           description TEXT,
           grants TEXT NOT NULL,
           secret_hash TEXT NOT NULL,
           expires_at BIGINT NOT NULL,
           revoked_at BIGINT,
           created_by TEXT,
           created_at BIGINT NOT NULL,
           last_used_at BIGINT,
           last_used_from TEXT)`,
        `CREATE INDEX robots_project ON robots (project)`,
        `CREATE TABLE access_tokens (
           id TEXT PRIMARY KEY,
           user_id TEXT NOT NULL REFERENCES users(id),
           name ${name} NOT NULL,
           grants TEXT NOT NULL,
           management INTEGER NOT NULL DEFAULT 0,
           secret_hash TEXT NOT NULL,
           expires_at BIGINT NOT NULL,
           revoked_at BIGINT,
           created_at BIGINT NOT NULL,
           last_used_at BIGINT,
           last_used_from TEXT,
           UNIQUE (user_id, name))`,
        `CREATE TABLE refresh_tokens (
           id TEXT PRIMARY KEY,
           subject_kind TEXT NOT NULL,
           subject_id TEXT NOT NULL,
           credential TEXT NOT NULL,
           service TEXT NOT NULL,
           secret_hash TEXT NOT NULL,
           expires_at BIGINT NOT NULL,
           revoked_at BIGINT,
           created_at BIGINT NOT NULL)`,
        `CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject_kind, subject_id)`,
        `CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at)`,
        `CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, private_jwk TEXT NOT NULL, created_at BIGINT NOT NULL)`,
      ],
    },
    oidcMigration(dialect),
    federationMigration(dialect),
    projectNetworksMigration(dialect),
    oidcSettingsMigration(dialect),
  ];
}

/**
 * Applies the migrations of one track in a transaction holding the engine's migration lock.
 * `table` records the applied versions of that track.
 */
export async function applyMigrations(db: SqlDriver, table: string, list: Migration[], now: number): Promise<void> {
  await db.migrationTransaction(async (tx) => {
    await tx.run(`CREATE TABLE IF NOT EXISTS ${table} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const applied = new Set((await tx.all<{ version: unknown }>(`SELECT version FROM ${table}`)).map((r) => Number(r.version)));
    for (const migration of list) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.run(statement);
      await tx.run(`INSERT INTO ${table} (version, description, applied_at) VALUES ($1, $2, $3)`, [migration.version, migration.description, now]);
    }
  });
}
