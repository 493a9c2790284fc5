/**
 * Access control for `/v2/`: every request carries a registry token (`Authorization: Bearer`)
 * or, where configured, Basic credentials; otherwise it gets the Bearer challenge that starts
 * the Docker token flow.
 *
 * - no or unusable credentials -> 401 UNAUTHORIZED + `WWW-Authenticate: Bearer realm,service,scope`
 *   (`error="invalid_token"` for a bad token);
 * - a valid token lacking a scope the caller could obtain -> 401 with `error="insufficient_scope"`
 *   (clients fetch a new token and retry), and always so for anonymous callers (logging in may help);
 * - an authenticated caller who may not do it -> 403 DENIED.
 *
 * Denials never depend on whether the repository exists, so they reveal nothing about private
 * projects.
 */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { isRepositoryName, projectOf } from '../../oci/reference.ts';
import type { RequestOrigin } from '../events/bus.ts';
import { type AccessService, AuthenticationError } from './access-service.ts';
import { type Identity, type RepositoryAction, actorOf, repositoryActions } from './identity.ts';
import type { RegistryAccessControl, RegistryRequest, RequestGrant } from './ports.ts';
import { type RegistryTokens, TokenError, type VerifiedToken, tokenAllows } from './registry-tokens.ts';
import type { RetagGuard } from './retag-gate.ts';
import { clientCertificate } from '../edge/client-certificate.ts';
import { type RequiredAccess, requiredAccess } from './route-access.ts';
import { type AccessEntry, formatScope } from './scope.ts';

export interface RegistryAccessOptions {
  /** Absolute URL of the token endpoint; derived from the request (scheme + Host) when unset. */
  realm: string | undefined;
  /** Accept Basic credentials directly on /v2/ (for simple clients). */
  basic: boolean;
}

/** `Basic base64(user:password)` -> parts, or undefined. */
export function parseBasic(header: string): { username: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function requestOrigin(request: FastifyRequest, identity?: Identity): RequestOrigin {
  return { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: identity ? actorOf(identity) : { kind: 'anonymous' } };
}

/** The token endpoint URL for a request: configured, or this server's own `/auth/token`. */
export function realmFor(request: FastifyRequest, configured: string | undefined): string {
  if (configured) return configured;
  const host = (request.host || 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
  return `${request.protocol}://${host}/auth/token`;
}

const quote = (value: string) => `"${value.replace(/["\\]/g, '')}"`;

export class TokenAccessControl implements RegistryAccessControl {
  readonly #tokens: RegistryTokens;
  readonly #access: AccessService;
  readonly #options: RegistryAccessOptions;

  readonly #retag: RetagGuard | undefined;

  constructor(deps: { tokens: RegistryTokens; access: AccessService; retag?: RetagGuard }, options: RegistryAccessOptions) {
    this.#tokens = deps.tokens;
    this.#access = deps.access;
    this.#retag = deps.retag;
    this.#options = options;
  }

  async admit(request: FastifyRequest, target: RegistryRequest): Promise<RequestGrant> {
    const required = requiredAccess(target);
    const header = request.headers.authorization;
    if (!header) throw this.#challenge(request, required, undefined, 'authentication required');
    let identity: Identity | undefined;
    let token: VerifiedToken | undefined;
    if (/^Bearer\s/i.test(header)) {
      try {
        token = await this.#tokens.verify(header.slice(7).trim());
      } catch (error) {
        if (!(error instanceof TokenError)) throw error;
        throw this.#challenge(request, required, 'invalid_token', 'invalid or expired token');
      }
      identity = await this.#access.resolve(token.principal);
      if (!identity) throw this.#challenge(request, required, 'invalid_token', 'the credential behind this token was revoked');
    } else if (this.#options.basic && /^Basic\s/i.test(header)) {
      const credentials = parseBasic(header);
      if (!credentials) throw this.#challenge(request, required, undefined, 'malformed Basic credentials');
      try {
        identity = await this.#access.authenticate(credentials.username, credentials.password, requestOrigin(request), clientCertificate(request));
      } catch (error) {
        if (!(error instanceof AuthenticationError)) throw error;
        throw this.#challenge(request, required, undefined, error.message);
      }
    } else {
      throw this.#challenge(request, required, undefined, 'authentication required');
    }

    const allows = (entry: AccessEntry) => (token ? entry.actions.every((action) => tokenAllows(token, entry.type, entry.name, action)) : this.#identityAllows(identity, entry));
    const missing: AccessEntry[] = [];
    for (const entry of required.needs) if (!(await allows(entry))) missing.push(entry);
    // Per-project IP lists (no database query: cached lists). Checked once the caller is known,
    // and told only to a caller who holds the access otherwise: others learn nothing new.
    const refused = this.#networkRefusal(request, required.needs);
    if (missing.length > 0) {
      // A token from the token endpoint lacks the scopes the address may not use: say why, not "get a new token".
      const held = refused !== undefined || (token && identity.kind !== 'anonymous') ? (await Promise.all(missing.map((entry) => this.#identityAllows(identity, entry)))).every(Boolean) : false;
      if (refused !== undefined && held) throw new RegistryError('DENIED', refused, { detail: missing.flatMap(describe) });
      if (identity.kind === 'anonymous') throw this.#challenge(request, required, 'insufficient_scope', 'authentication required');
      // A token may simply not carry the scope yet: if the caller holds it, a new token helps.
      if (token && held) throw this.#challenge(request, required, 'insufficient_scope', 'the token does not grant this access');
      throw new RegistryError('DENIED', 'requested access to the resource is denied', { detail: missing.flatMap(describe) });
    }
    if (refused !== undefined) throw new RegistryError('DENIED', refused, { detail: required.needs.flatMap(describe) });
    if (required.mountFrom !== undefined && isRepositoryName(required.mountFrom)) {
      const source = { type: 'repository', name: required.mountFrom, actions: ['pull'] };
      if (!(await allows(source)) || this.#networkRefusal(request, [source]) !== undefined) {
        target.query.delete('mount');
        target.query.delete('from');
      }
    }
    if (target.route.kind === 'manifest' && target.method === 'PUT') this.#retag?.remember(String(request.id), identity);
    return { actor: actorOf(identity), canList: this.#access.catalogFilter(identity, request.ip) };
  }

  /** The first per-project IP list refusing the client address for one of `entries`. */
  #networkRefusal(request: FastifyRequest, entries: AccessEntry[]): string | undefined {
    for (const entry of entries) {
      if (entry.type !== 'repository') continue;
      const refused = this.#access.networkRefusal(projectOf(entry.name), request.ip);
      if (refused !== undefined) return refused;
    }
    return undefined;
  }

  async #identityAllows(identity: Identity, entry: AccessEntry): Promise<boolean> {
    if (entry.type === 'registry') return this.#access.can(identity, 'catalog', { kind: 'system' });
    for (const action of entry.actions) {
      if (!repositoryActions.includes(action as RepositoryAction)) return false;
      if (!(await this.#access.can(identity, action as RepositoryAction, { kind: 'repository', name: entry.name }))) return false;
    }
    return true;
  }

  #challenge(request: FastifyRequest, required: RequiredAccess, error: 'invalid_token' | 'insufficient_scope' | undefined, message: string): RegistryError {
    const parts = [`realm=${quote(realmFor(request, this.#options.realm))}`, `service=${quote(this.#tokens.service)}`];
    if (required.challenge.length > 0) parts.push(`scope=${quote(required.challenge.map(formatScope).join(' '))}`);
    if (error) parts.push(`error=${quote(error)}`);
    return new RegistryError('UNAUTHORIZED', message, {
      headers: { 'WWW-Authenticate': `Bearer ${parts.join(',')}` },
      detail: required.challenge.length > 0 ? required.challenge.flatMap(describe) : undefined,
    });
  }
}

/** distribution's `detail` for auth errors: one `{Type, Name, Action}` per action. */
function describe(entry: AccessEntry): Array<{ Type: string; Name: string; Action: string }> {
  return entry.actions.map((action) => ({ Type: entry.type, Name: entry.name, Action: action }));
}
