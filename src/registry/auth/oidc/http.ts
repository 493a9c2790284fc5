/**
 * OIDC routes:
 *
 * - `GET /auth/oidc/providers`: configured providers (name, display name).
 * - `GET /auth/oidc/login?provider=NAME`: starts the authorization code flow with PKCE (S256),
 *   `state` and `nonce` (kept server-side, single use, 10 minutes; the state is also bound to the
 *   browser by a cookie so a login cannot be planted in someone else's browser).
 * - `GET /auth/oidc/callback`: validates, logs the user in and opens a short session; the page
 *   shows the user's groups and projects and a form to create a personal access token.
 * - `POST /auth/oidc/tokens`: (session + CSRF token) creates a personal access token, shown once.
 * - `POST /auth/oidc/device`, `POST /auth/oidc/device/token`: the device authorization grant run
 *   by the registry on behalf of `portcullis login --oidc` (the client secret never leaves the
 *   server); the poll answers RFC 8628 errors until the user approved, then a personal access
 *   token.
 *
 * - Loopback CLI login (RFC 8252 style, for providers without device authorization):
 *   `/auth/oidc/login?cli_port=P&cli_challenge=C` runs the browser flow, then redirects to
 *   `http://127.0.0.1:P/callback?code=X` with a one-time code (2 minutes) that
 *   `POST /auth/oidc/cli/token` redeems, with the verifier of the S256 challenge `C`, for a
 *   personal access token. An intercepted code is useless without the verifier.
 *
 * Nothing here logs a code, token, state or secret; failures are published as `auth.failed`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../../oci/errors.ts';
import type { Administration } from '../administration.ts';
import type { UserIdentity } from '../identity.ts';
import { requestOrigin } from '../registry-access.ts';
import type { AccessStore, UserRecord } from '../store/ports.ts';
import { OidcDenied, type OidcService } from './service.ts';
import { OidcError, createPkce, randomToken } from './provider-client.ts';

export const oidcBase = '/auth/oidc';
const STATE_COOKIE = 'portcullis_oidc_state';
const SESSION_COOKIE = 'portcullis_oidc_session';
const LOGIN_TTL_MS = 600_000;
const tokenNameGrammar = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const escape = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function cookies(request: FastifyRequest): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0) map.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return map;
}

function setCookie(reply: FastifyReply, request: FastifyRequest, name: string, value: string, maxAgeSeconds: number): void {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  const existing = reply.getHeader('set-cookie');
  const list = Array.isArray(existing) ? existing.map(String) : existing === undefined ? [] : [String(existing)];
  list.push(`${name}=${value}; Path=${oidcBase}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure}`);
  reply.header('set-cookie', list);
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply
    .code(status)
    .headers({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    })
    .send(`<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title><style>body{font-family:sans-serif;max-width:46rem;margin:2rem auto;line-height:1.4}code,pre{background:#f3f3f3;padding:.1rem .3rem}</style></head><body><h1>${escape(title)}</h1>${body}</body></html>`);
}

function oauthError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply.code(status).headers({ 'cache-control': 'no-store' }).send({ error, error_description: description });
}

export interface OidcRouteDeps {
  oidc: OidcService;
  admin: Administration;
  users: AccessStore;
  /** Longest personal access token lifetime (auth.personalTokens.maxLifetimeDays). */
  tokenMaxLifetimeDays: number;
}

export async function registerOidcRoutes(app: FastifyInstance, deps: OidcRouteDeps): Promise<void> {
  const { oidc, admin, users } = deps;
  const config = oidc.config;

  const baseUrl = (request: FastifyRequest) => config.publicUrl?.replace(/\/$/, '') ?? `${request.protocol}://${(request.host || 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '')}`;
  const redirectUri = (request: FastifyRequest) => `${baseUrl(request)}${oidcBase}/callback`;

  /** The user as an identity with the groups the provider vouches for now (refresh, within its cache window). */
  const identityOf = async (user: UserRecord, provider: string): Promise<UserIdentity | string> => {
    const fresh = await oidc.refresh(user).catch((error: Error) => `identity provider check failed: ${error.message}`);
    if (typeof fresh === 'string') return fresh;
    return { kind: 'user', id: user.id, name: user.name, systemAdmin: fresh.systemAdmin ?? user.systemAdmin, canCreateProjects: user.canCreateProjects, groups: fresh.groups, restriction: undefined, credential: { kind: 'oidc', provider } };
  };

  /** A personal access token over the projects the user can reach now. */
  const createToken = async (identity: UserIdentity, name: string, days: number, request: FastifyRequest) => {
    const projects = await oidc.projectsOf(identity);
    if (projects.length === 0) throw new OidcDenied('you have a role in no project yet, so a token would grant nothing');
    // A grant holds at most 100 patterns and a token 50 grants.
    const grants = [];
    for (let at = 0; at < Math.min(projects.length, 5000); at += 100) grants.push({ repositories: projects.slice(at, at + 100).map((project) => `${project}/**`), actions: ['pull', 'push', 'delete', 'retag'] as Array<'pull' | 'push' | 'delete' | 'retag'> });
    const created = await admin.createToken(identity, { name, grants, expiresInDays: Math.min(days, deps.tokenMaxLifetimeDays) }, requestOrigin(request, identity));
    return { ...created, projects };
  };

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))));
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => {
      try {
        done(null, body === '' ? {} : JSON.parse(body as string));
      } catch {
        done(null, undefined);
      }
    });

    scope.get(`${oidcBase}/providers`, async (_request, reply) => {
      const list = [...oidc.providers.values()].map(({ config: p }) => ({ name: p.name, displayName: p.displayName ?? p.name, login: `${oidcBase}/login?provider=${encodeURIComponent(p.name)}` }));
      return reply.header('cache-control', 'no-store').send({ providers: list });
    });

    scope.get(`${oidcBase}/login`, async (request, reply) => {
      const name = String((request.query as Record<string, unknown>).provider ?? (oidc.providers.size === 1 ? [...oidc.providers.keys()][0] : ''));
      const provider = oidc.provider(name);
      if (!provider) return page(reply, 400, 'Login failed', `<p>Unknown identity provider ${escape(name.slice(0, 64))}. Known: ${[...oidc.providers.keys()].map(escape).join(', ') || 'none'}.</p>`);
      const query = request.query as Record<string, unknown>;
      let cli: { port: number; challenge: string } | undefined;
      if (query.cli_port !== undefined || query.cli_challenge !== undefined) {
        const port = Number(query.cli_port);
        const challenge = String(query.cli_challenge ?? '');
        if (!Number.isInteger(port) || port < 1024 || port > 65535 || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) return page(reply, 400, 'Login failed', '<p>A CLI login needs cli_port (1024-65535) and cli_challenge (an S256 PKCE challenge).</p>');
        cli = { port, challenge };
      }
      const state = randomToken();
      const nonce = randomToken();
      const pkce = createPkce();
      const redirect = redirectUri(request);
      let location: string;
      try {
        location = await provider.client.authorizationUrl({ redirectUri: redirect, scope: provider.config.scopes.join(' '), state, nonce, codeChallenge: pkce.challenge, ...(provider.config.scopes.includes('offline_access') ? { prompt: 'consent' } : {}) });
      } catch (error) {
        request.log.warn({ provider: name, reason: (error as Error).message }, 'OIDC login could not start');
        return page(reply, 502, 'Login failed', `<p>The identity provider ${escape(name)} is not available: ${escape((error as Error).message)}</p>`);
      }
      await oidc.store.createPending(state, { kind: 'login', provider: name, data: { nonce, verifier: pkce.verifier, redirectUri: redirect, ...(cli ? { cli } : {}) }, expiresAt: new Date(Date.now() + LOGIN_TTL_MS) });
      setCookie(reply, request, STATE_COOKIE, state, LOGIN_TTL_MS / 1000);
      return reply.code(302).header('location', location).header('cache-control', 'no-store').send();
    });

    scope.get(`${oidcBase}/callback`, async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const state = typeof query.state === 'string' ? query.state : '';
      const origin = requestOrigin(request);
      const pending = state ? await oidc.store.takePending(state, 'login') : undefined;
      setCookie(reply, request, STATE_COOKIE, '', 0);
      if (!pending) return page(reply, 400, 'Login failed', '<p>This login request is unknown, was already used or expired. Start again.</p>');
      const bound = cookies(request).get(STATE_COOKIE);
      if (!bound || !same(bound, state)) {
        oidc.publishFailure(pending.provider, 'state not bound to this browser', origin);
        return page(reply, 400, 'Login failed', '<p>This login was started in another browser. Start again.</p>');
      }
      if (typeof query.error === 'string') {
        const reason = `provider error ${query.error.slice(0, 64)}`;
        oidc.publishFailure(pending.provider, reason, origin);
        return page(reply, 401, 'Login failed', `<p>The identity provider refused: ${escape(query.error.slice(0, 64))} ${escape(String(query.error_description ?? '').slice(0, 200))}</p>`);
      }
      const provider = oidc.provider(pending.provider);
      const code = typeof query.code === 'string' ? query.code : '';
      if (!provider || !code) return page(reply, 400, 'Login failed', '<p>The callback has no code.</p>');
      const data = pending.data as { nonce: string; verifier: string; redirectUri: string; cli?: { port: number; challenge: string } };
      try {
        const tokens = await provider.client.exchangeCode({ code, redirectUri: data.redirectUri, codeVerifier: data.verifier });
        const result = await oidc.completeLogin(pending.provider, tokens, { nonce: data.nonce, origin });
        if (data.cli) {
          const cliCode = randomToken();
          await oidc.store.createPending(cliCode, { kind: 'cli', provider: result.provider, data: { userId: result.user.id, groups: result.groups, systemAdmin: result.systemAdmin, challenge: data.cli.challenge }, expiresAt: new Date(Date.now() + 120_000) });
          return reply.code(302).headers({ location: `http://127.0.0.1:${data.cli.port}/callback?code=${cliCode}`, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).send();
        }
        const sessionId = randomToken();
        const csrf = randomToken();
        await oidc.store.createSession(sessionId, { userId: result.user.id, provider: result.provider, csrf, expiresAt: new Date(Date.now() + config.sessionMinutes * 60_000) });
        setCookie(reply, request, SESSION_COOKIE, sessionId, config.sessionMinutes * 60);
        const identity: UserIdentity = { kind: 'user', id: result.user.id, name: result.user.name, systemAdmin: result.systemAdmin, canCreateProjects: result.user.canCreateProjects, groups: result.groups, restriction: undefined, credential: { kind: 'oidc', provider: result.provider } };
        const projects = await oidc.projectsOf(identity);
        return page(
          reply,
          200,
          `Logged in as ${result.user.name}`,
          `<p>Provider: ${escape(result.provider)}. Groups: ${result.groups.map(escape).join(', ') || 'none'}.${result.systemAdmin ? ' You are a system administrator.' : ''}</p>` +
            `<p>Projects: ${projects.map(escape).join(', ') || 'none yet'}.</p>` +
            `<p>Container tools need a personal access token as password (<code>podman login -u ${escape(result.user.name)} ${escape(new URL(baseUrl(request)).host)}</code>). Or run <code>portcullis login --oidc --provider ${escape(result.provider)} ${escape(new URL(baseUrl(request)).host)}</code>.</p>` +
            `<form method="post" action="${oidcBase}/tokens"><input type="hidden" name="csrf" value="${escape(csrf)}"><label>Name <input name="name" value="podman" pattern="[a-z0-9][a-z0-9._-]{0,63}"></label> <label>Days <input name="days" type="number" min="1" max="${deps.tokenMaxLifetimeDays}" value="${Math.min(config.cliTokenDays, deps.tokenMaxLifetimeDays)}"></label> <button>Create a personal access token</button></form>`,
        );
      } catch (error) {
        if (error instanceof OidcDenied) return page(reply, 403, 'Access denied', `<p>${escape(error.message)}</p>`);
        if (error instanceof OidcError) {
          if (error.code !== 'invalid_token' && error.code !== 'grant_refused') oidc.publishFailure(pending.provider, error.message, origin);
          request.log.warn({ provider: pending.provider, code: error.code, reason: error.message }, 'OIDC login failed');
          return page(reply, error.code === 'provider_unavailable' ? 502 : 401, 'Login failed', `<p>${escape(error.message)}</p>`);
        }
        throw error;
      }
    });

    scope.post(`${oidcBase}/tokens`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const sessionId = cookies(request).get(SESSION_COOKIE);
      const session = sessionId ? await oidc.store.getSession(sessionId) : undefined;
      if (!session || typeof body.csrf !== 'string' || !same(body.csrf, session.csrf)) return page(reply, 401, 'Session expired', `<p>Log in again: <a href="${oidcBase}/login">login</a>.</p>`);
      const name = String(body.name ?? 'podman');
      const days = Number(body.days ?? config.cliTokenDays);
      if (!tokenNameGrammar.test(name) || !Number.isInteger(days) || days < 1) return page(reply, 400, 'Invalid request', '<p>A token name is 1 to 64 characters [a-z0-9._-]; days a positive whole number.</p>');
      const user = await users.getUser(session.userId);
      if (!user || user.disabled) return page(reply, 403, 'Access denied', '<p>This user is disabled.</p>');
      const identity = await identityOf(user, session.provider);
      if (typeof identity === 'string') return page(reply, 403, 'Access denied', `<p>${escape(identity)}</p>`);
      try {
        const created = await createToken(identity, name, days, request);
        return page(reply, 201, 'Personal access token created', `<p>Shown once: <code>${escape(created.secret)}</code></p><p>Expires ${escape(created.token.expiresAt)}; covers ${created.projects.map(escape).join(', ')}.</p><pre>podman login -u ${escape(user.name)} --password-stdin ${escape(new URL(baseUrl(request)).host)}</pre>`);
      } catch (error) {
        if (error instanceof OidcDenied) return page(reply, 403, 'No token', `<p>${escape(error.message)}</p>`);
        const status = error instanceof RegistryError ? error.status : undefined;
        if (typeof status === 'number' && status < 500) return page(reply, status, 'No token', `<p>${escape((error as Error).message)}</p>`);
        throw error;
      }
    });

    scope.post(`${oidcBase}/logout`, async (request, reply) => {
      const sessionId = cookies(request).get(SESSION_COOKIE);
      if (sessionId) await oidc.store.deleteSession(sessionId);
      setCookie(reply, request, SESSION_COOKIE, '', 0);
      return page(reply, 200, 'Logged out', '<p>Your registry session ended. Personal access tokens stay valid until revoked.</p>');
    });

    scope.post(`${oidcBase}/cli/token`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const code = typeof body.code === 'string' ? body.code : '';
      const verifier = typeof body.code_verifier === 'string' ? body.code_verifier : '';
      const tokenName = String(body.token_name ?? `cli-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${randomBytes(2).toString('hex')}`);
      if (!tokenNameGrammar.test(tokenName)) return oauthError(reply, 400, 'invalid_request', 'token_name is 1 to 64 characters [a-z0-9._-]');
      const pending = code ? await oidc.store.takePending(code, 'cli') : undefined;
      if (!pending) return oauthError(reply, 400, 'invalid_grant', 'unknown, used or expired code; log in again');
      const data = pending.data as { userId: string; groups: string[]; systemAdmin: boolean; challenge: string };
      if (!same(createHash('sha256').update(verifier).digest('base64url'), data.challenge)) {
        oidc.publishFailure(pending.provider, 'CLI code presented with a wrong PKCE verifier', requestOrigin(request));
        return oauthError(reply, 400, 'invalid_grant', 'the code_verifier does not match');
      }
      const user = await users.getUser(data.userId);
      if (!user || user.disabled) return oauthError(reply, 403, 'access_denied', 'this user is disabled');
      const identity: UserIdentity = { kind: 'user', id: user.id, name: user.name, systemAdmin: data.systemAdmin, canCreateProjects: user.canCreateProjects, groups: data.groups, restriction: undefined, credential: { kind: 'oidc', provider: pending.provider } };
      try {
        const created = await createToken(identity, tokenName, config.cliTokenDays, request);
        return reply.header('cache-control', 'no-store').send({ username: user.name, token: created.secret, token_name: tokenName, expires_at: created.token.expiresAt, projects: created.projects, groups: data.groups });
      } catch (error) {
        if (error instanceof OidcDenied) return oauthError(reply, 403, 'access_denied', error.message);
        if (error instanceof RegistryError && error.status < 500) return oauthError(reply, error.status, 'invalid_request', error.message);
        throw error;
      }
    });

    scope.post(`${oidcBase}/device`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const name = String(body.provider ?? (oidc.providers.size === 1 ? [...oidc.providers.keys()][0] : ''));
      const provider = oidc.provider(name);
      if (!provider) return oauthError(reply, 400, 'invalid_request', `unknown identity provider ${JSON.stringify(name.slice(0, 64))}; known: ${[...oidc.providers.keys()].join(', ') || 'none'}`);
      try {
        const device = await provider.client.startDeviceAuthorization(provider.config.scopes.join(' '));
        const handle = randomToken();
        await oidc.store.createPending(handle, { kind: 'device', provider: name, data: { deviceCode: device.device_code }, expiresAt: new Date(Date.now() + Math.min(device.expires_in, 1800) * 1000) });
        return reply.header('cache-control', 'no-store').send({ handle, user_code: device.user_code, verification_uri: device.verification_uri, verification_uri_complete: device.verification_uri_complete, expires_in: device.expires_in, interval: device.interval });
      } catch (error) {
        if (error instanceof OidcError) return oauthError(reply, error.code === 'unsupported' ? 400 : 502, error.code === 'unsupported' ? 'unsupported_grant_type' : 'temporarily_unavailable', `${name}: ${error.message}`);
        throw error;
      }
    });

    scope.post(`${oidcBase}/device/token`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const handle = typeof body.handle === 'string' ? body.handle : '';
      const tokenName = String(body.token_name ?? `cli-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${randomBytes(2).toString('hex')}`);
      if (!tokenNameGrammar.test(tokenName)) return oauthError(reply, 400, 'invalid_request', 'token_name is 1 to 64 characters [a-z0-9._-]');
      const origin = requestOrigin(request);
      const pending = handle ? await oidc.store.getPending(handle, 'device') : undefined;
      if (!pending) return oauthError(reply, 400, 'expired_token', 'unknown or expired device login; start again');
      const provider = oidc.provider(pending.provider);
      if (!provider) return oauthError(reply, 400, 'expired_token', 'the provider is no longer configured');
      let tokens;
      try {
        tokens = await provider.client.pollDeviceToken(String(pending.data.deviceCode));
      } catch (error) {
        if (error instanceof OidcError && (error.code === 'authorization_pending' || error.code === 'slow_down')) return oauthError(reply, 400, error.code, 'waiting for the user to approve');
        await oidc.store.takePending(handle, 'device');
        if (error instanceof OidcError) {
          oidc.publishFailure(pending.provider, error.message, origin);
          return oauthError(reply, error.code === 'provider_unavailable' ? 502 : 400, error.code === 'access_denied' || error.code === 'expired_token' ? error.code : 'invalid_grant', error.message);
        }
        throw error;
      }
      // Single use: only the poll that consumes the pending record gets a token.
      if (!(await oidc.store.takePending(handle, 'device'))) return oauthError(reply, 400, 'expired_token', 'this device login was already completed');
      try {
        const result = await oidc.completeLogin(pending.provider, tokens, { nonce: undefined, origin });
        const identity: UserIdentity = { kind: 'user', id: result.user.id, name: result.user.name, systemAdmin: result.systemAdmin, canCreateProjects: result.user.canCreateProjects, groups: result.groups, restriction: undefined, credential: { kind: 'oidc', provider: result.provider } };
        const created = await createToken(identity, tokenName, config.cliTokenDays, request);
        return reply.header('cache-control', 'no-store').send({ username: result.user.name, token: created.secret, token_name: tokenName, expires_at: created.token.expiresAt, projects: created.projects, groups: result.groups });
      } catch (error) {
        if (error instanceof OidcDenied) return oauthError(reply, 403, 'access_denied', error.message);
        if (error instanceof OidcError) return oauthError(reply, 401, 'invalid_grant', error.message);
        const status = error instanceof RegistryError ? error.status : undefined;
        if (typeof status === 'number' && status < 500) return oauthError(reply, status, 'invalid_request', (error as Error).message);
        throw error;
      }
    });
  });
}
