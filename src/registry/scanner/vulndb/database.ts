/**
 * The vulnerability database: OSV records from one or more sources, indexed for matching.
 *
 * Storage decision: an in-memory index rebuilt from a persisted snapshot file under the data
 * directory (store.ts), not SQL tables. Matching needs every affected entry of a (ecosystem,
 * package) pair with pre-sorted range events at hand, thousands of times per second during
 * re-evaluation of all stored inventories; a `Map` keyed by ecosystem + normalised name answers
 * that in O(1) without a round trip, and the whole OSV corpus of the supported ecosystems fits in
 * memory comfortably (records are stored compact: no references beyond a cap, truncated details).
 * The database changes only by whole imports, so a snapshot written atomically per import is the
 * natural durable form, needs no migrations shared with the metadata store, and works the same on
 * SQLite and PostgreSQL deployments (each replica loads the snapshot; imports are rare).
 */
import { createHash } from 'node:crypto';
import type { Affected, VulnRecord } from './osv.ts';

export interface SourceMeta {
  /** What was imported: a directory or file path, or a URL. Re-importing the same source replaces it. */
  source: string;
  kind: 'directory' | 'zip' | 'file' | 'url' | 'oci';
  importedAt: string;
  /** sha256 over the sorted `id NUL sha256(record bytes)` lines: independent of packaging (zip or directory). */
  contentHash: string;
  records: number;
  withdrawn: number;
  rejected: number;
  /** HTTP validators for conditional re-download. */
  etag?: string;
  lastModified?: string;
  /** OCI artifact sources: the manifest digest imported, and its annotations (where the data came from, when it was packed). */
  digest?: string;
  origin?: string;
  created?: string;
}

export interface DatabaseMeta {
  format: 1;
  sources: SourceMeta[];
  /** sha256 over the sources' content hashes (sorted by source). */
  contentHash: string;
  updatedAt: string;
}

export interface IndexEntry {
  record: VulnRecord;
  affected: Affected;
}

export interface ChangeSummary {
  added: string[];
  removed: string[];
  changed: string[];
}

interface Stored {
  record: VulnRecord;
  source: string;
  /** sha256 of the record's original bytes, for change detection. */
  digest: string;
}

export function indexKey(ecosystem: string, key: string): string {
  return `${ecosystem}\u0000${key}`;
}

export class VulnDatabase {
  private readonly byId = new Map<string, Stored>();
  private index = new Map<string, IndexEntry[]>();
  private ecosystemSet = new Set<string>();
  private sources: SourceMeta[] = [];
  private updatedAt = new Date(0).toISOString();
  /** Increases on every change; matchers use it to invalidate caches. */
  generation = 0;

  get meta(): DatabaseMeta {
    const h = createHash('sha256');
    for (const s of [...this.sources].sort((a, b) => (a.source < b.source ? -1 : 1))) h.update(`${s.source}\u0000${s.contentHash}\n`);
    return { format: 1, sources: this.sources.map((s) => ({ ...s })), contentHash: h.digest('hex'), updatedAt: this.updatedAt };
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): VulnRecord | undefined {
    return this.byId.get(id)?.record;
  }

  /** Record digest by id (for snapshots and change detection). */
  digestOf(id: string): string | undefined {
    return this.byId.get(id)?.digest;
  }

  sourceOf(id: string): string | undefined {
    return this.byId.get(id)?.source;
  }

  *records(): IterableIterator<VulnRecord> {
    for (const s of this.byId.values()) yield s.record;
  }

  /** Every distinct ecosystem string with at least one indexed affected entry. */
  ecosystems(): ReadonlySet<string> {
    return this.ecosystemSet;
  }

  lookup(ecosystem: string, key: string): readonly IndexEntry[] {
    return this.index.get(indexKey(ecosystem, key)) ?? EMPTY;
  }

  /**
   * Replaces everything a source contributed with `records` (e.g. a newer all.zip) and returns
   * which record ids appeared, disappeared or changed. A record id present in two sources keeps
   * the copy with the later `modified`.
   */
  replaceSource(meta: SourceMeta, records: { record: VulnRecord; digest: string }[]): ChangeSummary {
    const before = new Map<string, string>();
    for (const [id, s] of this.byId) before.set(id, s.digest);
    for (const [id, s] of this.byId) if (s.source === meta.source) this.byId.delete(id);
    for (const { record, digest } of records) {
      const existing = this.byId.get(record.id);
      if (existing && existing.record.modified > record.modified) continue;
      this.byId.set(record.id, { record, source: meta.source, digest });
    }
    this.sources = [...this.sources.filter((s) => s.source !== meta.source), meta];
    this.updatedAt = meta.importedAt;
    this.rebuildIndex();
    const summary: ChangeSummary = { added: [], removed: [], changed: [] };
    for (const [id, s] of this.byId) {
      const d = before.get(id);
      if (d === undefined) summary.added.push(id);
      else if (d !== s.digest) summary.changed.push(id);
    }
    for (const id of before.keys()) if (!this.byId.has(id)) summary.removed.push(id);
    this.generation++;
    return summary;
  }

  /** Restores a persisted snapshot (store.ts). */
  static fromSnapshot(meta: DatabaseMeta, entries: Iterable<{ record: VulnRecord; source: string; digest: string }>): VulnDatabase {
    const db = new VulnDatabase();
    for (const e of entries) db.byId.set(e.record.id, { record: e.record, source: e.source, digest: e.digest });
    db.sources = meta.sources.map((s) => ({ ...s }));
    db.updatedAt = meta.updatedAt;
    db.rebuildIndex();
    db.generation = 1;
    return db;
  }

  *snapshotEntries(): IterableIterator<{ record: VulnRecord; source: string; digest: string }> {
    for (const s of this.byId.values()) yield { record: s.record, source: s.source, digest: s.digest };
  }

  private rebuildIndex(): void {
    const index = new Map<string, IndexEntry[]>();
    const ecosystems = new Set<string>();
    for (const { record } of this.byId.values()) {
      if (record.withdrawn !== undefined) continue; // withdrawn records never match
      for (const affected of record.affected) {
        const k = indexKey(affected.ecosystem, affected.key);
        let list = index.get(k);
        if (!list) index.set(k, (list = []));
        list.push({ record, affected });
        ecosystems.add(affected.ecosystem);
      }
    }
    this.index = index;
    this.ecosystemSet = ecosystems;
  }
}

const EMPTY: readonly IndexEntry[] = Object.freeze([]);
