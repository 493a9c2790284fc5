/**
 * Trust rules of workload identity federation: which OIDC tokens from which issuer become which
 * registry grants. A rule matches a verified token when
 *
 * - the token's issuer is the rule's `issuer` (exactly),
 * - the token's `aud` (a string or a list) contains the rule's `audience`,
 * - `sub` matches the rule's `subject` pattern, and
 * - every claim condition matches (`claims: { repository: 'org/app', ref: 'refs/heads/main' }`).
 *
 * Patterns are globs over claim values: `*` matches within one segment (segments are separated by
 * `:` and `/`, as in `repo:org/app:ref:refs/heads/main` or `system:serviceaccount:ns:sa`), `**`
 * matches across segments, `?` one character of a segment; everything else is literal. A condition
 * may list several patterns (any of them). Claim names may be paths into nested objects:
 * `kubernetes.io/namespace` looks up `claims["kubernetes.io"].namespace` unless a top-level claim
 * of that exact name exists. A missing claim never matches; a list claim matches when any element
 * does; numbers and booleans are compared as their text.
 */
import type { Grant } from '../identity.ts';

export interface TrustRule {
  id: string;
  /** The project whose repositories the grants are in; undefined for rules from the configuration file. */
  project: string | undefined;
  name: string;
  description: string | undefined;
  issuer: string;
  audience: string;
  subject: string;
  claims: Record<string, string[]>;
  grants: Grant[];
  /** Registry tokens issued through this rule live at most this long. */
  maxLifetimeSeconds: number;
  /** Each token (`jti`) is accepted once (for one-shot exchanges; not with clients that re-send their login). */
  singleUse: boolean;
  revokedAt: Date | undefined;
  createdBy: string | undefined;
  createdAt: Date;
}

const patternCache = new Map<string, RegExp>();

function compile(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (ch === '*') source += '[^:/]*';
    else if (ch === '?') source += '[^:/]';
    else source += ch.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

/** True when `value` matches the claim pattern. */
export function matchesClaimPattern(pattern: string, value: string): boolean {
  let regex = patternCache.get(pattern);
  if (!regex) {
    regex = compile(pattern);
    if (patternCache.size > 10_000) patternCache.clear();
    patternCache.set(pattern, regex);
  }
  return regex.test(value);
}

/**
 * Why a subject pattern is too broad or malformed, or undefined. A pattern must pin something
 * literal: `**` alone would trust every workload of a public issuer (every GitHub repository).
 */
export function subjectPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > 512) return 'a subject pattern has 1 to 512 characters';
  const literal = pattern.replace(/[*?:/]/g, '');
  if (literal.length < 3) return `the subject pattern ${JSON.stringify(pattern)} is too broad: it must name something literal (e.g. repo:org/app:ref:refs/heads/main or system:serviceaccount:ci:builder)`;
  return undefined;
}

/** The value of a claim named by a path (`kubernetes.io/namespace`), or undefined. */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  let value: unknown = claims;
  for (const part of name.split('/')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function textsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) return value.flatMap((item) => (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean' ? [String(item)] : []));
  return [];
}

/** Why `rule` does not match the verified claims (for the failure log), or undefined when it does. */
export function ruleMismatch(rule: Pick<TrustRule, 'issuer' | 'audience' | 'subject' | 'claims'>, claims: Record<string, unknown>): string | undefined {
  if (claims.iss !== rule.issuer) return 'issuer';
  if (!textsOf(claims.aud).includes(rule.audience)) return 'audience';
  if (typeof claims.sub !== 'string' || !matchesClaimPattern(rule.subject, claims.sub)) return 'subject';
  for (const [name, patterns] of Object.entries(rule.claims)) {
    const values = textsOf(claimValue(claims, name));
    if (!values.some((value) => patterns.some((pattern) => matchesClaimPattern(pattern, value)))) return `claim ${name}`;
  }
  return undefined;
}
