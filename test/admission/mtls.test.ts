/**
 * The dedicated admission listener with client certificates (mTLS): certificates made with
 * openssl; the API server's certificate from the configured CA and with an accepted name is
 * answered, another name gets 401, no certificate or one from another CA fails the handshake,
 * and the webhooks are then not served on the registry's own listener.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { review, workloadObject } from './fixtures.ts';
import { type AdmissionHarness, HOST, startAdmissionRegistry } from './helpers.ts';

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: p, project: team }
rules:
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [admission] }
`;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, and certificates it signs (EC P-256). */
function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`], dir);
}
/** A certificate signed by `ca`, with the extensions in ext.cnf (subjectAltName or extendedKeyUsage). */
function makeCert(dir: string, ca: string, name: string, cn: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', 'ext.cnf'], dir);
}

describe('admission listener with client certificates (mTLS)', () => {
  let dir: string;
  let h: AdmissionHarness;
  let port: number;
  const files: Record<string, Buffer> = {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-admission-mtls-'));
    makeCa(dir, 'server-ca');
    makeCa(dir, 'client-ca');
    makeCa(dir, 'other-ca');
    await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    makeCert(dir, 'server-ca', 'server', 'localhost');
    await writeFile(join(dir, 'ext.cnf'), 'extendedKeyUsage=clientAuth\n');
    makeCert(dir, 'client-ca', 'apiserver', 'kube-apiserver');
    makeCert(dir, 'client-ca', 'intruder', 'someone-else');
    makeCert(dir, 'other-ca', 'foreign', 'kube-apiserver');
    for (const f of ['server-ca.crt', 'apiserver.crt', 'apiserver.key', 'intruder.crt', 'intruder.key', 'foreign.crt', 'foreign.key']) files[f] = await readFile(join(dir, f));
    h = await startAdmissionRegistry(POLICY, [
      { path: ['admission', 'auth', 'tokenFile'], value: undefined },
      { path: ['admission', 'listen'], value: '127.0.0.1:0' },
      { path: ['admission', 'tls'], value: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), clientCaFile: join(dir, 'client-ca.crt'), clientNames: ['kube-apiserver'] } },
    ]);
    port = (h.registry.admission!.listener!.server.address() as AddressInfo).port;
  });
  after(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function post(client: 'apiserver' | 'intruder' | 'foreign' | undefined, body: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = request({
        host: '127.0.0.1', port, path: '/admission/validate', method: 'POST', servername: 'localhost',
        ca: files['server-ca.crt'],
        ...(client ? { cert: files[`${client}.crt`], key: files[`${client}.key`] } : {}),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  const body = () => review(workloadObject('Pod', 'p', 'apps', { containers: [{ name: 'c', image: `${HOST}/team/app:latest` }] }));

  it('answers the API server\'s certificate', async () => {
    const res = await post('apiserver', body());
    assert.equal(res.status, 200);
    assert.equal(res.body.response.allowed, false);
    assert.match(res.body.response.status.message, /tag latest is not in repository team\/app/);
  });

  it('refuses a certificate with another name (401), and no certificate or a foreign CA at the handshake', async () => {
    const other = await post('intruder', body());
    assert.equal(other.status, 401);
    assert.match(other.body.errors[0].message, /client certificate someone-else is not one of admission\.tls\.clientNames/);
    await assert.rejects(post(undefined, body()));
    await assert.rejects(post('foreign', body()));
  });

  it('does not serve the webhooks on the registry listener then', async () => {
    const res = await fetch(`${h.base}/admission/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()) });
    assert.equal(res.status, 404);
  });
});
