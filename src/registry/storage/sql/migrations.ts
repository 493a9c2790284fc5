/**
 * Versioned schema migrations, applied in order and recorded in `schema_migrations`.
 * Never edit a released migration; add a new one.
 *
 * Reference counts make garbage collection incremental: `blobs.refcount` counts manifest rows
 * referencing the blob (across repositories), maintained in the same transaction as the manifest
 * write or delete. A blob is collectable once refcount = 0 and `protected_until` has passed; the
 * partial index `blobs_collectable` makes finding them O(candidates).
 */
export interface Migration {
  version: number;
  description: string;
  statements: string[];
}

export function migrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  const id = dialect === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY';
  const bytes = dialect === 'sqlite' ? 'BLOB' : 'BYTEA';
  // Listing order must be byte order (the spec's "lexical"), whatever the database locale.
  const name = dialect === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  return [
    {
      version: 1,
      description: 'repositories, blobs, manifests, tags, uploads',
      statements: [
        `CREATE TABLE repositories (id ${id}, name ${name} NOT NULL UNIQUE, created_at BIGINT NOT NULL)`,
        `CREATE TABLE blobs (
           digest TEXT PRIMARY KEY,
           size BIGINT NOT NULL,
           refcount BIGINT NOT NULL DEFAULT 0,
           state TEXT NOT NULL DEFAULT 'live',
           protected_until BIGINT NOT NULL,
           created_at BIGINT NOT NULL)`,
        `CREATE INDEX blobs_collectable ON blobs (protected_until) WHERE refcount = 0`,
        `CREATE INDEX blobs_deleting ON blobs (state) WHERE state <> 'live'`,
        `CREATE TABLE blob_links (
           repository_id BIGINT NOT NULL REFERENCES repositories(id),
           digest TEXT NOT NULL REFERENCES blobs(digest),
           created_at BIGINT NOT NULL,
           PRIMARY KEY (repository_id, digest))`,
        `CREATE INDEX blob_links_digest ON blob_links (digest)`,
        `CREATE TABLE manifests (
           repository_id BIGINT NOT NULL REFERENCES repositories(id),
           digest TEXT NOT NULL,
           media_type TEXT NOT NULL,
           artifact_type TEXT,
           size BIGINT NOT NULL,
           content ${bytes} NOT NULL,
           subject TEXT,
           annotations TEXT,
           parent_count BIGINT NOT NULL DEFAULT 0,
           created_at BIGINT NOT NULL,
           PRIMARY KEY (repository_id, digest))`,
        `CREATE INDEX manifests_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL`,
        `CREATE INDEX manifests_created ON manifests (created_at)`,
        `CREATE TABLE manifest_blobs (
           repository_id BIGINT NOT NULL,
           manifest_digest TEXT NOT NULL,
           blob_digest TEXT NOT NULL,
           PRIMARY KEY (repository_id, manifest_digest, blob_digest))`,
        `CREATE INDEX manifest_blobs_blob ON manifest_blobs (repository_id, blob_digest)`,
        `CREATE TABLE manifest_children (
           repository_id BIGINT NOT NULL,
           parent_digest TEXT NOT NULL,
           child_digest TEXT NOT NULL,
           PRIMARY KEY (repository_id, parent_digest, child_digest))`,
        `CREATE TABLE tags (
           repository_id BIGINT NOT NULL REFERENCES repositories(id),
           name ${name} NOT NULL,
           digest TEXT NOT NULL,
           updated_at BIGINT NOT NULL,
           PRIMARY KEY (repository_id, name))`,
        `CREATE INDEX tags_digest ON tags (repository_id, digest)`,
        `CREATE TABLE uploads (
           id TEXT PRIMARY KEY,
           repository TEXT NOT NULL,
           size BIGINT NOT NULL,
           started_at BIGINT NOT NULL,
           updated_at BIGINT NOT NULL)`,
        `CREATE INDEX uploads_updated ON uploads (updated_at)`,
      ],
    },
    {
      version: 2,
      description: 'manifests.pushed_at: last push, for the untagged-manifest policy',
      statements: [
        `ALTER TABLE manifests ADD COLUMN pushed_at BIGINT NOT NULL DEFAULT 0`,
        `UPDATE manifests SET pushed_at = created_at`,
        `CREATE INDEX manifests_pushed ON manifests (pushed_at)`,
      ],
    },
    {
      version: 3,
      description: 'signatures: per-project trust policies (versioned), verification verdicts, index children (signatures/store.ts)',
      statements: [
        // policy is NULL once deleted: the row keeps the version counter, so versions never repeat
        `CREATE TABLE trust_policies (
           project ${name} PRIMARY KEY,
           version BIGINT NOT NULL,
           policy TEXT,
           require_signature_to_pull INTEGER NOT NULL DEFAULT 0,
           updated_at BIGINT NOT NULL,
           updated_by TEXT)`,
        `CREATE TABLE signature_verdicts (
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           policy_hash TEXT NOT NULL,
           policy_version BIGINT NOT NULL,
           verdict TEXT NOT NULL,
           result TEXT NOT NULL,
           verified_at BIGINT NOT NULL,
           PRIMARY KEY (repository, digest))`,
        `CREATE TABLE signature_index_children (
           repository ${name} NOT NULL,
           child TEXT NOT NULL,
           parent TEXT NOT NULL,
           PRIMARY KEY (repository, child, parent))`,
      ],
    },
    {
      version: 4,
      description: 'policy: per-project policy documents, every version kept; a NULL document is a deletion (policy/store.ts)',
      statements: [
        `CREATE TABLE policy_documents (
           project ${name} NOT NULL,
           version BIGINT NOT NULL,
           document TEXT,
           hash TEXT,
           created_at BIGINT NOT NULL,
           created_by TEXT,
           PRIMARY KEY (project, version))`,
      ],
    },
    {
      version: 6,
      description: 'promotions: who promoted which digest from where to where, under which policy, with what decision (policy/promotion/store.ts)',
      statements: [
        `CREATE TABLE promotions (
           id TEXT PRIMARY KEY,
           created_at BIGINT NOT NULL,
           actor_kind TEXT NOT NULL,
           actor_name TEXT,
           source_repository ${name} NOT NULL,
           source_reference TEXT NOT NULL,
           digest TEXT NOT NULL,
           destination_repository ${name} NOT NULL,
           destination_tag TEXT,
           decision TEXT NOT NULL,
           policy TEXT,
           denials TEXT NOT NULL,
           attestation TEXT,
           copied TEXT NOT NULL)`,
        `CREATE INDEX promotions_destination ON promotions (destination_repository, created_at)`,
        `CREATE INDEX promotions_source ON promotions (source_repository, created_at)`,
        `CREATE INDEX promotions_digest ON promotions (digest)`,
        `CREATE INDEX promotions_created ON promotions (created_at, id)`,
      ],
    },
  ];
}
