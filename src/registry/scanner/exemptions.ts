/**
 * Exemptions: an accepted risk for one vulnerability, narrowed to a scope, owned by someone, with a
 * reason, an optional ticket and an expiry. Unlike a project-wide allow-list with one expiry, each
 * exemption is its own record:
 *
 * - `project`: every image of the project;
 * - `repository`: every image of one repository;
 * - `digest`: one image (in one repository);
 * - `package`: the vulnerability in one package (by name, or purl without version) anywhere in the
 *   project.
 *
 * The vulnerability matches the finding's id, any of its aliases or its CVEs (so exempting a CVE
 * covers the distro advisory that carries it). Exemptions apply to reports (the finding is shown as exempted,
 * with the exemption) and are never deleted: revoking keeps the record for the audit trail. Expired
 * or revoked exemptions no longer apply; one nearing expiry makes the report warn.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { projectOf } from '../../oci/reference.ts';
import type { Row, SqlDriver } from '../storage/sql/driver.ts';
import type { InventoryPackage, VulnerabilityFinding } from './model.ts';

export type ExemptionScope = 'project' | 'repository' | 'digest' | 'package';

export interface Exemption {
  id: string;
  vulnerability: string;
  scope: ExemptionScope;
  project: string;
  repository?: string;
  digest?: string;
  package?: string;
  owner: string;
  reason: string;
  ticket?: string;
  expiresAt: number;
  createdAt: number;
  createdBy?: string;
  revokedAt?: number;
  revokedBy?: string;
}

const repositoryName = z.string().min(1).max(255).regex(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, 'invalid repository name');

/** The body of `POST /api/v1/exemptions`. */
export const exemptionInputSchema = z
  .strictObject({
    vulnerability: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{1,127}$/, 'expected a vulnerability id such as CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx'),
    scope: z.enum(['project', 'repository', 'digest', 'package']),
    project: z.string().min(1).max(255).optional(),
    repository: repositoryName.optional(),
    digest: z.string().regex(/^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$/, 'expected a sha256 or sha512 digest').optional(),
    package: z.string().min(1).max(512).optional(),
    owner: z.string().min(1).max(256),
    reason: z.string().min(1).max(4000),
    ticket: z.url({ protocol: /^https?$/ }).max(2000).optional(),
    expiresAt: z.iso.datetime({ offset: true }),
  })
  .superRefine((e, ctx) => {
    const need = (field: 'project' | 'repository' | 'digest' | 'package') => {
      if (e[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required for scope ${e.scope}` });
    };
    if (e.scope === 'project' || e.scope === 'package') need('project');
    if (e.scope === 'package') need('package');
    if (e.scope === 'repository' || e.scope === 'digest') need('repository');
    if (e.scope === 'digest') need('digest');
    if (e.project !== undefined && e.repository !== undefined && projectOf(e.repository) !== e.project) {
      ctx.addIssue({ code: 'custom', path: ['repository'], message: `repository is not in project ${e.project}` });
    }
  });

export type ExemptionInput = z.infer<typeof exemptionInputSchema>;

export class ExemptionError extends Error {
  override name = 'ExemptionError';
}

/** Validates an input against the clock and the maximum lifetime, giving the record to store. */
export function newExemption(input: ExemptionInput, createdBy: string | undefined, now: number, maxLifetimeMs: number): Exemption {
  const expiresAt = Date.parse(input.expiresAt);
  if (expiresAt <= now) throw new ExemptionError('expiresAt must be in the future');
  if (expiresAt - now > maxLifetimeMs) throw new ExemptionError(`an exemption may last at most ${Math.round(maxLifetimeMs / 86_400_000)} days`);
  const project = input.project ?? projectOf(input.repository!);
  const e: Exemption = { id: randomUUID(), vulnerability: input.vulnerability, scope: input.scope, project, owner: input.owner, reason: input.reason, expiresAt, createdAt: now };
  if (input.scope === 'repository' || input.scope === 'digest') e.repository = input.repository!;
  if (input.scope === 'digest') e.digest = input.digest!;
  if (input.scope === 'package') e.package = input.package!;
  if (input.ticket !== undefined) e.ticket = input.ticket;
  if (createdBy !== undefined) e.createdBy = createdBy;
  return e;
}

/** The purl without version, qualifiers and subpath (`pkg:deb/debian/openssl`). */
function purlBase(purl: string): string {
  return purl.replace(/[?#].*$/, '').replace(/@[^/]*$/, '');
}

export function isActive(e: Exemption, now: number): boolean {
  return e.revokedAt === undefined && e.expiresAt > now;
}

/** Whether `e` covers finding `f` on package `p` of image `digest` in `repository`. */
export function exemptionApplies(e: Exemption, f: Pick<VulnerabilityFinding, 'id' | 'aliases' | 'cves'>, p: Pick<InventoryPackage, 'name' | 'purl'> | undefined, repository: string, digest: string, now: number): boolean {
  if (!isActive(e, now)) return false;
  const wanted = e.vulnerability.toUpperCase();
  if (f.id.toUpperCase() !== wanted && !f.aliases.some((a) => a.toUpperCase() === wanted) && !f.cves.some((c) => c.toUpperCase() === wanted)) return false;
  switch (e.scope) {
    case 'project':
      return projectOf(repository) === e.project;
    case 'repository':
      return repository === e.repository;
    case 'digest':
      return repository === e.repository && digest === e.digest;
    case 'package':
      if (projectOf(repository) !== e.project || !p) return false;
      return p.name === e.package || (p.purl !== '' && purlBase(p.purl) === purlBase(e.package!));
  }
}

function exemptionRow(r: Row): Exemption {
  const e: Exemption = {
    id: String(r.id),
    vulnerability: String(r.vulnerability),
    scope: String(r.scope) as ExemptionScope,
    project: String(r.project),
    owner: String(r.owner),
    reason: String(r.reason),
    expiresAt: Number(r.expires_at),
    createdAt: Number(r.created_at),
  };
  if (r.repository !== null) e.repository = String(r.repository);
  if (r.digest !== null) e.digest = String(r.digest);
  if (r.package !== null) e.package = String(r.package);
  if (r.ticket !== null) e.ticket = String(r.ticket);
  if (r.created_by !== null) e.createdBy = String(r.created_by);
  if (r.revoked_at !== null) e.revokedAt = Number(r.revoked_at);
  if (r.revoked_by !== null) e.revokedBy = String(r.revoked_by);
  return e;
}

export interface ExemptionFilter {
  project?: string;
  repository?: string;
  vulnerability?: string;
  /** Include revoked and expired ones (default: only those in force at `now`). */
  all?: boolean;
  /** Only those expiring before this time. */
  expiringBefore?: number;
  limit?: number;
}

/** Exemptions in the scanner's database (`scan_exemptions`). */
export class ExemptionStore {
  readonly #db: SqlDriver;

  constructor(db: SqlDriver) {
    this.#db = db;
  }

  async create(e: Exemption): Promise<void> {
    await this.#db.run(
      `INSERT INTO scan_exemptions (id, vulnerability, scope, project, repository, digest, package, owner, reason, ticket, expires_at, created_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [e.id, e.vulnerability, e.scope, e.project, e.repository ?? null, e.digest ?? null, e.package ?? null, e.owner, e.reason, e.ticket ?? null, e.expiresAt, e.createdAt, e.createdBy ?? null],
    );
  }

  async get(id: string): Promise<Exemption | undefined> {
    const r = (await this.#db.all('SELECT * FROM scan_exemptions WHERE id = $1', [id]))[0];
    return r ? exemptionRow(r) : undefined;
  }

  async list(filter: ExemptionFilter, now: number): Promise<Exemption[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.project !== undefined) add('project = ?', filter.project);
    if (filter.repository !== undefined) add('(repository IS NULL OR repository = ?)', filter.repository);
    if (filter.vulnerability !== undefined) add('UPPER(vulnerability) = ?', filter.vulnerability.toUpperCase());
    if (!filter.all) {
      where.push('revoked_at IS NULL');
      add('expires_at > ?', now);
    }
    if (filter.expiringBefore !== undefined) add('expires_at < ?', filter.expiringBefore);
    params.push(filter.limit ?? 1000);
    const rows = await this.#db.all(`SELECT * FROM scan_exemptions ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY expires_at, id LIMIT $${params.length}`, params);
    return rows.map(exemptionRow);
  }

  /** Exemptions in force for images of `repository` (project-wide and narrower ones). */
  inForce(repository: string, now: number): Promise<Exemption[]> {
    return this.list({ project: projectOf(repository), repository }, now);
  }

  /** Revokes an exemption (kept for the record); false when unknown or already revoked. */
  async revoke(id: string, by: string | undefined, now: number): Promise<boolean> {
    return (await this.#db.run('UPDATE scan_exemptions SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL', [id, now, by ?? null])) === 1;
  }

  /** Active exemptions expiring before `before` that were not warned about yet; marks them warned. */
  async takeExpiring(before: number, now: number): Promise<Exemption[]> {
    const due = (await this.#db.all('SELECT * FROM scan_exemptions WHERE revoked_at IS NULL AND warned_at IS NULL AND expires_at > $1 AND expires_at < $2 ORDER BY expires_at LIMIT 1000', [now, before])).map(exemptionRow);
    const taken: Exemption[] = [];
    for (const e of due) if ((await this.#db.run('UPDATE scan_exemptions SET warned_at = $2 WHERE id = $1 AND warned_at IS NULL', [e.id, now])) === 1) taken.push(e);
    return taken;
  }
}

/** The view of an exemption in API answers and reports (times as ISO 8601). */
export function exemptionView(e: Exemption): Record<string, unknown> {
  return {
    id: e.id,
    vulnerability: e.vulnerability,
    scope: e.scope,
    project: e.project,
    ...(e.repository !== undefined ? { repository: e.repository } : {}),
    ...(e.digest !== undefined ? { digest: e.digest } : {}),
    ...(e.package !== undefined ? { package: e.package } : {}),
    owner: e.owner,
    reason: e.reason,
    ...(e.ticket !== undefined ? { ticket: e.ticket } : {}),
    expiresAt: new Date(e.expiresAt).toISOString(),
    createdAt: new Date(e.createdAt).toISOString(),
    ...(e.createdBy !== undefined ? { createdBy: e.createdBy } : {}),
    ...(e.revokedAt !== undefined ? { revokedAt: new Date(e.revokedAt).toISOString(), revokedBy: e.revokedBy } : {}),
  };
}
