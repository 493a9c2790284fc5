/**
 * Registry tokens: short-lived ES256 JWTs in the distribution token format
 * (`docs/spec/auth/jwt.md`): `iss`, `sub`, `aud` (the service), `exp`, `nbf`, `iat`, `jti`,
 * `access: [{type, name, actions}]`, plus a private claim `pcx` naming the principal so that the
 * registry can check it was not revoked since.
 *
 * Verification accepts ES256 only (no `none`, no HMAC: an HS256 token "signed" with the public
 * key is refused before any key is used), with a key from our own set chosen by `kid`, and the
 * right issuer and audience. Verified tokens are cached (bounded, until `exp`) so that a pull
 * costs a map lookup, not a signature check.
 */
import { randomBytes } from 'node:crypto';
import { type JWTPayload, SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { PrincipalClaim } from './access-service.ts';
import type { AccessEntry } from './scope.ts';
import type { SigningKeys } from './signing-keys.ts';

export interface RegistryTokenOptions {
  issuer: string;
  /** The `service` / audience tokens are bound to. */
  service: string;
  ttlSeconds: number;
  /** Tolerance for `nbf`/`exp` between replicas' clocks. */
  clockToleranceSeconds: number;
  cacheSize?: number;
  now?: () => number;
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
}

export interface VerifiedToken {
  subject: string;
  principal: PrincipalClaim;
  /** `type:name` -> actions */
  access: Map<string, ReadonlySet<string>>;
  expiresAt: number;
  notBefore: number;
}

export class TokenError extends Error {
  override name = 'TokenError';
}

interface Claims extends JWTPayload {
  access?: unknown;
  pcx?: unknown;
}

function toAccessMap(access: unknown): Map<string, ReadonlySet<string>> {
  const map = new Map<string, Set<string>>();
  if (!Array.isArray(access)) throw new TokenError('token has no access claim');
  for (const entry of access as Array<Partial<AccessEntry>>) {
    if (typeof entry?.type !== 'string' || typeof entry.name !== 'string' || !Array.isArray(entry.actions)) throw new TokenError('malformed access claim');
    const key = `${entry.type}:${entry.name}`;
    let actions = map.get(key);
    if (!actions) map.set(key, (actions = new Set()));
    for (const action of entry.actions) if (typeof action === 'string') actions.add(action);
  }
  return map;
}

function toPrincipal(value: unknown): PrincipalClaim {
  const claim = value as PrincipalClaim | undefined;
  if (!claim || typeof claim !== 'object' || typeof claim.kind !== 'string') throw new TokenError('token has no principal claim');
  return claim;
}

export class RegistryTokens {
  readonly #keys: SigningKeys;
  readonly #options: Required<RegistryTokenOptions>;
  readonly #cache = new Map<string, VerifiedToken>();

  constructor(keys: SigningKeys, options: RegistryTokenOptions) {
    this.#keys = keys;
    this.#options = { cacheSize: 10_000, now: Date.now, ...options };
  }

  get service(): string {
    return this.#options.service;
  }

  get ttlSeconds(): number {
    return this.#options.ttlSeconds;
  }

  /** `notAfter` (ms) shortens the lifetime below the configured one (a workload's token never outlives what it was exchanged for). */
  async issue(subject: string, principal: PrincipalClaim, access: AccessEntry[], notAfter?: number): Promise<IssuedToken> {
    const { kid, key } = this.#keys.signingKey();
    const now = Math.floor(this.#options.now() / 1000);
    const ttl = notAfter === undefined ? this.#options.ttlSeconds : Math.max(1, Math.min(this.#options.ttlSeconds, Math.floor(notAfter / 1000) - now));
    const token = await new SignJWT({ access, pcx: principal })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(this.#options.issuer)
      .setSubject(subject)
      .setAudience(this.#options.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ttl)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key);
    return { token, expiresIn: ttl, issuedAt: new Date(now * 1000) };
  }

  /** @throws TokenError for any token that is not ours, not for this service, or not valid now */
  async verify(token: string): Promise<VerifiedToken> {
    const nowMs = this.#options.now();
    const tolerance = this.#options.clockToleranceSeconds * 1000;
    const cached = this.#cache.get(token);
    if (cached) {
      if (cached.expiresAt + tolerance > nowMs && cached.notBefore - tolerance <= nowMs) return cached;
      this.#cache.delete(token);
      throw new TokenError('token expired');
    }
    if (token.length > 16_384) throw new TokenError('token too large');
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenError('malformed token');
    }
    if (header.alg !== 'ES256') throw new TokenError(`token algorithm ${String(header.alg).slice(0, 20)} is not accepted`);
    const key = await this.#keys.verificationKey(header.kid);
    if (!key) throw new TokenError('token signed with an unknown key');
    let payload: Claims;
    try {
      ({ payload } = await jwtVerify<Claims>(token, key, {
        algorithms: ['ES256'],
        issuer: this.#options.issuer,
        audience: this.#options.service,
        clockTolerance: this.#options.clockToleranceSeconds,
        requiredClaims: ['exp', 'iat', 'sub'],
        currentDate: new Date(nowMs),
      }));
    } catch (error) {
      throw new TokenError(`token rejected: ${(error as Error).message}`);
    }
    const verified: VerifiedToken = {
      subject: String(payload.sub),
      principal: toPrincipal(payload.pcx),
      access: toAccessMap(payload.access),
      expiresAt: payload.exp! * 1000,
      notBefore: (payload.nbf ?? payload.iat!) * 1000,
    };
    if (this.#cache.size >= this.#options.cacheSize) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, verified);
    return verified;
  }
}

/** True when a verified token grants `action` on `type:name`. */
export function tokenAllows(token: VerifiedToken, type: string, name: string, action: string): boolean {
  const actions = token.access.get(`${type}:${name}`);
  return actions !== undefined && (actions.has(action) || actions.has('*'));
}
