/**
 * The Docker token flow over HTTP: challenges on /v2/, the token endpoint (GET and the OAuth2
 * POST variant), token format, JWKS, refresh tokens, scope intersection, catalog filtering,
 * cross-repository mounts, direct Basic auth and automatic project creation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { type AuthRegistry, type Credentials, admin, basic, claims, createUser, ok, pushImage, sha256, startAuthRegistry } from './helpers.ts';

function challengeOf(res: Response): Record<string, string> {
  const header = res.headers.get('www-authenticate') ?? '';
  assert.match(header, /^Bearer /, `expected a Bearer challenge, got ${JSON.stringify(header)}`);
  return Object.fromEntries([...header.slice(7).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: Array<{ code: string }> };
  return body.errors[0]!.code;
}

describe('Docker token flow', () => {
  let registry: AuthRegistry;
  let alice: Credentials;
  let bob: Credentials;

  before(async () => {
    registry = await startAuthRegistry();
    alice = await createUser(registry, 'alice');
    bob = await createUser(registry, 'bob');
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'team-a' } }));
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'pub', visibility: 'public' } }));
    await ok(registry.api('POST', '/projects/team-a/members', { auth: admin, body: { user: 'alice', role: 'developer' } }));
    await ok(registry.api('POST', '/projects/team-a/members', { auth: admin, body: { user: 'bob', role: 'reader' } }));
    await ok(registry.api('POST', '/projects/pub/members', { auth: admin, body: { user: 'alice', role: 'maintainer' } }));
  });

  after(() => registry?.close());

  test('GET /v2/ without credentials: 401 with a scope-less Bearer challenge', async () => {
    const res = await registry.fetch('/v2/');
    assert.equal(res.status, 401);
    assert.deepEqual(challengeOf(res), { realm: `${registry.url}/auth/token`, service: 'portcullis' });
    assert.equal(await errorCode(res), 'UNAUTHORIZED');
  });

  test('challenges name the scope each endpoint needs', async () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull'],
      ['HEAD', '/v2/team-a/app/blobs/sha256:' + 'a'.repeat(64), 'repository:team-a/app:pull'],
      ['GET', '/v2/team-a/app/tags/list', 'repository:team-a/app:pull'],
      ['PUT', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull,push'],
      ['POST', '/v2/team-a/app/blobs/uploads/', 'repository:team-a/app:pull,push'],
      ['POST', '/v2/team-a/app/blobs/uploads/?mount=sha256:' + 'a'.repeat(64) + '&from=pub/base', 'repository:team-a/app:pull,push repository:pub/base:pull'],
      ['DELETE', '/v2/team-a/app/manifests/sha256:' + 'a'.repeat(64), 'repository:team-a/app:delete'],
      ['GET', '/v2/_catalog', 'registry:catalog:*'],
    ];
    for (const [method, path, scope] of cases) {
      const res = await registry.fetch(path, { method });
      await res.arrayBuffer();
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal(challengeOf(res).scope, scope, `${method} ${path}`);
    }
  });

  test('the token response and the token follow the spec; the signature checks out against the published JWKS', async () => {
    const res = await registry.fetch('/auth/token?service=portcullis&scope=repository:team-a/app:pull,push&client_id=test', { headers: { authorization: basic(alice) } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.ok(body.expires_in >= 60);
    assert.match(body.issued_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(body.refresh_token, undefined, 'no refresh token unless offline_token=true');
    const header = decodeProtectedHeader(body.token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'JWT');
    assert.ok(header.kid);
    const jwks = (await (await registry.fetch('/.well-known/jwks.json')).json()) as { keys: Array<Record<string, string>> };
    assert.ok(jwks.keys.some((k) => k.kid === header.kid));
    for (const key of jwks.keys) assert.equal(key.d, undefined, 'no private key material in the JWKS');
    const { payload } = await jwtVerify(body.token, createLocalJWKSet(jwks as never), { issuer: 'portcullis', audience: 'portcullis', algorithms: ['ES256'] });
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.exp! - payload.nbf!, 300);
    assert.ok(payload.jti);
    assert.deepEqual(payload.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
  });

  test('the granted access is the intersection of the request and the permissions; * expands; several scopes', async () => {
    const bobToken = await registry.token(['repository:team-a/app:pull,push,delete'], bob);
    assert.deepEqual(claims(bobToken).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    const aliceStar = await registry.token(['repository:team-a/app:*', 'repository:pub/x:* repository:other/y:pull'], alice);
    assert.deepEqual(claims(aliceStar).access, [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'pub/x', actions: ['pull', 'push', 'delete'] },
    ]);
    const anonymous = await registry.token(['repository:team-a/app:pull', 'repository:pub/x:pull,push']);
    assert.equal(claims(anonymous).sub, '');
    assert.deepEqual(claims(anonymous).access, [{ type: 'repository', name: 'pub/x', actions: ['pull'] }]);
    const catalog = await registry.token(['registry:catalog:*'], bob);
    assert.deepEqual(claims(catalog).access, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
  });

  test('token endpoint errors: bad credentials 401, unknown service and malformed scope 400', async () => {
    let res = await registry.fetch('/auth/token?service=portcullis&scope=repository:team-a/app:pull', { headers: { authorization: basic({ username: 'alice', password: 'wrong-password-123' }) } });
    assert.equal(res.status, 401);
    assert.equal(await errorCode(res), 'UNAUTHORIZED');
    res = await registry.fetch('/auth/token?service=someone-else&scope=repository:team-a/app:pull', { headers: { authorization: basic(alice) } });
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'INVALID_REQUEST');
    res = await registry.fetch('/auth/token?service=portcullis&scope=repository:Team-A/App:pull');
    assert.equal(res.status, 400);
    await res.arrayBuffer();
  });

  test('pushes and pulls with tokens; DENIED for a known caller without the right, insufficient_scope when a new token would help', async () => {
    const push = await registry.token(['repository:team-a/app:pull,push'], alice);
    const pushed = await pushImage(registry, 'team-a/app', 'v1', push);
    assert.equal(pushed.status, 201);
    const pull = await registry.token(['repository:team-a/app:pull'], bob);
    let res = await registry.fetch('/v2/team-a/app/manifests/v1', { headers: { authorization: `Bearer ${pull}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), pushed.digest);
    await res.arrayBuffer();
    // Bob's token only has pull: pushing is denied outright (he could not get a better token).
    res = await registry.fetch('/v2/team-a/app/blobs/uploads/', { method: 'POST', headers: { authorization: `Bearer ${pull}` } });
    assert.equal(res.status, 403);
    assert.equal(await errorCode(res), 'DENIED');
    // Alice holds push but her token was only for pull: 401 so that the client fetches a new one.
    const alicePull = await registry.token(['repository:team-a/app:pull'], alice);
    res = await registry.fetch('/v2/team-a/app/blobs/uploads/', { method: 'POST', headers: { authorization: `Bearer ${alicePull}` } });
    assert.equal(res.status, 401);
    assert.equal(challengeOf(res).error, 'insufficient_scope');
    assert.equal(challengeOf(res).scope, 'repository:team-a/app:pull,push');
    await res.arrayBuffer();
    // Anonymous on a private repository: 401 (logging in may help), never a hint whether it exists.
    const anon = await registry.token(['repository:team-a/app:pull']);
    for (const path of ['/v2/team-a/app/manifests/v1', '/v2/team-a/does-not-exist/manifests/v1']) {
      res = await registry.fetch(path, { headers: { authorization: `Bearer ${anon}` } });
      assert.equal(res.status, 401);
      assert.equal(challengeOf(res).error, 'insufficient_scope');
      await res.arrayBuffer();
    }
    // The base endpoint accepts any valid token, anonymous included.
    res = await registry.fetch('/v2/', { headers: { authorization: `Bearer ${anon}` } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  test('retag: a developer may create tags and re-push the same manifest, but not move a tag', async () => {
    const token = await registry.token(['repository:team-a/tags:pull,push'], alice);
    const first = await pushImage(registry, 'team-a/tags', 'stable', token);
    assert.equal(first.status, 201);
    const put = (tag: string, manifest: Buffer) =>
      registry.fetch(`/v2/team-a/tags/manifests/${tag}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    assert.equal((await put('stable', first.manifest)).status, 201, 'the same manifest again is not a retag');
    const second = await pushImage(registry, 'team-a/tags', 'next', token);
    assert.equal(second.status, 201);
    const moved = await put('stable', second.manifest);
    assert.equal(moved.status, 403);
    const body = (await moved.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'DENIED');
    assert.match(body.errors[0]!.message, /retag/);
    const res = await registry.fetch('/v2/team-a/tags/manifests/stable', { method: 'HEAD', headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.headers.get('docker-content-digest'), first.digest, 'the tag did not move');
    // A maintainer may move it.
    await ok(registry.api('POST', '/projects/team-a/members', { auth: admin, body: { user: 'alice', role: 'maintainer' } }));
    const again = await put('stable', second.manifest);
    assert.equal(again.status, 201);
  });

  test('the catalog lists only what the caller may pull', async () => {
    const aliceToken = await registry.token(['repository:pub/lib:pull,push'], alice);
    assert.equal((await pushImage(registry, 'pub/lib', 'v1', aliceToken)).status, 201);
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'secret' } }));
    const adminToken = await registry.token(['repository:secret/x:push'], admin);
    assert.equal((await pushImage(registry, 'secret/x', 'v1', adminToken)).status, 201);
    const list = async (credentials?: Credentials, query = '') => {
      const token = await registry.token(['registry:catalog:*'], credentials);
      const res = await registry.fetch(`/v2/_catalog${query}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      return { body: (await res.json()) as { repositories: string[] }, link: res.headers.get('link') };
    };
    assert.deepEqual((await list()).body.repositories, ['pub/lib']);
    assert.deepEqual((await list(bob)).body.repositories, ['pub/lib', 'team-a/app', 'team-a/tags']);
    assert.deepEqual((await list(admin)).body.repositories, ['pub/lib', 'secret/x', 'team-a/app', 'team-a/tags']);
    // Pages are filled with visible names only, and the Link header follows the last one shown.
    const first = await list(bob, '?n=1');
    assert.deepEqual(first.body.repositories, ['pub/lib']);
    assert.match(first.link ?? '', /last=pub%2Flib/);
    const second = await list(bob, '?n=2&last=pub%2Flib');
    assert.deepEqual(second.body.repositories, ['team-a/app', 'team-a/tags']);
    assert.equal(second.link, null);
  });

  test('a cross-repository mount needs pull on the source; without it the request becomes an ordinary upload', async () => {
    const source = await registry.token(['repository:team-a/base:pull,push'], alice);
    const blob = Buffer.from(`mounted ${Math.random()}`);
    let res = await registry.fetch(`/v2/team-a/base/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: { authorization: `Bearer ${source}` }, body: blob });
    assert.equal(res.status, 201);
    const mountPath = `/v2/pub/copy/blobs/uploads/?mount=${sha256(blob)}&from=team-a/base`;
    const withPull = await registry.token(['repository:pub/copy:pull,push', 'repository:team-a/base:pull'], alice);
    res = await registry.fetch(mountPath, { method: 'POST', headers: { authorization: `Bearer ${withPull}` } });
    assert.equal(res.status, 201, 'mounted');
    const carol = await createUser(registry, 'carol');
    await ok(registry.api('POST', '/projects/pub/members', { auth: admin, body: { user: 'carol', role: 'developer' } }));
    const withoutPull = await registry.token(['repository:pub/copy2:pull,push', 'repository:team-a/base:pull'], carol);
    assert.deepEqual(claims(withoutPull).access.map((a: { name: string }) => a.name), ['pub/copy2']);
    res = await registry.fetch(mountPath.replace('pub/copy/', 'pub/copy2/'), { method: 'POST', headers: { authorization: `Bearer ${withoutPull}` } });
    assert.equal(res.status, 202, 'an upload session instead of a mount');
    await res.arrayBuffer();
  });

  test('OAuth2 POST: password grant with offline access, refresh_token grant, errors', async () => {
    const form = (fields: Record<string, string>) => registry.fetch('/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
    let res = await form({ grant_type: 'password', username: 'alice', password: alice.password, service: 'portcullis', client_id: 'test', access_type: 'offline', scope: 'repository:team-a/app:pull,push repository:pub/x:pull' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.scope, 'repository:team-a/app:pull,push repository:pub/x:pull');
    assert.equal(body.access_token, body.token);
    assert.match(body.refresh_token, /^pcf_/);
    res = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'portcullis', client_id: 'test', scope: 'repository:team-a/app:pull' });
    assert.equal(res.status, 200);
    const refreshed = (await res.json()) as Record<string, any>;
    assert.equal(refreshed.refresh_token, body.refresh_token, 'the same refresh token comes back');
    assert.deepEqual(claims(refreshed.access_token).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    assert.equal(claims(refreshed.access_token).sub, 'alice');
    // GET with offline_token=true also hands out a refresh token.
    const get = await registry.fetch('/auth/token?service=portcullis&offline_token=true', { headers: { authorization: basic(alice) } });
    assert.match(((await get.json()) as Record<string, string>).refresh_token!, /^pcf_/);
    const cases: Array<[Record<string, string>, number, string]> = [
      [{ grant_type: 'password', username: 'alice', password: 'wrong-password-1', service: 'portcullis' }, 400, 'invalid_grant'],
      [{ grant_type: 'refresh_token', refresh_token: `${body.refresh_token.slice(0, -4)}AAAA`, service: 'portcullis' }, 400, 'invalid_grant'],
      [{ grant_type: 'refresh_token', refresh_token: 'not-a-token', service: 'portcullis' }, 400, 'invalid_grant'],
      [{ grant_type: 'authorization_code', code: 'x', service: 'portcullis' }, 400, 'unsupported_grant_type'],
      // client_credentials is mutual TLS only (a certificate-only robot binding, test/edge/mtls.test.ts).
      [{ grant_type: 'client_credentials', service: 'portcullis' }, 401, 'invalid_client'],
      [{ grant_type: 'password', username: 'alice', service: 'portcullis' }, 400, 'invalid_request'],
      [{ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'other' }, 400, 'invalid_request'],
      [{ grant_type: 'password', username: 'alice', password: alice.password, service: 'portcullis', scope: 'repository::pull' }, 400, 'invalid_scope'],
    ];
    for (const [fields, status, error] of cases) {
      res = await form(fields);
      assert.equal(res.status, status, JSON.stringify(fields));
      assert.equal(((await res.json()) as { error: string }).error, error, JSON.stringify(fields));
    }
  });

  test('Basic credentials are not accepted directly on /v2/ unless configured', async () => {
    const res = await registry.fetch('/v2/', { headers: { authorization: basic(alice) } });
    assert.equal(res.status, 401);
    assert.ok(challengeOf(res).realm);
    await res.arrayBuffer();
  });
});

describe('direct Basic auth on /v2/ and automatic project creation (configured)', () => {
  let registry: AuthRegistry;
  let dave: Credentials;
  let erin: Credentials;

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_AUTH_BASIC_AUTH: 'true', PORTCULLIS_AUTH_AUTO_CREATE_PROJECTS: 'true' });
    dave = await createUser(registry, 'dave', { canCreateProjects: true });
    erin = await createUser(registry, 'erin');
  });

  after(() => registry?.close());

  test('a user allowed to create projects gets a new private project (as its admin) by asking to push into it', async () => {
    const token = await registry.token(['repository:daves/app:pull,push'], dave);
    assert.deepEqual(claims(token).access, [{ type: 'repository', name: 'daves/app', actions: ['pull', 'push'] }]);
    assert.equal((await pushImage(registry, 'daves/app', 'v1', token)).status, 201);
    const project = await ok(registry.api('GET', '/projects/daves', { auth: dave }));
    assert.equal(project.visibility, 'private');
    assert.equal(project.createdBy, 'dave');
    const members = await ok(registry.api('GET', '/projects/daves/members', { auth: dave }));
    assert.deepEqual(members.map((m: { name: string; role: string }) => [m.name, m.role]), [['dave', 'admin']]);
  });

  test('users without the right do not create projects; pull-only requests never do', async () => {
    const token = await registry.token(['repository:erins/app:pull,push'], erin);
    assert.deepEqual(claims(token).access, []);
    await registry.token(['repository:pulled/app:pull'], dave);
    const names = (await ok(registry.api('GET', '/projects', { auth: admin }))).map((p: { name: string }) => p.name);
    assert.ok(!names.includes('erins'));
    assert.ok(!names.includes('pulled'));
  });

  test('Basic credentials work directly on /v2/ when enabled; wrong ones get the challenge', async () => {
    let res = await registry.fetch('/v2/', { headers: { authorization: basic(dave) } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    res = await registry.fetch('/v2/daves/app/manifests/v1', { method: 'HEAD', headers: { authorization: basic(dave), accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 200);
    res = await registry.fetch('/v2/daves/app/manifests/v1', { method: 'HEAD', headers: { authorization: basic({ username: 'dave', password: 'not-the-password' }) } });
    assert.equal(res.status, 401);
    assert.ok(challengeOf(res).scope);
    res = await registry.fetch('/v2/daves/app/manifests/v1', { headers: { authorization: basic(admin) } });
    assert.equal(res.status, 200, 'a system administrator may pull anything');
    await res.arrayBuffer();
  });
});
