/**
 * No secret, password or token in any log line: the registry runs at log level `trace` while
 * every kind of credential is used (successfully and not), and its whole output is searched for
 * each secret and its encodings. The generated administrator password is the one exception: it
 * is printed exactly once, on the console line announcing it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AuthRegistry, type Credentials, basic, ok, pushImage, startAuthRegistry } from './helpers.ts';

describe('no secrets in the logs', () => {
  let registry: AuthRegistry;
  let generated: string;

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_ADMIN_PASSWORD: '', PORTCULLIS_LOG_LEVEL: 'trace', PORTCULLIS_AUTH_BASIC_AUTH: 'true' });
    const announced = /created the administrator "admin" with the password (\S+)/;
    for (let i = 0; i < 100 && !announced.test(registry.output()); i++) await new Promise((r) => setTimeout(r, 20));
    const match = announced.exec(registry.output());
    assert.ok(match, `no generated password announced:\n${registry.output()}`);
    generated = match[1]!;
  });

  after(() => registry?.close());

  test('every credential used, right and wrong; then the output is searched', async () => {
    const admin: Credentials = { username: 'admin', password: generated };
    const secrets: string[] = [];
    const userPassword = 'correct-horse-battery-42';
    secrets.push(userPassword);
    await ok(registry.api('POST', '/users', { auth: admin, body: { name: 'alice', password: userPassword } }));
    await ok(registry.api('POST', '/projects', { auth: admin, body: { name: 'team' } }));
    await ok(registry.api('POST', '/projects/team/members', { auth: admin, body: { user: 'alice', role: 'admin' } }));
    const alice = { username: 'alice', password: userPassword };
    const pat = await ok(registry.api('POST', '/users/alice/tokens', { auth: alice, body: { name: 'cli', grants: [{ repositories: ['team/**'], actions: ['pull', 'push'] }], management: true, expiresInDays: 1 } }));
    const robot = await ok(registry.api('POST', '/projects/team/robots', { auth: alice, body: { name: 'ci', grants: [{ repositories: ['team/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    secrets.push(pat.secret, robot.secret);
    const credentials: Credentials[] = [admin, alice, { username: 'alice', password: pat.secret }, { username: robot.robot.name, password: robot.secret }];
    for (const [index, credential] of credentials.entries()) {
      const res = await registry.fetch('/auth/token?service=portcullis&scope=repository:team/app:pull,push&offline_token=true', { headers: { authorization: basic(credential) } });
      const body = (await res.json()) as { token: string; refresh_token: string };
      assert.equal(res.status, 200);
      secrets.push(body.token, body.refresh_token);
      assert.equal((await pushImage(registry, 'team/app', `v${index}`, body.token)).status, 201);
      const direct = await registry.fetch('/v2/team/app/tags/list', { headers: { authorization: basic(credential) } });
      assert.equal(direct.status, 200);
      await direct.arrayBuffer();
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'portcullis', client_id: 'logs' });
      const refreshed = await registry.fetch('/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
      secrets.push(((await refreshed.json()) as { access_token: string }).access_token);
      // Wrong variants of each: a near miss must not be logged either.
      const wrong = { username: credential.username, password: `${credential.password}x` };
      secrets.push(wrong.password);
      for (const path of ['/auth/token?service=portcullis', '/v2/', '/api/v1/me']) {
        const res2 = await registry.fetch(path, { headers: { authorization: basic(wrong) } });
        assert.equal(res2.status, 401, path);
        await res2.arrayBuffer();
      }
      const oauth = new URLSearchParams({ grant_type: 'password', username: credential.username, password: wrong.password, service: 'portcullis', client_id: 'logs' });
      await (await registry.fetch('/auth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: oauth.toString() })).arrayBuffer();
    }
    // A password change and a refused password (policy) in API bodies.
    const changed = 'changed-horse-battery-43';
    secrets.push(changed, 'short1');
    await ok(registry.api('PATCH', '/users/alice', { auth: alice, body: { password: changed, currentPassword: userPassword } }));
    assert.equal((await registry.api('POST', '/users', { auth: admin, body: { name: 'bob', password: 'short1' } })).status, 400);
    // A malformed body and a bogus bearer token.
    await (await registry.fetch('/api/v1/users', { method: 'POST', headers: { authorization: basic(admin), 'content-type': 'application/json' }, body: `{"password":"${changed}"` })).arrayBuffer();
    await (await registry.fetch('/v2/', { headers: { authorization: `Bearer ${secrets[3]}x` } })).arrayBuffer();

    await new Promise((r) => setTimeout(r, 300));
    const output = registry.output();
    assert.ok(output.length > 0);
    const generatedLines = output.split('\n').filter((line) => line.includes(generated));
    assert.equal(generatedLines.length, 1, 'the generated administrator password is shown exactly once');
    assert.match(generatedLines[0]!, /^portcullis: created the administrator "admin" with the password/);
    for (const secret of secrets) {
      const forms = [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)];
      if (secret.includes('.')) forms.push(secret.split('.')[2]!); // a JWT's signature
      if (/^pc[rpf]_/.test(secret)) forms.push(secret.slice(22)); // the random part of a generated secret
      for (const form of forms) assert.ok(!output.includes(form), `a secret appears in the output: ${form.slice(0, 12)}…`);
    }
    for (const credential of credentials) assert.ok(!output.includes(Buffer.from(`${credential.username}:${credential.password}`).toString('base64')), 'Basic credentials in the output');
  });
});
