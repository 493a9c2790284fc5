/**
 * Mutual TLS for robots, with CAs generated here (openssl): the HTTPS listener requests client
 * certificates without requiring them; a robot bound to a certificate (by key) is accepted only
 * with that certificate (also its refresh tokens); a certificate-only binding (by subject) logs
 * the robot in with the certificate alone (GET, and POST client_credentials); certificates of
 * another CA count for nothing; skopeo presents its client certificate from --cert-dir.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { requireTools } from '../acceptance/helpers/tools.ts';

const ADMIN = 'Mtls-test-password-1234';
const dir = await mkdtemp(join(tmpdir(), 'portcullis-mtls-'));
let registry: Registry;
let port: number;
let serverCa: Buffer;
const certs: Record<string, { cert: Buffer; key: Buffer }> = {};

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function ca(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
}

async function leaf(name: string, issuer: string, subject: string, ext: string): Promise<void> {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  await writeFile(join(dir, `${name}.ext`), ext);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  certs[name] = { cert: await readFile(join(dir, `${name}.crt`)), key: await readFile(join(dir, `${name}.key`)) };
}

function call(method: string, path: string, options: { client?: string; auth?: string; body?: string; type?: string } = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.auth) headers.authorization = options.auth;
    if (options.type) headers['content-type'] = options.type;
    const tls = options.client ? { cert: certs[options.client]!.cert, key: certs[options.client]!.key } : {};
    const req = request({ host: '127.0.0.1', port, path, method, ca: serverCa, agent: false, headers, ...tls }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const admin = basic('admin', ADMIN);
const json = (body: unknown) => ({ body: JSON.stringify(body), type: 'application/json', auth: admin });
const form = (fields: Record<string, string>) => ({ body: new URLSearchParams(fields).toString(), type: 'application/x-www-form-urlencoded' });
const access = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; access: Array<{ name: string; actions: string[] }> };
const spki = (name: string) => createHash('sha256').update(new X509Certificate(certs[name]!.cert).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

let builder: { id: string; name: string; secret: string };
let deployer: { id: string; name: string; secret: string };

before(async () => {
  ca('server-ca');
  ca('client-ca');
  ca('rogue-ca');
  await leaf('server', 'server-ca', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await leaf('ci', 'client-ca', '/O=Example/CN=ci', 'subjectAltName=URI:spiffe://example/ci\nextendedKeyUsage=clientAuth\n');
  await leaf('other', 'client-ca', '/CN=other', 'extendedKeyUsage=clientAuth\n');
  await leaf('rogue', 'rogue-ca', '/O=Example/CN=ci', 'subjectAltName=URI:spiffe://example/ci\nextendedKeyUsage=clientAuth\n');
  serverCa = await readFile(join(dir, 'server-ca.crt'));
  const config = validateConfig({
    server: { listen: '127.0.0.1:0', tls: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), clientCaFile: join(dir, 'client-ca.crt') } },
    storage: { dataDir: join(dir, 'data') },
    log: { level: 'silent' },
    gc: { intervalSeconds: 0 },
    audit: { enabled: false },
    scanner: { enabled: false },
    auth: { credentialCacheSeconds: 60 },
  });
  registry = await buildRegistry(config, { adminPassword: ADMIN });
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  port = (registry.app.server.address() as { port: number }).port;
  assert.equal((await call('POST', '/api/v1/projects', json({ name: 'ci' }))).status, 201);
  const robot = async (name: string, actions: string[]) => {
    const res = await call('POST', '/api/v1/projects/ci/robots', json({ name, grants: [{ repositories: ['ci/**'], actions }], expiresInDays: 1 }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.robot.id, name: res.body.robot.name, secret: res.body.secret };
  };
  builder = await robot('builder', ['pull', 'push']);
  deployer = await robot('deployer', ['pull']);
});

after(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

const token = (options: Parameters<typeof call>[2], scope = 'repository:ci/app:pull,push', extra = '') => call('GET', `/auth/token?service=portcullis&scope=${scope}${extra}`, options);

test('client certificates are requested, not required: clients without one work as before', async () => {
  assert.equal((await call('GET', '/v2/')).status, 401);
  assert.equal((await token({ auth: admin })).status, 200);
  assert.equal((await token({ auth: admin, client: 'rogue' })).status, 200, 'an unverifiable certificate is ignored, not fatal');
});

test("a robot bound to a certificate's key is accepted only with that certificate", async () => {
  const secret = basic(builder.name, builder.secret);
  assert.equal((await token({ auth: secret })).status, 200, 'before binding, the secret alone works');
  const bound = await call('POST', `/api/v1/projects/ci/robots/${builder.id}/certificate`, json({ spkiSha256: spki('ci') }));
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  assert.equal(bound.body.certificateOnly, false);
  assert.equal((await token({ auth: secret })).status, 401, 'secret without certificate (also not from the credential cache)');
  assert.equal((await token({ auth: secret, client: 'other' })).status, 401, 'secret with another certificate of the CA');
  assert.equal((await token({ auth: secret, client: 'rogue' })).status, 401, 'secret with a certificate of another CA');
  const ok = await token({ auth: secret, client: 'ci' }, 'repository:ci/app:pull,push', '&offline_token=true');
  assert.equal(ok.status, 200);
  assert.deepEqual(access(ok.body.token).access, [{ type: 'repository', name: 'ci/app', actions: ['pull', 'push'] }]);
  // Its refresh token needs the certificate too.
  const refresh = (client?: string) => call('POST', '/auth/token', { ...form({ grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, service: 'portcullis', scope: 'repository:ci/app:pull' }), client });
  assert.equal((await refresh()).status, 400);
  assert.equal((await refresh('ci')).status, 200);
  // Basic auth on the management API obeys the binding as well.
  assert.equal((await call('GET', '/api/v1/me', { auth: secret })).status, 401);
  assert.equal((await call('GET', '/api/v1/me', { auth: secret, client: 'ci' })).status, 200);
});

test('a certificate-only binding logs the robot in with the certificate alone', async () => {
  const bad = await call('POST', `/api/v1/projects/ci/robots/${deployer.id}/certificate`, json({ spkiSha256: 'zz' }));
  assert.equal(bad.status, 400);
  const bound = await call('POST', `/api/v1/projects/ci/robots/${deployer.id}/certificate`, json({ subject: 'CN=other', certificateOnly: true }));
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  const viaGet = await token({ client: 'other' });
  assert.equal(viaGet.status, 200);
  assert.equal(access(viaGet.body.token).sub, deployer.name);
  assert.deepEqual(access(viaGet.body.token).access, [{ type: 'repository', name: 'ci/app', actions: ['pull'] }], 'only what the robot may do');
  const viaPost = await call('POST', '/auth/token', { ...form({ grant_type: 'client_credentials', service: 'portcullis', scope: 'repository:ci/app:pull' }), client: 'other' });
  assert.equal(viaPost.status, 200, JSON.stringify(viaPost.body));
  assert.equal(viaPost.body.scope, 'repository:ci/app:pull');
  const noCert = await call('POST', '/auth/token', form({ grant_type: 'client_credentials', service: 'portcullis' }));
  assert.deepEqual([noCert.status, noCert.body.error], [401, 'invalid_client']);
  // The key-bound robot's certificate is not certificate-only; a rogue CN=ci is nobody.
  assert.deepEqual(access((await token({ client: 'ci' })).body.token).access, [], 'anonymous');
  assert.deepEqual(access((await token({ client: 'rogue' })).body.token).access, [], 'anonymous');
  // A revoked robot's certificate no longer logs in.
  assert.equal((await call('POST', `/api/v1/projects/ci/robots/${deployer.id}/revoke`, { auth: admin })).status, 200);
  assert.equal((await token({ client: 'other' })).status, 401);
});

test('binding API: read, remove, project admins only', async () => {
  const read = await call('GET', `/api/v1/projects/ci/robots/${builder.id}/certificate`, { auth: admin });
  assert.deepEqual([read.status, read.body.spkiSha256, read.body.robot], [200, spki('ci'), builder.name]);
  assert.equal((await call('GET', `/api/v1/projects/ci/robots/${builder.id}/certificate`, { auth: basic(builder.name, builder.secret), client: 'ci' })).status, 403, 'a robot manages nothing');
  assert.equal((await call('GET', `/api/v1/robots/${builder.id}/certificate`, { auth: admin })).status, 404, 'not a system robot');
});

test('skopeo presents its client certificate from --cert-dir', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const withCert = join(dir, 'certs-client');
  const withoutCert = join(dir, 'certs-ca-only');
  await mkdir(withCert);
  await mkdir(withoutCert);
  for (const target of [withCert, withoutCert]) await writeFile(join(target, 'ca.crt'), serverCa);
  await writeFile(join(withCert, 'client.cert'), certs.ci!.cert);
  await writeFile(join(withCert, 'client.key'), certs.ci!.key);
  const login = (certDir: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile('skopeo', ['login', '--tls-verify=true', '--cert-dir', certDir, '--authfile', join(dir, 'auth.json'), '-u', builder.name, '--password-stdin', `127.0.0.1:${port}`], (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
      child.stdin?.end(builder.secret);
    });
  assert.match(await login(withCert), /Login Succeeded/);
  await assert.rejects(login(withoutCert), /401|unauthorized|invalid/i, 'the bound robot cannot log in without its certificate');
});
