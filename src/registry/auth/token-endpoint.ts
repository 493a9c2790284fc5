/**
 * The token endpoint of the Docker token flow and the published key set.
 *
 * - `GET /auth/token?service=&scope=&scope=&offline_token=&client_id=` with optional Basic
 *   credentials (password, personal access token or robot secret); without credentials the
 *   caller gets an anonymous token (public pulls). Answers `{token, access_token, expires_in,
 *   issued_at[, refresh_token]}` (distribution `docs/spec/auth/token.md`).
 * - `POST /auth/token` (form) with `grant_type=password` (username, password) or
 *   `grant_type=refresh_token` (refresh_token), `service`, `client_id`, `scope` (space-separated),
 *   `access_type=offline` (distribution `docs/spec/auth/oauth.md`). Errors are RFC 6749 §5.2
 *   `{error, error_description}`.
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
    const issued = await tokens.issue(identity.kind === 'anonymous' ? '' : identity.name, access.principalOf(identity), granted);
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
          identity = await access.authenticate(credentials.username, credentials.password, requestOrigin(request));
        } catch (error) {
          if (error instanceof AuthenticationError) throw new RegistryError('UNAUTHORIZED', error.message, { headers: { 'WWW-Authenticate': 'Basic realm="portcullis"' } });
          throw error;
        }
      }
      const { issued } = await issue(request, identity, requested);
      const body: Record<string, unknown> = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt.toISOString() };
      if (single(query.offline_token) === 'true' && identity.kind !== 'anonymous') body.refresh_token = await access.issueRefreshToken(identity, tokens.service);
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
            identity = await access.authenticate(username, password, origin);
            if (form.get('access_type') === 'offline') refreshToken = await access.issueRefreshToken(identity, tokens.service);
          } else if (grantType === 'refresh_token') {
            const presented = form.get('refresh_token');
            if (!presented) throw new OAuthError('invalid_request', 'the refresh_token grant needs refresh_token');
            identity = await access.authenticateRefreshToken(presented, tokens.service, origin);
            refreshToken = presented;
          } else {
            throw new OAuthError('unsupported_grant_type', 'grant_type must be password or refresh_token');
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
        return reply.code(200).headers(noStore).send(body);
      } catch (error) {
        if (error instanceof OAuthError) return sendOAuthError(reply, error);
        throw error;
      }
    });

    scope.get(jwksPath, async (_request, reply) => reply.code(200).header('Cache-Control', 'max-age=60').send(keys.jwks()));
  });
}

function sendOAuthError(reply: FastifyReply, error: OAuthError): FastifyReply {
  return reply.code(error.status).headers(noStore).send({ error: error.error, error_description: error.message });
}
