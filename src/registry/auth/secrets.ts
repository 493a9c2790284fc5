/**
 * Generated secrets: robot secrets, personal access tokens and refresh tokens. Each is
 * `pc<kind>_<id>_<secret>`: the id finds the record, the 256-bit secret proves possession and is
 * stored only as its SHA-256 (a fast hash is right for a random 256-bit secret; argon2 is for
 * human passwords), compared in constant time. The prefix makes leaked tokens recognisable by
 * secret scanners.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type SecretKind = 'robot' | 'token' | 'refresh';

const prefixes: Record<SecretKind, string> = { robot: 'pcr', token: 'pcp', refresh: 'pcf' };
const grammar = /^pc([rpf])_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const kinds: Record<string, SecretKind> = { r: 'robot', p: 'token', f: 'refresh' };

export interface GeneratedSecret {
  id: string;
  /** The full secret, shown once to its owner and never stored. */
  secret: string;
  /** What is stored. */
  hash: string;
}

export function newSecretId(): string {
  return randomBytes(8).toString('hex');
}

export function generateSecret(kind: SecretKind, id: string = newSecretId()): GeneratedSecret {
  const random = randomBytes(32).toString('base64url');
  return { id, secret: `${prefixes[kind]}_${id}_${random}`, hash: hashSecret(random) };
}

function hashSecret(random: string): string {
  return createHash('sha256').update(random).digest('hex');
}

/** Splits a presented secret; undefined when it does not have the shape of one. */
export function parseSecret(presented: string): { kind: SecretKind; id: string; random: string } | undefined {
  const match = grammar.exec(presented);
  return match ? { kind: kinds[match[1]!]!, id: match[2]!, random: match[3]! } : undefined;
}

/** Constant-time check of a presented secret's random part against the stored hash. */
export function secretMatches(random: string, storedHash: string): boolean {
  const actual = Buffer.from(hashSecret(random), 'hex');
  const expected = Buffer.from(storedHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** True when a string looks like one of our secrets (any kind). */
export function looksLikeSecret(value: string): boolean {
  return grammar.test(value);
}

/** A random password for the bootstrap administrator (~144 bits). */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
