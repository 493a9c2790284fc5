/**
 * ID-token and JWT validation of the provider client against a key set served over HTTP (the
 * end-to-end flows against a real OpenID provider are in test/auth/oidc*.test.ts; crafting
 * tampered and mis-issued tokens needs keys of our own).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { createPkce, isAcceptableProviderUrl, OidcError, OidcProviderClient } from './provider-client.ts';

let server: Server;
let issuer: string;
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
let publicJwk: JWK;
let discoveryIssuer: string | undefined;
let discoveryStatus = 200;
const KID = 'k1';

before(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  server = createServer((request, response) => {
    if (request.url === '/.well-known/openid-configuration') {
      response.writeHead(discoveryStatus, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ issuer: discoveryIssuer ?? issuer, jwks_uri: `${issuer}/jwks`, token_endpoint: `${issuer}/token`, authorization_endpoint: `${issuer}/auth`, id_token_signing_alg_values_supported: ['RS256', 'none', 'HS256'] }));
    } else if (request.url === '/jwks') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ keys: [publicJwk] }));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = (options: Partial<ConstructorParameters<typeof OidcProviderClient>[0]> = {}) => new OidcProviderClient({ issuer, clientId: 'registry', ...options });

async function idToken(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, options: { iat?: number; exp?: string | number } = {}): Promise<string> {
  return new SignJWT({ nonce: 'n-1', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: KID, ...header })
    .setIssuer((claims.iss as string) ?? issuer)
    .setSubject('alice-sub')
    .setAudience((claims.aud as string | string[]) ?? 'registry')
    .setIssuedAt(options.iat)
    .setExpirationTime(options.exp ?? '5m')
    .sign(privateKey);
}

async function refused(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof OidcError, `expected an OidcError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('OidcProviderClient ID-token validation', () => {
  test('accepts a valid ID token with the right nonce', async () => {
    const claims = await client().verifyIdToken(await idToken({ groups: ['dev'] }), { nonce: 'n-1' });
    assert.equal(claims.sub, 'alice-sub');
    assert.deepEqual(claims.groups, ['dev']);
  });

  test('refuses a tampered payload', async () => {
    const [h, p, s] = (await idToken()).split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.sub = 'admin-sub';
    await refused(client().verifyIdToken(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`, { nonce: 'n-1' }), 'invalid_token', /signature/);
  });

  test('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    await refused(client().verifyIdToken(await idToken({}, {}, { iat: now - 3600, exp: now - 600 }), { nonce: 'n-1' }), 'invalid_token', /expired/);
  });

  test('refuses a token that is not yet valid (nbf) or issued in the future', async () => {
    await refused(client().verifyIdToken(await idToken({ nbf: Math.floor(Date.now() / 1000) + 600 }), { nonce: 'n-1' }), 'invalid_token', /nbf/);
    await refused(client().verifyIdToken(await idToken({}, {}, { iat: Math.floor(Date.now() / 1000) + 600, exp: Math.floor(Date.now() / 1000) + 1200 }), { nonce: 'n-1' }), 'invalid_token', /iat/);
  });

  test('refuses a wrong audience', async () => {
    await refused(client().verifyIdToken(await idToken({ aud: 'another-client' }), { nonce: 'n-1' }), 'invalid_token', /aud/);
  });

  test('refuses several audiences without azp, and an azp naming another client', async () => {
    await refused(client().verifyIdToken(await idToken({ aud: ['registry', 'other'] }), { nonce: 'n-1' }), 'invalid_token', /azp/);
    await refused(client().verifyIdToken(await idToken({ aud: ['registry', 'other'], azp: 'other' }), { nonce: 'n-1' }), 'invalid_token', /azp/);
    const claims = await client().verifyIdToken(await idToken({ aud: ['registry', 'other'], azp: 'registry' }), { nonce: 'n-1' });
    assert.equal(claims.azp, 'registry');
  });

  test('refuses a wrong or missing nonce', async () => {
    await refused(client().verifyIdToken(await idToken(), { nonce: 'n-2' }), 'invalid_token', /nonce/);
    await refused(client().verifyIdToken(await idToken({ nonce: undefined }), { nonce: 'n-1' }), 'invalid_token', /nonce/);
  });

  test('refuses another issuer', async () => {
    await refused(client().verifyIdToken(await idToken({ iss: 'https://evil.example' }), { nonce: 'n-1' }), 'invalid_token', /iss/);
  });

  test('refuses alg none and an HS256 token keyed with the public key, even though the provider announces them', async () => {
    const [, payload] = (await idToken()).split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`;
    await refused(client().verifyIdToken(none, { nonce: 'n-1' }), 'invalid_token', /algorithm/);
    const hmac = await new SignJWT({ nonce: 'n-1' }).setProtectedHeader({ alg: 'HS256', kid: KID }).setIssuer(issuer).setSubject('alice-sub').setAudience('registry').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
    await refused(client().verifyIdToken(hmac, { nonce: 'n-1' }), 'invalid_token', /algorithm/);
  });

  test('refuses a token signed by an unknown key', async () => {
    const other = await generateKeyPair('RS256');
    const token = await new SignJWT({ nonce: 'n-1' }).setProtectedHeader({ alg: 'RS256', kid: 'k2' }).setIssuer(issuer).setSubject('alice-sub').setAudience('registry').setIssuedAt().setExpirationTime('5m').sign(other.privateKey);
    await refused(client().verifyIdToken(token, { nonce: 'n-1' }), 'invalid_token', /no key/);
    const sameKid = await new SignJWT({ nonce: 'n-1' }).setProtectedHeader({ alg: 'RS256', kid: KID }).setIssuer(issuer).setSubject('alice-sub').setAudience('registry').setIssuedAt().setExpirationTime('5m').sign(other.privateKey);
    await refused(client().verifyIdToken(sameKid, { nonce: 'n-1' }), 'invalid_token', /signature/);
  });

  test('refuses garbage', async () => {
    await refused(client().verifyIdToken('not-a-jwt', { nonce: 'n-1' }), 'invalid_token');
  });
});

describe('OidcProviderClient discovery', () => {
  test('refuses a discovery document naming another issuer', async () => {
    discoveryIssuer = 'https://evil.example';
    try {
      await refused(client().metadata(), 'bad_metadata', /names issuer/);
    } finally {
      discoveryIssuer = undefined;
    }
  });

  test('an unreachable provider is provider_unavailable; a cached document survives a failed refresh within the stale window', async () => {
    await refused(new OidcProviderClient({ issuer: 'http://127.0.0.1:1', clientId: 'x', timeoutMs: 2000 }).metadata(), 'provider_unavailable');
    let now = Date.now();
    const c = client({ discoveryTtlMs: 1000, discoveryStaleMs: 5000, now: () => now });
    await c.metadata();
    discoveryStatus = 500;
    try {
      now += 2000;
      assert.equal((await c.metadata()).issuer, issuer);
      now += 10_000;
      await refused(c.metadata(), 'provider_unavailable');
    } finally {
      discoveryStatus = 200;
    }
  });

  test('the authorization URL carries PKCE S256, state and nonce', async () => {
    const pkce = createPkce();
    const url = new URL(await client().authorizationUrl({ redirectUri: 'http://127.0.0.1/cb', scope: 'openid', state: 's', nonce: 'n', codeChallenge: pkce.challenge }));
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('code_challenge'), pkce.challenge);
    assert.equal(url.searchParams.get('state'), 's');
    assert.equal(url.searchParams.get('nonce'), 'n');
    assert.equal(url.searchParams.get('response_type'), 'code');
  });

  test('provider URLs must be https except on loopback', () => {
    assert.ok(isAcceptableProviderUrl('https://id.example.com'));
    assert.ok(isAcceptableProviderUrl('http://127.0.0.1:8080'));
    assert.ok(isAcceptableProviderUrl('http://localhost:8080'));
    assert.ok(!isAcceptableProviderUrl('http://id.example.com'));
    assert.ok(!isAcceptableProviderUrl('ftp://id.example.com'));
    assert.ok(!isAcceptableProviderUrl('nonsense'));
  });
});
