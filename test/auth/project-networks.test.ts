/**
 * Per-project IP allow/deny lists over real sockets against a registry process that trusts one
 * proxy address (server.trustProxy: [127.0.0.2]): the client address is chosen by binding the
 * client socket to a loopback address (127.0.0.1, .2, .3) and, through the trusted proxy, by
 * X-Forwarded-For. A table of addresses (IPv4, IPv6, IPv4-mapped IPv6, forwarded through the
 * trusted proxy, spoofed from an untrusted client) against the token endpoint and /v2/; every
 * kind of /v2/ route; the catalog; the scanner, signature and traceability APIs; the management API (validation, permissions, OpenAPI, audit);
 * `portcullis admin project networks` seen by the running server within the refresh interval;
 * and a `skopeo` pull refused through a proxy forwarding a denied address and allowed directly.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildImage, randomFile, readOciLayout, writeOciLayout } from '../acceptance/helpers/oci.ts';
import { type ClientEnvironment, createClientEnvironment, makeTempDir, removeDir, requireTools, run, runExpectFailure } from '../acceptance/helpers/tools.ts';
import { type AuthRegistry, type Credentials, admin, basic, claims, createUser, ok, pushImage, runPortcullis, startAuthRegistry } from './helpers.ts';

const PROXY = '127.0.0.2';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): any;
}

/** One HTTP request from a chosen loopback source address, optionally with X-Forwarded-For. */
function send(registry: AuthRegistry, method: string, path: string, options: { from?: string; xff?: string; auth?: string; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const [host, port] = registry.host.split(':');
  const headers: Record<string, string> = { ...options.headers };
  if (options.xff !== undefined) headers['x-forwarded-for'] = options.xff;
  if (options.auth !== undefined) headers.authorization = options.auth;
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: Number(port), method, path, headers, localAddress: options.from ?? '127.0.0.1', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A token for `scopes` asked from a given address; returns it with its `access` claim. */
async function tokenFrom(registry: AuthRegistry, scopes: string[], credentials: Credentials | undefined, from: { from?: string; xff?: string }): Promise<{ token: string; access: Array<{ type: string; name: string; actions: string[] }> }> {
  const query = new URLSearchParams({ service: 'portcullis' });
  for (const scope of scopes) query.append('scope', scope);
  const res = await send(registry, 'GET', `/auth/token?${query}`, { ...from, ...(credentials ? { auth: basic(credentials) } : {}) });
  assert.equal(res.status, 200, `token request: ${res.text}`);
  const token = res.json().token as string;
  return { token, access: claims(token).access ?? [] };
}

const portcullis = runPortcullis;

const allowed = ['198.51.100.0/24', '2001:db8::/32', '127.0.0.1'];
const denied = ['198.51.100.13', '2001:db8:bad::/48'];

describe('per-project IP allow and deny lists', () => {
  let registry: AuthRegistry;
  let dev: Credentials;
  let manifestDigest: string;
  let layerDigest: string;

  before(async () => {
    registry = await startAuthRegistry({ PORTCULLIS_SERVER_TRUST_PROXY: JSON.stringify([PROXY]), PORTCULLIS_AUTH_PROJECT_NETWORKS_REFRESH_SECONDS: '1', PORTCULLIS_AUDIT_API_ENABLED: 'true', PORTCULLIS_AUTH_BASIC_AUTH: 'true' });
    for (const [name, visibility] of [['secure', 'private'], ['open', 'private'], ['pub', 'public']] as const) await ok(registry.api('POST', '/projects', { auth: admin, body: { name, visibility } }));
    dev = await createUser(registry, 'dev');
    for (const project of ['secure', 'open']) await ok(registry.api('POST', `/projects/${project}/members`, { auth: admin, body: { user: 'dev', role: 'developer' } }));
    for (const repository of ['secure/app', 'open/app', 'pub/app']) {
      const pushed = await pushImage(registry, repository, 'v1', await registry.token([`repository:${repository}:pull,push`], admin));
      assert.equal(pushed.status, 201);
      if (repository === 'secure/app') {
        manifestDigest = pushed.digest;
        layerDigest = JSON.parse(pushed.manifest.toString()).layers[0].digest;
      }
    }
    await ok(registry.api('PUT', '/projects/secure/networks', { auth: admin, body: { allow: allowed, deny: denied } }));
  });

  after(async () => {
    await registry?.close();
  });

  // via: how the client reaches the registry; expected: whether project `secure` may be reached.
  const table: Array<{ name: string; from: string; xff?: string; reachable: boolean }> = [
    { name: 'IPv4 loopback in the allow list', from: '127.0.0.1', reachable: true },
    { name: 'IPv4 loopback not in the allow list', from: '127.0.0.3', reachable: false },
    { name: 'forwarded IPv4 in an allowed block', from: PROXY, xff: '198.51.100.7', reachable: true },
    { name: 'forwarded IPv4 in the deny list (deny wins over allow)', from: PROXY, xff: '198.51.100.13', reachable: false },
    { name: 'forwarded IPv4 outside every list', from: PROXY, xff: '203.0.113.9', reachable: false },
    { name: 'forwarded IPv4-mapped IPv6 in an allowed IPv4 block', from: PROXY, xff: '::ffff:198.51.100.7', reachable: true },
    { name: 'forwarded IPv4-mapped IPv6 of a denied IPv4 address', from: PROXY, xff: '::ffff:198.51.100.13', reachable: false },
    { name: 'forwarded IPv6 in an allowed block', from: PROXY, xff: '2001:db8::5', reachable: true },
    { name: 'forwarded IPv6 in a denied block', from: PROXY, xff: '2001:db8:bad::1', reachable: false },
    { name: 'forwarded IPv6 outside every list', from: PROXY, xff: '2001:db9::1', reachable: false },
    { name: 'chain: the right-most untrusted entry counts, not what the client wrote first', from: PROXY, xff: '203.0.113.9, 198.51.100.7', reachable: true },
    { name: 'chain: a client cannot hide behind an allowed address it writes itself', from: PROXY, xff: '198.51.100.7, 203.0.113.9', reachable: false },
    { name: 'spoofed X-Forwarded-For from an untrusted client is ignored (refused)', from: '127.0.0.3', xff: '198.51.100.7', reachable: false },
    { name: 'spoofed X-Forwarded-For from an untrusted client is ignored (allowed)', from: '127.0.0.1', xff: '203.0.113.9', reachable: true },
  ];

  for (const row of table) {
    test(`${row.reachable ? 'allowed' : 'refused'}: ${row.name}`, async () => {
      const via = { from: row.from, xff: row.xff };
      // The token endpoint grants the project's scopes only to a reachable address (never an error)...
      for (const who of [admin, dev]) {
        const { token, access } = await tokenFrom(registry, ['repository:secure/app:pull', 'repository:open/app:pull'], who, via);
        const secure = access.find((entry) => entry.name === 'secure/app');
        assert.deepEqual(secure?.actions ?? [], row.reachable ? ['pull'] : [], `${who.username}: scope for secure/app`);
        assert.deepEqual(access.find((entry) => entry.name === 'open/app')?.actions, ['pull'], 'other projects are not affected');
        // ...and /v2/ answers 403 DENIED naming the reason, without the lists.
        const res = await send(registry, 'GET', '/v2/secure/app/manifests/v1', { ...via, auth: `Bearer ${token}`, headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
        if (row.reachable) assert.equal(res.status, 200, res.text);
        else {
          assert.equal(res.status, 403, res.text);
          const error = res.json().errors[0];
          assert.equal(error.code, 'DENIED');
          assert.match(error.message, /project "secure".*network rules/);
          assert.doesNotMatch(res.text, /198\.51|2001:db8|127\.0\.0/, 'the lists are not disclosed');
        }
      }
      // A token obtained from an allowed address does not work from a refused one.
      const { token } = await tokenFrom(registry, ['repository:secure/app:pull'], dev, { from: '127.0.0.1' });
      const replay = await send(registry, 'GET', '/v2/secure/app/manifests/v1', { ...via, auth: `Bearer ${token}`, headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(replay.status, row.reachable ? 200 : 403);
    });
  }

  test('every /v2/ route of the project is refused from a refused address, and direct Basic auth too', async () => {
    const good = { from: '127.0.0.1' };
    const bad = { from: PROXY, xff: '203.0.113.9' };
    const { token } = await tokenFrom(registry, ['repository:secure/app:pull,push,delete'], admin, good);
    const bearer = `Bearer ${token}`;
    const routes: Array<[string, string]> = [
      ['GET', '/v2/secure/app/manifests/v1'],
      ['HEAD', `/v2/secure/app/manifests/${manifestDigest}`],
      ['GET', '/v2/secure/app/tags/list'],
      ['GET', `/v2/secure/app/referrers/${manifestDigest}`],
      ['GET', `/v2/secure/app/blobs/${layerDigest}`],
      ['POST', '/v2/secure/app/blobs/uploads/'],
      ['PUT', '/v2/secure/app/manifests/v2'],
      ['DELETE', `/v2/secure/app/manifests/${manifestDigest}`],
      ['DELETE', `/v2/secure/app/blobs/${layerDigest}`],
    ];
    for (const [method, path] of routes) {
      const res = await send(registry, method, path, { ...bad, auth: bearer, ...(method === 'PUT' ? { body: '{}', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } } : {}) });
      assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
      if (method !== 'HEAD') assert.equal(res.json().errors[0].code, 'DENIED', `${method} ${path}`);
    }
    for (const [method, path] of routes.filter(([m]) => m === 'GET' || m === 'HEAD')) {
      assert.equal((await send(registry, method, path, { ...good, auth: bearer })).status, 200, `${method} ${path} from an allowed address`);
    }
    // A cross-repository mount from the refused project becomes an ordinary upload (202, not 201).
    const { token: pushOpen } = await tokenFrom(registry, ['repository:open/mounted:pull,push', 'repository:secure/app:pull'], admin, good);
    const mount = await send(registry, 'POST', `/v2/open/mounted/blobs/uploads/?mount=${layerDigest}&from=secure/app`, { ...bad, auth: `Bearer ${pushOpen}` });
    assert.equal(mount.status, 202, mount.text);
    const mounted = await send(registry, 'POST', `/v2/open/mounted/blobs/uploads/?mount=${layerDigest}&from=secure/app`, { ...good, auth: `Bearer ${pushOpen}` });
    assert.equal(mounted.status, 201, mounted.text);
    // The project's own lists do not touch other projects or the API base.
    assert.equal((await send(registry, 'GET', '/v2/', { ...bad, auth: bearer })).status, 200);
    // Direct Basic auth on /v2/ (auth.basicAuth) is checked the same way.
    const basicRefused = await send(registry, 'GET', '/v2/secure/app/tags/list', { ...bad, auth: basic(dev) });
    assert.equal(basicRefused.status, 403, basicRefused.text);
    assert.match(basicRefused.json().errors[0].message, /network rules/);
    assert.equal((await send(registry, 'GET', '/v2/secure/app/tags/list', { ...good, auth: basic(dev) })).status, 200);
    // A caller without the right learns nothing about the lists: the usual denial.
    const stranger = await createUser(registry, 'stranger');
    const strangerRefused = await send(registry, 'GET', '/v2/secure/app/tags/list', { ...bad, auth: basic(stranger) });
    assert.equal(strangerRefused.status, 403);
    assert.doesNotMatch(strangerRefused.text, /network/);
    // The OAuth2 form of the token endpoint leaves the scope out too (and says so in `scope`).
    for (const [via, scope] of [[bad, 'repository:open/app:pull'], [good, 'repository:secure/app:pull repository:open/app:pull']] as const) {
      const form = new URLSearchParams({ grant_type: 'password', username: dev.username, password: dev.password, service: 'portcullis', scope: 'repository:secure/app:pull repository:open/app:pull' });
      const res = await send(registry, 'POST', '/auth/token', { ...via, body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json().scope, scope);
    }
  });

  test('a public project with lists: anonymous pulls from a refused address get 403, others pull', async () => {
    await ok(registry.api('PUT', '/projects/pub/networks', { auth: admin, body: { deny: ['127.0.0.3'] } }));
    try {
      for (const [from, status] of [['127.0.0.1', 200], ['127.0.0.3', 403]] as const) {
        const { token, access } = await tokenFrom(registry, ['repository:pub/app:pull'], undefined, { from });
        assert.equal(access.length, status === 200 ? 1 : 0);
        const res = await send(registry, 'GET', '/v2/pub/app/tags/list', { from, auth: `Bearer ${token}` });
        assert.equal(res.status, status, res.text);
      }
      // A private project stays a 401 for anonymous callers: the lists reveal nothing to them.
      const { token } = await tokenFrom(registry, ['repository:secure/app:pull'], undefined, { from: '127.0.0.3' });
      assert.equal((await send(registry, 'GET', '/v2/secure/app/tags/list', { from: '127.0.0.3', auth: `Bearer ${token}` })).status, 401);
    } finally {
      await ok(registry.api('PUT', '/projects/pub/networks', { auth: admin, body: {} }));
    }
  });

  test('the other APIs on repository data (scanner, signatures, traceability) honour the lists too', async () => {
    const bad = { from: PROXY, xff: '203.0.113.9' };
    for (const path of [`/api/v1/repositories/secure/app/scans/${manifestDigest}`, '/api/v1/repositories/secure/app/manifests/v1/signatures']) {
      const refused = await send(registry, 'GET', path, { ...bad, auth: basic(dev) });
      assert.equal(refused.status, 403, `${path}: ${refused.text}`);
      assert.match(refused.json().errors[0].message, /network rules/);
      const allowed = await send(registry, 'GET', path, { from: '127.0.0.1', auth: basic(dev) });
      assert.notEqual(allowed.status, 403, `${path} from an allowed address: ${allowed.text}`);
    }
    const graph = (via: { from: string; xff?: string }) => send(registry, 'GET', `/api/v1/trace/${manifestDigest}`, { ...via, auth: basic(dev) });
    const inside = await graph({ from: '127.0.0.1' });
    assert.equal(inside.status, 200, inside.text);
    assert.equal((await graph(bad)).status, 404, 'an image only in a refused project is not shown');
  });

  test('the catalog lists no repository of a project the address may not reach', async () => {
    const catalog = async (via: { from: string; xff?: string }) => {
      const { token } = await tokenFrom(registry, ['registry:catalog:*'], admin, via);
      const res = await send(registry, 'GET', '/v2/_catalog', { ...via, auth: `Bearer ${token}` });
      assert.equal(res.status, 200, res.text);
      return res.json().repositories as string[];
    };
    const inside = await catalog({ from: '127.0.0.1' });
    assert.ok(inside.includes('secure/app') && inside.includes('open/app'), JSON.stringify(inside));
    const outside = await catalog({ from: PROXY, xff: '198.51.100.13' });
    assert.ok(!outside.some((name) => name.startsWith('secure/')), JSON.stringify(outside));
    assert.ok(outside.includes('open/app'));
  });

  test('management API: validation (400 INVALID_REQUEST), permissions, OpenAPI, audit record, immediate effect', async () => {
    for (const [body, pattern] of [
      [{ allow: ['10.0.0.0/33'] }, /allow\[0\].*prefix/],
      [{ deny: ['10.0.0.0/8', 'example.com'] }, /deny\[1\].*not an address or CIDR/],
      [{ allow: ['2001:db8::/129'] }, /allow\[0\]/],
      [{ allow: ['10.0.0.0/8/9'] }, /allow\[0\]/],
      [{ allow: '10.0.0.0/8' }, /body\.allow/],
      [{ allow: ['10.0.0.0/8'], other: true }, /body/],
    ] as const) {
      const res = await registry.api('PUT', '/projects/open/networks', { auth: admin, body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.errors[0].code, 'INVALID_REQUEST');
      assert.match(res.body.errors[0].message, pattern);
    }
    assert.deepEqual((await ok(registry.api('GET', '/projects/open/networks', { auth: admin }))).allow, [], 'nothing stored by a refused change');
    // A developer may not read or change the lists; a project admin may; anonymous callers must log in.
    assert.equal((await registry.api('GET', '/projects/open/networks', { auth: dev })).status, 403);
    assert.equal((await registry.api('PUT', '/projects/open/networks', { auth: dev, body: { deny: ['127.0.0.1'] } })).status, 403);
    assert.equal((await registry.api('PUT', '/projects/open/networks', { body: { deny: ['127.0.0.1'] } })).status, 401);
    // An unknown project answers like GET /projects/{project} does (no existence oracle).
    assert.equal((await registry.api('GET', '/projects/nope/networks', { auth: admin })).status, (await registry.api('GET', '/projects/nope', { auth: admin })).status);
    const owner = await createUser(registry, 'owner');
    await ok(registry.api('POST', '/projects/open/members', { auth: admin, body: { user: 'owner', role: 'admin' } }));
    const set = await ok(registry.api('PUT', '/projects/open/networks', { auth: owner, body: { deny: [' 127.0.0.3 '] } }));
    assert.deepEqual([set.allow, set.deny, set.updatedBy], [[], ['127.0.0.3'], 'owner']);
    // Visible at once in this process.
    const { token } = await tokenFrom(registry, ['repository:open/app:pull'], dev, { from: '127.0.0.1' });
    assert.equal((await send(registry, 'GET', '/v2/open/app/tags/list', { from: '127.0.0.3', auth: `Bearer ${token}` })).status, 403);
    assert.equal((await send(registry, 'GET', '/v2/open/app/tags/list', { from: '127.0.0.1', auth: `Bearer ${token}` })).status, 200);
    await ok(registry.api('PUT', '/projects/open/networks', { auth: owner, body: {} }));
    assert.equal((await send(registry, 'GET', '/v2/open/app/tags/list', { from: '127.0.0.3', auth: `Bearer ${token}` })).status, 200);
    // The management API itself is not restricted by a project's lists (nobody locks themselves out).
    assert.equal((await send(registry, 'GET', '/api/v1/projects/secure/networks', { from: '127.0.0.3', auth: basic(admin) })).status, 200);
    const document = (await (await registry.fetch('/api/v1/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    assert.ok(document.paths['/api/v1/projects/{project}/networks']?.put && document.paths['/api/v1/projects/{project}/networks']?.get);
    const audit = await send(registry, 'GET', '/api/v1/audit?limit=200', { auth: basic(admin) });
    assert.equal(audit.status, 200, audit.text);
    const records = (audit.json().records as unknown[]).map((record) => JSON.stringify(record)).filter((text) => text.includes('project.networks.updated'));
    assert.ok(records.some((text) => text.includes('"owner"') && text.includes('127.0.0.3')), 'the change is audited with who and what');
  });

  test('portcullis admin project networks: validates, shows, and a running server applies it within the refresh interval', async () => {
    const data = ['--data-dir', registry.dataDir];
    const bad = await portcullis(['admin', 'project', 'networks', 'open', '--allow', '300.1.2.3', ...data]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /allow\[0\]/);
    const set = await portcullis(['admin', 'project', 'networks', 'open', '--allow', '198.51.100.0/24', '--deny', '127.0.0.3', ...data]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /allow: 198\.51\.100\.0\/24\ndeny: 127\.0\.0\.3/);
    const { token } = await tokenFrom(registry, ['repository:open/app:pull'], dev, { from: PROXY, xff: '198.51.100.7' });
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline && (status = (await send(registry, 'GET', '/v2/open/app/tags/list', { from: '127.0.0.1', auth: `Bearer ${token}` })).status) !== 403) await new Promise((r) => setTimeout(r, 200));
    assert.equal(status, 403, 'the server picked up a change made by another process');
    assert.equal((await send(registry, 'GET', '/v2/open/app/tags/list', { from: PROXY, xff: '198.51.100.7', auth: `Bearer ${token}` })).status, 200);
    const shown = await portcullis(['admin', 'project', 'networks', 'open', ...data]);
    assert.match(shown.stdout, /allow: 198\.51\.100\.0\/24/);
    assert.equal((await portcullis(['admin', 'project', 'networks', 'open', '--clear', ...data])).code, 0);
    assert.match((await portcullis(['admin', 'project', 'networks', 'open', ...data])).stdout, /allow: \(any address\)\ndeny: \(none\)/);
  });

  describe('skopeo', () => {
    let clients: ClientEnvironment;
    let work: string;
    let proxy: Server;
    let proxyHost: string;

    before(async () => {
      work = await makeTempDir('project-networks');
      // A reverse proxy on loopback, connecting from the trusted proxy address and forwarding a refused client address.
      proxy = createServer((incoming, outgoing) => {
        const [host, port] = registry.host.split(':');
        const upstream = httpRequest({ host, port: Number(port), method: incoming.method, path: incoming.url, headers: { ...incoming.headers, 'x-forwarded-for': '203.0.113.9' }, localAddress: PROXY }, (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        });
        upstream.on('error', () => outgoing.destroy());
        incoming.pipe(upstream);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      clients = await createClientEnvironment(registry.host);
    });

    after(async () => {
      await new Promise((resolve) => proxy?.close(resolve));
      await clients?.cleanup();
      await removeDir(work);
    });

    test('skopeo copy is refused from a denied address (through the proxy) and allowed from an allowed one', async (t) => {
      if (!requireTools(t, 'skopeo')) return;
      const image = buildImage({ layers: [[randomFile('data/n.bin', 16 * 1024)]] });
      const layout = join(work, 'layout');
      await writeOciLayout(layout, { src: image });
      const creds = `${dev.username}:${dev.password}`;
      const skopeo = (...args: string[]) => run('skopeo', [...clients.skopeo, ...args], { env: clients.env });
      await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${layout}:src`, `docker://${registry.host}/secure/skopeo:v1`);
      const refused = await runExpectFailure('skopeo', [...clients.skopeo, 'copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${proxyHost}/secure/skopeo:v1`, `oci:${join(work, 'refused')}:back`], { env: clients.env });
      assert.match(refused.stderr, /denied/i);
      assert.match(refused.stderr, /network rules/);
      const out = join(work, 'allowed');
      await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${registry.host}/secure/skopeo:v1`, `oci:${out}:back`);
      assert.equal((await readOciLayout(out, 'back')).descriptor.digest, image.manifest.descriptor.digest);
      // The same proxy reaches a project without lists.
      await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${layout}:src`, `docker://${proxyHost}/open/skopeo:v1`);
    });
  });
});
