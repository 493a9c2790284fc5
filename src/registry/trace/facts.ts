/**
 * Pure extraction of provenance facts from what an image carries: OCI annotations on the manifest,
 * labels in the image configuration, verified SLSA provenance (as the signature module normalises
 * it), and the layer chain that relates an image to the images built on top of it.
 *
 * How far each fact can be trusted is part of the fact (`how`, `verified`): annotations and labels
 * are claims of whoever pushed the image; only provenance the trust policy verified is `verified`.
 */
import { createHash } from 'node:crypto';
import { normaliseRepository, type ProvenanceFacts } from '../signatures/intoto.ts';

export const ANNOTATION = {
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  created: 'org.opencontainers.image.created',
  baseDigest: 'org.opencontainers.image.base.digest',
  baseName: 'org.opencontainers.image.base.name',
} as const;

/**
 * Where a build-source fact came from: the manifest's annotations, the configuration's labels, the
 * annotations of an index listing the image, or a SLSA provenance attestation the trust policy
 * verified.
 */
export type SourceHow = 'annotation' | 'label' | 'index' | 'provenance';

export interface SourceFact {
  how: SourceHow;
  /** Distinguishes several facts of one kind: the index digest, or the attestation artifact and predicate type. */
  ref: string;
  /** Normalised `host/owner/repo` (no scheme, no `.git`). */
  sourceRepository: string | undefined;
  /** The source URL as written. */
  sourceUri: string | undefined;
  /** Lower-case commit id when it looks like one; otherwise the revision as written. */
  commit: string | undefined;
  builder: string | undefined;
  buildType: string | undefined;
  created: string | undefined;
  verified: boolean;
}

export interface BaseClaim {
  digest: string | undefined;
  name: string | undefined;
}

const HEX_COMMIT = /^[0-9a-f]{7,64}$/i;
const DIGEST = /^sha(256|512):[0-9a-f]{64,128}$/;
const MAX_VALUE = 2048;

function clean(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  // annotations are free text: bound them so a hostile image cannot bloat the index
  return v.length === 0 ? undefined : v.slice(0, MAX_VALUE);
}

export function normaliseCommit(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return HEX_COMMIT.test(value) ? value.toLowerCase() : value;
}

/** Source facts from one set of OCI annotations or labels; undefined when they name neither source nor revision. */
export function sourceFromAnnotations(values: Record<string, unknown> | undefined, how: 'annotation' | 'label' | 'index', ref = ''): SourceFact | undefined {
  if (!values) return undefined;
  const uri = clean(values[ANNOTATION.source]);
  const revision = clean(values[ANNOTATION.revision]);
  if (uri === undefined && revision === undefined) return undefined;
  return {
    how,
    ref,
    sourceRepository: uri !== undefined ? normaliseRepository(uri) : undefined,
    sourceUri: uri,
    commit: normaliseCommit(revision),
    builder: undefined,
    buildType: undefined,
    created: clean(values[ANNOTATION.created]),
    verified: false,
  };
}

/** The commit a SLSA provenance names: git commit digest of the source, or a commit-looking ref. */
export function commitOf(p: ProvenanceFacts): string | undefined {
  const d = p.sourceDigest ?? {};
  const direct = d['gitCommit'] ?? d['sha1'] ?? d['sha256'];
  if (direct && HEX_COMMIT.test(direct)) return direct.toLowerCase();
  if (p.sourceRef && HEX_COMMIT.test(p.sourceRef) && p.sourceRef.length >= 40) return p.sourceRef.toLowerCase();
  return undefined;
}

/** A verified SLSA provenance (v0.2 or v1) as a source fact. */
export function sourceFromProvenance(p: ProvenanceFacts, artifact: string): SourceFact {
  return {
    how: 'provenance',
    ref: `${artifact} ${p.predicateType}`.slice(0, 512),
    sourceRepository: clean(p.sourceRepository),
    sourceUri: clean(p.sourceUri),
    commit: commitOf(p),
    builder: clean(p.builderId),
    buildType: clean(p.buildType),
    created: undefined,
    verified: true,
  };
}

/** The base image an image's annotations claim (OCI `base.digest` / `base.name`). */
export function baseFromAnnotations(values: Record<string, unknown> | undefined): BaseClaim | undefined {
  if (!values) return undefined;
  const d = clean(values[ANNOTATION.baseDigest]);
  const name = clean(values[ANNOTATION.baseName]);
  const digest = d !== undefined && DIGEST.test(d) ? d : undefined;
  if (digest === undefined && name === undefined) return undefined;
  return { digest, name };
}

/**
 * ChainIDs of the layer stack (OCI image spec): chain(1) = diff(1), chain(n) = sha256(chain(n-1) +
 * " " + diff(n)). Two images share a chain at depth n exactly when their first n layers are equal.
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  let chain: string | undefined;
  for (const diff of diffIds) {
    chain = chain === undefined ? diff : `sha256:${createHash('sha256').update(`${chain} ${diff}`).digest('hex')}`;
    out.push(chain);
  }
  return out;
}

export interface ImageConfigFacts {
  diffIds: string[];
  labels: Record<string, unknown> | undefined;
  created: string | undefined;
}

/** What the trace needs of an image configuration; undefined when it is not one. */
export function configFacts(bytes: Buffer): ImageConfigFacts | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const c = doc as Record<string, unknown>;
  const rootfs = c['rootfs'] as Record<string, unknown> | undefined;
  const diffs = Array.isArray(rootfs?.['diff_ids']) ? (rootfs['diff_ids'] as unknown[]) : [];
  const diffIds = diffs.filter((d): d is string => typeof d === 'string' && DIGEST.test(d));
  if (diffIds.length !== diffs.length) return undefined;
  const inner = c['config'] as Record<string, unknown> | undefined;
  const labels = inner && typeof inner['Labels'] === 'object' && inner['Labels'] !== null ? (inner['Labels'] as Record<string, unknown>) : undefined;
  return { diffIds, labels, created: clean(c['created']) };
}
