/**
 * The `promotions` fact of the policy input document: the promotion attestations attached to an
 * image (OCI referrers carrying the promotion annotation) that verify with this registry's
 * promotion key, or one of the extra trusted keys. Verified facts are cached by the referrer's
 * digest (its content never changes); listing the referrers is one indexed query per evaluation.
 */
import type { KeyObject } from 'node:crypto';
import type { BlobStore, MetadataStore } from '../../storage/ports.ts';
import { COSIGN_ATTESTATION_ARTIFACT_TYPE, PROMOTION_ID_ANNOTATION, type PromotionFact, verifyPromotion } from './attestation.ts';

const MAX_ENVELOPE_BYTES = 256 * 1024;
const MAX_ATTESTATIONS = 50;
const CACHE_ENTRIES = 10_000;

export class PromotionFacts {
  readonly #meta: MetadataStore;
  readonly #blobs: BlobStore;
  readonly #keys: readonly KeyObject[];
  /** referrer digest + subject -> fact (null: not a valid promotion attestation). */
  readonly #cache = new Map<string, PromotionFact | null>();

  constructor(deps: { meta: MetadataStore; blobs: BlobStore }, keys: readonly KeyObject[]) {
    this.#meta = deps.meta;
    this.#blobs = deps.blobs;
    this.#keys = keys;
  }

  async facts(repository: string, digest: string): Promise<PromotionFact[]> {
    const referrers = await this.#meta.listReferrers(repository, digest, COSIGN_ATTESTATION_ARTIFACT_TYPE);
    const out: PromotionFact[] = [];
    for (const r of referrers.filter((x) => x.annotations?.[PROMOTION_ID_ANNOTATION]).slice(0, MAX_ATTESTATIONS)) {
      const key = `${r.digest}|${digest}`;
      let fact = this.#cache.get(key);
      if (fact === undefined) {
        fact = (await this.#verify(repository, r.digest, digest)) ?? null;
        if (this.#cache.size >= CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
        this.#cache.set(key, fact);
      }
      if (fact) out.push(fact);
    }
    return out;
  }

  async #verify(repository: string, referrer: string, subject: string): Promise<PromotionFact | undefined> {
    const record = await this.#meta.getManifest(repository, referrer);
    if (!record) return undefined;
    const layers = (JSON.parse(record.content.toString('utf8')) as { layers?: Array<{ mediaType?: string; digest?: string; size?: number }> }).layers ?? [];
    for (const layer of layers) {
      if (layer.mediaType !== 'application/vnd.dsse.envelope.v1+json' || typeof layer.digest !== 'string' || (layer.size ?? 0) > MAX_ENVELOPE_BYTES) continue;
      if (!(await this.#meta.linkedBlob(repository, layer.digest))) continue;
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of (await this.#blobs.read(layer.digest)) as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > MAX_ENVELOPE_BYTES) break;
        chunks.push(chunk);
      }
      if (total > MAX_ENVELOPE_BYTES) continue;
      const fact = verifyPromotion(Buffer.concat(chunks), subject, this.#keys);
      if (fact) return fact;
    }
    return undefined;
  }
}
