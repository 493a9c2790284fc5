import {
  ConcurrentDeletionError,
  type GcCandidate,
  type ManifestBatch,
  type ManifestBatchResult,
  type ManifestRecord,
  type ManifestWrite,
  type ManifestWriteResult,
  type MetadataStore,
  type Page,
  type ReferrerRecord,
  type StoredManifestRef,
  type UntaggedManifest,
  type UploadSession,
} from '../ports.ts';
import type { Row, SqlDriver, SqlExecutor } from './driver.ts';
import { migrations } from './migrations.ts';

/**
 * The metadata store, written once in portable SQL and run on SQLite (embedded) or
 * PostgreSQL (scale-out) through a {@link SqlDriver}. Every public method is one transaction.
 * Concurrency relies on conditional single-statement updates (`... WHERE state = 'live'`,
 * `ON CONFLICT`) so that both engines serialise racing writers on the rows themselves.
 */
export class SqlMetadataStore implements MetadataStore {
  readonly #db: SqlDriver;
  readonly #now: () => number;

  constructor(driver: SqlDriver, options: { now?: () => number } = {}) {
    this.#db = driver;
    this.#now = options.now ?? Date.now;
  }

  async migrate(): Promise<void> {
    await this.#db.migrationTransaction(async (tx) => {
      await tx.run('CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const applied = new Set((await tx.all<{ version: unknown }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
      for (const migration of migrations(this.#db.dialect)) {
        if (applied.has(migration.version)) continue;
        for (const statement of migration.statements) await tx.run(statement);
        await tx.run('INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.description, this.#now()]);
      }
    });
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  // --- repositories

  async #repositoryId(tx: SqlExecutor, name: string): Promise<number | undefined> {
    const rows = await tx.all<{ id: unknown }>('SELECT id FROM repositories WHERE name = $1', [name]);
    return rows[0] ? Number(rows[0].id) : undefined;
  }

  async #ensureRepository(tx: SqlExecutor, name: string): Promise<number> {
    // Look first: an INSERT that conflicts still burns a PostgreSQL sequence value on every push.
    const existing = await this.#repositoryId(tx, name);
    if (existing !== undefined) return existing;
    await tx.run('INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, this.#now()]);
    return (await this.#repositoryId(tx, name))!;
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return (await this.#repositoryId(this.#db, repository)) !== undefined;
  }

  async listRepositories(limit: number, last?: string): Promise<Page<string>> {
    const rows = await this.#db.all<{ name: string }>('SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2', [last ?? '', limit + 1]);
    return page(rows.map((r) => r.name), limit);
  }

  // --- blobs

  async recordBlob(digest: string, size: number, graceMs: number): Promise<boolean> {
    const now = this.#now();
    const changed = await this.#db.run(
      `INSERT INTO blobs (digest, size, refcount, state, protected_until, created_at) VALUES ($1, $2, 0, 'live', $3, $4)
       ON CONFLICT (digest) DO UPDATE SET protected_until = CASE WHEN blobs.protected_until > excluded.protected_until THEN blobs.protected_until ELSE excluded.protected_until END
       WHERE blobs.state = 'live'`,
      [digest, size, now + graceMs, now],
    );
    return changed > 0;
  }

  async linkBlob(repository: string, digest: string): Promise<void> {
    await this.#db.transaction((tx) => this.#link(tx, repository, digest));
  }

  async #link(tx: SqlExecutor, repository: string, digest: string): Promise<void> {
    const repositoryId = await this.#ensureRepository(tx, repository);
    await tx.run('INSERT INTO blob_links (repository_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repositoryId, digest, this.#now()]);
  }

  async linkedBlob(repository: string, digest: string): Promise<{ size: number; referenced: boolean } | undefined> {
    const rows = await this.#db.all<{ size: unknown; refcount: unknown }>(
      `SELECT b.size, b.refcount FROM blob_links l JOIN repositories r ON r.id = l.repository_id JOIN blobs b ON b.digest = l.digest
       WHERE r.name = $1 AND l.digest = $2 AND b.state = 'live'`,
      [repository, digest],
    );
    return rows[0] ? { size: Number(rows[0].size), referenced: Number(rows[0].refcount) > 0 } : undefined;
  }

  async mountBlob(repository: string, digest: string, from: string | undefined, graceMs: number): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const source = from ?? repository;
      const now = this.#now();
      // Protect first: the conditional update also proves the blob is live and not being collected.
      const protectedRows = await tx.run(
        `UPDATE blobs SET protected_until = CASE WHEN protected_until > $2 THEN protected_until ELSE $2 END
         WHERE digest = $1 AND state = 'live'
           AND EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repository_id WHERE r.name = $3 AND l.digest = $1)`,
        [digest, now + graceMs, source],
      );
      if (protectedRows === 0) return false;
      const repositoryId = await this.#ensureRepository(tx, repository);
      await tx.run('INSERT INTO blob_links (repository_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repositoryId, digest, now]);
      return true;
    });
  }

  async protectBlob(digest: string, graceMs: number): Promise<boolean> {
    const until = this.#now() + graceMs;
    // Serialised with beginBlobDeletion on the row: either the protection lands first and the
    // collector's re-check keeps the blob, or the collector marked it first and this answers false.
    const changed = await this.#db.run(
      `UPDATE blobs SET protected_until = CASE WHEN protected_until > $2 THEN protected_until ELSE $2 END WHERE digest = $1 AND state = 'live'`,
      [digest, until],
    );
    return changed > 0;
  }

  async unlinkBlob(repository: string, digest: string): Promise<'deleted' | 'referenced' | 'unknown'> {
    return this.#db.transaction(async (tx) => {
      const repositoryId = await this.#repositoryId(tx, repository);
      if (repositoryId === undefined) return 'unknown';
      const referenced = await tx.all('SELECT 1 AS one FROM manifest_blobs WHERE repository_id = $1 AND blob_digest = $2 LIMIT 1', [repositoryId, digest]);
      if (referenced.length > 0) return 'referenced';
      const removed = await tx.run('DELETE FROM blob_links WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
      if (removed === 0) return 'unknown';
      // The protection is left alone: cutting it short here would hand the collector a blob that
      // another repository's upload has just recorded and is about to commit and link.
      return 'deleted';
    });
  }

  // --- manifests and tags

  async putManifest(write: ManifestWrite): Promise<ManifestWriteResult> {
    try {
      return await this.#db.transaction((tx) => this.#writeManifest(tx, write, this.#now()));
    } catch (error) {
      if (error instanceof Refused) return error.result;
      throw error;
    }
  }

  async putManifests(batch: ManifestBatch): Promise<ManifestBatchResult> {
    try {
      return await this.#db.transaction(async (tx): Promise<ManifestBatchResult> => {
        const now = this.#now();
        const missingBlobs: string[] = [];
        for (const blob of [...batch.blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))) {
          // As mountBlob: protection first, which also proves the blob is live (and, with `from`, visible there).
          const source = blob.from === undefined ? '' : ` AND EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repository_id WHERE r.name = $3 AND l.digest = $1)`;
          const protectedRows = await tx.run(
            `UPDATE blobs SET protected_until = CASE WHEN protected_until > $2 THEN protected_until ELSE $2 END WHERE digest = $1 AND state = 'live'${source}`,
            blob.from === undefined ? [blob.digest, now + batch.graceMs] : [blob.digest, now + batch.graceMs, blob.from],
          );
          if (protectedRows === 0) {
            missingBlobs.push(blob.digest);
            continue;
          }
          const repositoryId = await this.#ensureRepository(tx, batch.repository);
          await tx.run('INSERT INTO blob_links (repository_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repositoryId, blob.digest, now]);
        }
        if (missingBlobs.length > 0) throw new Refused({ ok: false, missingBlobs, missingChildren: [] });
        const results: Array<Extract<ManifestWriteResult, { ok: true }>> = [];
        for (const write of batch.manifests) {
          if (write.repository !== batch.repository) throw new Error(`putManifests: ${write.repository} is not ${batch.repository}`);
          results.push(await this.#writeManifest(tx, write, now));
        }
        return { ok: true, results };
      });
    } catch (error) {
      if (error instanceof Refused) return error.result as Extract<ManifestWriteResult, { ok: false }>;
      throw error;
    }
  }

  /** One manifest write inside `tx`; throws Refused (to roll back) when a reference is missing. */
  async #writeManifest(tx: SqlExecutor, write: ManifestWrite, now: number): Promise<Extract<ManifestWriteResult, { ok: true }>> {
    const blobs = [...new Set(write.blobs)];
    const children = [...new Set(write.children)];
    // Rows are locked in one global order (children, then blobs, each sorted, then the tag) so that
    // concurrent pushes and deletes sharing blobs cannot deadlock on PostgreSQL.
    const sortedBlobs = [...blobs].sort();
    const sortedChildren = [...children].sort();
    const repositoryId = await this.#ensureRepository(tx, write.repository);
    // A re-push refreshes the push time, so an untagged manifest pushed again is not collected
    // right after; the update also locks the row (PostgreSQL) against a racing
    // deleteUntaggedManifest until the tag below is in place.
    const existing = await tx.run('UPDATE manifests SET pushed_at = $3 WHERE repository_id = $1 AND digest = $2', [repositoryId, write.digest, now]);
    let created = false;
    if (existing === 0) {
      const missingBlobs = await this.#missing(tx, `SELECT l.digest AS digest FROM blob_links l JOIN blobs b ON b.digest = l.digest WHERE l.repository_id = $1 AND b.state = 'live' AND l.digest IN`, repositoryId, blobs);
      const missingChildren = await this.#missing(tx, 'SELECT digest FROM manifests WHERE repository_id = $1 AND digest IN', repositoryId, children);
      // Roll back: not even the repository may be created by a refused push.
      if (missingBlobs.length > 0 || missingChildren.length > 0) throw new Refused({ ok: false, missingBlobs, missingChildren });
      // A concurrent push of the same manifest may have inserted it since the check: the
      // conflict waits for that transaction, and its references are already counted.
      const inserted = await tx.run(
        `INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, subject, annotations, parent_count, created_at, pushed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9) ON CONFLICT (repository_id, digest) DO NOTHING`,
        [repositoryId, write.digest, write.mediaType, write.artifactType ?? null, write.content.length, write.content, write.subject ?? null, write.annotations ? JSON.stringify(write.annotations) : null, now],
      );
      if (inserted > 0) {
        created = true;
        for (const child of sortedChildren) {
          await tx.run('INSERT INTO manifest_children (repository_id, parent_digest, child_digest) VALUES ($1, $2, $3)', [repositoryId, write.digest, child]);
          const counted = await tx.run('UPDATE manifests SET parent_count = parent_count + 1 WHERE repository_id = $1 AND digest = $2', [repositoryId, child]);
          if (counted === 0) throw new ConcurrentDeletionError(child);
        }
        for (const blob of sortedBlobs) {
          await tx.run('INSERT INTO manifest_blobs (repository_id, manifest_digest, blob_digest) VALUES ($1, $2, $3)', [repositoryId, write.digest, blob]);
          // Conditional on 'live': if the collector marked it meanwhile, fail rather than resurrect it.
          const counted = await tx.run(`UPDATE blobs SET refcount = refcount + 1 WHERE digest = $1 AND state = 'live'`, [blob]);
          if (counted === 0) throw new ConcurrentDeletionError(blob);
        }
      }
    }
    let previousTagTarget: string | undefined;
    if (write.tag !== undefined) previousTagTarget = await this.#moveTag(tx, repositoryId, write.tag, write.digest, now);
    return { ok: true, created, previousTagTarget };
  }

  /** Points `tag` at `digest`, returning what it pointed at before (exact even under concurrency). */
  async #moveTag(tx: SqlExecutor, repositoryId: number, tag: string, digest: string, now: number): Promise<string | undefined> {
    const lock = this.#db.dialect === 'postgres' ? ' FOR UPDATE' : '';
    for (;;) {
      const inserted = await tx.run('INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id, name) DO NOTHING', [repositoryId, tag, digest, now]);
      if (inserted > 0) return undefined;
      const previous = await tx.all<{ digest: string }>(`SELECT digest FROM tags WHERE repository_id = $1 AND name = $2${lock}`, [repositoryId, tag]);
      if (!previous[0]) continue; // deleted concurrently: insert again
      await tx.run('UPDATE tags SET digest = $3, updated_at = $4 WHERE repository_id = $1 AND name = $2', [repositoryId, tag, digest, now]);
      return previous[0].digest;
    }
  }

  async #missing(tx: SqlExecutor, selectPrefix: string, repositoryId: number, digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const found = new Set<string>();
    for (let i = 0; i < digests.length; i += 500) {
      const batch = digests.slice(i, i + 500);
      const placeholders = batch.map((_, j) => `$${j + 2}`).join(', ');
      for (const row of await tx.all<{ digest: string }>(`${selectPrefix} (${placeholders})`, [repositoryId, ...batch])) found.add(row.digest);
    }
    return digests.filter((d) => !found.has(d));
  }

  async listManifests(limit: number, after?: { repository: string; digest: string }, project?: string): Promise<Page<StoredManifestRef>> {
    const params: unknown[] = [after?.repository ?? '', after?.digest ?? '', limit + 1];
    let scope = '';
    if (project !== undefined) {
      // `project` itself or `project/...`: '/' sorts right before '0', so the range is exact in byte order.
      scope = ' AND (r.name = $4 OR (r.name > $5 AND r.name < $6))';
      params.push(project, `${project}/`, `${project}0`);
    }
    const rows = await this.#db.all<{ name: string; digest: string; media_type: string }>(
      `SELECT r.name, m.digest, m.media_type FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE m.subject IS NULL AND (r.name > $1 OR (r.name = $1 AND m.digest > $2))${scope}
       ORDER BY r.name, m.digest LIMIT $3`,
      params,
    );
    const items = rows.map((r) => ({ repository: r.name, digest: r.digest, mediaType: r.media_type }));
    return { items: items.slice(0, limit), more: items.length > limit };
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    const rows = await this.#db.all(
      `SELECT m.digest, m.media_type, m.artifact_type, m.size, m.content, m.subject, m.annotations, m.created_at
       FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = $1 AND m.digest = $2`,
      [repository, digest],
    );
    return rows[0] && manifestFromRow(repository, rows[0]);
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    // One statement, so the tag cannot move between resolving it and reading its manifest.
    const rows = await this.#db.all(
      `SELECT m.digest, m.media_type, m.artifact_type, m.size, m.content, m.subject, m.annotations, m.created_at
       FROM tags t JOIN repositories r ON r.id = t.repository_id JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
       WHERE r.name = $1 AND t.name = $2`,
      [repository, tag],
    );
    return rows[0] && manifestFromRow(repository, rows[0]);
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    const rows = await this.#db.all<{ digest: string }>(
      'SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2',
      [repository, tag],
    );
    return rows[0]?.digest;
  }

  async listTags(repository: string, limit: number, last?: string): Promise<Page<string>> {
    const rows = await this.#db.all<{ name: string }>(
      'SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3',
      [repository, last ?? '', limit + 1],
    );
    return page(rows.map((r) => r.name), limit);
  }

  async tagsOf(repository: string, digest: string): Promise<string[]> {
    const rows = await this.#db.all<{ name: string }>(
      'SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.digest = $2 ORDER BY t.name',
      [repository, digest],
    );
    return rows.map((r) => r.name);
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    const changed = await this.#db.run('DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2', [repository, tag]);
    return changed > 0;
  }

  async deleteManifest(repository: string, digest: string): Promise<{ outcome: 'deleted'; tags: string[] } | { outcome: 'referenced' | 'unknown' }> {
    return this.#db.transaction(async (tx) => {
      const repositoryId = await this.#repositoryId(tx, repository);
      if (repositoryId === undefined) return { outcome: 'unknown' as const };
      const deleted = await tx.run('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 AND parent_count = 0', [repositoryId, digest]);
      if (deleted === 0) {
        const exists = await tx.all('SELECT 1 AS one FROM manifests WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
        return { outcome: exists.length > 0 ? ('referenced' as const) : ('unknown' as const) };
      }
      return { outcome: 'deleted' as const, tags: await this.#releaseManifest(tx, repositoryId, digest) };
    });
  }

  async deleteUntaggedManifest(repository: string, digest: string, olderThan: Date): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const repositoryId = await this.#repositoryId(tx, repository);
      if (repositoryId === undefined) return false;
      // One statement re-checks every condition of untaggedManifests on this row. On PostgreSQL a
      // push that tags or re-pushes the manifest concurrently holds the row lock (it updates
      // pushed_at first); once it commits, the re-check sees the new pushed_at and keeps the row.
      const deleted = await tx.run(
        `DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 AND pushed_at < $3 AND parent_count = 0
           AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.digest = $2)
           AND (subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = $1 AND s.digest = manifests.subject))`,
        [repositoryId, digest, olderThan.getTime()],
      );
      if (deleted === 0) return false;
      await this.#releaseManifest(tx, repositoryId, digest);
      return true;
    });
  }

  /** Releases the references of a manifest row just deleted and deletes its tags (returned). */
  async #releaseManifest(tx: SqlExecutor, repositoryId: number, digest: string): Promise<string[]> {
    // Same lock order as putManifest: children, then blobs (each sorted), then tags.
    const children = await tx.all<{ child_digest: string }>('SELECT child_digest FROM manifest_children WHERE repository_id = $1 AND parent_digest = $2 ORDER BY child_digest', [repositoryId, digest]);
    await tx.run('DELETE FROM manifest_children WHERE repository_id = $1 AND parent_digest = $2', [repositoryId, digest]);
    for (const { child_digest } of children) {
      await tx.run('UPDATE manifests SET parent_count = parent_count - 1 WHERE repository_id = $1 AND digest = $2', [repositoryId, child_digest]);
    }
    const blobs = await tx.all<{ blob_digest: string }>('SELECT blob_digest FROM manifest_blobs WHERE repository_id = $1 AND manifest_digest = $2 ORDER BY blob_digest', [repositoryId, digest]);
    await tx.run('DELETE FROM manifest_blobs WHERE repository_id = $1 AND manifest_digest = $2', [repositoryId, digest]);
    for (const { blob_digest } of blobs) {
      // At zero references the partial index picks it up once its protection has run out. The
      // protection is not cut short: a recordBlob/protectBlob still running (an upload of the
      // same content, a client that just checked the blob) must keep it.
      await tx.run('UPDATE blobs SET refcount = refcount - 1 WHERE digest = $1', [blob_digest]);
    }
    const tags = (await tx.all<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name', [repositoryId, digest])).map((r) => r.name);
    await tx.run('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
    return tags;
  }

  async listReferrers(repository: string, subject: string, artifactType?: string): Promise<ReferrerRecord[]> {
    const params: unknown[] = [repository, subject];
    let filter = '';
    if (artifactType !== undefined) {
      params.push(artifactType);
      filter = ' AND m.artifact_type = $3';
    }
    const rows = await this.#db.all(
      `SELECT m.digest, m.media_type, m.artifact_type, m.size, m.annotations FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE r.name = $1 AND m.subject = $2${filter} ORDER BY m.created_at, m.digest`,
      params,
    );
    return rows.map((row) => ({
      digest: row.digest as string,
      mediaType: row.media_type as string,
      artifactType: (row.artifact_type as string | null) ?? undefined,
      size: Number(row.size),
      annotations: row.annotations ? (JSON.parse(row.annotations as string) as Record<string, string>) : undefined,
    }));
  }

  // --- upload sessions

  async createUpload(session: UploadSession): Promise<void> {
    await this.#db.run('INSERT INTO uploads (id, repository, size, started_at, updated_at) VALUES ($1, $2, $3, $4, $5)', [
      session.id,
      session.repository,
      session.size,
      session.startedAt.getTime(),
      session.updatedAt.getTime(),
    ]);
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const rows = await this.#db.all('SELECT id, repository, size, started_at, updated_at FROM uploads WHERE id = $1', [id]);
    return rows[0] ? toUpload(rows[0]) : undefined;
  }

  async advanceUpload(id: string, expectedSize: number, newSize: number): Promise<boolean> {
    const changed = await this.#db.run('UPDATE uploads SET size = $3, updated_at = $4 WHERE id = $1 AND size = $2', [id, expectedSize, newSize, this.#now()]);
    return changed > 0;
  }

  async completeUpload(id: string, repository: string, digest: string, expectedSize: number): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      if ((await tx.run('DELETE FROM uploads WHERE id = $1 AND size = $2', [id, expectedSize])) === 0) return false;
      await this.#link(tx, repository, digest);
      return true;
    });
  }

  async deleteUpload(id: string): Promise<void> {
    await this.#db.run('DELETE FROM uploads WHERE id = $1', [id]);
  }

  async expiredUploads(olderThan: Date, limit: number): Promise<UploadSession[]> {
    const rows = await this.#db.all('SELECT id, repository, size, started_at, updated_at FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2', [olderThan.getTime(), limit]);
    return rows.map(toUpload);
  }

  // --- garbage collection

  async gcCandidates(now: Date, limit: number): Promise<GcCandidate[]> {
    const rows = await this.#db.all(
      `SELECT digest, size FROM blobs WHERE refcount = 0 AND protected_until <= $1 AND state = 'live' ORDER BY protected_until LIMIT $2`,
      [now.getTime(), limit],
    );
    return rows.map((r) => ({ digest: r.digest as string, size: Number(r.size) }));
  }

  async beginBlobDeletion(digest: string, now: Date): Promise<boolean> {
    // While deleting, protected_until records when the mark was set (see blobsBeingDeleted).
    const changed = await this.#db.run(
      `UPDATE blobs SET state = 'deleting', protected_until = $3 WHERE digest = $1 AND refcount = 0 AND protected_until <= $2 AND state = 'live'`,
      [digest, now.getTime(), this.#now()],
    );
    return changed > 0;
  }

  async finishBlobDeletion(digest: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.run(`DELETE FROM blob_links WHERE digest = $1 AND EXISTS (SELECT 1 FROM blobs WHERE digest = $1 AND state = 'deleting')`, [digest]);
      await tx.run(`DELETE FROM blobs WHERE digest = $1 AND state = 'deleting'`, [digest]);
    });
  }

  async untaggedManifests(olderThan: Date, limit: number): Promise<UntaggedManifest[]> {
    const rows = await this.#db.all<{ name: string; digest: string }>(
      `SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE m.pushed_at < $1 AND m.parent_count = 0
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
         AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject))
       ORDER BY m.pushed_at LIMIT $2`,
      [olderThan.getTime(), limit],
    );
    return rows.map((r) => ({ repository: r.name, digest: r.digest }));
  }

  async blobsBeingDeleted(limit: number, markedBefore?: Date): Promise<string[]> {
    const rows = await this.#db.all<{ digest: string }>(`SELECT digest FROM blobs WHERE state = 'deleting' AND protected_until < $2 LIMIT $1`, [
      limit,
      markedBefore?.getTime() ?? Number.MAX_SAFE_INTEGER,
    ]);
    return rows.map((r) => r.digest);
  }
}

/** Carries a refusal out of a transaction so that it rolls back. */
class Refused extends Error {
  readonly result: ManifestWriteResult;
  constructor(result: ManifestWriteResult) {
    super('manifest refused');
    this.result = result;
  }
}

function page(items: string[], limit: number): Page<string> {
  return { items: items.slice(0, limit), more: items.length > limit };
}

function toUpload(row: Record<string, unknown>): UploadSession {
  return {
    id: row.id as string,
    repository: row.repository as string,
    size: Number(row.size),
    startedAt: new Date(Number(row.started_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function manifestFromRow(repository: string, row: Row): ManifestRecord {
  return {
    repository,
    digest: row['digest'] as string,
    mediaType: row['media_type'] as string,
    artifactType: (row['artifact_type'] as string | null) ?? undefined,
    size: Number(row['size']),
    content: Buffer.isBuffer(row['content']) ? row['content'] : Buffer.from(row['content'] as Uint8Array),
    subject: (row['subject'] as string | null) ?? undefined,
    annotations: row['annotations'] ? (JSON.parse(row['annotations'] as string) as Record<string, string>) : undefined,
    createdAt: new Date(Number(row['created_at'])),
  };
}
