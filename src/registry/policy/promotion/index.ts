/** Promotion between projects (wired in app/build-app.ts when policy is enabled). */
import { join, resolve } from 'node:path';
import { projectOf } from '../../../oci/reference.ts';
import type { SignatureServiceOptions } from '../../signatures/service.ts';
import type { SignatureService } from '../../signatures/service.ts';
import { collectArtifacts, storeReader, verifyCollected } from '../../signatures/collect.ts';
import { factsOf } from '../../signatures/facts.ts';
import type { BlobStore, MetadataStore } from '../../storage/ports.ts';
import type { DestinationSignatureFacts } from './service.ts';

import { loadRegistryKey, loadTrustedPromotionKeys, type RegistryKey } from './attestation.ts';
import { PromotionFacts } from './facts.ts';

export { loadRegistryKey, loadTrustedPromotionKeys, PROMOTION_PREDICATE_TYPE, type RegistryKey, verifyPromotion } from './attestation.ts';
export { PromotionFacts } from './facts.ts';
export { type PromotionAuthorizer, promotionAuthorizer, registerPromotionRoutes } from './http.ts';
export { PromotionService, type PromotionResult } from './service.ts';
export { MemoryPromotionStore, type PromotionStore, SqlPromotionStore } from './store.ts';

/** `policy.promotion.keyFile`, by default `<dataDir>/promotion/signing-key.pem`. */
export function promotionKeyFile(keyFile: string | undefined, dataDir: string): string {
  return resolve(keyFile ?? join(dataDir, 'promotion', 'signing-key.pem'));
}

/**
 * Signature facts of what the source holds, verified under the destination project's trust
 * policy: the destination's rules decide, over the artifacts that will be copied.
 */
export function destinationSignatureFacts(deps: { service: SignatureService; meta: MetadataStore; blobs: BlobStore }, options: Pick<SignatureServiceOptions, 'registryHost' | 'maxArtifacts'>): DestinationSignatureFacts {
  return async (sourceRepository, digest, destination) => {
    const project = projectOf(destination);
    const pp = await deps.service.policy(project);
    if (pp.error) return { verdict: 'failed', signers: [], attestations: [], missing: [`the trust policy of project ${project} cannot be used: ${pp.error}`] };
    const collected = await collectArtifacts(storeReader(deps.meta, deps.blobs, sourceRepository), digest, { maxArtifacts: options.maxArtifacts });
    const v = verifyCollected(digest, collected, pp.compiled, { now: new Date(), notationRepository: `${options.registryHost}/${destination}` });
    if (v.verdict !== 'verified' && !pp.record) v.missing.unshift(`project ${project} has no trust policy, so nothing is trusted`);
    const facts = factsOf({ ...v, repository: destination, project, trustPolicy: { configured: !!pp.record, version: pp.record?.version ?? 0, requireSignatureToPull: pp.record?.requireSignatureToPull ?? false } });
    return {
      verdict: facts.verdict,
      signers: facts.signedBy.map((s) => (s.signer.kind === 'key' ? (s.signer.keyName ?? s.signer.keyId) : s.signer.kind === 'certificate' ? (s.signer.subject ?? 'certificate') : s.signer.subject)),
      attestations: facts.attestedBy.map((a) => a.predicateType),
      missing: facts.missing,
    };
  };
}

/**
 * The promotion key and the `promotions` fact reader (needed by the enforcer), then, once the
 * enforcer exists, the service and its routes.
 */
export async function openPromotion(
  deps: { meta: MetadataStore; blobs: BlobStore },
  config: { policy: { promotion: { keyFile?: string | undefined; trustedKeyFiles: string[]; maxManifests: number } }; storage: { dataDir: string } },
): Promise<{ key: RegistryKey; facts: PromotionFacts }> {
  const key = await loadRegistryKey(promotionKeyFile(config.policy.promotion.keyFile, config.storage.dataDir));
  const trusted = await loadTrustedPromotionKeys(config.policy.promotion.trustedKeyFiles);
  return { key, facts: new PromotionFacts(deps, [key.publicKey, ...trusted]) };
}
