/**
 * Storage of OIDC login in the access database (access-track migration 2):
 *
 * - `oidc_identities`: which local user a provider's subject is (`provider`, `sub` -> user), the
 *   provider refresh token (encrypted when a key is available) used to re-read group membership
 *   at token issuance, and the last groups seen;
 * - `oidc_pending`: authorization requests in flight (state -> nonce, PKCE verifier) and device
 *   authorizations (poll handle -> device code), keyed by a SHA-256 of the handle, single use,
 *   expiring; shared by every replica so a callback may land on another one;
 * - `oidc_sessions`: short browser sessions after a login (to create personal access tokens).
 *
 * Handles and session ids are stored as SHA-256 hashes only.
 *
 * Access-track migration 5 adds `oidc_provider_settings`: per provider, the settings an
 * administrator changed through /api/v1 (group mappings, admin groups, onboarding), layered over
 * the configuration file (oidc/settings.ts). Never a secret.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { SqlDriver } from '../../storage/sql/driver.ts';
import type { Migration } from '../../storage/sql/migrations.ts';
import type { GroupMapping } from './config.ts';

export function oidcMigration(dialect: 'sqlite' | 'postgres'): Migration {
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return {
    version: 2,
    description: 'OIDC login: linked provider identities, pending authorizations, browser sessions',
    statements: [
      `CREATE TABLE oidc_identities (
         provider ${name} NOT NULL,
         subject TEXT NOT NULL,
         user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         refresh_token TEXT,
         groups TEXT NOT NULL,
         checked_at BIGINT NOT NULL,
         created_at BIGINT NOT NULL,
         PRIMARY KEY (provider, subject))`,
      `CREATE INDEX oidc_identities_user ON oidc_identities (user_id)`,
      `CREATE TABLE oidc_pending (id TEXT PRIMARY KEY, kind TEXT NOT NULL, provider TEXT NOT NULL, data TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
      `CREATE INDEX oidc_pending_expiry ON oidc_pending (expires_at)`,
      `CREATE TABLE oidc_sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, provider TEXT NOT NULL, csrf TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
      `CREATE INDEX oidc_sessions_expiry ON oidc_sessions (expires_at)`,
    ],
  };
}

export function oidcSettingsMigration(dialect: 'sqlite' | 'postgres'): Migration {
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return {
    version: 5,
    description: 'OIDC provider settings changed through the management API (over the configuration file)',
    statements: [`CREATE TABLE oidc_provider_settings (provider ${name} PRIMARY KEY, settings TEXT NOT NULL, updated_by TEXT, updated_at BIGINT NOT NULL)`],
  };
}

/** The fields an administrator set through the API; absent fields keep the configuration's value. */
export interface OidcSettingsOverrides {
  groupMappings?: GroupMapping[];
  adminGroups?: string[];
  autoOnboard?: boolean;
}

export interface OidcSettingsRecord {
  provider: string;
  overrides: OidcSettingsOverrides;
  updatedBy: string | undefined;
  updatedAt: Date;
}

export interface OidcIdentityRecord {
  provider: string;
  subject: string;
  userId: string;
  /** Decrypted; undefined when the provider issued none. */
  refreshToken: string | undefined;
  groups: string[];
  checkedAt: Date;
}

export interface PendingRecord {
  /** `login`: a browser authorization in flight; `device`: a device authorization; `cli`: a login finished for a CLI's loopback listener, redeemable once with its PKCE verifier. */
  kind: 'login' | 'device' | 'cli';
  provider: string;
  data: Record<string, unknown>;
  expiresAt: Date;
}

export interface SessionRecord {
  userId: string;
  provider: string;
  csrf: string;
  expiresAt: Date;
}

const hash = (value: string) => createHash('sha256').update(value).digest('base64url');

/** Encrypts refresh tokens at rest (AES-256-GCM) under a key per provider; plaintext (`p:`) only without any key. */
export class TokenSealer {
  readonly #keys = new Map<string, Buffer>();

  /** `secret`: the configured encryption key or the provider's client secret; undefined: store plaintext. */
  setKey(provider: string, secret: string | undefined): void {
    if (secret === undefined) this.#keys.delete(provider);
    else this.#keys.set(provider, Buffer.from(hkdfSync('sha256', secret, `portcullis-oidc:${provider}`, 'refresh-token', 32)));
  }

  seal(provider: string, value: string): string {
    const key = this.#keys.get(provider);
    if (!key) return `p:${value}`;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(provider));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `g:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /** Undefined when it cannot be opened (key changed): the user must log in again. */
  open(provider: string, sealed: string): string | undefined {
    if (sealed.startsWith('p:')) return this.#keys.has(provider) ? undefined : sealed.slice(2);
    const key = this.#keys.get(provider);
    if (!key || !sealed.startsWith('g:')) return undefined;
    try {
      const bytes = Buffer.from(sealed.slice(2), 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12));
      decipher.setAAD(Buffer.from(provider));
      decipher.setAuthTag(bytes.subarray(12, 28));
      return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}

export class SqlOidcStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;
  readonly sealer = new TokenSealer();

  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  async getIdentity(provider: string, subject: string): Promise<OidcIdentityRecord | undefined> {
    const rows = await this.#db.all(`SELECT * FROM oidc_identities WHERE provider = $1 AND subject = $2`, [provider, subject]);
    return rows[0] ? this.#toIdentity(rows[0]) : undefined;
  }

  async identitiesOfUser(userId: string): Promise<OidcIdentityRecord[]> {
    const rows = await this.#db.all(`SELECT * FROM oidc_identities WHERE user_id = $1 ORDER BY checked_at DESC`, [userId]);
    return rows.map((row) => this.#toIdentity(row));
  }

  /** Links (or updates the link of) a provider subject to a user. A new refresh token replaces the old; `undefined` keeps it. */
  async putIdentity(record: { provider: string; subject: string; userId: string; refreshToken: string | undefined; groups: string[] }): Promise<void> {
    const now = this.#now();
    const sealed = record.refreshToken === undefined ? null : this.sealer.seal(record.provider, record.refreshToken);
    await this.#db.run(
      `INSERT INTO oidc_identities (provider, subject, user_id, refresh_token, groups, checked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
       ON CONFLICT (provider, subject) DO UPDATE SET user_id = excluded.user_id, refresh_token = COALESCE(excluded.refresh_token, oidc_identities.refresh_token), groups = excluded.groups, checked_at = excluded.checked_at`,
      [record.provider, record.subject, record.userId, sealed, JSON.stringify(record.groups), now],
    );
  }

  /** Unlinks a user from a provider (every subject of it). False when there was no link. */
  async deleteIdentities(userId: string, provider: string): Promise<boolean> {
    return (await this.#db.run(`DELETE FROM oidc_identities WHERE user_id = $1 AND provider = $2`, [userId, provider])) > 0;
  }

  /** Forgets the refresh token (the provider refused it): until the next login, token issuance is denied. */
  async dropRefreshToken(provider: string, subject: string): Promise<void> {
    await this.#db.run(`UPDATE oidc_identities SET refresh_token = NULL WHERE provider = $1 AND subject = $2`, [provider, subject]);
  }

  async createPending(handle: string, record: PendingRecord): Promise<void> {
    await this.#db.run(`INSERT INTO oidc_pending (id, kind, provider, data, expires_at) VALUES ($1, $2, $3, $4, $5)`, [hash(handle), record.kind, record.provider, JSON.stringify(record.data), record.expiresAt.getTime()]);
  }

  /** Reads a pending record without consuming it (device polls). */
  async getPending(handle: string, kind: PendingRecord['kind']): Promise<PendingRecord | undefined> {
    const rows = await this.#db.all(`SELECT * FROM oidc_pending WHERE id = $1 AND kind = $2 AND expires_at > $3`, [hash(handle), kind, this.#now()]);
    const row = rows[0];
    return row ? { kind, provider: String(row.provider), data: JSON.parse(String(row.data)) as Record<string, unknown>, expiresAt: new Date(Number(row.expires_at)) } : undefined;
  }

  async updatePending(handle: string, data: Record<string, unknown>): Promise<void> {
    await this.#db.run(`UPDATE oidc_pending SET data = $2 WHERE id = $1`, [hash(handle), JSON.stringify(data)]);
  }

  /** Reads and deletes in one step: a state or device handle works once, on one replica. */
  async takePending(handle: string, kind: PendingRecord['kind']): Promise<PendingRecord | undefined> {
    const record = await this.getPending(handle, kind);
    if (!record) return undefined;
    const deleted = await this.#db.run(`DELETE FROM oidc_pending WHERE id = $1`, [hash(handle)]);
    return deleted === 1 ? record : undefined;
  }

  async createSession(id: string, record: SessionRecord): Promise<void> {
    await this.#db.run(`INSERT INTO oidc_sessions (id, user_id, provider, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)`, [hash(id), record.userId, record.provider, record.csrf, record.expiresAt.getTime()]);
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const rows = await this.#db.all(`SELECT * FROM oidc_sessions WHERE id = $1 AND expires_at > $2`, [hash(id), this.#now()]);
    const row = rows[0];
    return row ? { userId: String(row.user_id), provider: String(row.provider), csrf: String(row.csrf), expiresAt: new Date(Number(row.expires_at)) } : undefined;
  }

  async deleteSession(id: string): Promise<void> {
    await this.#db.run(`DELETE FROM oidc_sessions WHERE id = $1`, [hash(id)]);
  }

  async listSettings(): Promise<OidcSettingsRecord[]> {
    const rows = await this.#db.all(`SELECT * FROM oidc_provider_settings ORDER BY provider`);
    return rows.map((row) => ({
      provider: String(row.provider),
      overrides: JSON.parse(String(row.settings)) as OidcSettingsOverrides,
      updatedBy: row.updated_by === null || row.updated_by === undefined ? undefined : String(row.updated_by),
      updatedAt: new Date(Number(row.updated_at)),
    }));
  }

  /** Replaces a provider's overrides. */
  async putSettings(provider: string, overrides: OidcSettingsOverrides, updatedBy: string | undefined): Promise<void> {
    await this.#db.run(
      `INSERT INTO oidc_provider_settings (provider, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (provider) DO UPDATE SET settings = excluded.settings, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
      [provider, JSON.stringify(overrides), updatedBy ?? null, this.#now()],
    );
  }

  /** Drops a provider's overrides (back to the configuration). False when there were none. */
  async deleteSettings(provider: string): Promise<boolean> {
    return (await this.#db.run(`DELETE FROM oidc_provider_settings WHERE provider = $1`, [provider])) > 0;
  }

  /** Housekeeping: expired pending authorizations and sessions. */
  async deleteExpired(): Promise<number> {
    const now = this.#now();
    return (await this.#db.run(`DELETE FROM oidc_pending WHERE expires_at <= $1`, [now])) + (await this.#db.run(`DELETE FROM oidc_sessions WHERE expires_at <= $1`, [now]));
  }

  #toIdentity(row: Record<string, unknown>): OidcIdentityRecord {
    const provider = String(row.provider);
    const sealed = row.refresh_token === null || row.refresh_token === undefined ? undefined : String(row.refresh_token);
    return {
      provider,
      subject: String(row.subject),
      userId: String(row.user_id),
      refreshToken: sealed === undefined ? undefined : this.sealer.open(provider, sealed),
      groups: JSON.parse(String(row.groups)) as string[],
      checkedAt: new Date(Number(row.checked_at)),
    };
  }
}
