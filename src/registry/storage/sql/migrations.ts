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
      version: 5,
      description: 'admission: deployment records (what ran where, first and last seen) and grace windows opened by new policy failures (admission/store.ts)',
      statements: [
        `CREATE TABLE admission_deployments (
           cluster ${name} NOT NULL,
           namespace ${name} NOT NULL,
           workload_kind TEXT NOT NULL,
           workload_name ${name} NOT NULL,
           container ${name} NOT NULL,
           digest TEXT NOT NULL,
           repository ${name} NOT NULL,
           image TEXT NOT NULL,
           first_seen BIGINT NOT NULL,
           last_seen BIGINT NOT NULL,
           PRIMARY KEY (cluster, namespace, workload_kind, workload_name, container, digest))`,
        `CREATE INDEX admission_deployments_digest ON admission_deployments (digest)`,
        `CREATE INDEX admission_deployments_repository ON admission_deployments (repository, last_seen)`,
        `CREATE TABLE admission_grace (
           digest TEXT NOT NULL,
           project ${name} NOT NULL,
           rule TEXT NOT NULL,
           opened_at BIGINT NOT NULL,
           reason TEXT NOT NULL,
           PRIMARY KEY (digest, project, rule))`,
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
    {
      version: 8,
      description: 'traceability: images with their layer chains, build sources, base relations, index children, signature verdicts, findings by vulnerability (trace/store.ts)',
      statements: [
        `CREATE TABLE trace_images (
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           media_type TEXT NOT NULL,
           config_digest TEXT,
           layers INTEGER NOT NULL DEFAULT 0,
           top_chain TEXT,
           created TEXT,
           pushed_at BIGINT NOT NULL,
           PRIMARY KEY (repository, digest))`,
        `CREATE INDEX trace_images_digest ON trace_images (digest)`,
        `CREATE INDEX trace_images_top_chain ON trace_images (top_chain) WHERE top_chain IS NOT NULL`,
        // strict prefixes of each image's layer stack: which images are built on which
        `CREATE TABLE trace_chains (
           chain TEXT NOT NULL,
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           depth INTEGER NOT NULL,
           PRIMARY KEY (chain, repository, digest))`,
        `CREATE INDEX trace_chains_image ON trace_chains (repository, digest)`,
        `CREATE TABLE trace_sources (
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           how TEXT NOT NULL,
           ref TEXT NOT NULL,
           source_repo ${name},
           source_uri TEXT,
           commit_id ${name},
           builder TEXT,
           build_type TEXT,
           created TEXT,
           verified INTEGER NOT NULL,
           recorded_at BIGINT NOT NULL,
           PRIMARY KEY (repository, digest, how, ref))`,
        `CREATE INDEX trace_sources_commit ON trace_sources (commit_id) WHERE commit_id IS NOT NULL`,
        `CREATE INDEX trace_sources_source ON trace_sources (source_repo) WHERE source_repo IS NOT NULL`,
        `CREATE INDEX trace_sources_digest ON trace_sources (digest)`,
        `CREATE TABLE trace_bases (
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           how TEXT NOT NULL,
           base_digest TEXT NOT NULL,
           base_repository ${name} NOT NULL,
           base_name TEXT,
           base_layers INTEGER,
           PRIMARY KEY (repository, digest, how, base_digest, base_repository))`,
        `CREATE INDEX trace_bases_digest ON trace_bases (digest)`,
        `CREATE INDEX trace_bases_base ON trace_bases (base_digest)`,
        `CREATE TABLE trace_children (
           repository ${name} NOT NULL,
           parent TEXT NOT NULL,
           child TEXT NOT NULL,
           PRIMARY KEY (repository, parent, child))`,
        `CREATE INDEX trace_children_child ON trace_children (child)`,
        `CREATE TABLE trace_signatures (
           repository ${name} NOT NULL,
           digest TEXT NOT NULL,
           verdict TEXT NOT NULL,
           signers TEXT NOT NULL,
           attestations TEXT NOT NULL,
           policy_version BIGINT NOT NULL,
           verified_at BIGINT NOT NULL,
           PRIMARY KEY (repository, digest))`,
        `CREATE INDEX trace_signatures_digest ON trace_signatures (digest)`,
        // per digest, as scan results are: one row per vulnerability id (or alias) and package
        `CREATE TABLE trace_findings (
           digest TEXT NOT NULL,
           vulnerability ${name} NOT NULL,
           package TEXT NOT NULL,
           installed_version TEXT NOT NULL,
           severity TEXT NOT NULL,
           fix_available INTEGER NOT NULL,
           finding_id TEXT NOT NULL,
           PRIMARY KEY (digest, vulnerability, package, installed_version))`,
        `CREATE INDEX trace_findings_vulnerability ON trace_findings (vulnerability, digest)`,
      ],
    },
  ];
}
