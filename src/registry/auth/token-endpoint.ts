/**
 * The token endpoint of the Docker token flow and the published key set.
 *
 * - `GET /auth/token?service=&scope=&scope=&offline_token=&client_id=` with optional Basic
 *   credentials (password, personal access token or robot secret); without credentials the
 *   caller gets an anonymous token (public pulls). Answers `{token, access_token, expires_in,
 *   issued_at[, refresh_token]}` (distribution `docs/spec/auth/token.md`).
 * - `POST /auth/token` (form) with `grant_type=password` (username, password) or
 *   `grant_type=refresh_token` (refresh_token), `service`, `client_id`, `scope` (space-separated),
 *   `access_type=offline` (distribution `docs/spec/auth/oauth.md`), or an RFC 8693 token exchange
 *   of a workload's OIDC token (`subject_token`, `subject_token_type` id_token or jwt). Errors are
 *   RFC 6749 §5.2 `{error, error_description}`.
 * - Workload identity federation: the user name `oidc` (auth.federation.usernames) with the
 *   workload's OIDC token as the password, in Basic credentials or the password grant.
 * - `GET /.well-known/jwks.json`: the public token-signing keys (current and still-valid old).
 *
 * The granted access is the intersection of what was asked and what the caller may do; asking
 * for more is not an error (the registry denies later). An unknown `service` is: tokens are
 * bound to this registry's service name (`aud`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { type AccessService, AuthenticationError } from './access-service.ts';
import type { Identity } from './identity.ts';
import { parseBasic, requestOrigin } from './registry-access.ts';
import { clientCertificate } from '../edge/client-certificate.ts';
import type { RegistryTokens } from './registry-tokens.ts';
import { type AccessEntry, ScopeError, formatScope, parseScopes } from './scope.ts';
import type { SigningKeys } from './signing-keys.ts';

export const tokenPath = '/auth/token';
export const jwksPath = '/.well-known/jwks.json';

const noStore = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

function list(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

function single(value: unknown): string | undefined {
  return list(value)[0];
}

/** An OAuth 2.0 error (RFC 6749 §5.2) for the POST form of the endpoint. */
class OAuthError extends Error {
  readonly error: string;
  readonly status: number;
  constructor(error: string, description: string, status = 400) {
    super(description);
    this.error = error;
    this.status = status;
  }
}

export async function registerTokenEndpoint(app: FastifyInstance, deps: { access: AccessService; tokens: RegistryTokens; keys: SigningKeys }): Promise<void> {
  const { access, tokens, keys } = deps;

  const checkService = (service: string | undefined) => {
    if (service !== undefined && service !== tokens.service) throw new RegistryError('INVALID_REQUEST', `unknown service ${JSON.stringify(service.slice(0, 100))}: this registry is ${JSON.stringify(tokens.service)}`);
  };

  const scopesOf = (values: string[]): AccessEntry[] => {
    try {
      return parseScopes(values);
    } catch (error) {
      if (error instanceof ScopeError) throw new RegistryError('INVALID_REQUEST', error.message);
      throw error;
    }
  };

  const issue = async (request: FastifyRequest, identity: Identity, requested: AccessEntry[]) => {
    const origin = requestOrigin(request, identity);
    const granted = await access.grantedAccess(identity, requested, origin);
    const issued = await tokens.issue(identity.kind === 'anonymous' ? '' : identity.name, access.principalOf(identity), granted, identity.kind === 'workload' ? identity.expiresAt : undefined);
    return { granted, issued };
  };

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, new URLSearchParams(body as string)));

    scope.get(tokenPath, async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      checkService(single(query.service));
      const requested = scopesOf(list(query.scope));
      let identity: Identity = { kind: 'anonymous' };
      const header = request.headers.authorization;
      if (header !== undefined) {
        const credentials = parseBasic(header);
        if (!credentials) throw new RegistryError('UNAUTHORIZED', 'the token endpoint accepts Basic credentials only', { headers: { 'WWW-Authenticate': 'Basic realm="portcullis"' } });
        try {
          identity = await access.authenticate(credentials.username, credentials.password, requestOrigin(request), clientCertificate(request));
        } catch (error) {
          if (error instanceof AuthenticationError) throw new RegistryError('UNAUTHORIZED', error.message, { headers: { 'WWW-Authenticate': 'Basic realm="portcullis"' } });
          throw error;
        }
      } else {
        // Mutual TLS: a certificate bound to a robot (certificate-only) logs in without credentials.
        const client = clientCertificate(request);
        try {
          if (client) identity = (await access.authenticateCertificate(client, requestOrigin(request))) ?? identity;
        } catch (error) {
          if (error instanceof AuthenticationError) throw new RegistryError('UNAUTHORIZED', error.message);
          throw error;
        }
      }
      const { issued } = await issue(request, identity, requested);
      const body: Record<string, unknown> = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt.toISOString() };
      // Workloads get no refresh token: they present a fresh token of their own instead.
      if (single(query.offline_token) === 'true' && (identity.kind === 'user' || identity.kind === 'robot')) body.refresh_token = await access.issueRefreshToken(identity, tokens.service);
      return reply.code(200).headers(noStore).send(body);
    });

    scope.post(tokenPath, async (request, reply) => {
      try {
        const form = request.body instanceof URLSearchParams ? request.body : undefined;
        if (!form) throw new OAuthError('invalid_request', 'expected an application/x-www-form-urlencoded body');
        const service = form.get('service') ?? undefined;
        if (service !== undefined && service !== tokens.service) throw new OAuthError('invalid_request', `unknown service: this registry is ${JSON.stringify(tokens.service)}`);
        let requested: AccessEntry[];
        try {
          requested = parseScopes(list(form.get('scope') ?? undefined));
        } catch (error) {
          if (error instanceof ScopeError) throw new OAuthError('invalid_scope', error.message);
          throw error;
        }
        const origin = requestOrigin(request);
        let identity: Identity;
        let refreshToken: string | undefined;
        const grantType = form.get('grant_type');
        try {
          if (grantType === 'password') {
            const username = form.get('username');
            const password = form.get('password');
            if (!username || password === null) throw new OAuthError('invalid_request', 'the password grant needs username and password');
            identity = await access.authenticate(username, password, origin, clientCertificate(request));
            if (form.get('access_type') === 'offline' && (identity.kind === 'user' || identity.kind === 'robot')) refreshToken = await access.issueRefreshToken(identity, tokens.service);
          } else if (grantType === 'refresh_token') {
            const presented = form.get('refresh_token');
            if (!presented) throw new OAuthError('invalid_request', 'the refresh_token grant needs refresh_token');
            identity = await access.authenticateRefreshToken(presented, tokens.service, origin, clientCertificate(request));
            refreshToken = presented;
          } else if (grantType === 'client_credentials') {
            // RFC 8705 tls_client_auth: the robot is the one a certificate-only binding names.
            const client = clientCertificate(request);
            const robot = client ? await access.authenticateCertificate(client, origin) : undefined;
            if (!robot) throw new OAuthError('invalid_client', 'client_credentials needs a client certificate bound to a robot (mutual TLS)', 401);
            identity = robot;
          } else if (grantType === tokenExchangeGrant) {
            identity = await access.authenticateWorkload(exchangedToken(form, tokens.service), origin);
          } else {
            throw new OAuthError('unsupported_grant_type', `grant_type must be password, refresh_token, client_credentials or ${tokenExchangeGrant}`);
          }
        } catch (error) {
          if (error instanceof AuthenticationError) throw new OAuthError('invalid_grant', error.message);
          throw error;
        }
        const { granted, issued } = await issue(request, identity, requested);
        const body: Record<string, unknown> = {
          access_token: issued.token,
          token: issued.token,
          scope: granted.map(formatScope).join(' '),
          expires_in: issued.expiresIn,
          issued_at: issued.issuedAt.toISOString(),
        };
        if (refreshToken !== undefined) body.refresh_token = refreshToken;
        if (grantType === tokenExchangeGrant) Object.assign(body, { issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer' });
        return reply.code(200).headers(noStore).send(body);
      } catch (error) {
        if (error instanceof OAuthError) return sendOAuthError(reply, error);
        throw error;
      }
    });

    scope.get(jwksPath, async (_request, reply) => reply.code(200).header('Cache-Control', 'max-age=60').send(keys.jwks()));
  });
}

const tokenExchangeGrant = 'urn:ietf:params:oauth:grant-type:token-exchange';
const exchangeableTokenTypes = ['urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:jwt'];

/** The subject token of an RFC 8693 exchange (a workload's OIDC token); what this endpoint cannot honour is refused, not ignored. */
function exchangedToken(form: URLSearchParams, service: string): string {
  const token = form.get('subject_token');
  const type = form.get('subject_token_type');
  if (!token || !type) throw new OAuthError('invalid_request', 'the token exchange needs subject_token and subject_token_type');
  if (!exchangeableTokenTypes.includes(type)) throw new OAuthError('invalid_request', `subject_token_type must be one of ${exchangeableTokenTypes.join(', ')}`);
  if (form.has('actor_token')) throw new OAuthError('invalid_request', 'delegation (actor_token) is not supported');
  const requested = form.get('requested_token_type');
  if (requested !== null && requested !== 'urn:ietf:params:oauth:token-type:access_token') throw new OAuthError('invalid_request', 'only access tokens are issued (requested_token_type)');
  const audience = form.getAll('audience');
  if (audience.some((value) => value !== service) || form.getAll('resource').length > 0) throw new OAuthError('invalid_target', `tokens are issued for this registry only (audience ${JSON.stringify(service)})`);
  return token;
}

function sendOAuthError(reply: FastifyReply, error: OAuthError): FastifyReply {
  return reply.code(error.status).headers(noStore).send({ error: error.error, error_description: error.message });
}
