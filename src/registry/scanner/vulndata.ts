/**
 * The vulnerability database as the running scanner holds it: the loaded snapshot, one matcher
 * (whose caches live as long as the database generation), and a cheap check whether another
 * process (the `vulndb import` command, another replica) replaced the snapshot on disk.
 */
import { stat } from 'node:fs/promises';
import { Matcher } from './matching/matcher.ts';
import type { DatabaseIdentity } from './evaluation.ts';
import type { ArtifactLayer, FetchedLayer } from './vulndb/artifact.ts';
import { importArtifact } from './vulndb/import.ts';
import { databaseStatus, importAndPersist, openVulnDatabase, persistImport, type DatabaseStatus, type ImportReport, type VulnDatabase } from './vulndb/index.ts';
import type { ImportOptions } from './vulndb/import.ts';
import { snapshotPath } from './vulndb/store.ts';

async function stampOf(file: string): Promise<string> {
  const s = await stat(file).catch(() => undefined);
  return s ? `${s.mtimeMs}:${s.size}:${s.ino}` : 'absent';
}

export class VulnData {
  readonly dataDir: string;
  #db: VulnDatabase;
  #matcher: Matcher;
  #stamp: string;
  #loading: Promise<boolean> | undefined;

  private constructor(dataDir: string, db: VulnDatabase, stamp: string) {
    this.dataDir = dataDir;
    this.#db = db;
    this.#matcher = new Matcher(db);
    this.#stamp = stamp;
  }

  /** Loads the snapshot of `<dataDir>/vulndb/` (an empty database when there is none). */
  static async open(dataDir: string): Promise<VulnData> {
    const stamp = await stampOf(snapshotPath(dataDir));
    return new VulnData(dataDir, await openVulnDatabase(dataDir), stamp);
  }

  get db(): VulnDatabase {
    return this.#db;
  }

  get matcher(): Matcher {
    return this.#matcher;
  }

  /** Which database findings are computed with: content hash and time of the newest import. */
  identity(): DatabaseIdentity {
    const meta = this.#db.meta;
    return { hash: meta.contentHash, updatedAt: meta.sources.length === 0 ? 0 : Date.parse(meta.updatedAt) };
  }

  status(maxAgeSeconds: number, now = new Date()): DatabaseStatus {
    return databaseStatus(this.#db, maxAgeSeconds, now);
  }

  /** Reloads the snapshot when the file changed since it was loaded; true when the content changed. */
  refresh(): Promise<boolean> {
    this.#loading ??= (async () => {
      try {
        const file = snapshotPath(this.dataDir);
        const stamp = await stampOf(file);
        if (stamp === this.#stamp) return false;
        const before = this.#db.meta.contentHash;
        const db = await openVulnDatabase(this.dataDir);
        this.#db = db;
        this.#matcher = new Matcher(db);
        this.#stamp = stamp;
        return db.meta.contentHash !== before;
      } finally {
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }

  /** Imports a directory, zip file or URL into the database and persists the snapshot. */
  async import(location: string, options: ImportOptions = {}): Promise<ImportReport> {
    await this.refresh();
    const report = await importAndPersist(this.#db, this.dataDir, location, options);
    this.#stamp = await stampOf(snapshotPath(this.dataDir));
    return report;
  }

  /** Imports an OSV artifact (manifest and a way to fetch its layers) as `source` and persists the snapshot. */
  async importArtifact(source: string, manifestDigest: string, manifest: Buffer, fetchLayer: (layer: ArtifactLayer) => Promise<FetchedLayer>, options: ImportOptions = {}): Promise<ImportReport> {
    await this.refresh();
    const report = await persistImport(this.#db, this.dataDir, await importArtifact(this.#db, source, manifestDigest, manifest, fetchLayer, options));
    this.#stamp = await stampOf(snapshotPath(this.dataDir));
    return report;
  }
}
