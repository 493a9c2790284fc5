/**
 * The one input document every rule (built-in or CEL) is evaluated against, whatever the
 * enforcement point. CEL expressions see its fields as variables: `image`, `scan`,
 * `signatures`, `request`, `promotions`, `provenance`, `sboms`, `admission` and `now` (a timestamp). Facts that are unknown at a
 * point are present with neutral values (`scan.status == "none"`, `signatures.verdict ==
 * "unknown"`) so that expressions never fail on a missing key. Documented in docs/policy.md.
 */
import type { EnforcementPoint } from './document.ts';

/** A verified promotion of the image (policy/promotion/attestation.ts). */
export interface PromotionFact {
  id: string;
  sourceRepository: string;
  sourceProject: string;
  destinationRepository: string;
  destinationProject: string;
  policyVersion: number;
  policyHash: string;
  approver: string;
  promotedAt: string;
  keyId: string;
}

/** A verified SLSA provenance attestation's facts (empty strings when the predicate does not say). */
export interface ProvenanceFact {
  predicateType: string;
  /** The builder id (`runDetails.builder.id`, v0.2 `builder.id`). */
  builder: string;
  /** Normalised `host/owner/repo` (no scheme, ref or `.git`). */
  sourceRepository: string;
  /** The source revision (git commit) when the predicate records one. */
  commit: string;
  buildType: string;
}

/** An SBOM of the image: `attested` (in-toto attestation, `verified` under the trust policy) or `attached` (builder SBOM the scanner ingested, not signature-checked). */
export interface SbomFact {
  format: 'cyclonedx' | 'spdx';
  origin: 'attested' | 'attached';
  verified: boolean;
}

export interface PolicyFinding {
  id: string;
  severity: string;
  /** CVSS base score, when known. */
  score?: number;
  fixAvailable: boolean;
  package: { name: string; version: string };
}

export interface PolicyInput {
  image: {
    digest: string;
    repository: string;
    project: string;
    /** Tags that point (or, at push, will point) at the digest. */
    tags: string[];
    mediaType: string;
    platform: { os: string; architecture: string; variant: string };
    labels: Record<string, string>;
    annotations: Record<string, string>;
    /** The image config's `created` (ISO 8601), empty when unknown. */
    created: string;
    /** Manifest plus config and layers, in bytes. */
    size: number;
    /** Layer digests in order, base first (empty for an index). */
    layers: string[];
    /** An index: the layer digests of each of its platform images stored in this repository (empty otherwise). */
    platformLayers: string[][];
  };
  scan: {
    /** `none` (never scanned), `queued`, `running`, `complete`, `failed`. */
    status: string;
    scannedAt: string;
    /** Counts without exempted findings. */
    summary: { total: number; critical: number; high: number; medium: number; low: number; fixable: number };
    /** Findings with the project's exemptions applied (exempted ones are absent). */
    findings: PolicyFinding[];
    /** Licences of the image's packages. */
    licences: string[];
  };
  signatures: {
    /** `verified`, `unsigned`, `failed`, or `unknown` (signature checking disabled). */
    verdict: string;
    signers: string[];
    attestations: string[];
    missing: string[];
  };
  request: {
    point: EnforcementPoint;
    /** push, pull, delete, promote, admit. */
    action: string;
    who: { kind: string; name: string };
    /** At push: the digest the tag points at now (empty when the tag is new). */
    previousTagTarget: string;
    /** At promotion: the source repository and the destination repository (empty elsewhere; completeInput fills them). */
    source?: string;
    destination?: string;
  };
  /**
   * Promotions of this digest recorded by this registry, from promotion attestations attached to
   * the image that verify with the registry's promotion key (forged or foreign ones are absent).
   */
  promotions: PromotionFact[];
  /** Verified SLSA provenance attestations of the image (only those verifying under the project's trust policy). */
  provenance: ProvenanceFact[];
  /** SBOMs of the image: verified in-toto SBOM attestations and builder SBOMs the scanner ingested. */
  sboms: SbomFact[];
  /** Kubernetes admission only (empty otherwise): namespace, workload, and when this digest was first admitted. */
  admission: { namespace: string; workload: { kind: string; name: string }; operation: string; firstAdmitted: string };
  /** Evaluation time (ISO 8601). */
  now: string;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends Array<unknown> ? T[K] : T[K] extends Record<string, string> ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** Fills an input document's absent fields with neutral values (used for `policy test --input`). */
export function completeInput(partial: DeepPartial<PolicyInput> & { image: { digest: string; repository: string } }, now = new Date()): PolicyInput {
  const i = partial.image;
  const s = partial.scan ?? {};
  const g = partial.signatures ?? {};
  const r = partial.request ?? {};
  const a = partial.admission ?? {};
  return {
    image: {
      digest: i.digest,
      repository: i.repository,
      project: i.project ?? i.repository.split('/', 1)[0]!,
      tags: i.tags ?? [],
      mediaType: i.mediaType ?? '',
      platform: { os: i.platform?.os ?? '', architecture: i.platform?.architecture ?? '', variant: i.platform?.variant ?? '' },
      labels: i.labels ?? {},
      annotations: i.annotations ?? {},
      created: i.created ?? '',
      size: i.size ?? 0,
      layers: i.layers ?? [],
      platformLayers: i.platformLayers ?? [],
    },
    scan: {
      status: s.status ?? 'none',
      scannedAt: s.scannedAt ?? '',
      summary: { total: 0, critical: 0, high: 0, medium: 0, low: 0, fixable: 0, ...s.summary },
      findings: s.findings ?? [],
      licences: s.licences ?? [],
    },
    signatures: { verdict: g.verdict ?? 'unknown', signers: g.signers ?? [], attestations: g.attestations ?? [], missing: g.missing ?? [] },
    request: {
      point: r.point ?? 'push',
      action: r.action ?? r.point ?? 'push',
      who: { kind: r.who?.kind ?? 'anonymous', name: r.who?.name ?? '' },
      previousTagTarget: r.previousTagTarget ?? '',
      source: r.source ?? '',
      destination: r.destination ?? '',
    },
    promotions: partial.promotions ?? [],
    provenance: (partial.provenance ?? []).map((p) => ({ predicateType: p.predicateType ?? '', builder: p.builder ?? '', sourceRepository: p.sourceRepository ?? '', commit: p.commit ?? '', buildType: p.buildType ?? '' })),
    sboms: partial.sboms ?? [],
    admission: {
      namespace: a.namespace ?? '',
      workload: { kind: a.workload?.kind ?? '', name: a.workload?.name ?? '' },
      operation: a.operation ?? '',
      firstAdmitted: a.firstAdmitted ?? '',
    },
    now: partial.now ?? now.toISOString(),
  };
}
