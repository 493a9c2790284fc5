/**
 * The vulnerability database's entry points for the rest of the registry and the CLI: open the
 * persisted database of a data directory, import a source into it and persist the result, and
 * describe its state (sources, import times, content hash, age).
 */
import { VulnDatabase, type DatabaseMeta } from './database.ts';
import { importOsv, type ImportOptions, type ImportReport } from './import.ts';
import { loadDatabase, saveDatabase, snapshotPath } from './store.ts';

export { VulnDatabase } from './database.ts';
export type { ChangeSummary, DatabaseMeta, SourceMeta } from './database.ts';
export type { ImportReport, RejectedRecord } from './import.ts';

export async function openVulnDatabase(dataDir: string): Promise<VulnDatabase> {
  return loadDatabase(snapshotPath(dataDir));
}

/** Imports `location` (path or http(s) URL) into `db` and persists it when anything changed. */
export async function importAndPersist(db: VulnDatabase, dataDir: string, location: string, opts: ImportOptions = {}): Promise<ImportReport> {
  return persistImport(db, dataDir, await importOsv(db, location, opts));
}

/** Persists the database after an import when anything changed, new HTTP validators or artifact digests included (so the next run can ask cheaply). */
export async function persistImport(db: VulnDatabase, dataDir: string, report: ImportReport): Promise<ImportReport> {
  if (report.status === 'imported' || report.meta?.etag || report.meta?.lastModified || report.meta?.digest) await saveDatabase(db, snapshotPath(dataDir));
  return report;
}

export interface DatabaseStatus extends DatabaseMeta {
  records: number;
  /** Age of the newest import, in seconds; undefined for an empty database. */
  ageSeconds?: number;
  /** True when older than `maxAgeSeconds`. */
  stale: boolean;
}

export function databaseStatus(db: VulnDatabase, maxAgeSeconds: number, now: Date = new Date()): DatabaseStatus {
  const meta = db.meta;
  const status: DatabaseStatus = { ...meta, records: db.size, stale: meta.sources.length === 0 };
  if (meta.sources.length > 0) {
    const newest = Math.max(...meta.sources.map((s) => Date.parse(s.importedAt)));
    status.ageSeconds = Math.max(0, Math.round((now.getTime() - newest) / 1000));
    status.stale = status.ageSeconds > maxAgeSeconds;
  }
  return status;
}
