/**
 * OpenVEX (https://github.com/openvex/spec, v0.2.0): statements by a supplier that an image or a
 * package is `not_affected` by (or has `fixed`) a vulnerability suppress the matching findings in
 * reports, with the statement shown. Documents come uploaded through the API (for a project) or
 * attached to an image as a referrer (`artifactType` / layer `application/vnd.openvex+json`), in
 * which case they apply to that image only.
 *
 * Matching: the statement's vulnerability (`name`, `@id` or `aliases`) against the finding's id and
 * aliases; its products against the image — `pkg:oci/...@<digest>` or a bare digest naming the
 * image (then `subcomponents`, when given, name the packages) — or against the package directly by
 * purl (exact, or without version when the statement's purl has none). For one vulnerability and
 * product the latest statement (by timestamp, then document order) decides, as the spec says.
 */
import { z } from 'zod';
import { projectOf } from '../../oci/reference.ts';
import type { Row, SqlDriver } from '../storage/sql/driver.ts';
import type { InventoryPackage, VulnerabilityFinding } from './model.ts';

export const OPENVEX_MEDIA_TYPE = 'application/vnd.openvex+json';
export const MAX_VEX_BYTES = 4 * 1024 * 1024;

export type VexStatus = 'not_affected' | 'affected' | 'fixed' | 'under_investigation';

export interface VexStatement {
  vulnerability: string;
  aliases: string[];
  products: string[];
  subcomponents: string[];
  status: VexStatus;
  justification?: string;
  impactStatement?: string;
  actionStatement?: string;
  /** Milliseconds; the document's timestamp when the statement has none. */
  timestamp: number;
  /** Position in the document (ties). */
  order: number;
}

export interface VexDocument {
  /** The document's `@id`. */
  id: string;
  author: string;
  timestamp: number;
  statements: VexStatement[];
}

const idOf = z.union([z.string().min(1).max(2048), z.object({ '@id': z.string().min(1).max(2048) }).passthrough()]).transform((v) => (typeof v === 'string' ? v : v['@id']));
const product = z
  .object({ '@id': z.string().min(1).max(2048).optional(), identifiers: z.record(z.string(), z.string()).optional(), subcomponents: z.array(z.object({ '@id': z.string().min(1).max(2048).optional(), identifiers: z.record(z.string(), z.string()).optional() }).passthrough()).max(10_000).optional() })
  .passthrough();
const time = z.iso.datetime({ offset: true });
/** An OpenVEX document (also described in the OpenAPI document, openapi.ts). */
export const documentSchema = z
  .object({
    '@context': z.string().regex(/^https:\/\/openvex\.dev\/ns(\/v[0-9.]+)?$/, 'not an OpenVEX document (@context)'),
    '@id': z.string().min(1).max(2048),
    author: z.string().min(1).max(1000),
    timestamp: time,
    statements: z
      .array(
        z
          .object({
            vulnerability: z.object({ name: z.string().min(1).max(256).optional(), '@id': z.string().max(2048).optional(), aliases: z.array(z.string().max(256)).max(100).optional() }).passthrough(),
            products: z.array(product).max(10_000).optional(),
            status: z.enum(['not_affected', 'affected', 'fixed', 'under_investigation']),
            justification: z.string().max(200).optional(),
            impact_statement: z.string().max(10_000).optional(),
            action_statement: z.string().max(10_000).optional(),
            timestamp: time.optional(),
          })
          .passthrough()
          .refine((s) => s.status !== 'not_affected' || s.justification !== undefined || s.impact_statement !== undefined, 'a not_affected statement needs a justification or an impact_statement'),
      )
      .max(10_000),
  })
  .passthrough();

export class VexError extends Error {
  override name = 'VexError';
}

function productIds(p: z.infer<typeof product>): string[] {
  return [p['@id'], ...Object.values(p.identifiers ?? {})].filter((x): x is string => typeof x === 'string');
}

/** Parses and validates an OpenVEX JSON document. @throws VexError with the first problem. */
export function parseOpenVex(input: string | Uint8Array): VexDocument {
  let value: unknown;
  try {
    value = JSON.parse(typeof input === 'string' ? input : Buffer.from(input).toString('utf8'));
  } catch (error) {
    throw new VexError(`not JSON: ${(error as Error).message}`);
  }
  const parsed = documentSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new VexError(`${issue.path.join('.') || '(document)'}: ${issue.message}`);
  }
  const d = parsed.data;
  const docTime = Date.parse(d.timestamp);
  return {
    id: d['@id'],
    author: d.author,
    timestamp: docTime,
    statements: d.statements.map((s, order) => {
      const v = s.vulnerability;
      const name = v.name ?? idOf.parse(v['@id'] ?? '');
      const st: VexStatement = {
        vulnerability: name,
        aliases: v.aliases ?? [],
        products: (s.products ?? []).flatMap(productIds),
        subcomponents: (s.products ?? []).flatMap((p) => (p.subcomponents ?? []).flatMap((c) => [c['@id'], ...Object.values(c.identifiers ?? {})].filter((x): x is string => typeof x === 'string'))),
        status: s.status,
        timestamp: s.timestamp ? Date.parse(s.timestamp) : docTime,
        order,
      };
      if (s.justification !== undefined) st.justification = s.justification;
      if (s.impact_statement !== undefined) st.impactStatement = s.impact_statement;
      if (s.action_statement !== undefined) st.actionStatement = s.action_statement;
      return st;
    }),
  };
}

function purlBase(purl: string): string {
  return purl.replace(/[?#].*$/, '').replace(/@[^/@]*$/, '');
}

function purlMatches(statementPurl: string, packagePurl: string): boolean {
  if (!statementPurl.startsWith('pkg:') || packagePurl === '') return false;
  const s = statementPurl.replace(/[?#].*$/, '');
  const p = packagePurl.replace(/[?#].*$/, '');
  if (s === p) return true;
  return !/@[^/@]*$/.test(s) && purlBase(p) === s;
}

/** Whether a product id names the image `digest` (`pkg:oci/...@sha256:...` or the bare digest). */
function namesImage(id: string, digest: string): boolean {
  if (id === digest) return true;
  if (!id.startsWith('pkg:oci/')) return false;
  const at = id.replace(/[?#].*$/, '').lastIndexOf('@');
  return at > 0 && decodeURIComponent(id.slice(at + 1)) === digest;
}

function statementCovers(s: VexStatement, f: Pick<VulnerabilityFinding, 'id' | 'aliases' | 'cves'>, p: Pick<InventoryPackage, 'purl'> | undefined, digest: string, attachedTo: string | undefined): boolean {
  const ids = new Set([f.id, ...f.aliases, ...f.cves].map((x) => x.toUpperCase()));
  if (!ids.has(s.vulnerability.toUpperCase()) && !s.aliases.some((a) => ids.has(a.toUpperCase()))) return false;
  const imageNamed = s.products.some((id) => namesImage(id, digest)) || (attachedTo === digest && !s.products.some((id) => id.startsWith('pkg:oci/') || /^sha256:/.test(id)));
  const purl = p?.purl ?? '';
  if (imageNamed) {
    if (s.subcomponents.length === 0) return s.products.every((id) => !id.startsWith('pkg:') || id.startsWith('pkg:oci/')) || s.products.some((id) => purlMatches(id, purl));
    return s.subcomponents.some((id) => purlMatches(id, purl));
  }
  // A document attached to another image never applies here; an uploaded one names packages directly.
  if (attachedTo !== undefined && attachedTo !== digest) return false;
  return s.products.some((id) => purlMatches(id, purl));
}

export interface StoredVex {
  id: string;
  document: VexDocument;
  /** For a referrer: the image digest it is attached to. */
  subject?: string | undefined;
}

export interface VexVerdict {
  document: string;
  author: string;
  status: VexStatus;
  justification?: string;
  impactStatement?: string;
  actionStatement?: string;
  timestamp: string;
}

/**
 * The deciding statement over all documents for this finding, when it suppresses it
 * (`not_affected` or `fixed`); undefined when none applies or the latest says affected.
 */
export function vexVerdict(docs: readonly StoredVex[], f: Pick<VulnerabilityFinding, 'id' | 'aliases' | 'cves'>, p: Pick<InventoryPackage, 'purl'> | undefined, digest: string): VexVerdict | undefined {
  let best: { s: VexStatement; d: VexDocument } | undefined;
  for (const { document: d, subject } of docs) {
    for (const s of d.statements) {
      if (!statementCovers(s, f, p, digest, subject)) continue;
      if (!best || s.timestamp > best.s.timestamp || (s.timestamp === best.s.timestamp && d === best.d && s.order > best.s.order)) best = { s, d };
    }
  }
  if (!best || (best.s.status !== 'not_affected' && best.s.status !== 'fixed')) return undefined;
  const v: VexVerdict = { document: best.d.id, author: best.d.author, status: best.s.status, timestamp: new Date(best.s.timestamp).toISOString() };
  if (best.s.justification !== undefined) v.justification = best.s.justification;
  if (best.s.impactStatement !== undefined) v.impactStatement = best.s.impactStatement;
  if (best.s.actionStatement !== undefined) v.actionStatement = best.s.actionStatement;
  return v;
}

export interface VexRecord extends StoredVex {
  project: string;
  repository?: string | undefined;
  source: 'upload' | 'referrer';
  createdAt: number;
  createdBy?: string | undefined;
}

/** OpenVEX documents in the scanner's database (`scan_vex`). */
export class VexStore {
  readonly #db: SqlDriver;

  constructor(db: SqlDriver) {
    this.#db = db;
  }

  /** Stores a document (idempotent by id). */
  async put(r: VexRecord): Promise<void> {
    await this.#db.run(
      `INSERT INTO scan_vex (id, project, repository, subject, source, document, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO NOTHING`,
      [r.id, r.project, r.repository ?? null, r.subject ?? null, r.source, JSON.stringify(r.document), r.createdAt, r.createdBy ?? null],
    );
  }

  async get(id: string): Promise<VexRecord | undefined> {
    const row = (await this.#db.all('SELECT * FROM scan_vex WHERE id = $1', [id]))[0];
    return row ? vexRow(row) : undefined;
  }

  async list(project: string): Promise<VexRecord[]> {
    return (await this.#db.all('SELECT * FROM scan_vex WHERE project = $1 ORDER BY created_at, id LIMIT 1000', [project])).map(vexRow);
  }

  /** Documents that may speak about `digest` in `repository`: the project's uploads and the image's own referrers. */
  async forImage(repository: string, digest: string): Promise<VexRecord[]> {
    const rows = await this.#db.all(
      `SELECT * FROM scan_vex WHERE project = $1 AND ((subject IS NULL AND (repository IS NULL OR repository = $2)) OR (subject = $3 AND repository = $2)) ORDER BY created_at, id LIMIT 1000`,
      [projectOf(repository), repository, digest],
    );
    return rows.map(vexRow);
  }

  async delete(id: string): Promise<boolean> {
    return (await this.#db.run('DELETE FROM scan_vex WHERE id = $1', [id])) > 0;
  }
}

function vexRow(r: Row): VexRecord {
  return {
    id: String(r.id),
    project: String(r.project),
    repository: r.repository === null ? undefined : String(r.repository),
    subject: r.subject === null ? undefined : String(r.subject),
    source: String(r.source) as VexRecord['source'],
    document: JSON.parse(String(r.document)) as VexDocument,
    createdAt: Number(r.created_at),
    createdBy: r.created_by === null ? undefined : String(r.created_by),
  };
}

export function vexView(r: VexRecord): Record<string, unknown> {
  return {
    id: r.id,
    documentId: r.document.id,
    author: r.document.author,
    statements: r.document.statements.length,
    source: r.source,
    project: r.project,
    ...(r.repository ? { repository: r.repository } : {}),
    ...(r.subject ? { subject: r.subject } : {}),
    createdAt: new Date(r.createdAt).toISOString(),
    ...(r.createdBy ? { createdBy: r.createdBy } : {}),
  };
}
