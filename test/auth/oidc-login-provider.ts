/**
 * A real OpenID provider (`oidc-provider`, certified) on 127.0.0.1 for the OIDC login tests, and
 * a minimal browser (cookie jar, redirects, HTML forms) that drives its development login and
 * consent pages. Accounts carry `groups`; tests change them (or remove the account) at run time,
 * as an administrator would at the provider. The provider serves `groups` from userinfo only
 * (its default: scope claims go to userinfo when an access token is issued), so the registry's
 * userinfo path is exercised too.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';

export interface Account {
  username: string;
  email: string;
  groups: string[];
}

export interface LoginProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** A second client, public (no secret, PKCE only). */
  publicClientId: string;
  /** Accounts by login name (the dev login form accepts any password). Mutable. */
  accounts: Map<string, Account>;
  /** Attaches the provider once the registry's callback URL is known. */
  configure(redirectUri: string): Promise<void>;
  close(): Promise<void>;
}

export async function startLoginProvider(accounts: Record<string, Account>): Promise<LoginProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const map = new Map(Object.entries(accounts));
  const clientId = 'portcullis-registry';
  const publicClientId = 'portcullis-public';
  const clientSecret = `client-secret-${Math.random().toString(36).slice(2)}-0123456789`;
  let handler: ((req: unknown, res: unknown) => void) | undefined;
  server.on('request', (req, res) => (handler ? handler(req, res) : res.writeHead(503).end()));
  return {
    issuer,
    clientId,
    clientSecret,
    publicClientId,
    accounts: map,
    async configure(redirectUri) {
      const { privateKey } = await generateKeyPair('RS256', { extractable: true });
      // A string specifier: the package ships no type declarations, and its API is used loosely here.
      const { default: Provider } = (await import('oidc-provider' as string)) as { default: new (issuer: string, config: unknown) => any };
      const provider = new Provider(issuer, {
        jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'login-key', use: 'sig', alg: 'RS256' }] },
        clients: [
          { client_id: clientId, client_secret: clientSecret, redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'], response_types: ['code'] },
          // A public client (PKCE only): the provider rotates its refresh tokens at every use.
          { client_id: publicClientId, token_endpoint_auth_method: 'none', redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] },
        ],
        scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
        claims: { openid: ['sub'], profile: ['preferred_username'], email: ['email', 'email_verified'], groups: ['groups'] },
        features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
        pkce: { required: () => true },
        issueRefreshToken: async () => true,
        // Removing or renaming an account at the provider is how tests take a user away.
        findAccount: async (_ctx: unknown, id: string) => {
          const account = map.get(id);
          if (!account) return undefined;
          return { accountId: id, claims: async () => ({ sub: id, preferred_username: account.username, email: account.email, email_verified: true, groups: [...account.groups] }) };
        },
        // Every grant covers everything the client asks for (no consent screen unless prompt=consent).
        loadExistingGrant: async (ctx: any) => {
          const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
          if (grantId) {
            const existing = await ctx.oidc.provider.Grant.find(grantId);
            if (existing) return existing;
          }
          const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
          grant.addOIDCScope('openid offline_access profile email groups');
          await grant.save();
          return grant;
        },
      });
      provider.on('server_error', () => undefined);
      handler = provider.callback();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A small browser: one cookie jar (cookies are not port-specific), manual redirects, form submission. */
export class Browser {
  readonly cookies = new Map<string, string>();
  /** Every URL visited (tests check that no secret appears where it should not). */
  readonly visited: string[] = [];

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    this.visited.push(url);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      const name = pair!.slice(0, at).trim();
      const value = pair!.slice(at + 1).trim();
      if (value === '' || /max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /** Follows redirects until a page (non-3xx) or a URL where `stop` says so. */
  async follow(url: string, init: RequestInit = {}, stop?: (url: string) => boolean): Promise<{ url: string; response: Response }> {
    let current = url;
    let response = await this.request(current, init);
    for (let hops = 0; hops < 20 && response.status >= 300 && response.status < 400; hops++) {
      await response.arrayBuffer();
      current = new URL(response.headers.get('location')!, current).toString();
      if (stop?.(current)) return { url: current, response };
      response = await this.request(current);
    }
    return { url: current, response };
  }

  /** Submits the first form of `html` (its hidden and named inputs, plus `fields`) and follows redirects. */
  async submit(html: string, pageUrl: string, fields: Record<string, string> = {}, stop?: (url: string) => boolean): Promise<{ url: string; response: Response }> {
    const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
    if (!form) throw new Error(`no form on ${pageUrl}: ${html.slice(0, 500)}`);
    const action = /action="([^"]*)"/i.exec(form[1]!)?.[1] ?? pageUrl;
    const values = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input\b([^>]*)>/gi)) {
      const name = /name="([^"]*)"/i.exec(input[1]!)?.[1];
      const value = /value="([^"]*)"/i.exec(input[1]!)?.[1] ?? '';
      if (name) values.set(name, decodeEntities(value));
    }
    for (const [name, value] of Object.entries(fields)) values.set(name, value);
    return this.follow(new URL(decodeEntities(action), pageUrl).toString(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: values.toString() }, stop);
  }

  /**
   * Signs in at the provider's development pages as `login` and confirms consent, from a page
   * (or redirect chain) of the provider, until the browser leaves the provider. Returns the
   * final response (at the registry, or the provider's last page).
   */
  async signIn(start: { url: string; response: Response }, issuer: string, login: string, stop?: (url: string) => boolean): Promise<{ url: string; response: Response }> {
    let current = start;
    for (let step = 0; step < 6; step++) {
      if (!current.url.startsWith(issuer)) return current;
      const html = await current.response.text();
      if (!/<form/i.test(html)) return { url: current.url, response: new Response(html, { status: current.response.status }) };
      current = await this.submit(html, current.url, /name="login"/.test(html) ? { login, password: 'any' } : {}, stop);
    }
    return current;
  }
}

function decodeEntities(value: string): string {
  return value.replace(/&#(\d+);/g, (_m, code) => String.fromCharCode(Number(code))).replace(/&#x([0-9a-f]+);/gi, (_m, code) => String.fromCharCode(parseInt(code, 16))).replace(/&quot;/g, '"').replace(/&amp;/g, '&');
}
