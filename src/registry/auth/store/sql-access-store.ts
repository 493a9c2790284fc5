import { randomUUID } from 'node:crypto';
import type { SqlDriver, SqlExecutor } from '../../storage/sql/driver.ts';
import type { Grant, Role } from '../identity.ts';
import type { Visibility } from '../permissions.ts';
import { accessMigrations, applyMigrations } from './migrations.ts';
import type {
  AccessStore,
  MemberRecord,
  NewUser,
  PrincipalKind,
  ProjectRecord,
  RefreshTokenRecord,
  RobotRecord,
  SigningKeyRecord,
  TokenRecord,
  UserPatch,
  UserRecord,
} from './ports.ts';

type Row = Record<string, unknown>;

const date = (value: unknown) => new Date(Number(value));
const optionalDate = (value: unknown) => (value === null || value === undefined ? undefined : new Date(Number(value)));
const optionalString = (value: unknown) => (value === null || value === undefined ? undefined : String(value));
const flag = (value: unknown) => Number(value) === 1 || value === true;

function toProject(row: Row): ProjectRecord {
  return { name: String(row.name), visibility: row.visibility as Visibility, createdAt: date(row.created_at), createdBy: optionalString(row.created_by) };
}

function toUser(row: Row): UserRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    passwordHash: optionalString(row.password_hash),
    systemAdmin: flag(row.system_admin),
    canCreateProjects: flag(row.can_create_projects),
    disabled: flag(row.disabled),
    email: optionalString(row.email),
    source: row.source as UserRecord['source'],
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
    passwordChangedAt: date(row.password_changed_at),
  };
}

function toMember(row: Row): MemberRecord {
  return {
    id: String(row.id),
    project: String(row.project),
    principalKind: row.principal_kind as PrincipalKind,
    principal: String(row.principal),
    principalName: String(row.principal_name ?? row.principal),
    role: row.role as Role,
    repositories: row.repositories === null || row.repositories === undefined ? undefined : (JSON.parse(String(row.repositories)) as string[]),
    createdAt: date(row.created_at),
  };
}

function usage(row: Row) {
  return { expiresAt: date(row.expires_at), revokedAt: optionalDate(row.revoked_at), lastUsedAt: optionalDate(row.last_used_at), lastUsedFrom: optionalString(row.last_used_from) };
}

function toRobot(row: Row): RobotRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    project: optionalString(row.project),
    description: optionalString(row.description),
    grants: JSON.parse(String(row.grants)) as Grant[],
    secretHash: String(row.secret_hash),
    createdBy: optionalString(row.created_by),
    createdAt: date(row.created_at),
    ...usage(row),
  };
}

function toToken(row: Row): TokenRecord {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    name: String(row.name),
    grants: JSON.parse(String(row.grants)) as Grant[],
    management: flag(row.management),
    secretHash: String(row.secret_hash),
    createdAt: date(row.created_at),
    ...usage(row),
  };
}

function toRefreshToken(row: Row): RefreshTokenRecord {
  return {
    id: String(row.id),
    subjectKind: row.subject_kind as RefreshTokenRecord['subjectKind'],
    subjectId: String(row.subject_id),
    credential: String(row.credential),
    service: String(row.service),
    secretHash: String(row.secret_hash),
    expiresAt: date(row.expires_at),
    revokedAt: optionalDate(row.revoked_at),
    createdAt: date(row.created_at),
  };
}

/** `$1, $2, ...` from `start` for `count` values. */
function placeholders(count: number, start: number): string {
  return Array.from({ length: count }, (_, i) => `$${start + i}`).join(', ');
}

/**
 * The access store in portable SQL over a {@link SqlDriver} (SQLite or PostgreSQL), sharing the
 * metadata store's database (and connection) but with its own migration track.
 */
export class SqlAccessStore implements AccessStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  migrate(): Promise<void> {
    return applyMigrations(this.#db, 'access_schema_migrations', accessMigrations(this.#db.dialect), this.#now());
  }

  // --- projects

  async createProject(project: { name: string; visibility: Visibility; createdBy: string | undefined }): Promise<boolean> {
    const changed = await this.#db.run('INSERT INTO projects (name, visibility, created_at, created_by) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING', [
      project.name,
      project.visibility,
      this.#now(),
      project.createdBy ?? null,
    ]);
    return changed > 0;
  }

  async getProject(name: string): Promise<ProjectRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM projects WHERE name = $1', [name]);
    return rows[0] ? toProject(rows[0]) : undefined;
  }

  async listProjects(limit: number, last?: string): Promise<ProjectRecord[]> {
    return (await this.#db.all('SELECT * FROM projects WHERE name > $1 ORDER BY name LIMIT $2', [last ?? '', limit])).map(toProject);
  }

  async setProjectVisibility(name: string, visibility: Visibility): Promise<boolean> {
    return (await this.#db.run('UPDATE projects SET visibility = $2 WHERE name = $1', [name, visibility])) > 0;
  }

  async deleteProject(name: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const robots = await tx.all<{ id: string }>('SELECT id FROM robots WHERE project = $1', [name]);
      for (const robot of robots) await tx.run(`DELETE FROM refresh_tokens WHERE subject_kind = 'robot' AND subject_id = $1`, [robot.id]);
      await tx.run('DELETE FROM robots WHERE project = $1', [name]);
      await tx.run('DELETE FROM project_members WHERE project = $1', [name]);
      return (await tx.run('DELETE FROM projects WHERE name = $1', [name])) > 0;
    });
  }

  // --- memberships

  async putMember(member: { project: string; principalKind: PrincipalKind; principal: string; role: Role; repositories: string[] | undefined }): Promise<string> {
    const repositories = member.repositories === undefined ? null : JSON.stringify(member.repositories);
    return this.#db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO project_members (id, project, principal_kind, principal, role, repositories, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project, principal_kind, principal, role) DO UPDATE SET repositories = excluded.repositories`,
        [randomUUID(), member.project, member.principalKind, member.principal, member.role, repositories, this.#now()],
      );
      const rows = await tx.all<{ id: string }>('SELECT id FROM project_members WHERE project = $1 AND principal_kind = $2 AND principal = $3 AND role = $4', [
        member.project,
        member.principalKind,
        member.principal,
        member.role,
      ]);
      return rows[0]!.id;
    });
  }

  async listMembers(project: string): Promise<MemberRecord[]> {
    const rows = await this.#db.all(
      `SELECT m.*, u.name AS principal_name FROM project_members m LEFT JOIN users u ON m.principal_kind = 'user' AND u.id = m.principal
       WHERE m.project = $1 ORDER BY m.principal_kind, COALESCE(u.name, m.principal), m.role`,
      [project],
    );
    return rows.map(toMember);
  }

  async removeMember(project: string, id: string): Promise<boolean> {
    return (await this.#db.run('DELETE FROM project_members WHERE project = $1 AND id = $2', [project, id])) > 0;
  }

  #principalFilter(userId: string, groups: readonly string[], start: number): { sql: string; params: unknown[] } {
    const groupClause = groups.length > 0 ? ` OR (principal_kind = 'group' AND principal IN (${placeholders(groups.length, start + 1)}))` : '';
    return { sql: `((principal_kind = 'user' AND principal = $${start})${groupClause})`, params: [userId, ...groups] };
  }

  async rolesOf(project: string, userId: string, groups: readonly string[]): Promise<Array<{ role: Role; repositories: string[] | undefined }>> {
    const filter = this.#principalFilter(userId, groups, 2);
    const rows = await this.#db.all(`SELECT role, repositories FROM project_members WHERE project = $1 AND ${filter.sql}`, [project, ...filter.params]);
    return rows.map((row) => ({ role: row.role as Role, repositories: row.repositories === null || row.repositories === undefined ? undefined : (JSON.parse(String(row.repositories)) as string[]) }));
  }

  async projectsOf(userId: string, groups: readonly string[]): Promise<string[]> {
    const filter = this.#principalFilter(userId, groups, 1);
    const rows = await this.#db.all<{ project: string }>(`SELECT DISTINCT project FROM project_members WHERE ${filter.sql} ORDER BY project`, filter.params);
    return rows.map((row) => row.project);
  }

  // --- users

  async createUser(user: NewUser): Promise<boolean> {
    const now = this.#now();
    const changed = await this.#db.run(
      `INSERT INTO users (id, name, password_hash, system_admin, can_create_projects, disabled, email, source, created_at, updated_at, password_changed_at)
       VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $8, $8) ON CONFLICT (name) DO NOTHING`,
      [user.id, user.name, user.passwordHash ?? null, user.systemAdmin ? 1 : 0, user.canCreateProjects ? 1 : 0, user.email ?? null, user.source, now],
    );
    return changed > 0;
  }

  async getUser(id: string): Promise<UserRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM users WHERE id = $1', [id]);
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  async getUserByName(name: string): Promise<UserRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM users WHERE name = $1', [name]);
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  async listUsers(limit: number, last?: string): Promise<UserRecord[]> {
    return (await this.#db.all('SELECT * FROM users WHERE name > $1 ORDER BY name LIMIT $2', [last ?? '', limit])).map(toUser);
  }

  async countUsers(): Promise<number> {
    const rows = await this.#db.all<{ n: unknown }>('SELECT COUNT(*) AS n FROM users');
    return Number(rows[0]!.n);
  }

  async updateUser(id: string, patch: UserPatch): Promise<boolean> {
    const now = this.#now();
    const sets: string[] = ['updated_at = $2'];
    const params: unknown[] = [id, now];
    const set = (column: string, value: unknown) => {
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    };
    if (patch.passwordHash !== undefined) {
      set('password_hash', patch.passwordHash);
      set('password_changed_at', now);
    }
    if (patch.systemAdmin !== undefined) set('system_admin', patch.systemAdmin ? 1 : 0);
    if (patch.canCreateProjects !== undefined) set('can_create_projects', patch.canCreateProjects ? 1 : 0);
    if (patch.disabled !== undefined) set('disabled', patch.disabled ? 1 : 0);
    if (patch.email !== undefined) set('email', patch.email);
    return (await this.#db.run(`UPDATE users SET ${sets.join(', ')} WHERE id = $1`, params)) > 0;
  }

  async deleteUser(id: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      await tx.run(`DELETE FROM project_members WHERE principal_kind = 'user' AND principal = $1`, [id]);
      await tx.run('DELETE FROM access_tokens WHERE user_id = $1', [id]);
      await tx.run(`DELETE FROM refresh_tokens WHERE subject_kind = 'user' AND subject_id = $1`, [id]);
      return (await tx.run('DELETE FROM users WHERE id = $1', [id])) > 0;
    });
  }

  // --- robots

  async createRobot(robot: Omit<RobotRecord, 'createdAt' | 'revokedAt' | 'lastUsedAt' | 'lastUsedFrom'>): Promise<boolean> {
    const changed = await this.#db.run(
      `INSERT INTO robots (id, name, project, description, grants, secret_hash, expires_at, created_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING`,
      [robot.id, robot.name, robot.project ?? null, robot.description ?? null, JSON.stringify(robot.grants), robot.secretHash, robot.expiresAt.getTime(), robot.createdBy ?? null, this.#now()],
    );
    return changed > 0;
  }

  async getRobot(id: string): Promise<RobotRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM robots WHERE id = $1', [id]);
    return rows[0] ? toRobot(rows[0]) : undefined;
  }

  async listRobots(project: string | undefined): Promise<RobotRecord[]> {
    const rows = project === undefined ? await this.#db.all('SELECT * FROM robots WHERE project IS NULL ORDER BY name') : await this.#db.all('SELECT * FROM robots WHERE project = $1 ORDER BY name', [project]);
    return rows.map(toRobot);
  }

  async revokeRobot(id: string): Promise<boolean> {
    return this.#revoke('robots', id);
  }

  async deleteRobot(id: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      await tx.run(`DELETE FROM refresh_tokens WHERE subject_kind = 'robot' AND subject_id = $1`, [id]);
      return (await tx.run('DELETE FROM robots WHERE id = $1', [id])) > 0;
    });
  }

  async touchRobot(id: string, from: string): Promise<void> {
    await this.#db.run('UPDATE robots SET last_used_at = $2, last_used_from = $3 WHERE id = $1', [id, this.#now(), from]);
  }

  async #revoke(table: 'robots' | 'access_tokens' | 'refresh_tokens', id: string): Promise<boolean> {
    const now = this.#now();
    return (await this.#db.run(`UPDATE ${table} SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, [id, now])) > 0;
  }

  // --- personal access tokens

  async createToken(token: Omit<TokenRecord, 'createdAt' | 'revokedAt' | 'lastUsedAt' | 'lastUsedFrom'>): Promise<boolean> {
    const changed = await this.#db.run(
      `INSERT INTO access_tokens (id, user_id, name, grants, management, secret_hash, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, name) DO NOTHING`,
      [token.id, token.userId, token.name, JSON.stringify(token.grants), token.management ? 1 : 0, token.secretHash, token.expiresAt.getTime(), this.#now()],
    );
    return changed > 0;
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM access_tokens WHERE id = $1', [id]);
    return rows[0] ? toToken(rows[0]) : undefined;
  }

  async listTokens(userId: string): Promise<TokenRecord[]> {
    return (await this.#db.all('SELECT * FROM access_tokens WHERE user_id = $1 ORDER BY name', [userId])).map(toToken);
  }

  async revokeToken(id: string): Promise<boolean> {
    return this.#revoke('access_tokens', id);
  }

  async touchToken(id: string, from: string): Promise<void> {
    await this.#db.run('UPDATE access_tokens SET last_used_at = $2, last_used_from = $3 WHERE id = $1', [id, this.#now(), from]);
  }

  // --- refresh tokens

  async createRefreshToken(token: Omit<RefreshTokenRecord, 'createdAt' | 'revokedAt'>): Promise<void> {
    await this.#db.run(
      `INSERT INTO refresh_tokens (id, subject_kind, subject_id, credential, service, secret_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [token.id, token.subjectKind, token.subjectId, token.credential, token.service, token.secretHash, token.expiresAt.getTime(), this.#now()],
    );
  }

  async getRefreshToken(id: string): Promise<RefreshTokenRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM refresh_tokens WHERE id = $1', [id]);
    return rows[0] ? toRefreshToken(rows[0]) : undefined;
  }

  async revokeRefreshToken(id: string): Promise<boolean> {
    return this.#revoke('refresh_tokens', id);
  }

  async deleteExpiredRefreshTokens(): Promise<number> {
    return this.#db.run('DELETE FROM refresh_tokens WHERE expires_at < $1', [this.#now()]);
  }

  // --- signing keys

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = await this.#db.all('SELECT * FROM signing_keys ORDER BY created_at DESC, kid');
    return rows.map((row) => ({ kid: String(row.kid), privateJwk: String(row.private_jwk), createdAt: date(row.created_at) }));
  }

  async addSigningKey(key: SigningKeyRecord, unlessNewerThan: Date): Promise<boolean> {
    return this.#db.transaction(async (tx: SqlExecutor) => {
      // Serialise rotating replicas on PostgreSQL (SQLite's write lock already does).
      if (this.#db.dialect === 'postgres') await tx.run('LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE');
      const newer = await tx.all('SELECT kid FROM signing_keys WHERE created_at > $1', [unlessNewerThan.getTime()]);
      if (newer.length > 0) return false;
      await tx.run('INSERT INTO signing_keys (kid, private_jwk, created_at) VALUES ($1, $2, $3)', [key.kid, key.privateJwk, key.createdAt.getTime()]);
      return true;
    });
  }

  async deleteSigningKey(kid: string): Promise<void> {
    await this.#db.run('DELETE FROM signing_keys WHERE kid = $1', [kid]);
  }
}
