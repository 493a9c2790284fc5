/**
 * Storage of workload identity federation (trust rules, single-use token ids) and of robot
 * client-certificate bindings, in the access database. The tables are created by access-track
 * migration 3 ({@link federationMigration}); rows go with their project or robot (ON DELETE
 * CASCADE), so a project deleted and created again by someone else inherits no trust.
 */
import type { SqlDriver } from '../../storage/sql/driver.ts';
import type { Migration } from '../../storage/sql/migrations.ts';
import type { Grant } from '../identity.ts';
import type { TrustRule } from './trust-rules.ts';

export function federationMigration(dialect: 'sqlite' | 'postgres'): Migration {
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return {
    version: 3,
    description: 'workload identity federation (trust rules, used token ids) and robot client certificates',
    statements: [
      `CREATE TABLE workload_trust_rules (
         id TEXT PRIMARY KEY,
         project ${name} NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
         name ${name} NOT NULL,
         description TEXT,
         issuer TEXT NOT NULL,
         audience TEXT NOT NULL,
         subject TEXT NOT NULL,
         claims TEXT NOT NULL,
         grants TEXT NOT NULL,
         max_lifetime_seconds BIGINT NOT NULL,
         single_use INTEGER NOT NULL DEFAULT 0,
         revoked_at BIGINT,
         created_by TEXT,
         created_at BIGINT NOT NULL,
         UNIQUE (project, name))`,
      `CREATE INDEX workload_trust_rules_issuer ON workload_trust_rules (issuer)`,
      `CREATE TABLE workload_token_uses (issuer TEXT NOT NULL, jti TEXT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (issuer, jti))`,
      `CREATE INDEX workload_token_uses_expiry ON workload_token_uses (expires_at)`,
      `CREATE TABLE robot_certificates (
         robot_id TEXT PRIMARY KEY REFERENCES robots(id) ON DELETE CASCADE,
         spki_sha256 TEXT,
         subject TEXT,
         san TEXT,
         certificate_only INTEGER NOT NULL DEFAULT 0,
         created_at BIGINT NOT NULL)`,
      `CREATE INDEX robot_certificates_spki ON robot_certificates (spki_sha256)`,
      `CREATE INDEX robot_certificates_subject ON robot_certificates (subject)`,
      `CREATE INDEX robot_certificates_san ON robot_certificates (san)`,
    ],
  };
}

/**
 * What a robot's client certificate must show (at least one of the three; every one given must
 * match). With `certificateOnly` the certificate alone authenticates the robot at the token
 * endpoint; otherwise it is required together with the robot's secret.
 */
export interface CertificateBinding {
  /** SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (pins the key). */
  spkiSha256: string | undefined;
  /** The subject distinguished name as Node prints it (`CN=ci,O=example`). */
  subject: string | undefined;
  /** One subjectAltName entry, e.g. `DNS:ci.example.com` or `URI:spiffe://example/ci`. */
  san: string | undefined;
  certificateOnly: boolean;
}

export interface RobotCertificateRecord extends CertificateBinding {
  robotId: string;
  createdAt: Date;
}

export interface NewTrustRule extends Omit<TrustRule, 'project' | 'revokedAt' | 'createdAt'> {
  project: string;
}

export interface FederationStore {
  /** False when the project already has a rule of that name. */
  createTrustRule(rule: NewTrustRule): Promise<boolean>;
  getTrustRule(id: string): Promise<TrustRule | undefined>;
  listTrustRules(project: string): Promise<TrustRule[]>;
  /** The rules for `issuer` that are not revoked. */
  activeTrustRules(issuer: string): Promise<TrustRule[]>;
  /** Revokes (idempotent). False when unknown. */
  revokeTrustRule(id: string): Promise<boolean>;
  deleteTrustRule(id: string): Promise<boolean>;
  /** Records the use of a token id; false when it was used before (replay). Forgets ids past their expiry. */
  useTokenId(issuer: string, jti: string, expiresAt: Date): Promise<boolean>;

  /** Binds (or re-binds) a robot to a client certificate. */
  putRobotCertificate(robotId: string, binding: CertificateBinding): Promise<void>;
  getRobotCertificate(robotId: string): Promise<RobotCertificateRecord | undefined>;
  deleteRobotCertificate(robotId: string): Promise<boolean>;
  /** Bindings that might match a certificate with these properties (the caller checks all of a binding's fields). */
  robotCertificatesFor(certificate: { spkiSha256: string; subject: string; sans: string[] }): Promise<RobotCertificateRecord[]>;
}

type Row = Record<string, unknown>;
const optionalString = (value: unknown) => (value === null || value === undefined ? undefined : String(value));

function toRule(row: Row): TrustRule {
  return {
    id: String(row.id),
    project: String(row.project),
    name: String(row.name),
    description: optionalString(row.description),
    issuer: String(row.issuer),
    audience: String(row.audience),
    subject: String(row.subject),
    claims: JSON.parse(String(row.claims)) as Record<string, string[]>,
    grants: JSON.parse(String(row.grants)) as Grant[],
    maxLifetimeSeconds: Number(row.max_lifetime_seconds),
    singleUse: Number(row.single_use) === 1,
    revokedAt: row.revoked_at === null || row.revoked_at === undefined ? undefined : new Date(Number(row.revoked_at)),
    createdBy: optionalString(row.created_by),
    createdAt: new Date(Number(row.created_at)),
  };
}

function toBinding(row: Row): RobotCertificateRecord {
  return {
    robotId: String(row.robot_id),
    spkiSha256: optionalString(row.spki_sha256),
    subject: optionalString(row.subject),
    san: optionalString(row.san),
    certificateOnly: Number(row.certificate_only) === 1,
    createdAt: new Date(Number(row.created_at)),
  };
}

/** The federation store over the access database's driver (SQLite or PostgreSQL). */
export class SqlFederationStore implements FederationStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  async createTrustRule(rule: NewTrustRule): Promise<boolean> {
    const changed = await this.#db.run(
      `INSERT INTO workload_trust_rules (id, project, name, description, issuer, audience, subject, claims, grants, max_lifetime_seconds, single_use, created_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (project, name) DO NOTHING`,
      [
        rule.id,
        rule.project,
        rule.name,
        rule.description ?? null,
        rule.issuer,
        rule.audience,
        rule.subject,
        JSON.stringify(rule.claims),
        JSON.stringify(rule.grants),
        rule.maxLifetimeSeconds,
        rule.singleUse ? 1 : 0,
        rule.createdBy ?? null,
        this.#now(),
      ],
    );
    return changed > 0;
  }

  async getTrustRule(id: string): Promise<TrustRule | undefined> {
    const rows = await this.#db.all('SELECT * FROM workload_trust_rules WHERE id = $1', [id]);
    return rows[0] ? toRule(rows[0]) : undefined;
  }

  async listTrustRules(project: string): Promise<TrustRule[]> {
    return (await this.#db.all('SELECT * FROM workload_trust_rules WHERE project = $1 ORDER BY name', [project])).map(toRule);
  }

  async activeTrustRules(issuer: string): Promise<TrustRule[]> {
    return (await this.#db.all('SELECT * FROM workload_trust_rules WHERE issuer = $1 AND revoked_at IS NULL ORDER BY project, name', [issuer])).map(toRule);
  }

  async revokeTrustRule(id: string): Promise<boolean> {
    return (await this.#db.run('UPDATE workload_trust_rules SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1', [id, this.#now()])) > 0;
  }

  async deleteTrustRule(id: string): Promise<boolean> {
    return (await this.#db.run('DELETE FROM workload_trust_rules WHERE id = $1', [id])) > 0;
  }

  async useTokenId(issuer: string, jti: string, expiresAt: Date): Promise<boolean> {
    const now = this.#now();
    await this.#db.run('DELETE FROM workload_token_uses WHERE expires_at < $1', [now]);
    const changed = await this.#db.run('INSERT INTO workload_token_uses (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (issuer, jti) DO NOTHING', [issuer, jti, expiresAt.getTime()]);
    return changed > 0;
  }

  async putRobotCertificate(robotId: string, binding: CertificateBinding): Promise<void> {
    await this.#db.run(
      `INSERT INTO robot_certificates (robot_id, spki_sha256, subject, san, certificate_only, created_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (robot_id) DO UPDATE SET spki_sha256 = excluded.spki_sha256, subject = excluded.subject, san = excluded.san, certificate_only = excluded.certificate_only, created_at = excluded.created_at`,
      [robotId, binding.spkiSha256 ?? null, binding.subject ?? null, binding.san ?? null, binding.certificateOnly ? 1 : 0, this.#now()],
    );
  }

  async getRobotCertificate(robotId: string): Promise<RobotCertificateRecord | undefined> {
    const rows = await this.#db.all('SELECT * FROM robot_certificates WHERE robot_id = $1', [robotId]);
    return rows[0] ? toBinding(rows[0]) : undefined;
  }

  async deleteRobotCertificate(robotId: string): Promise<boolean> {
    return (await this.#db.run('DELETE FROM robot_certificates WHERE robot_id = $1', [robotId])) > 0;
  }

  async robotCertificatesFor(certificate: { spkiSha256: string; subject: string; sans: string[] }): Promise<RobotCertificateRecord[]> {
    const sans = certificate.sans.slice(0, 50);
    const sanClause = sans.length > 0 ? ` OR san IN (${sans.map((_, i) => `$${i + 3}`).join(', ')})` : '';
    const rows = await this.#db.all(`SELECT * FROM robot_certificates WHERE spki_sha256 = $1 OR subject = $2${sanClause} ORDER BY robot_id LIMIT 20`, [certificate.spkiSha256, certificate.subject, ...sans]);
    return rows.map(toBinding);
  }
}
