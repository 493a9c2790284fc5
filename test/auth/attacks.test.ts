/**
 * Attacks on the token flow, each a test: forged, re-signed, expired, not-yet-valid,
 * wrong-audience, wrong-issuer, `alg: none` and HS256-with-the-public-key tokens; a token for one
 * repository used on another; scope escalation; revoked and expired robot secrets, personal
 * access tokens and refresh tokens; disabled users and changed passwords; secrets presented with
 * the wrong user name; and the timing of unknown user names.
 *
 * To craft tokens signed with the registry's real key, the test reads the key from the
 * registry's database, as an attacker who got hold of it could not do without the database.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { type JWK, SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';
import { type AuthRegistry, type Credentials, admin, basic, claims, createUser, ok, pushImage, startAuthRegistry } from './helpers.ts';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('attacks on registry tokens and credentials', () => {
  let registry: AuthRegistry;
  let alice: Credentials;
  let bob: Credentials;
  let serverKey: JWK;
  let valid: string;

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_AUTH_REVALIDATE_SECONDS: '1', PORTCULLIS_AUTH_CREDENTIAL_CACHE_SECONDS: '60' });
    alice = await createUser(registry, 'alice');
    bob = await createUser(registry, 'bob');
    for (const name of ['priv', 'other']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name } }));
    await ok(registry.api('POST', '/projects/priv/members', { auth: admin, body: { user: 'alice', role: 'developer' } }));
    await ok(registry.api('POST', '/projects/other/members', { auth: admin, body: { user: 'alice', role: 'developer' } }));
    await ok(registry.api('POST', '/projects/priv/members', { auth: admin, body: { user: 'bob', role: 'reader' } }));
    assert.equal((await pushImage(registry, 'priv/app', 'v1', await registry.token(['repository:priv/app:push'], alice))).status, 201);
    assert.equal((await pushImage(registry, 'other/app', 'v1', await registry.token(['repository:other/app:push'], alice))).status, 201);
    const db = new DatabaseSync(join(registry.dataDir, 'metadata.sqlite'), { readOnly: true });
    serverKey = JSON.parse(String((db.prepare('SELECT private_jwk FROM signing_keys ORDER BY created_at DESC').get() as { private_jwk: string }).private_jwk)) as JWK;
    db.close();
    valid = await registry.token(['repository:priv/app:pull'], bob);
  });

  after(() => registry?.close());

  const pull = async (token: string, repository = 'priv/app') => {
    const res = await registry.fetch(`/v2/${repository}/manifests/v1`, { headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    await res.arrayBuffer();
    return res;
  };

  const expectInvalid = async (token: string, what: string) => {
    const res = await pull(token);
    assert.equal(res.status, 401, `${what}: expected 401, got ${res.status}`);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/, what);
  };

  /** A token with the registry's own key and chosen claims. */
  const craft = async (overrides: Record<string, unknown>, header: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { ...claims(valid), iat: now, nbf: now, exp: now + 300, access: [{ type: 'repository', name: 'priv/app', actions: ['pull', 'push', 'delete'] }], ...overrides };
    return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: serverKey.kid, ...header }).sign(await importJWK(serverKey, 'ES256'));
  };

  test('the valid token works and a token crafted with the real key is accepted (the crafting is sound)', async () => {
    assert.equal((await pull(valid)).status, 200);
    assert.equal((await pull(await craft({}))).status, 200);
  });

  test('forged: the payload changed after signing', async () => {
    const [header, , signature] = valid.split('.');
    const payload = { ...claims(valid), access: [{ type: 'repository', name: 'priv/app', actions: ['pull', 'push', 'delete'] }] };
    await expectInvalid(`${header}.${b64(payload)}.${signature}`, 'forged payload');
    await expectInvalid(`${valid.slice(0, -6)}AAAAAA`, 'forged signature');
    await expectInvalid('not.a.token', 'garbage');
    assert.equal((await pull('')).status, 401, 'empty bearer token');
  });

  test('signed with another ES256 key under the real key id', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT(claims(valid)).setProtectedHeader({ alg: 'ES256', kid: serverKey.kid }).sign(privateKey);
    await expectInvalid(token, 'foreign key');
    const unknownKid = await new SignJWT(claims(valid)).setProtectedHeader({ alg: 'ES256', kid: 'someone-elses-key' }).sign(privateKey);
    await expectInvalid(unknownKid, 'unknown kid');
  });

  test('expired and not yet valid', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectInvalid(await craft({ iat: now - 3600, nbf: now - 3600, exp: now - 60 }), 'expired');
    await expectInvalid(await craft({ iat: now + 3600, nbf: now + 3600, exp: now + 7200 }), 'not yet valid');
  });

  test('wrong audience (service) and wrong issuer', async () => {
    await expectInvalid(await craft({ aud: 'another-registry' }), 'wrong audience');
    await expectInvalid(await craft({ aud: undefined }), 'no audience');
    await expectInvalid(await craft({ iss: 'evil' }), 'wrong issuer');
  });

  test('alg: none', async () => {
    const payload = { ...claims(valid), access: [{ type: 'repository', name: 'priv/app', actions: ['pull', 'push'] }] };
    await expectInvalid(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`, 'alg none');
    await expectInvalid(`${b64({ alg: 'none', typ: 'JWT', kid: serverKey.kid })}.${b64(payload)}.`, 'alg none with kid');
  });

  test('HS256 "signed" with the public key', async () => {
    const { d: _private, ...publicJwk } = serverKey;
    const publicKeyPem = (await import('node:crypto')).createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    for (const secret of [JSON.stringify(publicJwk), String(publicKeyPem), JSON.stringify(await exportJWK(await importJWK(publicJwk, 'ES256')))]) {
      const header = b64({ alg: 'HS256', typ: 'JWT', kid: serverKey.kid });
      const payload = b64({ ...claims(valid), access: [{ type: 'repository', name: 'priv/app', actions: ['pull', 'push', 'delete'] }] });
      const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      await expectInvalid(`${header}.${payload}.${signature}`, 'HS256 with the public key');
    }
  });

  test('a token for repository A does not open repository B', async () => {
    const forOther = await registry.token(['repository:other/app:pull'], alice);
    const res = await pull(forOther, 'priv/app');
    assert.equal(res.status, 401, 'alice may pull priv/app, so a new token would help');
    assert.match(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
    const bobs = await registry.token(['repository:priv/app:pull'], bob);
    assert.equal((await pull(bobs, 'other/app')).status, 403, 'bob may not pull other/app at all');
    // Names that merely look alike are different resources: the token does not cover priv/app2
    // (bob may read it, so he is told to get a token for it).
    const lookalike = await pull(bobs, 'priv/app2');
    assert.equal(lookalike.status, 401);
    assert.match(lookalike.headers.get('www-authenticate') ?? '', /scope="repository:priv\/app2:pull",error="insufficient_scope"/);
  });

  test('scope escalation: push with a pull-only grant, *, unknown actions, wildcards and malformed scopes', async () => {
    for (const scope of ['repository:priv/app:push', 'repository:priv/app:*', 'repository:priv/app:pull,push,delete,admin', 'repository:priv/app:pull,*']) {
      const token = await registry.token([scope], bob);
      const actions = claims(token).access.flatMap((a: { actions: string[] }) => a.actions);
      assert.ok(!actions.includes('push') && !actions.includes('delete') && !actions.includes('*'), `${scope} -> ${JSON.stringify(claims(token).access)}`);
      const res = await registry.fetch('/v2/priv/app/blobs/uploads/', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 403, scope);
      await res.arrayBuffer();
    }
    for (const scope of ['repository:priv/*:pull', 'repository:*:pull', 'repository:priv/app:pull:push', 'repository:priv/app', 'registry', 'repository:PRIV/app:pull', 'repository:priv/app:pull\npush']) {
      const res = await registry.fetch(`/auth/token?service=portcullis&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic(bob) } });
      assert.equal(res.status, 400, `malformed scope ${JSON.stringify(scope)} -> ${res.status}`);
      await res.arrayBuffer();
    }
    // Catalog access never grants repository access.
    const catalog = await registry.token(['registry:catalog:*', 'registry:catalog:push'], bob);
    assert.deepEqual(claims(catalog).access, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const res = await registry.fetch('/v2/priv/app/blobs/uploads/', { method: 'POST', headers: { authorization: `Bearer ${catalog}` } });
    assert.equal(res.status, 403);
    await res.arrayBuffer();
  });

  test('revoked robot secret: no new token, and issued tokens stop working', async () => {
    const created = await ok(registry.api('POST', '/projects/priv/robots', { auth: admin, body: { name: 'ci', grants: [{ repositories: ['priv/**'], actions: ['pull'] }], expiresInDays: 7 } }));
    const robot = { username: created.robot.name, password: created.secret };
    const token = await registry.token(['repository:priv/app:pull'], robot);
    assert.equal((await pull(token)).status, 200);
    const wrongName = await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic({ username: 'robot$priv+other', password: created.secret }) } });
    assert.equal(wrongName.status, 401, 'a robot secret only works with its own name');
    await ok(registry.api('POST', `/projects/priv/robots/${created.robot.id}/revoke`, { auth: admin }));
    const res = await registry.fetch('/auth/token?service=portcullis&scope=repository:priv/app:pull', { headers: { authorization: basic(robot) } });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 1200)); // revalidateSeconds = 1
    await expectInvalid(token, 'token of a revoked robot');
  });

  test('revoked and expired personal access tokens; a token presented with another user name', async () => {
    const created = await ok(registry.api('POST', '/users/alice/tokens', { auth: alice, body: { name: 'laptop', grants: [{ repositories: ['priv/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    const pat = { username: 'alice', password: created.secret };
    const token = await registry.token(['repository:priv/app:pull'], pat);
    assert.equal((await pull(token)).status, 200);
    const asBob = await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic({ username: 'bob', password: created.secret }) } });
    assert.equal(asBob.status, 401);
    await ok(registry.api('POST', `/users/alice/tokens/${created.token.id}/revoke`, { auth: alice }));
    const res = await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic(pat) } });
    assert.equal(res.status, 401);
    await new Promise((r) => setTimeout(r, 1200));
    await expectInvalid(token, 'token from a revoked personal access token');

    const soon = await ok(registry.api('POST', '/users/alice/tokens', { auth: alice, body: { name: 'short', grants: [{ repositories: ['priv/**'], actions: ['pull'] }], expiresAt: new Date(Date.now() + 1500).toISOString() } }));
    const shortLived = { username: 'alice', password: soon.secret };
    await registry.token([], shortLived);
    await new Promise((r) => setTimeout(r, 1700));
    const expired = await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic(shortLived) } });
    assert.equal(expired.status, 401, 'an expired token is refused even though it was just cached');
  });

  test('a disabled user loses new and issued tokens and refresh tokens; a changed password is refused at once', async () => {
    const carol = await createUser(registry, 'carol');
    await ok(registry.api('POST', '/projects/priv/members', { auth: admin, body: { user: 'carol', role: 'reader' } }));
    const res = await registry.fetch('/auth/token?service=portcullis&scope=repository:priv/app:pull&offline_token=true', { headers: { authorization: basic(carol) } });
    const { token, refresh_token: refresh } = (await res.json()) as { token: string; refresh_token: string };
    assert.equal((await pull(token)).status, 200);
    // Password change: the old password (verified and cached a moment ago) is refused.
    await ok(registry.api('PATCH', '/users/carol', { auth: carol, body: { password: 'a-brand-new-passphrase', currentPassword: carol.password } }));
    assert.equal((await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic(carol) } })).status, 401);
    await ok(registry.api('PATCH', '/users/carol', { auth: admin, body: { disabled: true } }));
    assert.equal((await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic({ username: 'carol', password: 'a-brand-new-passphrase' }) } })).status, 401);
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: 'portcullis', client_id: 'x' });
    const refreshed = await registry.fetch('/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    assert.equal(refreshed.status, 400);
    assert.equal(((await refreshed.json()) as { error: string }).error, 'invalid_grant');
    await new Promise((r) => setTimeout(r, 1200));
    await expectInvalid(token, 'token of a disabled user');
  });

  test('an unknown user name costs as much as a wrong password (no enumeration by timing)', async () => {
    const once = async (username: string, i: number) => {
      const start = performance.now();
      const res = await registry.fetch('/auth/token?service=portcullis', { headers: { authorization: basic({ username, password: `wrong-${i}-${Math.random()}` }) } });
      await res.arrayBuffer();
      assert.equal(res.status, 401);
      return performance.now() - start;
    };
    // Warmed up, then interleaved: whichever went first absorbed the server's warm-up (argon2's
    // first allocations, JIT) and the comparison measured that instead.
    for (let i = 0; i < 2; i++) await Promise.all([once('alice', -1 - i), once('nobody-by-that-name', -1 - i)]).catch(() => undefined);
    const knownSamples: number[] = [];
    const unknownSamples: number[] = [];
    for (let i = 0; i < 7; i++) {
      knownSamples.push(await once('alice', i));
      unknownSamples.push(await once('nobody-by-that-name', i));
    }
    // The fastest of each: what the check itself costs, without the stalls of a shared machine
    // (an fsync elsewhere in the process can hold one request up by tens of milliseconds).
    const known = Math.min(...knownSamples);
    const unknown = Math.min(...unknownSamples);
    assert.ok(unknown > known * 0.5, `unknown user ${unknown.toFixed(1)} ms vs wrong password ${known.toFixed(1)} ms (fastest of 7 each; all: ${unknownSamples.map((t) => t.toFixed(0))} / ${knownSamples.map((t) => t.toFixed(0))})`);
  });
});
