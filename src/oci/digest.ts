import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.ts';

/** Digest algorithms this registry computes; anything else is refused with DIGEST_INVALID. */
export const supportedAlgorithms = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof supportedAlgorithms;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** The canonical `algorithm:hex` string. */
  digest: string;
}

// OCI image spec: algorithm-component ([a-z0-9]+ separated by [+._-]) ':' encoded ([a-zA-Z0-9=_-]+).
const digestGrammar = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * Parses a digest string, refusing malformed digests and unsupported algorithms.
 * @throws RegistryError DIGEST_INVALID
 */
export function parseDigest(value: string): ParsedDigest {
  if (!digestGrammar.test(value)) throw new RegistryError('DIGEST_INVALID', `invalid digest ${JSON.stringify(value.slice(0, 200))}`);
  const [algorithm, hex] = value.split(':', 2) as [string, string];
  if (!(algorithm in supportedAlgorithms)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm ${JSON.stringify(algorithm)}; use sha256 or sha512`);
  }
  const alg = algorithm as DigestAlgorithm;
  if (hex.length !== supportedAlgorithms[alg] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${alg} digest: expected ${supportedAlgorithms[alg]} lowercase hex characters`);
  }
  return { algorithm: alg, hex, digest: value };
}

/** True when `value` is a well-formed digest of a supported algorithm. */
export function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

/** Digest of an in-memory buffer (manifests, configs; never layers). */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
