/**
 * Verification results cached per image digest and policy hash. A policy change (keys, roots,
 * identities, requirements) changes the hash, so stale verdicts are never served; `forgetDigest`
 * drops a digest when new signatures or attestations arrive for it. Bounded, least recently used.
 */
import type { ImageVerification } from './policy.ts';

export class VerificationCache<T extends ImageVerification = ImageVerification> {
  readonly #max: number;
  readonly #entries = new Map<string, T>();

  constructor(max = 10_000) {
    this.#max = max;
  }

  /** `digest` may be qualified (e.g. `repository@digest`) when verdicts differ per repository. */
  get(digest: string, policyHash: string): T | undefined {
    const key = `${digest}|${policyHash}`;
    const v = this.#entries.get(key);
    if (v) {
      this.#entries.delete(key);
      this.#entries.set(key, v);
    }
    return v;
  }

  /** Stores under `v.cacheKey`, or under `key` (`<qualified digest>|<policy hash>`, matching `get`). */
  set(v: T, key = v.cacheKey): void {
    this.#entries.delete(key);
    this.#entries.set(key, v);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** New referrers or tags for a digest: every cached verdict for it is dropped. */
  forgetDigest(digest: string): void {
    for (const k of [...this.#entries.keys()]) if (k.startsWith(`${digest}|`)) this.#entries.delete(k);
  }

  /** Drops every entry whose qualified digest starts with `prefix` (e.g. all of one repository). */
  forgetPrefix(prefix: string): void {
    for (const k of [...this.#entries.keys()]) if (k.startsWith(prefix)) this.#entries.delete(k);
  }

  get size(): number {
    return this.#entries.size;
  }
}
