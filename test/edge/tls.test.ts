/**
 * The HTTPS listener with a CA generated here (openssl): a client trusting the CA connects with
 * TLS 1.2 and 1.3; TLS 1.1 is refused; a replaced certificate is served without a restart;
 * skopeo logs in with --tls-verify=true and the CA in --cert-dir (and fails without it), then
 * pushes and pulls an image over verified TLS through the token flow;
 * plain HTTP on a non-loopback address is refused by the configuration.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, readFile, rename } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, test } from 'node:test';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { buildImage, randomFile, readOciLayout, writeOciLayout } from '../acceptance/helpers/oci.ts';

const dir = await mkdtemp(join(tmpdir(), 'portcullis-tls-'));
let registry: Registry | undefined;
after(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA, and a server certificate for 127.0.0.1 signed by it (`name`.crt / `name`.key). */
async function issue(name: string): Promise<void> {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name} test CA`);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
  await writeFile(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

function get(port: number, ca: Buffer, tls: { minVersion?: 'TLSv1' | 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'; ciphers?: string } = {}): Promise<{ status: number; protocol: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v2/', ca, agent: false, ...tls }, (response) => {
      const socket = response.socket as TLSSocket;
      const result = { status: response.statusCode ?? 0, protocol: socket.getProtocol() ?? '', issuer: String(socket.getPeerCertificate().issuer.CN ?? '') };
      response.resume();
      response.on('end', () => resolve(result));
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTPS: TLS 1.2+, a CA-verified client, certificate reload without restart', async () => {
  await issue('one');
  await issue('two');
  await writeFile(join(dir, 'server.crt'), await readFile(join(dir, 'one.crt')));
  await writeFile(join(dir, 'server.key'), await readFile(join(dir, 'one.key')));
  const config = validateConfig({
    server: { listen: '127.0.0.1:0', tls: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), reloadIntervalSeconds: 1 } },
    storage: { dataDir: join(dir, 'data') },
    log: { level: 'silent' },
    gc: { intervalSeconds: 0 },
    audit: { enabled: false },
    scanner: { enabled: false },
  });
  registry = await buildRegistry(config, { adminPassword: 'Tls-test-password-1234' });
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (registry.app.server.address() as { port: number }).port;
  const caOne = await readFile(join(dir, 'one-ca.crt'));
  const caTwo = await readFile(join(dir, 'two-ca.crt'));

  const first = await get(port, caOne);
  assert.equal(first.status, 401, 'the registry answers over HTTPS');
  assert.equal(first.protocol, 'TLSv1.3');
  assert.equal((await get(port, caOne, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  await assert.rejects(get(port, caOne, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }), 'TLS 1.1 is refused');
  // TLS 1.2 with CBC suites only (ECDHE, but no AEAD): no common cipher.
  await assert.rejects(get(port, caOne, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA' }), /handshake|cipher/i, 'CBC suites are refused');
  assert.equal((await get(port, caOne, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).protocol, 'TLSv1.2', 'an AEAD suite is accepted');
  await assert.rejects(get(port, caTwo), /self-signed|unable to verify|certificate/i, 'a client not trusting the CA refuses the server');

  // Replace the pair (new files moved into place), as a certificate manager would.
  await writeFile(join(dir, 'new.key'), await readFile(join(dir, 'two.key')));
  await writeFile(join(dir, 'new.crt'), await readFile(join(dir, 'two.crt')));
  await rename(join(dir, 'new.key'), join(dir, 'server.key'));
  await rename(join(dir, 'new.crt'), join(dir, 'server.crt'));
  let issuer = '';
  for (let i = 0; i < 40 && issuer !== 'two test CA'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    issuer = await get(port, caTwo).then((r) => r.issuer, () => '');
  }
  assert.equal(issuer, 'two test CA', 'the new certificate is served without a restart');

  // A real client verifying the server with the test CA (--cert-dir), through the token flow.
  const certDir = join(dir, 'certs');
  await mkdir(certDir);
  await writeFile(join(certDir, 'ca.crt'), caTwo);
  // Asynchronously: the server runs in this process.
  const login = (certs: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile('skopeo', ['login', '--tls-verify=true', '--cert-dir', certs, '--authfile', join(dir, 'auth.json'), '-u', 'admin', '--password-stdin', `127.0.0.1:${port}`], (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
      child.stdin?.end('Tls-test-password-1234');
    });
  assert.match(await login(certDir), /Login Succeeded/);
  const emptyDir = join(dir, 'no-certs');
  await mkdir(emptyDir);
  await assert.rejects(login(emptyDir), /certificate|x509/i, 'without the CA the client refuses the server');

  // Push and pull over verified TLS through the token flow, with the login above.
  await registry.access!.store.createProject({ name: 'tls', visibility: 'private', createdBy: 'admin' });
  const image = buildImage({ layers: [[randomFile('data/tls.bin', 32 * 1024)]] });
  await writeOciLayout(join(dir, 'layout'), { src: image });
  await writeFile(join(dir, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const skopeo = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile('skopeo', ['--policy', join(dir, 'policy.json'), ...args], (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
  const remote = `docker://127.0.0.1:${port}/tls/app:v1`;
  await skopeo('copy', '--dest-tls-verify=true', '--dest-cert-dir', certDir, '--dest-authfile', join(dir, 'auth.json'), `oci:${join(dir, 'layout')}:src`, remote);
  await skopeo('copy', '--src-tls-verify=true', '--src-cert-dir', certDir, '--src-authfile', join(dir, 'auth.json'), remote, `oci:${join(dir, 'back')}:back`);
  assert.equal((await readOciLayout(join(dir, 'back'), 'back')).descriptor.digest, image.manifest.descriptor.digest, 'pulled over TLS as pushed');
  await assert.rejects(skopeo('copy', '--src-tls-verify=true', '--src-cert-dir', emptyDir, '--src-authfile', join(dir, 'auth.json'), remote, `oci:${join(dir, 'never')}:x`), /certificate|x509/i);
});

test('plain HTTP is refused on a non-loopback address unless allowed', () => {
  assert.throws(() => validateConfig({ server: { listen: '0.0.0.0:5000' } }), /server\.tls|allowPlainHttp/);
  assert.doesNotThrow(() => validateConfig({ server: { listen: '0.0.0.0:5000', allowPlainHttp: true } }));
  assert.doesNotThrow(() => validateConfig({ server: { listen: '0.0.0.0:5000', tls: { certFile: '/c.pem', keyFile: '/k.pem' } } }));
  assert.doesNotThrow(() => validateConfig({ server: { listen: '127.0.0.1:5000' } }));
});
