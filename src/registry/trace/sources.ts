/**
 * The facts the trace reads from other modules at query time, behind small ports so that the
 * module does not depend on how they are stored: deployments (admission records: which digest runs
 * where, first and last seen) and promotions (which digest was copied from where to where, by whom,
 * with what decision). `build-app.ts` wires them to the admission and promotion stores.
 */
import type { DeploymentRecord } from '../admission/store.ts';
import type { PromotionRecord } from '../policy/promotion/store.ts';

/** A deployment record of the admission module: a digest admitted to run as a container of a workload. */
export type DeploymentFact = DeploymentRecord;

export interface DeploymentSource {
  /** Where `digest` runs (or ran), most recently seen first. */
  byDigest(digest: string, limit: number): Promise<DeploymentFact[]>;
  /** Where any of `digests` runs, in one pass (a vulnerability can touch thousands of digests). */
  byDigests?(digests: string[], limit: number): Promise<DeploymentFact[]>;
}

export interface PromotionFact {
  id: string;
  at: Date;
  actor: string | undefined;
  sourceRepository: string;
  sourceReference: string;
  digest: string;
  destinationRepository: string;
  destinationTag: string | undefined;
  decision: string;
  /** Digest of the registry-signed promotion attestation, when one was attached. */
  attestation: string | undefined;
}

export interface PromotionSource {
  /** Promotions of `digest`, newest first. */
  byDigest(digest: string, limit: number): Promise<PromotionFact[]>;
}

/** The subset of the admission module's deployment store the trace uses. */
export interface DeploymentListing {
  list(query: { digest?: string | undefined; digests?: string[] | undefined; limit: number }): Promise<DeploymentFact[]>;
}

export function deploymentSourceOf(store: DeploymentListing): Required<DeploymentSource> {
  return { byDigest: (digest, limit) => store.list({ digest, limit }), byDigests: (digests, limit) => store.list({ digests, limit }) };
}

/** The subset of the promotion module's record store the trace uses. */
export interface PromotionListing {
  list(query: { digest?: string; limit: number }): Promise<{ items: PromotionRecord[] }>;
}

export function promotionSourceOf(store: PromotionListing): PromotionSource {
  return {
    byDigest: async (digest, limit) =>
      (await store.list({ digest, limit })).items.map((r) => ({
        id: r.id,
        at: r.createdAt,
        actor: r.actor.name ?? r.actor.kind,
        sourceRepository: r.source.repository,
        sourceReference: r.source.reference,
        digest: r.digest,
        destinationRepository: r.destination.repository,
        destinationTag: r.destination.tag,
        decision: r.decision,
        attestation: r.attestation,
      })),
  };
}
