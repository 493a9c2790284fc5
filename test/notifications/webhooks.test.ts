/**
 * Webhooks end to end: a registry process with token authentication, a real HTTP receiver in
 * this process, pushes through the Docker token flow. Signatures verified with the documented
 * recipe; a receiver failing then recovering; a restart (SIGKILL) with deliveries pending; the
 * permission matrix; secrets never in answers or logs; SSRF refusals; anomaly alerts through the
 * API and as webhook events.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startRegistry } from '../support/registry-process.ts';
import { ADMIN_PASSWORD, type AuthRegistry, type Credentials, admin, basic, createUser, ok, pushImage, startAuthRegistry } from '../auth/helpers.ts';

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

/** An HTTP receiver answering `status()` to every POST and keeping what it got. */
async function startReceiver(): Promise<{ url: string; received: Received[]; status: number; close(): Promise<void> }> {
  const state = { received: [] as Received[], status: 204 };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      state.received.push({ headers: request.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      response.statusCode = state.status;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    get received() {
      return state.received;
    },
    get status() {
      return state.status;
    },
    set status(value: number) {
      state.status = value;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The verification recipe of docs/notifications.md. */
function verify(secret: string, header: string, body: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds || !parts.v1) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const ENV = {
  PORTCULLIS_WEBHOOKS_ALLOWED_NETWORKS: '["127.0.0.1/32"]',
  PORTCULLIS_WEBHOOKS_RETRY_INITIAL_MS: '100',
  PORTCULLIS_WEBHOOKS_RETRY_MAX_MS: '300',
  PORTCULLIS_WEBHOOKS_POLL_INTERVAL_MS: '100',
  PORTCULLIS_WEBHOOKS_MAX_ATTEMPTS: '5',
  PORTCULLIS_WEBHOOKS_TIMEOUT_MS: '2000',
  PORTCULLIS_ANOMALY_FAILED_LOGINS_PER_ACCOUNT: '3',
  PORTCULLIS_SCANNER_ENABLED: 'false',
  PORTCULLIS_AUDIT_API_ENABLED: 'true',
  PORTCULLIS_ANOMALY_UNSIGNED_PUSH_GRACE_SECONDS: '1',
};

const SECRET = 'test-secret-0123456789-abcdefghij';

describe('webhooks', () => {
  let registry: AuthRegistry;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const users = new Map<string, Credentials>();
  const secrets: string[] = [SECRET];

  before(async () => {
    receiver = await startReceiver();
    registry = await startAuthRegistry(ENV);
    for (const project of ['team', 'other']) await ok(registry.api('POST', '/projects', { auth: admin, body: { name: project } }));
    for (const role of ['admin', 'maintainer', 'developer', 'reader']) {
      const user = await createUser(registry, `team-${role}`);
      users.set(role, user);
      await ok(registry.api('POST', '/projects/team/members', { auth: admin, body: { user: user.username, role } }));
    }
    const outsider = await createUser(registry, 'other-admin');
    await ok(registry.api('POST', '/projects/other/members', { auth: admin, body: { user: outsider.username, role: 'admin' } }));
    users.set('other admin', outsider);
    const robot = await ok(registry.api('POST', '/projects/team/robots', { auth: admin, body: { name: 'ci', grants: [{ repositories: ['team/**'], actions: ['pull', 'push'] }], expiresInDays: 1 } }));
    users.set('robot', { username: robot.robot.name, password: robot.secret });
  });

  after(async () => {
    await registry?.close();
    await receiver?.close();
  });

  const hooks = (path = '') => `/projects/team/webhooks${path}`;

  async function deliveries(id: string): Promise<any[]> {
    return (await ok(registry.api('GET', hooks(`/${id}/deliveries`), { auth: admin }))).deliveries;
  }

  async function push(repository: string, tag: string, as: Credentials = admin) {
    const token = await registry.token([`repository:${repository}:push,pull`], as);
    const pushed = await pushImage(registry, repository, tag, token);
    assert.equal(pushed.status, 201);
    return pushed;
  }

  test('a push is delivered as a signed CloudEvent; the documented recipe verifies it; the delivery log shows it', async () => {
    const created = await ok(registry.api('POST', hooks(), { auth: users.get('admin'), body: { name: 'ci', url: receiver.url, events: ['push', 'delete'], secret: SECRET } }));
    assert.equal(created.secret, undefined, 'a given secret is not echoed');
    assert.deepEqual(created.events, ['push', 'delete']);
    const before = receiver.received.length;
    const pushed = await push('team/app', 'v1');
    const got = await until('the push notification', () => receiver.received.slice(before).find((r) => r.headers['x-portcullis-event'] === 'push'));
    const signature = String(got.headers['x-portcullis-signature']);
    assert.ok(verify(SECRET, signature, got.body, Math.floor(Date.now() / 1000)), `signature ${signature} verifies`);
    assert.ok(!verify('another-secret-0123456789', signature, got.body, Math.floor(Date.now() / 1000)), 'a wrong secret does not verify');
    assert.ok(!verify(SECRET, signature, got.body.replace('team/app', 'team/evil'), Math.floor(Date.now() / 1000)), 'a changed body does not verify');
    assert.ok(!verify(SECRET, signature, got.body, Math.floor(Date.now() / 1000) + 3600), 'an old timestamp (replay) does not verify');
    assert.equal(got.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
    const event = JSON.parse(got.body);
    assert.equal(event.specversion, '1.0');
    assert.equal(event.type, 'io.portcullis.push');
    assert.equal(event.subject, `team/app@${pushed.digest}`);
    assert.equal(event.data.project, 'team');
    assert.equal(event.data.repository, 'team/app');
    assert.equal(event.data.digest, pushed.digest);
    assert.equal(event.data.tag, 'v1');
    assert.deepEqual(event.data.actor, { kind: 'user', name: 'admin' });
    const log = await until('the delivered entry', async () => (await deliveries(created.id)).find((d) => d.eventId === event.id && d.status === 'delivered'));
    assert.equal(log.attempts, 1);
    assert.equal(log.responseCode, 204);
    assert.equal(typeof log.latencyMs, 'number');
    assert.equal(log.id, got.headers['x-portcullis-delivery']);
    const detail = await ok(registry.api('GET', hooks(`/${created.id}/deliveries/${log.id}`), { auth: users.get('admin') }));
    assert.deepEqual(detail.payload, event);
    assert.equal(detail.attemptLog.length, 1);
    // pulls are not subscribed: nothing more arrives for this hook
    await ok(registry.api('DELETE', hooks(`/${created.id}`), { auth: admin }));
  });

  test('a failing receiver: retried with back-off, delivered once it recovers (at least once), every attempt logged', async () => {
    const created = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'flaky', url: receiver.url, events: ['push'], secret: SECRET } }));
    receiver.status = 503;
    const start = receiver.received.length;
    await push('team/flaky', 'v1');
    await until('two failed attempts', async () => (await deliveries(created.id)).find((d) => d.attempts >= 2 && d.status === 'pending'));
    receiver.status = 204;
    const done = await until('delivery', async () => (await deliveries(created.id)).find((d) => d.status === 'delivered'));
    assert.ok(done.attempts >= 3, `attempts ${done.attempts}`);
    const detail = await ok(registry.api('GET', hooks(`/${created.id}/deliveries/${done.id}`), { auth: admin }));
    assert.deepEqual(
      detail.attemptLog.map((a: any) => a.responseCode),
      [...Array(done.attempts - 1).fill(503), 204],
    );
    assert.equal(detail.attemptLog[0].error, 'HTTP 503');
    const ids = new Set(receiver.received.slice(start).map((r) => JSON.parse(r.body).id));
    assert.equal(ids.size, 1, 'every attempt carries the same CloudEvent id');
    // back-off grows: the gaps between attempts are not shorter than the first delay's jittered floor
    const times = detail.attemptLog.map((a: any) => Date.parse(a.at));
    for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 50, `gap ${times[i] - times[i - 1]} ms`);
    await ok(registry.api('DELETE', hooks(`/${created.id}`), { auth: admin }));
  });

  test('after maxAttempts a delivery is failed; redelivery sends it again with the same event id', async () => {
    const created = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'down', url: receiver.url, events: ['push'], secret: SECRET } }));
    receiver.status = 500;
    await push('team/down', 'v1');
    const failed = await until('failure', async () => (await deliveries(created.id)).find((d) => d.status === 'failed'));
    assert.equal(failed.attempts, 5);
    assert.equal(failed.responseCode, 500);
    // a pending delivery cannot be redelivered; an unknown one is 404
    assert.equal((await registry.api('POST', hooks(`/${created.id}/deliveries/00000000-0000-4000-8000-000000000000/redeliver`), { auth: admin })).status, 404);
    assert.equal((await registry.api('POST', hooks(`/${created.id}/deliveries/not-a-uuid/redeliver`), { auth: admin })).status, 404);
    receiver.status = 204;
    const again = await ok(registry.api('POST', hooks(`/${created.id}/deliveries/${failed.id}/redeliver`), { auth: users.get('admin') }), [202]);
    assert.equal(again.redeliveryOf, failed.id);
    assert.equal(again.eventId, failed.eventId);
    await until('redelivery', async () => (await deliveries(created.id)).find((d) => d.id === again.id && d.status === 'delivered'));
    await ok(registry.api('DELETE', hooks(`/${created.id}`), { auth: admin }));
  });

  test('the permission matrix: project admins and system administrators only', async () => {
    const hook = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'matrix', url: receiver.url, events: ['push'], enabled: false } }));
    const callers: Array<[string, Credentials | undefined, number]> = [
      ['anonymous', undefined, 401],
      ['reader', users.get('reader'), 403],
      ['developer', users.get('developer'), 403],
      ['maintainer', users.get('maintainer'), 403],
      ['robot', users.get('robot'), 403],
      ['admin of another project', users.get('other admin'), 403],
    ];
    const operations: Array<[string, string, string, unknown?]> = [
      ['list', 'GET', hooks()],
      ['create', 'POST', hooks(), { name: 'x', url: receiver.url, events: ['push'] }],
      ['get', 'GET', hooks(`/${hook.id}`)],
      ['update', 'PATCH', hooks(`/${hook.id}`), { enabled: true }],
      ['ping', 'POST', hooks(`/${hook.id}/ping`)],
      ['deliveries', 'GET', hooks(`/${hook.id}/deliveries`)],
      ['delete', 'DELETE', hooks(`/${hook.id}`)],
    ];
    for (const [who, auth, status] of callers) {
      for (const [what, method, path, body] of operations) {
        const res = await registry.api(method, path, { auth, body });
        assert.equal(res.status, status, `${who} ${what}: ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errors[0].code, status === 401 ? 'UNAUTHORIZED' : 'DENIED');
      }
    }
    // the other project's admin cannot reach this hook through their own project either
    assert.equal((await registry.api('GET', `/projects/other/webhooks/${hook.id}`, { auth: users.get('other admin') })).status, 404);
    const padmin = users.get('admin');
    for (const [what, method, path, body] of operations) {
      const res = await registry.api(method, path, { auth: padmin, body });
      assert.ok([200, 201, 202, 204].includes(res.status), `project admin ${what}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    const remaining = await ok(registry.api('GET', hooks(), { auth: admin }));
    assert.deepEqual(remaining.map((h: any) => h.name), ['x']);
    await ok(registry.api('DELETE', hooks(`/${remaining[0].id}`), { auth: admin }));
    // the OpenAPI document describes the routes
    const openapi = await ok(registry.api('GET', '/openapi.json'));
    assert.ok(openapi.paths['/api/v1/projects/{project}/webhooks'].post);
    assert.ok(openapi.paths['/api/v1/projects/{project}/webhooks/{id}/deliveries/{delivery}/redeliver'].post);
  });

  test('secrets: a generated one is shown once; none appears in any answer or log line', async () => {
    const created = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'gen', url: receiver.url, events: ['push'] } }));
    assert.match(created.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    secrets.push(created.secret);
    const rotated = 'rotated-secret-abcdefghijklmnop';
    secrets.push(rotated);
    const patched = await ok(registry.api('PATCH', hooks(`/${created.id}`), { auth: admin, body: { secret: rotated } }));
    assert.equal(patched.secret, undefined);
    const before = receiver.received.length;
    await ok(registry.api('POST', hooks(`/${created.id}/ping`), { auth: admin }), [202]);
    const got = await until('the ping', () => receiver.received.slice(before).find((r) => r.headers['x-portcullis-event'] === 'ping'));
    assert.ok(verify(rotated, String(got.headers['x-portcullis-signature']), got.body, Math.floor(Date.now() / 1000)), 'signed with the rotated secret');
    const answers = [
      await registry.api('GET', hooks(), { auth: admin }),
      await registry.api('GET', hooks(`/${created.id}`), { auth: admin }),
      await registry.api('GET', hooks(`/${created.id}/deliveries`), { auth: admin }),
    ];
    const audited = await until('the audit records of the changes', async () => {
      const res = await registry.api('GET', '/audit?action=webhook.changed&limit=200', { auth: admin });
      return res.body.records?.some((r: any) => r.details?.secretChanged === true && r.details?.change === 'updated') ? res : undefined;
    });
    answers.push(audited);
    const detail = await registry.api('GET', hooks(`/${created.id}/deliveries/${String(got.headers['x-portcullis-delivery'])}`), { auth: admin });
    assert.equal(detail.status, 200);
    answers.push(detail);
    for (const answer of [...answers]) for (const secret of secrets) assert.ok(!JSON.stringify(answer.body).includes(secret), 'no secret in an answer');
    for (const secret of secrets) assert.ok(!registry.output().includes(secret), 'no secret in the log');
    // at rest: sealed, not plain
    const { readFileSync } = await import('node:fs');
    const db = readFileSync(`${registry.dataDir}/notifications/webhooks.sqlite`);
    for (const secret of secrets) assert.ok(!db.includes(secret), 'no plain secret in the database file');
    await ok(registry.api('DELETE', hooks(`/${created.id}`), { auth: admin }));
  });

  test('SSRF: private, loopback, link-local and reserved targets are refused unless allowed; bad input gets 400 and writes nothing', async () => {
    const refused = [
      'http://127.0.0.2:8080/hook',
      'http://10.1.2.3/hook',
      'http://192.168.1.1/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]:8080/hook',
      'http://[fd00::1]/hook',
      'http://0.0.0.0:80/',
      'http://[::ffff:10.0.0.1]/',
    ];
    for (const url of refused) {
      const res = await registry.api('POST', hooks(), { auth: admin, body: { name: 'ssrf', url, events: ['push'] } });
      assert.equal(res.status, 400, url);
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
      assert.match(res.body.errors[0].message, /loopback, private, link-local or reserved|allowedNetworks/, url);
    }
    const bad: Array<[unknown, RegExp]> = [
      [{ name: 'x', url: 'ftp://example.com/', events: ['push'] }, /ftp/],
      [{ name: 'x', url: 'http://user:pw@127.0.0.1/', events: ['push'] }, /credentials/],
      [{ name: 'x', url: receiver.url, events: ['nonsense'] }, /events/],
      [{ name: 'x', url: receiver.url, events: [] }, /events/],
      [{ name: 'x', url: receiver.url, events: ['push'], secret: 'short' }, /secret/],
      [{ name: '../x', url: receiver.url, events: ['push'] }, /name/],
      [{ name: 'x', url: receiver.url, events: ['push'], extra: 1 }, /extra|Unrecognized/i],
    ];
    for (const [body, message] of bad) {
      const res = await registry.api('POST', hooks(), { auth: admin, body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.errors[0].message, message);
    }
    const ok1 = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'valid', url: receiver.url, events: ['push'] } }));
    const res = await registry.api('PATCH', hooks(`/${ok1.id}`), { auth: admin, body: { url: 'http://169.254.169.254/' } });
    assert.equal(res.status, 400);
    assert.equal((await ok(registry.api('GET', hooks(`/${ok1.id}`), { auth: admin }))).url, receiver.url, 'a refused change leaves the webhook as it was');
    assert.equal((await registry.api('POST', hooks(), { auth: admin, body: { name: 'valid', url: receiver.url, events: ['push'] } })).status, 409);
    await ok(registry.api('DELETE', hooks(`/${ok1.id}`), { auth: admin }));
    assert.deepEqual(await ok(registry.api('GET', hooks(), { auth: admin })), []);
  });

  test('anomaly alerts: GET /api/v1/alerts for system administrators; a project alert reaches the project webhooks', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await registry.fetch('/auth/token?service=portcullis&scope=repository:team/app:pull', { headers: { authorization: basic({ username: 'team-reader', password: `wrong-${i}` }) } });
      assert.equal(res.status, 401);
    }
    const alerts = await until('the failed-logins alert', async () => {
      const res = await registry.api('GET', '/alerts?rule=failed-logins', { auth: admin });
      return res.body.alerts?.length ? res.body.alerts : undefined;
    });
    assert.equal(alerts[0].subject, 'user:team-reader');
    assert.equal(alerts[0].facts.failures, 3);
    assert.equal((await registry.api('GET', '/alerts')).status, 401);
    assert.equal((await registry.api('GET', '/alerts', { auth: users.get('admin') })).status, 403);
    assert.equal((await registry.api('GET', '/alerts?rule=bogus', { auth: admin })).status, 400);

    const hook = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'alerts', url: receiver.url, events: ['alert'], secret: SECRET } }));
    const before = receiver.received.length;
    await push('team/release', '2.0.0');
    await push('team/release', '2.0.0'); // a different image under a released tag
    const got = await until('the alert notification', () => receiver.received.slice(before).find((r) => r.headers['x-portcullis-event'] === 'alert'));
    const event = JSON.parse(got.body);
    assert.equal(event.type, 'io.portcullis.alert');
    assert.equal(event.data.rule, 'released-tag-moved');
    assert.equal(event.data.tag, '2.0.0');
    assert.match(event.data.reason, /released tag team\/release:2\.0\.0 moved by user:admin/);
    assert.ok(verify(SECRET, String(got.headers['x-portcullis-signature']), got.body, Math.floor(Date.now() / 1000)));
    const metrics = await registry.fetch('/metrics');
    assert.ok(metrics.status === 200 || metrics.status === 404);
    await ok(registry.api('DELETE', hooks(`/${hook.id}`), { auth: admin }));
  });

  test('signatures required: an unsigned push is notified as signature.missing, then raises the unsigned-push alert after the grace period', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await ok(registry.api('PUT', '/projects/team/trust-policy', { auth: admin, body: { requireSignatureToPull: true, policy: { keys: [{ name: 'ci-key', publicKey: pub }] } } }));
    const hook = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'sigs', url: receiver.url, events: ['signature.missing', 'alert'], secret: SECRET } }));
    try {
      const before = receiver.received.length;
      const pushed = await push('team/unsigned', 'v1', users.get('developer'));
      const missing = await until('signature.missing', () => receiver.received.slice(before).find((r) => r.headers['x-portcullis-event'] === 'signature.missing'));
      const event = JSON.parse(missing.body);
      assert.equal(event.type, 'io.portcullis.signature.missing');
      assert.equal(event.data.digest, pushed.digest);
      assert.equal(event.data.verdict, 'unsigned');
      const alert = await until('the unsigned-push alert', () => receiver.received.slice(before).find((r) => r.headers['x-portcullis-event'] === 'alert' && JSON.parse(r.body).data.rule === 'unsigned-push'));
      const data = JSON.parse(alert.body).data;
      assert.equal(data.digest, pushed.digest);
      assert.equal(data.subject, 'user:team-developer');
      assert.match(data.reason, /requires signatures, is still unsigned 1 s later/);
      const listed = await ok(registry.api('GET', '/alerts?rule=unsigned-push&project=team', { auth: admin }));
      assert.equal(listed.alerts[0].digest, pushed.digest);
    } finally {
      await ok(registry.api('DELETE', '/projects/team/trust-policy', { auth: admin }));
      await ok(registry.api('DELETE', hooks(`/${hook.id}`), { auth: admin }));
    }
  });

  test('a restart (SIGKILL) keeps pending deliveries; they are delivered after the restart', async () => {
    const created = await ok(registry.api('POST', hooks(), { auth: admin, body: { name: 'restart', url: receiver.url, events: ['push', 'delete'], secret: SECRET } }));
    receiver.status = 503;
    await push('team/restart', 'v1');
    await until('a failed attempt', async () => (await deliveries(created.id)).find((d) => d.attempts >= 1 && d.status === 'pending'));
    await registry.stop('SIGKILL');
    receiver.status = 204;
    const count = receiver.received.length;
    const restarted = await startRegistry({ dataDir: registry.dataDir, env: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: ADMIN_PASSWORD, PORTCULLIS_GC_INTERVAL_SECONDS: '0', ...ENV } });
    try {
      const api = async (path: string) => (await (await fetch(`${restarted.url}/api/v1${path}`, { headers: { authorization: basic(admin) } })).json()) as any;
      const done = await until('delivery after the restart', async () => (await api(hooks(`/${created.id}/deliveries`))).deliveries.find((d: any) => d.status === 'delivered'));
      assert.ok(done.attempts >= 2);
      const got = receiver.received.slice(count).find((r) => r.headers['x-portcullis-delivery'] === done.id);
      assert.ok(got, 'the receiver got it after the restart');
      assert.equal(JSON.parse(got.body).data.repository, 'team/restart');
    } finally {
      await restarted.stop();
    }
  });
});
