/**
 * Importing OSV data into the database: read a source (sources.ts), parse every record (osv.ts),
 * replace the source's previous contribution, and report what changed, what was rejected and why.
 * A malformed record is rejected alone (with its path and reason); a source that breaks a limit or
 * cannot be read fails the import as a whole and leaves the database untouched.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import YAML from 'yaml';
import type { ChangeSummary, SourceMeta, VulnDatabase } from './database.ts';
import { OsvParseError, parseOsvRecord, parseOsvValue, type VulnRecord } from './osv.ts';
import { type ArtifactLayer, artifactEntries, type FetchedLayer, parseOsvArtifact } from './artifact.ts';
import { DEFAULT_SOURCE_LIMITS, SourceError, download, isZipFile, readDirectory, readZip, type SourceEntry, type SourceLimits } from './sources.ts';

export interface RejectedRecord {
  path: string;
  id?: string;
  reason: string;
}

export interface ImportReport {
  source: string;
  /** `unchanged`: the server answered 304 Not Modified, or the content hash equals the last import's. */
  status: 'imported' | 'unchanged';
  meta?: SourceMeta;
  changes: ChangeSummary;
  rejected: RejectedRecord[];
  /** Total rejected (the list above is capped). */
  rejectedCount: number;
  warnings: number;
}

export interface ImportOptions {
  limits?: SourceLimits;
  /** Clock for `importedAt` (tests). */
  now?: () => Date;
  /** Cap on the rejected records listed in the report. */
  maxRejectedListed?: number;
  /** Re-import even when the content hash is unchanged. */
  force?: boolean;
}

const NO_CHANGES: ChangeSummary = { added: [], removed: [], changed: [] };

function* parseEntry(entry: SourceEntry): Generator<{ record: VulnRecord; digest: string } | RejectedRecord> {
  const digest = createHash('sha256').update(entry.bytes).digest('hex');
  const isYaml = /\.ya?ml$/i.test(entry.name);
  try {
    if (isYaml) {
      let value: unknown;
      try {
        value = YAML.parse(entry.bytes.toString('utf8'), { maxAliasCount: 100 });
      } catch (err) {
        throw new OsvParseError(`invalid YAML: ${(err as Error).message}`);
      }
      yield { record: parseOsvValue(value), digest };
      return;
    }
    // A JSON file may hold one record or an array of records (API dumps).
    const first = entry.bytes.subarray(0, 64).toString('utf8').trimStart();
    if (first.startsWith('[')) {
      let list: unknown;
      try {
        list = JSON.parse(entry.bytes.toString('utf8'));
      } catch (err) {
        throw new OsvParseError(`invalid JSON: ${(err as Error).message}`);
      }
      if (!Array.isArray(list)) throw new OsvParseError('not a record array');
      for (const [i, item] of list.entries()) {
        try {
          const rec = parseOsvValue(item);
          yield { record: rec, digest: createHash('sha256').update(JSON.stringify(item)).digest('hex') };
        } catch (err) {
          if (!(err instanceof OsvParseError)) throw err;
          const r: RejectedRecord = { path: `${entry.name}[${i}]`, reason: err.message };
          if (err.recordId) r.id = err.recordId;
          yield r;
        }
      }
      return;
    }
    yield { record: parseOsvRecord(entry.bytes), digest };
  } catch (err) {
    if (!(err instanceof OsvParseError)) throw err;
    const r: RejectedRecord = { path: entry.name, reason: err.message };
    if (err.recordId) r.id = err.recordId;
    yield r;
  }
}

interface Collected {
  records: { record: VulnRecord; digest: string }[];
  rejected: RejectedRecord[];
  rejectedCount: number;
  warnings: number;
  withdrawn: number;
  contentHash: string;
}

async function collect(entries: AsyncIterable<SourceEntry>, maxListed: number): Promise<Collected> {
  const byId = new Map<string, { record: VulnRecord; digest: string }>();
  const rejected: RejectedRecord[] = [];
  let rejectedCount = 0;
  for await (const entry of entries) {
    for (const out of parseEntry(entry)) {
      if ('reason' in out) {
        rejectedCount++;
        if (rejected.length < maxListed) rejected.push(out);
        continue;
      }
      // The same id twice (e.g. a record's .json and .yaml twins): keep the later `modified`.
      const prev = byId.get(out.record.id);
      if (!prev || out.record.modified > prev.record.modified) byId.set(out.record.id, out);
    }
  }
  const records = [...byId.values()].sort((a, b) => (a.record.id < b.record.id ? -1 : a.record.id > b.record.id ? 1 : 0));
  const h = createHash('sha256');
  let warnings = 0;
  let withdrawn = 0;
  for (const r of records) {
    h.update(`${r.record.id}\u0000${r.digest}\n`);
    warnings += r.record.warnings.length;
    if (r.record.withdrawn !== undefined) withdrawn++;
  }
  return { records, rejected, rejectedCount, warnings, withdrawn, contentHash: h.digest('hex') };
}

function apply(db: VulnDatabase, source: string, kind: SourceMeta['kind'], c: Collected, opts: ImportOptions, extra: Partial<SourceMeta> = {}): ImportReport {
  const previous = db.meta.sources.find((s) => s.source === source);
  const base = { source, rejected: c.rejected, rejectedCount: c.rejectedCount, warnings: c.warnings };
  if (!opts.force && previous && previous.contentHash === c.contentHash) {
    return { ...base, status: 'unchanged', meta: previous, changes: NO_CHANGES };
  }
  const meta: SourceMeta = {
    source,
    kind,
    importedAt: (opts.now?.() ?? new Date()).toISOString(),
    contentHash: c.contentHash,
    records: c.records.length,
    withdrawn: c.withdrawn,
    rejected: c.rejectedCount,
    ...extra,
  };
  const changes = db.replaceSource(meta, c.records);
  return { ...base, status: 'imported', meta, changes };
}

async function* singleFile(path: string, limits: SourceLimits): AsyncGenerator<SourceEntry> {
  const st = await stat(path);
  if (st.size > limits.maxEntryBytes) throw new SourceError(`${path}: file too large (${st.size} bytes > ${limits.maxEntryBytes})`);
  const { readFile } = await import('node:fs/promises');
  yield { name: path, bytes: await readFile(path) };
}

/** Imports a directory, a zip or a single record file. */
export async function importPath(db: VulnDatabase, path: string, opts: ImportOptions = {}): Promise<ImportReport> {
  const limits = opts.limits ?? DEFAULT_SOURCE_LIMITS;
  const source = resolve(path);
  const maxListed = opts.maxRejectedListed ?? 1000;
  const st = await stat(source).catch(() => undefined);
  if (!st) throw new SourceError(`${source}: no such file or directory`);
  if (st.isDirectory()) return apply(db, source, 'directory', await collect(readDirectory(source, limits), maxListed), opts);
  if (await isZipFile(source)) return apply(db, source, 'zip', await collect(readZip(source, limits), maxListed), opts);
  return apply(db, source, 'file', await collect(singleFile(source, limits), maxListed), opts);
}

/**
 * Imports from an HTTP(S) URL (a zip such as OSV's `<ecosystem>/all.zip`, or a JSON record/array),
 * with `If-None-Match`/`If-Modified-Since` from the previous import of the same URL.
 */
export async function importUrl(db: VulnDatabase, url: string, opts: ImportOptions = {}): Promise<ImportReport> {
  const limits = opts.limits ?? DEFAULT_SOURCE_LIMITS;
  const previous = db.meta.sources.find((s) => s.source === url);
  const validators: { etag?: string; lastModified?: string } = {};
  if (previous?.etag && !opts.force) validators.etag = previous.etag;
  if (previous?.lastModified && !opts.force) validators.lastModified = previous.lastModified;
  const res = await download(url, validators, limits);
  if (res.status === 'not-modified') {
    const report: ImportReport = { source: url, status: 'unchanged', changes: NO_CHANGES, rejected: [], rejectedCount: 0, warnings: 0 };
    if (previous) report.meta = previous;
    return report;
  }
  try {
    const zip = await isZipFile(res.file);
    const entries = zip ? readZip(res.file, limits) : singleFile(res.file, limits);
    const collected = await collect(entries, opts.maxRejectedListed ?? 1000);
    const extra: Partial<SourceMeta> = {};
    if (res.etag) extra.etag = res.etag;
    if (res.lastModified) extra.lastModified = res.lastModified;
    const report = apply(db, url, 'url', collected, opts, extra);
    // Keep the new validators even when the content turned out identical.
    if (report.status === 'unchanged' && report.meta) {
      if (res.etag) report.meta.etag = res.etag;
      if (res.lastModified) report.meta.lastModified = res.lastModified;
    }
    return report;
  } finally {
    await res.cleanup();
  }
}

/**
 * Imports an OSV artifact (artifact.ts) whose manifest is `manifest` (digest `manifestDigest`) as
 * `source`; `fetchLayer` saves a layer to a file with its digest verified (from a registry over
 * HTTP, or from the local blob store). The same manifest digest as the last import is `unchanged`
 * without fetching a layer.
 */
export async function importArtifact(
  db: VulnDatabase,
  source: string,
  manifestDigest: string,
  manifest: Buffer,
  fetchLayer: (layer: ArtifactLayer) => Promise<FetchedLayer>,
  opts: ImportOptions = {},
): Promise<ImportReport> {
  const limits = opts.limits ?? DEFAULT_SOURCE_LIMITS;
  const artifact = parseOsvArtifact(manifest, limits);
  const previous = db.meta.sources.find((s) => s.source === source);
  if (!opts.force && previous?.digest === manifestDigest) return { source, status: 'unchanged', meta: previous, changes: NO_CHANGES, rejected: [], rejectedCount: 0, warnings: 0 };
  const collected = await collect(artifactEntries(artifact, fetchLayer, limits), opts.maxRejectedListed ?? 1000);
  const extra: Partial<SourceMeta> = { digest: manifestDigest };
  const origin = artifact.annotations['dev.portcullis.osv.source'];
  const created = artifact.annotations['org.opencontainers.image.created'];
  if (origin) extra.origin = origin;
  if (created) extra.created = created;
  const report = apply(db, source, 'oci', collected, opts, extra);
  // Same records under a new manifest (re-packed): remember the digest so the next check is cheap.
  if (report.status === 'unchanged' && report.meta) Object.assign(report.meta, extra);
  return report;
}

/** Imports `location`: an http(s) URL, or a path to a directory, zip or JSON/YAML file. */
export function importOsv(db: VulnDatabase, location: string, opts: ImportOptions = {}): Promise<ImportReport> {
  return /^https?:\/\//i.test(location) ? importUrl(db, location, opts) : importPath(db, location, opts);
}
