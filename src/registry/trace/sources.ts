/**
 * The facts the trace reads from other modules at query time, behind small ports so that the
 * module does not depend on how they are stored: deployments (admission records: which digest runs
 * where, first and last seen) and promotions (which digest was copied from where to where, by whom,
 * with what decision). `build-app.ts` wires them to the admission and promotion stores.
 */

export interface DeploymentFact {
  cluster: string;
  namespace: string;
  workloadKind: string;
  workloadName: string;
  container: string;
  digest: string;
  repository: string;
  /** The reference as written in the pod spec. */
  image: string;
  firstSeen: Date;
  lastSeen: Date;
}

export interface DeploymentSource {
  /** Where `digest` runs (or ran), most recently seen first. */
  byDigest(digest: string, limit: number): Promise<DeploymentFact[]>;
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
  list(query: { digest?: string | undefined; limit: number }): Promise<DeploymentFact[]>;
}

export function deploymentSourceOf(store: DeploymentListing): DeploymentSource {
  return { byDigest: (digest, limit) => store.list({ digest, limit }) };
}
