/**
 * A small client of one OpenID provider (OpenID Connect Discovery 1.0, Core 1.0, RFC 6749,
 * RFC 7636 PKCE, RFC 8628 device authorization), shared by interactive OIDC login and workload
 * identity federation:
 *
 * - the discovery document (`<issuer>/.well-known/openid-configuration`) is fetched on first use
 *   and cached for `discoveryTtlMs` (one fetch in flight; a failed refresh keeps serving the last
 *   good document for at most `discoveryStaleMs`, then fails: deny on error). Its `issuer` must
 *   equal the configured issuer exactly (Discovery §4.3), so a compromised or mistyped URL cannot
 *   make another issuer's tokens acceptable.
 * - keys come from `jwks_uri` through jose's `createRemoteJWKSet` (cached, refetched on an
 *   unknown `kid` at most once per cooldown);
 * - {@link OidcProviderClient.verifyJwt} checks a JWT against the provider (signature with an
 *   asymmetric algorithm only, `iss`, `aud`, `exp`, `nbf`, `iat`, clock tolerance);
 *   {@link OidcProviderClient.verifyIdToken} adds the ID-token rules (Core §3.1.3.7: `azp` when
 *   there are several audiences, `nonce`, `sub`);
 * - token-endpoint calls (code exchange, refresh, device code polling), userinfo and device
 *   authorization, with client authentication `client_secret_basic`, `client_secret_post` or none
 *   (public PKCE clients).
 *
 * Errors are {@link OidcError}s whose messages never contain tokens, codes or secrets: they may
 * be logged and shown.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';

/** Asymmetric JWS algorithms accepted for provider-signed tokens; `none` and HMAC never are. */
export const asymmetricAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** The fields of a discovery document this client uses. */
export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  jwks_uri: string;
  device_authorization_endpoint?: string;
  end_session_endpoint?: string;
  revocation_endpoint?: string;
  grant_types_supported?: string[];
  code_challenge_methods_supported?: string[];
  id_token_signing_alg_values_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
  scopes_supported?: string[];
}

export type OidcErrorCode =
  /** The provider could not be reached or answered something unusable (discovery, JWKS, token endpoint). */
  | 'provider_unavailable'
  /** The discovery document names another issuer or lacks a required endpoint. */
  | 'bad_metadata'
  /** A token failed validation (signature, issuer, audience, expiry, nonce, azp...). */
  | 'invalid_token'
  /** The provider refused a grant (RFC 6749 §5.2 error from the token endpoint: invalid_grant, ...). */
  | 'grant_refused'
  /** Device flow: not yet approved (keep polling) or asked to slow down. */
  | 'authorization_pending'
  | 'slow_down'
  /** Device flow: the user denied, or the code expired. */
  | 'access_denied'
  | 'expired_token'
  /** The provider does not offer what was asked (e.g. no device authorization endpoint). */
  | 'unsupported';

export class OidcError extends Error {
  override name = 'OidcError';
  readonly code: OidcErrorCode;
  /** The provider's own `error` value (e.g. `invalid_grant`), when it sent one. */
  readonly providerError: string | undefined;
  constructor(code: OidcErrorCode, message: string, options: { providerError?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.providerError = options.providerError;
  }
}

export interface OidcProviderClientOptions {
  /** The issuer identifier, exactly as the provider's tokens carry it. */
  issuer: string;
  /** The OAuth client; needed for ID tokens and the token endpoint, not for verifying workload tokens. */
  clientId?: string;
  /** Confidential clients; absent for public clients (PKCE only). */
  clientSecret?: string;
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'none';
  /** Use this key set instead of the discovery document's `jwks_uri` (providers without discovery). */
  jwksUri?: string;
  discoveryTtlMs?: number;
  /** How long a cached discovery document may still be used after refreshing it failed. */
  discoveryStaleMs?: number;
  /** Timeout of every HTTP call to the provider. */
  timeoutMs?: number;
  clockToleranceSeconds?: number;
  /** Restrict the accepted signature algorithms further (default: the asymmetric ones the provider announces). */
  algorithms?: string[];
  /** Injected for tests and for callers with their own agent. */
  fetch?: typeof fetch;
  now?: () => number;
}

export interface VerifyJwtOptions {
  /** Accepted audience(s); the token's `aud` must contain one. */
  audience: string | string[];
  /** Claims that must be present. */
  requiredClaims?: string[];
  /** Reject tokens issued longer ago than this (`iat`). */
  maxTokenAgeSeconds?: number;
}

export interface VerifyIdTokenOptions {
  /** The nonce sent with the authorization request; required when one was sent. */
  nonce?: string;
  /** Reject ID tokens whose `auth_time` is older than this (when `max_age` was requested). */
  maxAuthAgeSeconds?: number;
}

export interface IdTokenClaims extends JWTPayload {
  sub: string;
  iss: string;
  nonce?: string;
  azp?: string;
  [claim: string]: unknown;
}

/** A token endpoint answer (RFC 6749 §5.1 plus OIDC `id_token`). Treat every field as a secret. */
export interface TokenSet {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
}

/** RFC 8628 §3.2. `device_code` is a secret; `user_code` is shown to the user. */
export interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval: number;
}

/** A PKCE pair (RFC 7636, S256). */
export interface Pkce {
  verifier: string;
  challenge: string;
  method: 'S256';
}

export function createPkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url'), method: 'S256' };
}

/** An unguessable value for `state` and `nonce`. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** `https:` always; `http:` only to loopback hosts (development and tests). */
export function isAcceptableProviderUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const METADATA_LIMIT = 512 * 1024;

export class OidcProviderClient {
  readonly issuer: string;
  readonly clientId: string | undefined;
  readonly #secret: string | undefined;
  readonly #authMethod: 'client_secret_basic' | 'client_secret_post' | 'none';
  readonly #options: Required<Pick<OidcProviderClientOptions, 'discoveryTtlMs' | 'discoveryStaleMs' | 'timeoutMs' | 'clockToleranceSeconds' | 'now'>> & OidcProviderClientOptions;
  readonly #fetch: typeof fetch;
  #metadata: { value: ProviderMetadata; fetchedAt: number } | undefined;
  #inflight: Promise<ProviderMetadata> | undefined;
  #jwks: { uri: string; keys: JWTVerifyGetKey } | undefined;

  constructor(options: OidcProviderClientOptions) {
    this.issuer = options.issuer;
    this.clientId = options.clientId;
    this.#secret = options.clientSecret;
    this.#authMethod = options.tokenEndpointAuthMethod ?? (options.clientSecret === undefined ? 'none' : 'client_secret_basic');
    this.#options = { discoveryTtlMs: 3_600_000, discoveryStaleMs: 86_400_000, timeoutMs: 10_000, clockToleranceSeconds: 30, now: Date.now, ...options };
    this.#fetch = options.fetch ?? fetch;
  }

  /** The discovery document (cached). @throws OidcError provider_unavailable | bad_metadata */
  async metadata(): Promise<ProviderMetadata> {
    const now = this.#options.now();
    const cached = this.#metadata;
    if (cached && now - cached.fetchedAt < this.#options.discoveryTtlMs) return cached.value;
    this.#inflight ??= this.#discover().finally(() => (this.#inflight = undefined));
    try {
      return await this.#inflight;
    } catch (error) {
      if (cached && now - cached.fetchedAt < this.#options.discoveryTtlMs + this.#options.discoveryStaleMs && error instanceof OidcError && error.code === 'provider_unavailable') return cached.value;
      throw error;
    }
  }

  async #discover(): Promise<ProviderMetadata> {
    const url = `${this.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const document = await this.#getJson(url, 'discovery document');
    if (typeof document !== 'object' || document === null) throw new OidcError('bad_metadata', `the discovery document at ${url} is not a JSON object`);
    const metadata = document as ProviderMetadata;
    if (metadata.issuer !== this.issuer) throw new OidcError('bad_metadata', `the discovery document at ${url} names issuer ${JSON.stringify(String(metadata.issuer).slice(0, 200))}, not the configured ${JSON.stringify(this.issuer)}`);
    const jwksUri = this.#options.jwksUri ?? metadata.jwks_uri;
    if (typeof jwksUri !== 'string' || !isAcceptableProviderUrl(jwksUri)) throw new OidcError('bad_metadata', `the discovery document at ${url} has no usable jwks_uri (https, or http on loopback)`);
    for (const field of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'device_authorization_endpoint'] as const) {
      const value = metadata[field];
      if (value !== undefined && (typeof value !== 'string' || !isAcceptableProviderUrl(value))) throw new OidcError('bad_metadata', `the discovery document's ${field} is not an https URL`);
    }
    this.#metadata = { value: metadata, fetchedAt: this.#options.now() };
    return metadata;
  }

  #keySet(metadata: ProviderMetadata): JWTVerifyGetKey {
    const uri = this.#options.jwksUri ?? metadata.jwks_uri;
    if (this.#jwks?.uri !== uri) {
      // The cooldown bounds refetches on unknown `kid`s (an attacker sending random kids cannot make us hammer the provider).
      this.#jwks = { uri, keys: createRemoteJWKSet(new URL(uri), { timeoutDuration: this.#options.timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 600_000 }) };
    }
    return this.#jwks.keys;
  }

  #algorithms(metadata: ProviderMetadata): string[] {
    const safe: readonly string[] = asymmetricAlgorithms;
    let algorithms = this.#options.algorithms ?? metadata.id_token_signing_alg_values_supported ?? ['RS256'];
    algorithms = algorithms.filter((alg) => safe.includes(alg));
    if (algorithms.length === 0) algorithms = ['RS256'];
    return algorithms;
  }

  /**
   * Verifies a JWT signed by this provider: asymmetric signature by a key of its JWKS, `iss`,
   * `aud` (one of `audience`), `exp`, `nbf`, `iat` not in the future. @throws OidcError invalid_token | provider_unavailable
   */
  async verifyJwt(token: string, options: VerifyJwtOptions): Promise<JWTPayload> {
    const metadata = await this.metadata();
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new OidcError('invalid_token', 'the token is not a JWS');
    }
    const algorithms = this.#algorithms(metadata);
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) throw new OidcError('invalid_token', `token algorithm ${JSON.stringify(String(header.alg).slice(0, 20))} is not accepted (allowed: ${algorithms.join(', ')})`);
    try {
      const { payload } = await jwtVerify(token, this.#keySet(metadata), {
        issuer: this.issuer,
        audience: options.audience,
        algorithms,
        clockTolerance: this.#options.clockToleranceSeconds,
        currentDate: new Date(this.#options.now()),
        requiredClaims: ['exp', 'iat', ...(options.requiredClaims ?? [])],
        ...(options.maxTokenAgeSeconds === undefined ? {} : { maxTokenAge: options.maxTokenAgeSeconds }),
      });
      if (typeof payload.iat === 'number' && payload.iat * 1000 > this.#options.now() + this.#options.clockToleranceSeconds * 1000) throw new OidcError('invalid_token', 'token issued in the future (iat)');
      return payload;
    } catch (error) {
      throw toTokenError(error);
    }
  }

  /**
   * Verifies an ID token for this client (Core §3.1.3.7 and §3.1.3.6): {@link verifyJwt} with
   * `aud` containing the client id, `azp` equal to it when present or when there are several
   * audiences, `sub` present, and `nonce` equal to the one sent.
   */
  async verifyIdToken(idToken: string, options: VerifyIdTokenOptions = {}): Promise<IdTokenClaims> {
    const clientId = this.#requireClient();
    const payload = await this.verifyJwt(idToken, { audience: clientId, requiredClaims: ['sub'] });
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (audiences.length > 1 && payload.azp === undefined) throw new OidcError('invalid_token', 'ID token with several audiences has no azp');
    if (payload.azp !== undefined && payload.azp !== clientId) throw new OidcError('invalid_token', 'ID token azp is another client');
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new OidcError('invalid_token', 'ID token has no sub');
    if (options.nonce !== undefined && payload.nonce !== options.nonce) throw new OidcError('invalid_token', 'ID token nonce does not match the login request');
    if (options.maxAuthAgeSeconds !== undefined) {
      const authTime = payload.auth_time;
      if (typeof authTime !== 'number' || this.#options.now() / 1000 - authTime > options.maxAuthAgeSeconds + this.#options.clockToleranceSeconds) throw new OidcError('invalid_token', 'ID token auth_time is too old');
    }
    return payload as IdTokenClaims;
  }

  /** The authorization endpoint URL for a code flow with PKCE (S256), `state` and `nonce`. */
  async authorizationUrl(params: { redirectUri: string; scope: string; state: string; nonce: string; codeChallenge: string; prompt?: string; extra?: Record<string, string> }): Promise<string> {
    const metadata = await this.metadata();
    if (!metadata.authorization_endpoint) throw new OidcError('bad_metadata', 'the provider has no authorization_endpoint');
    const methods = metadata.code_challenge_methods_supported;
    if (methods !== undefined && !methods.includes('S256')) throw new OidcError('unsupported', 'the provider does not support PKCE S256');
    const url = new URL(metadata.authorization_endpoint);
    const query = { ...params.extra, response_type: 'code', client_id: this.#requireClient(), redirect_uri: params.redirectUri, scope: params.scope, state: params.state, nonce: params.nonce, code_challenge: params.codeChallenge, code_challenge_method: 'S256', ...(params.prompt ? { prompt: params.prompt } : {}) };
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    return url.toString();
  }

  /** Exchanges an authorization code (with its PKCE verifier). @throws OidcError grant_refused | provider_unavailable */
  async exchangeCode(params: { code: string; redirectUri: string; codeVerifier: string }): Promise<TokenSet> {
    return this.#tokenRequest({ grant_type: 'authorization_code', code: params.code, redirect_uri: params.redirectUri, code_verifier: params.codeVerifier });
  }

  /** Uses a refresh token. A refusal (`invalid_grant`: revoked, user removed or disabled) is `grant_refused`. */
  async refresh(refreshToken: string, scope?: string): Promise<TokenSet> {
    return this.#tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken, ...(scope ? { scope } : {}) });
  }

  /** Starts the device authorization grant (RFC 8628 §3.1). */
  async startDeviceAuthorization(scope: string): Promise<DeviceAuthorization> {
    const metadata = await this.metadata();
    if (!metadata.device_authorization_endpoint) throw new OidcError('unsupported', 'the provider has no device_authorization_endpoint');
    const body = await this.#post(metadata.device_authorization_endpoint, { scope }, 'device authorization endpoint');
    const answer = body as Partial<DeviceAuthorization>;
    if (typeof answer.device_code !== 'string' || typeof answer.user_code !== 'string' || typeof answer.verification_uri !== 'string') throw new OidcError('provider_unavailable', 'the device authorization endpoint answered without device_code, user_code or verification_uri');
    return { device_code: answer.device_code, user_code: answer.user_code, verification_uri: answer.verification_uri, verification_uri_complete: answer.verification_uri_complete, expires_in: Number(answer.expires_in ?? 600), interval: Number(answer.interval ?? 5) };
  }

  /** One poll of the token endpoint for a device code (RFC 8628 §3.4); pending/slow_down/denied/expired are OidcErrors with those codes. */
  async pollDeviceToken(deviceCode: string): Promise<TokenSet> {
    return this.#tokenRequest({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode });
  }

  /** The userinfo claims for an access token (Core §5.3); `sub` must equal `expectedSubject`. */
  async userinfo(accessToken: string, expectedSubject: string): Promise<Record<string, unknown>> {
    const metadata = await this.metadata();
    if (!metadata.userinfo_endpoint) throw new OidcError('unsupported', 'the provider has no userinfo_endpoint');
    const response = await this.#request(metadata.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } }, 'userinfo endpoint');
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new OidcError('grant_refused', `the userinfo endpoint refused the access token (${response.status})`);
    }
    const claims = await this.#json(response, 'userinfo endpoint');
    if (typeof claims !== 'object' || claims === null || (claims as { sub?: unknown }).sub !== expectedSubject) throw new OidcError('invalid_token', 'userinfo answered for another subject');
    return claims as Record<string, unknown>;
  }

  async #tokenRequest(form: Record<string, string>): Promise<TokenSet> {
    const metadata = await this.metadata();
    if (!metadata.token_endpoint) throw new OidcError('bad_metadata', 'the provider has no token_endpoint');
    const body = await this.#post(metadata.token_endpoint, form, 'token endpoint');
    const set = body as Partial<TokenSet>;
    if (typeof set.access_token !== 'string' || typeof set.token_type !== 'string') throw new OidcError('provider_unavailable', 'the token endpoint answered without access_token');
    return set as TokenSet;
  }

  /** A form POST with client authentication; RFC 6749 §5.2 errors become OidcErrors. */
  async #post(url: string, form: Record<string, string>, what: string): Promise<unknown> {
    const clientId = this.#requireClient();
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    const params = new URLSearchParams(form);
    if (this.#authMethod === 'client_secret_basic' && this.#secret !== undefined) {
      // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(this.#secret)}`).toString('base64')}`;
    } else {
      params.set('client_id', clientId);
      if (this.#authMethod === 'client_secret_post' && this.#secret !== undefined) params.set('client_secret', this.#secret);
    }
    const response = await this.#request(url, { method: 'POST', headers, body: params.toString() }, what);
    if (response.ok) return this.#json(response, what);
    let error: { error?: unknown; error_description?: unknown } = {};
    try {
      error = (await this.#json(response, what)) as typeof error;
    } catch {
      // not JSON: reported by status below
    }
    const code = typeof error.error === 'string' ? error.error.slice(0, 100) : undefined;
    const description = typeof error.error_description === 'string' ? `: ${error.error_description.slice(0, 200)}` : '';
    if (code === 'authorization_pending' || code === 'slow_down' || code === 'access_denied' || code === 'expired_token') throw new OidcError(code, `${what}: ${code}${description}`, { providerError: code });
    if (response.status >= 500 || code === undefined) throw new OidcError('provider_unavailable', `${what} answered ${response.status}`);
    throw new OidcError('grant_refused', `${what} refused: ${code}${description}`, { providerError: code });
  }

  async #getJson(url: string, what: string): Promise<unknown> {
    const response = await this.#request(url, { headers: { accept: 'application/json' } }, what);
    if (!response.ok) {
      await response.body?.cancel();
      throw new OidcError('provider_unavailable', `${what} at ${url} answered ${response.status}`);
    }
    return this.#json(response, what);
  }

  async #request(url: string, init: RequestInit, what: string): Promise<Response> {
    try {
      return await this.#fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(this.#options.timeoutMs) });
    } catch (error) {
      throw new OidcError('provider_unavailable', `${what} at ${new URL(url).origin} unreachable: ${(error as Error).message}`, { cause: error });
    }
  }

  async #json(response: Response, what: string): Promise<unknown> {
    const text = await response.text();
    if (text.length > METADATA_LIMIT) throw new OidcError('provider_unavailable', `${what} answered more than ${METADATA_LIMIT} bytes`);
    try {
      return JSON.parse(text);
    } catch {
      throw new OidcError('provider_unavailable', `${what} answered ${response.status} with a body that is not JSON`);
    }
  }

  #requireClient(): string {
    if (this.clientId === undefined) throw new OidcError('unsupported', 'no client id configured for this provider');
    return this.clientId;
  }
}

function toTokenError(error: unknown): OidcError {
  if (error instanceof OidcError) return error;
  // Loading the key set failed (network, timeout, non-200, not a JWKS): the provider is at fault, not the token.
  const keySetFailure = error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || !(error instanceof joseErrors.JOSEError) || (error.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(error.message));
  if (keySetFailure) return new OidcError('provider_unavailable', `the provider's key set could not be used: ${(error as Error).message}`, { cause: error });
  if (error instanceof joseErrors.JWTExpired) return new OidcError('invalid_token', 'token expired', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) return new OidcError('invalid_token', `token claim ${error.claim} is not acceptable (${error.reason})`, { cause: error });
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return new OidcError('invalid_token', 'token signature does not verify', { cause: error });
  if (error instanceof joseErrors.JWKSNoMatchingKey) return new OidcError('invalid_token', 'no key of the provider matches the token', { cause: error });
  if (error instanceof joseErrors.JOSEError) return new OidcError('invalid_token', `token refused: ${error.code}`, { cause: error });
  return new OidcError('invalid_token', 'token refused', { cause: error });
}
