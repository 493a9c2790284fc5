import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { describeResponse, finishUpload, getBlob, pushBlob, putManifestOk, startUpload } from './helpers/http.ts';
import { buildImage, randomFile, readOciLayout, sha256 } from './helpers/oci.ts';
import { startTarget, type Target } from './helpers/target.ts';
import { createClientEnvironment, makeTempDir, removeDir, requireTools, run, type ClientEnvironment } from './helpers/tools.ts';

/** What happened to a TLS handshake attempted against the plain-HTTP port. */
function tlsProbe(host: string, port: number): Promise<{ outcome: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let settled = false;
    const done = (outcome: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ outcome, ms: Date.now() - started });
    };
    const socket = tlsConnect({ host, port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
    const timer = setTimeout(() => done('timeout'), 5_000);
    socket.once('secureConnect', () => done('handshake-succeeded'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(`error:${error.code ?? error.message}`));
    socket.once('close', () => done('closed'));
  });
}

/** Sends a raw ClientHello over a plain TCP socket; collects what the server answers until it closes. */
function rawClientHello(host: string, port: number, hello: Buffer): Promise<{ answer: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = netConnect({ host, port }, () => socket.write(hello));
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), 5_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => finish(true));
    socket.once('error', () => finish(true));
  });
}

/** Captures the bytes of a genuine TLS 1.2/1.3 ClientHello produced by Node's TLS stack. */
function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    import('node:net').then(({ createServer }) => {
      const server = createServer((socket) => {
        socket.once('data', (chunk: Buffer) => {
          socket.destroy();
          server.close();
          resolve(chunk);
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (!address || typeof address === 'string') return reject(new Error('no address'));
        const client = tlsConnect({ host: '127.0.0.1', port: address.port, servername: 'registry.example', rejectUnauthorized: false });
        client.on('error', () => undefined);
      });
    }, reject);
  });
}

describe('transport and upload protocol (raw HTTP)', () => {
  let target: Target;

  before(async () => {
    target = await startTarget();
  });

  after(async () => {
    await target?.stop();
  });

  async function assertHealthy(context: string): Promise<void> {
    assert.ok(target.alive(), `registry process died ${context}:\n${target.output().slice(-4000)}`);
    const response = await fetch(`${target.url}/v2/`);
    const body = await response.text();
    assert.equal(response.status, 200, `GET /v2/ ${context}:\n${await describeResponse(response, body)}`);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
  }

  test('an HTTPS probe (TLS ClientHello) on the plain-HTTP port fails fast and does not harm the server', async (t) => {
    await assertHealthy('before the probe');
    const [hostname, port] = target.host.split(':') as [string, string];

    // What Go clients (skopeo/podman/buildah with --tls-verify=false) do first: a TLS handshake.
    const probes = await Promise.all(Array.from({ length: 5 }, () => tlsProbe(hostname, Number(port))));
    for (const probe of probes) {
      assert.notEqual(probe.outcome, 'handshake-succeeded', 'a plain-HTTP port cannot complete a TLS handshake');
      assert.notEqual(probe.outcome, 'timeout', 'the TLS probe must be answered or closed promptly (clients would hang before falling back to HTTP)');
    }

    // The same with raw bytes: the server answers (typically `HTTP/1.1 400`) and/or closes the connection.
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'captured bytes are a TLS handshake record');
    const raw = await rawClientHello(hostname, Number(port), hello);
    t.diagnostic(`TLS probes: ${probes.map((probe) => `${probe.outcome} after ${probe.ms} ms`).join('; ')}`);
    t.diagnostic(`raw ClientHello answered ${JSON.stringify(raw.answer.toString('latin1').split('\r\n')[0])}, closed=${raw.closed}`);
    assert.ok(raw.closed, `server must close the connection after a ClientHello; it answered ${JSON.stringify(raw.answer.toString('latin1').slice(0, 200))} and kept it open for 5 s`);
    if (raw.answer.length > 0) {
      assert.match(raw.answer.toString('latin1'), /^HTTP\/1\.[01] 4\d\d /, 'if the server answers a ClientHello it must be with an HTTP 4xx status line');
    }

    await assertHealthy('after TLS probes');

    // Garbage and a half-sent request line must not break the server either.
    await rawClientHello(hostname, Number(port), Buffer.from('\x00\x01\x02\x03 not http\r\n\r\n', 'latin1'));
    await assertHealthy('after a garbage request');
  });

  test('chunked blob upload: POST, PATCH chunks with Content-Range, status GET, PUT with the last chunk', async () => {
    const image = buildImage({ layers: [[randomFile('chunked.bin', 300 * 1024)]] });
    const layer = image.layers[0]!;
    const data = layer.bytes;
    const repo = 'raw/chunked';

    let location = await startUpload(target.url, repo);
    const cuts = [0, 100_000, 200_000, data.length - 5_000];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const chunk = data.subarray(cuts[i]!, cuts[i + 1]!);
      const response = await fetch(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${cuts[i]}-${cuts[i + 1]! - 1}` },
        body: chunk,
      });
      const body = await response.text();
      assert.equal(response.status, 202, `PATCH chunk ${i}:\n${await describeResponse(response, body)}`);
      assert.equal(response.headers.get('range'), `0-${cuts[i + 1]! - 1}`, `Range after chunk ${i}`);
      assert.ok(response.headers.get('location'), 'PATCH response has a Location for the next chunk');
      location = new URL(response.headers.get('location')!, target.url);
    }

    const status = await fetch(location);
    await status.arrayBuffer();
    assert.equal(status.status, 204, `GET upload status:\n${await describeResponse(status, '')}`);
    assert.equal(status.headers.get('range'), `0-${cuts.at(-1)! - 1}`);
    assert.ok(status.headers.get('docker-upload-uuid'), 'upload status carries Docker-Upload-UUID');

    const put = await finishUpload(target.url, location, layer.descriptor.digest, data.subarray(cuts.at(-1)!));
    const putBody = await put.text();
    assert.equal(put.status, 201, `final PUT with the last chunk:\n${await describeResponse(put, putBody)}`);
    assert.equal(put.headers.get('docker-content-digest'), layer.descriptor.digest);
    assert.ok(put.headers.get('location'), 'PUT response has the blob Location');

    const head = await fetch(`${target.url}/v2/${repo}/blobs/${layer.descriptor.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(data.length));
    const { bytes } = await getBlob(target.url, repo, layer.descriptor.digest);
    assert.ok(bytes.equals(data), 'chunk-uploaded blob reads back byte-identical');

    // The chunk-uploaded layer is usable in an image.
    await pushBlob(target.url, repo, image.config.bytes);
    await putManifestOk(target.url, repo, 'v1', image.manifest.bytes, image.manifest.descriptor.mediaType);
  });

  test('chunked upload: an out-of-order chunk is rejected with 416 Requested Range Not Satisfiable', async (t) => {
    if (target.name === 'distribution') {
      // distribution 2.8 appends the chunk regardless of its Content-Range (answers 202 with Range 0-40959).
      t.skip('distribution 2.8 does not enforce chunk order (known deviation from the OCI spec "MUST respond 416")');
      return;
    }
    const data = randomFile('x', 64 * 1024).content;
    const repo = 'raw/chunk-order';
    const location = await startUpload(target.url, repo);
    const first = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${32 * 1024 - 1}` },
      body: data.subarray(0, 32 * 1024),
    });
    await first.text();
    assert.equal(first.status, 202);
    const next = new URL(first.headers.get('location')!, target.url);

    const gap = await fetch(next, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${40 * 1024}-${48 * 1024 - 1}` },
      body: data.subarray(40 * 1024, 48 * 1024),
    });
    const gapBody = await gap.text();
    assert.equal(gap.status, 416, `a chunk starting at 40960 when 32768 bytes were received must be 416:\n${await describeResponse(gap, gapBody)}`);

    // The upload is still usable from where it really is.
    const status = await fetch(next);
    await status.arrayBuffer();
    assert.equal(status.headers.get('range'), `0-${32 * 1024 - 1}`, 'rejected chunk did not change the upload');
    const put = await finishUpload(target.url, next, sha256(data), data.subarray(32 * 1024));
    const putBody = await put.text();
    assert.equal(put.status, 201, `completing the upload after a rejected chunk:\n${await describeResponse(put, putBody)}`);
    assert.ok((await getBlob(target.url, repo, sha256(data))).bytes.equals(data));
  });

  test('upload completed with a digest that does not match the content fails with 400 DIGEST_INVALID', async () => {
    const data = randomFile('x', 16 * 1024).content;
    const repo = 'raw/bad-digest';
    const claimed = sha256('something else');
    const location = await startUpload(target.url, repo);
    const put = await finishUpload(target.url, location, claimed, data);
    const putBody = await put.text();
    assert.equal(put.status, 400, `PUT with a digest that does not match the content:\n${await describeResponse(put, putBody)}`);
    assert.match(putBody, /DIGEST_INVALID/);
    const head = await fetch(`${target.url}/v2/${repo}/blobs/${claimed}`, { method: 'HEAD' });
    await head.arrayBuffer();
    assert.equal(head.status, 404, 'nothing stored under the claimed digest');
    const real = await fetch(`${target.url}/v2/${repo}/blobs/${sha256(data)}`, { method: 'HEAD' });
    await real.arrayBuffer();
    assert.equal(real.status, 404, 'nothing stored under the real digest either');
  });
});

describe('chunk-uploaded image through a real client', () => {
  let target: Target;
  let clients: ClientEnvironment;
  let work: string;

  before(async () => {
    target = await startTarget();
    clients = await createClientEnvironment(target.host);
    work = await makeTempDir('transport');
  });

  after(async () => {
    await target?.stop();
    await clients?.cleanup();
    await removeDir(work);
  });

  test('skopeo pulls an image whose layer was uploaded in many small PATCH chunks', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = buildImage({ layers: [[randomFile('many-chunks.bin', 40 * 1024)]] });
    const layer = image.layers[0]!;
    let location = await startUpload(target.url, 'raw/many-chunks');
    const size = 4096;
    for (let offset = 0; offset < layer.bytes.length; offset += size) {
      const chunk = layer.bytes.subarray(offset, offset + size);
      const response = await fetch(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      await response.arrayBuffer();
      assert.equal(response.status, 202, `PATCH at offset ${offset}`);
      location = new URL(response.headers.get('location')!, target.url);
    }
    const put = await finishUpload(target.url, location, layer.descriptor.digest);
    await put.arrayBuffer();
    assert.equal(put.status, 201, 'PUT with an empty body completes a chunked upload');
    await pushBlob(target.url, 'raw/many-chunks', image.config.bytes);
    await putManifestOk(target.url, 'raw/many-chunks', 'v1', image.manifest.bytes, image.manifest.descriptor.mediaType);

    const out = `${work}/out`;
    await run('skopeo', [...clients.skopeo, 'copy', '--src-tls-verify=false', `docker://${target.host}/raw/many-chunks:v1`, `oci:${out}:v1`], { env: clients.env });
    const pulled = await readOciLayout(out, 'v1');
    assert.equal(pulled.descriptor.digest, image.manifest.descriptor.digest);
    assert.ok((await pulled.blob(layer.descriptor.digest)).equals(layer.bytes), 'layer assembled from 10 chunks pulls back byte-identical');
  });
});
