/**
 * OSV records (https://ossf.github.io/osv-schema/, schema 1.7): defensive parsing into the compact,
 * normalised form the vulnerability database stores and matching evaluates.
 *
 * - Input is untrusted: size, count and length limits apply before and during validation (zod), and
 *   any violation is an `OsvParseError` with a reason — never an exception from deep inside.
 * - Unknown fields are ignored (the schema promises only additive minor versions).
 * - `GIT` ranges and ranges of unknown type are dropped (an installed package has no commit); ranges
 *   with no `introduced` event are read as starting at "0" (the conservative reading, with a warning).
 * - `ECOSYSTEM`/`SEMVER` events are sorted once here with the ecosystem's version order, so matching
 *   walks them without sorting; `limit` events are kept apart.
 * - Severity is resolved once per affected package (see severity.ts) and stored with the record.
 */
import { z } from 'zod';
import { baseEcosystem, schemeForEcosystem } from '../versions/index.ts';
import { compareGo, compareSemVer } from '../versions/semver.ts';
import { resolveSeverity, type ResolvedSeverity, type SeverityEntry } from './severity.ts';
import { normalizePackageName } from './ecosystems.ts';

export const OSV_LIMITS = {
  /** Largest accepted record (bytes of JSON). Linux kernel records with long version lists reach a few MB. */
  maxRecordBytes: 16 * 1024 * 1024,
  maxAffected: 10_000,
  maxRangesPerAffected: 1_000,
  maxEventsPerRange: 10_000,
  maxVersionsPerAffected: 200_000,
  maxAliases: 1_000,
  maxIdLength: 256,
  maxNameLength: 1_024,
  maxVersionLength: 512,
  /** Longer summaries/details are truncated, not rejected. */
  maxSummaryLength: 1_024,
  maxDetailsLength: 16 * 1024,
  maxReferences: 200,
};

export class OsvParseError extends Error {
  override name = 'OsvParseError';
  readonly recordId: string | undefined;
  constructor(reason: string, recordId?: string) {
    super(reason);
    this.recordId = recordId;
  }
}

export type EventKind = 'introduced' | 'fixed' | 'last_affected';

export interface RangeEvent {
  kind: EventKind;
  version: string;
}

export interface AffectedRange {
  type: 'ECOSYSTEM' | 'SEMVER';
  /** Sorted by the range's version order; `introduced: "0"` first. */
  events: RangeEvent[];
  /** `limit` events (rare outside GIT ranges); empty means the implicit `*`. */
  limits: string[];
}

export interface Affected {
  /** The full ecosystem string, e.g. `Debian:12`, `Ubuntu:Pro:18.04:LTS`, `npm`. */
  ecosystem: string;
  /** The package name as written in the record. */
  name: string;
  /** The name normalised for lookups (PEP 503 for PyPI, lower case where the ecosystem is case-insensitive). */
  key: string;
  purl?: string;
  ranges: AffectedRange[];
  versions: string[];
  severity: ResolvedSeverity;
}

export interface VulnRecord {
  id: string;
  modified: string;
  published?: string;
  withdrawn?: string;
  aliases: string[];
  upstream: string[];
  related: string[];
  summary?: string;
  details?: string;
  references: { type: string; url: string }[];
  affected: Affected[];
  /** Non-fatal oddities met while parsing (dropped ranges, missing introduced, bad vectors). */
  warnings: string[];
}

const L = OSV_LIMITS;
const str = (max: number) => z.string().max(max);
const severityEntry = z.object({ type: str(64), score: str(1024) });

const eventSchema = z
  .object({
    introduced: str(L.maxVersionLength).optional(),
    fixed: str(L.maxVersionLength).optional(),
    last_affected: str(L.maxVersionLength).optional(),
    limit: str(L.maxVersionLength).optional(),
  })
  .refine((e) => [e.introduced, e.fixed, e.last_affected, e.limit].filter((x) => x !== undefined).length === 1, {
    message: 'each event must have exactly one of introduced, fixed, last_affected, limit',
  });

const rangeSchema = z.object({
  type: str(64),
  repo: str(4096).optional(),
  events: z.array(eventSchema).max(L.maxEventsPerRange),
});

const jsonObject = z.record(z.string(), z.unknown());

const affectedSchema = z.object({
  package: z
    .object({ ecosystem: str(256).min(1), name: str(L.maxNameLength).min(1), purl: str(4096).optional() })
    .optional(),
  severity: z.array(severityEntry).max(50).optional(),
  ranges: z.array(rangeSchema).max(L.maxRangesPerAffected).optional(),
  versions: z.array(str(L.maxVersionLength)).max(L.maxVersionsPerAffected).optional(),
  ecosystem_specific: jsonObject.optional().nullable(),
  database_specific: jsonObject.optional().nullable(),
});

const idString = str(L.maxIdLength).regex(/^[A-Za-z0-9][A-Za-z0-9._:+-]*$/, 'malformed id');

const recordSchema = z.object({
  schema_version: str(32).optional(),
  id: idString,
  modified: str(64),
  published: str(64).optional(),
  withdrawn: str(64).optional(),
  aliases: z.array(str(L.maxIdLength)).max(L.maxAliases).optional().nullable(),
  upstream: z.array(str(L.maxIdLength)).max(L.maxAliases).optional().nullable(),
  related: z.array(str(L.maxIdLength)).max(L.maxAliases).optional().nullable(),
  summary: z.string().optional(),
  details: z.string().optional(),
  severity: z.array(severityEntry).max(50).optional().nullable(),
  affected: z.array(affectedSchema).max(L.maxAffected).optional().nullable(),
  references: z.array(z.object({ type: str(64), url: str(4096) })).optional().nullable(),
  database_specific: jsonObject.optional().nullable(),
});

type RawRecord = z.infer<typeof recordSchema>;

function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid record';
  const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${path}: ${issue.message}`;
}

/** The comparator for one range: ECOSYSTEM uses the ecosystem's order, SEMVER uses SemVer (Go's flavour for Go). */
export function rangeComparator(ecosystem: string, type: 'ECOSYSTEM' | 'SEMVER'): ((a: string, b: string) => number) | undefined {
  if (type === 'SEMVER') return baseEcosystem(ecosystem) === 'Go' ? compareGo : compareSemVer;
  return schemeForEcosystem(ecosystem)?.compare;
}

function normalizeRange(ecosystem: string, raw: z.infer<typeof rangeSchema>, warnings: string[], where: string): AffectedRange | undefined {
  if (raw.type !== 'ECOSYSTEM' && raw.type !== 'SEMVER') {
    if (raw.type !== 'GIT') warnings.push(`${where}: range type ${raw.type} ignored`);
    return undefined;
  }
  const cmp = rangeComparator(ecosystem, raw.type);
  if (!cmp) {
    warnings.push(`${where}: no version order for ecosystem ${ecosystem}; range ignored`);
    return undefined;
  }
  const events: RangeEvent[] = [];
  const limits: string[] = [];
  for (const e of raw.events) {
    if (e.introduced !== undefined) events.push({ kind: 'introduced', version: e.introduced });
    else if (e.fixed !== undefined) events.push({ kind: 'fixed', version: e.fixed });
    else if (e.last_affected !== undefined) events.push({ kind: 'last_affected', version: e.last_affected });
    else if (e.limit !== undefined) limits.push(e.limit);
  }
  if (!events.some((e) => e.kind === 'introduced')) {
    warnings.push(`${where}: range without introduced event; read as introduced "0"`);
    events.unshift({ kind: 'introduced', version: '0' });
  }
  const key = (v: string): number => (v === '0' ? -1 : 0);
  events.sort((a, b) => {
    const za = key(a.version);
    const zb = key(b.version);
    if (za !== zb) return za - zb;
    if (za === -1) return 0;
    return cmp(a.version, b.version);
  });
  return { type: raw.type, events, limits };
}

function toSeverityEntries(list: { type: string; score: string }[] | null | undefined): SeverityEntry[] {
  return (list ?? []).map((s) => ({ type: s.type, score: s.score }));
}

function normalize(raw: RawRecord): VulnRecord {
  const warnings: string[] = [];
  const topSeverity = toSeverityEntries(raw.severity);
  const affected: Affected[] = [];
  (raw.affected ?? []).forEach((a, i) => {
    if (!a.package) return; // e.g. GIT-only affected entries without a package: nothing to match
    const where = `affected[${i}] ${a.package.ecosystem}/${a.package.name}`;
    const ranges: AffectedRange[] = [];
    for (const r of a.ranges ?? []) {
      const n = normalizeRange(a.package.ecosystem, r, warnings, where);
      if (n) ranges.push(n);
    }
    const entry: Affected = {
      ecosystem: a.package.ecosystem,
      name: a.package.name,
      key: normalizePackageName(a.package.ecosystem, a.package.name),
      ranges,
      versions: a.versions ?? [],
      severity: resolveSeverity({
        id: raw.id,
        ecosystem: a.package.ecosystem,
        affectedSeverity: toSeverityEntries(a.severity),
        topSeverity,
        affectedDatabaseSpecific: a.database_specific ?? undefined,
        ecosystemSpecific: a.ecosystem_specific ?? undefined,
        recordDatabaseSpecific: raw.database_specific ?? undefined,
        warnings,
      }),
    };
    if (a.package.purl !== undefined) entry.purl = a.package.purl;
    affected.push(entry);
  });
  const rec: VulnRecord = {
    id: raw.id,
    modified: raw.modified,
    aliases: [...new Set(raw.aliases ?? [])].filter((x) => x !== raw.id),
    upstream: [...new Set(raw.upstream ?? [])],
    related: [...new Set(raw.related ?? [])],
    references: (raw.references ?? []).slice(0, L.maxReferences),
    affected,
    warnings,
  };
  if (raw.published !== undefined) rec.published = raw.published;
  if (raw.withdrawn !== undefined) rec.withdrawn = raw.withdrawn;
  if (raw.summary !== undefined) rec.summary = raw.summary.slice(0, L.maxSummaryLength);
  if (raw.details !== undefined) rec.details = raw.details.slice(0, L.maxDetailsLength);
  return rec;
}

/** Parses one OSV record from already-decoded JSON. Throws `OsvParseError` with a reason. */
export function parseOsvValue(value: unknown): VulnRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new OsvParseError('record is not a JSON object');
  const idGuess = typeof (value as { id?: unknown }).id === 'string' ? ((value as { id: string }).id.slice(0, L.maxIdLength)) : undefined;
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) throw new OsvParseError(describeZodError(parsed.error), idGuess);
  try {
    return normalize(parsed.data);
  } catch (err) {
    throw new OsvParseError(`cannot normalise record: ${(err as Error).message}`, idGuess);
  }
}

/** Parses one OSV record from its JSON bytes or text, with the size limit applied first. */
export function parseOsvRecord(input: string | Uint8Array): VulnRecord {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > L.maxRecordBytes) throw new OsvParseError(`record too large: ${size} bytes > ${L.maxRecordBytes}`);
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OsvParseError(`invalid JSON: ${(err as Error).message}`);
  }
  return parseOsvValue(value);
}
