/**
 * Verification results cached per image digest and policy hash. A policy change (keys, roots,
 * identities, requirements) changes the hash, so stale verdicts are never served; `forgetDigest`
 * drops a digest when new signatures or attestations arrive for it. Bounded, least recently used.
 */
import type { ImageVerification } from './policy.ts';

export class VerificationCache {
  readonly #max: number;
  readonly #entries = new Map<string, ImageVerification>();

  constructor(max = 10_000) {
    this.#max = max;
  }

  get(digest: string, policyHash: string): ImageVerification | undefined {
    const key = `${digest}|${policyHash}`;
    const v = this.#entries.get(key);
    if (v) {
      this.#entries.delete(key);
      this.#entries.set(key, v);
    }
    return v;
  }

  set(v: ImageVerification): void {
    this.#entries.delete(v.cacheKey);
    this.#entries.set(v.cacheKey, v);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** New referrers or tags for a digest: every cached verdict for it is dropped. */
  forgetDigest(digest: string): void {
    for (const k of [...this.#entries.keys()]) if (k.startsWith(`${digest}|`)) this.#entries.delete(k);
  }

  get size(): number {
    return this.#entries.size;
  }
}
