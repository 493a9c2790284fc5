/**
 * Vulnerability data as an OCI artifact (air-gapped sites): `portcullis vulndb push` packs OSV
 * records and pushes them to a token-auth registry; that registry imports them itself from its
 * blob store (scanner.vulnerabilityData.sources), again whenever the tag moves; `vulndb import
 * oci://...` imports them over HTTP into a CI job's data directory; skopeo carries the artifact to
 * another repository as it would across an air gap. Content hashes equal those of importing the
 * same records from a directory; bad artifacts are refused with a reason and change nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { parseOsvArtifact, readTar } from '../../src/registry/scanner/vulndb/artifact.ts';
import { SourceError } from '../../src/registry/scanner/vulndb/sources.ts';
import { buildImage } from '../acceptance/helpers/oci.ts';
import { createClientEnvironment, requireTools, run, type ClientEnvironment } from '../acceptance/helpers/tools.ts';
import { ADMIN_PASSWORD, admin, basic, sha256 } from '../auth/helpers.ts';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';
import { osvSubset, waitFor } from './support.ts';
import { fixturesSkip, requireScannerFixtures } from './vuln-fixtures.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const skip = fixturesSkip();
const fixtures = requireScannerFixtures() ?? '';
const ARTIFACT = 'application/vnd.portcullis.osv.v1';

function portcullis(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_') && k !== 'REGISTRY_AUTH_FILE' && k !== 'XDG_RUNTIME_DIR') clean[k] = v;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bin, ...args], { env: { ...clean, HOME: tmpdir(), ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

describe('OSV data as an OCI artifact', { skip }, () => {
  let work: string;
  let registry: RunningRegistry;
  let host: string;
  let osv: string;
  let authFile: string;
  let env: Record<string, string>;
  let dirHash: string;

  const api = async (path: string): Promise<any> => {
    const res = await fetch(new URL(`/api/v1${path}`, registry.url), { headers: { authorization: basic(admin) } });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return res.json();
  };
  const registrySource = async (name: string): Promise<any> => ((await api('/vulndb')).sources as any[]).find((s) => s.source === name);
  const put = async (path: string, body: Buffer, contentType: string): Promise<Response> => {
    const token = await (await fetch(new URL(`/auth/token?service=portcullis&scope=repository:security/osv:pull,push`, registry.url), { headers: { authorization: basic(admin) } })).json();
    return fetch(new URL(path, registry.url), { method: path.includes('/blobs/') ? 'POST' : 'PUT', headers: { authorization: `Bearer ${(token as { token: string }).token}`, 'content-type': contentType }, body });
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'portcullis-osvoci-'));
    osv = await osvSubset(fixtures, ['Ubuntu', 'Debian']);
    const configFile = join(work, 'config.yaml');
    await writeFile(configFile, ['scanner:', '  vulnerabilityData:', '    reloadIntervalSeconds: 0', '    sources:', '      - repository: security/osv', '        tag: latest', ''].join('\n'));
    registry = await startRegistry({ configFile, env: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: ADMIN_PASSWORD, PORTCULLIS_GC_INTERVAL_SECONDS: '0' } });
    host = new URL(registry.url).host;
    for (const name of ['security', 'mirror']) {
      const res = await fetch(new URL('/api/v1/projects', registry.url), { method: 'POST', headers: { authorization: basic(admin), 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
      assert.equal(res.status, 201, await res.text());
    }
    authFile = join(work, 'auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${admin.username}:${admin.password}`).toString('base64') } } }));
    env = { REGISTRY_AUTH_FILE: authFile };
    // The reference: the same records imported from a directory.
    const local = await portcullis(['vulndb', 'import', osv, '--data-dir', join(work, 'dir-import'), '--json']);
    assert.equal(local.code, 0, local.stderr);
    dirHash = JSON.parse(local.stdout).meta.contentHash;
  });
  after(async () => {
    await registry?.stop();
    await rm(registry?.dataDir ?? '/nonexistent', { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    await rm(osv, { recursive: true, force: true });
  });

  test('vulndb push: the artifact as defined; the registry imports it from its blob store (same content hash as a directory import)', async () => {
    const pushed = await portcullis(['vulndb', 'push', osv, `${host}/security/osv:latest`, '--json'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    const result = JSON.parse(pushed.stdout);
    assert.equal(result.records, 20);
    const res = await fetch(new URL(`/v2/security/osv/manifests/latest`, registry.url), {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json', authorization: `Bearer ${((await (await fetch(new URL("/auth/token?service=portcullis&scope=repository:security/osv:pull", registry.url), { headers: { authorization: basic(admin) } })).json()) as { token: string }).token}` },
    });
    const manifest = JSON.parse(Buffer.from(await res.arrayBuffer()).toString());
    assert.equal(manifest.artifactType, ARTIFACT);
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.empty.v1+json');
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0].mediaType, 'application/zip');
    assert.equal(manifest.annotations['dev.portcullis.osv.records'], '20');
    assert.ok(manifest.annotations['org.opencontainers.image.created']);
    assert.ok(manifest.annotations['dev.portcullis.osv.source']);

    const source = await waitFor('the registry to import its source', async () => ((await registrySource('registry:security/osv:latest'))?.digest === result.digest ? registrySource('registry:security/osv:latest') : undefined));
    assert.equal(source.kind, 'oci');
    assert.equal(source.records, 20);
    assert.equal(source.contentHash, dirHash, 'content hash independent of packaging');
    assert.equal(source.origin, manifest.annotations['dev.portcullis.osv.source']);
    assert.equal((await api('/vulndb')).records, 20);
  });

  test('vulndb import oci://: over HTTP with the auth file\'s credentials and the token flow; the same digest again is unchanged', async () => {
    const dataDir = join(work, 'ci');
    const first = await portcullis(['vulndb', 'import', `oci://${host}/security/osv:latest`, '--data-dir', dataDir, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout);
    assert.equal(report.status, 'imported');
    assert.equal(report.meta.contentHash, dirHash);
    assert.match(report.meta.digest, /^sha256:[a-f0-9]{64}$/);
    const again = await portcullis(['vulndb', 'import', `oci://${host}/security/osv:latest`, '--data-dir', dataDir], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /unchanged/);
    const status = JSON.parse((await portcullis(['vulndb', 'status', '--data-dir', dataDir, '--json'])).stdout);
    assert.equal(status.records, 20);
    assert.equal(status.sources[0].source, `oci://${host}/security/osv:latest`);
    assert.equal(status.sources[0].digest, report.meta.digest);

    // No credentials: a clear refusal, nothing imported.
    await writeFile(join(work, 'empty.json'), '{"auths":{}}');
    const denied = await portcullis(['vulndb', 'import', `oci://${host}/security/osv:latest`, '--data-dir', join(work, 'anon')], { REGISTRY_AUTH_FILE: join(work, 'empty.json') });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /vulndb import: .*(401|denied|UNAUTHORIZED)/i);
    // An image is not OSV data.
    const notOsv = await portcullis(['vulndb', 'import', `oci://${host}/security/osv:nothing`, '--data-dir', join(work, 'anon')], env);
    assert.equal(notOsv.code, 1);
    assert.match(notOsv.stderr, /no such manifest/);
  });

  test('a moved tag is imported again at once; a bad artifact is refused and changes nothing', async () => {
    const smaller = await osvSubset(fixtures, ['Ubuntu', 'Debian']);
    try {
      const { readdir } = await import('node:fs/promises');
      const first = (await readdir(join(smaller, 'Ubuntu'))).sort()[0]!;
      await unlink(join(smaller, 'Ubuntu', first));
      const pushed = await portcullis(['vulndb', 'push', smaller, `${host}/security/osv:latest`, '--json'], env);
      assert.equal(pushed.code, 0, pushed.stderr);
      const digest = JSON.parse(pushed.stdout).digest;
      await waitFor('the moved tag to be imported', async () => ((await registrySource('registry:security/osv:latest'))?.digest === digest ? true : undefined), 10_000);
      assert.equal((await api('/vulndb')).records, 19);
    } finally {
      await rm(smaller, { recursive: true, force: true });
    }
    const before = await registrySource('registry:security/osv:latest');
    // An artifact whose zip layer is not a zip.
    const junk = Buffer.from('this is not a zip file at all');
    assert.equal((await put(`/v2/security/osv/blobs/uploads/?digest=${sha256(junk)}`, junk, 'application/octet-stream')).status, 201);
    const empty = Buffer.from('{}');
    assert.equal((await put(`/v2/security/osv/blobs/uploads/?digest=${sha256(empty)}`, empty, 'application/octet-stream')).status, 201);
    const bad = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: ARTIFACT,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
        layers: [{ mediaType: 'application/zip', digest: sha256(junk), size: junk.length }],
      }),
    );
    assert.equal((await put('/v2/security/osv/manifests/latest', bad, 'application/vnd.oci.image.manifest.v1+json')).status, 201);
    const cli = await portcullis(['vulndb', 'import', `oci://${host}/security/osv:latest`, '--data-dir', join(work, 'bad')], env);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /not a readable zip/);
    // The server tried too (the tag moved): the database is as it was.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(await registrySource('registry:security/osv:latest'), before);
    assert.equal((await api('/vulndb')).records, 19);
  });

  test('skopeo carries the artifact to another repository (as across an air gap); it imports the same', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const pushed = await portcullis(['vulndb', 'push', osv, `${host}/security/osv:v2`, '--json'], env);
    assert.equal(pushed.code, 0, pushed.stderr);
    let clients: ClientEnvironment | undefined;
    try {
      clients = await createClientEnvironment(host);
      await writeFile(clients.env.REGISTRY_AUTH_FILE!, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${admin.username}:${admin.password}`).toString('base64') } } }));
      const layout = join(work, 'carried');
      await run('skopeo', [...clients.skopeo, 'copy', '--src-tls-verify=false', `docker://${host}/security/osv:v2`, `oci:${layout}:osv`], { env: clients.env });
      await run('skopeo', [...clients.skopeo, 'copy', '--dest-tls-verify=false', `oci:${layout}:osv`, `docker://${host}/mirror/osv:latest`], { env: clients.env });
    } finally {
      await clients?.cleanup();
    }
    const imported = await portcullis(['vulndb', 'import', `oci://${host}/mirror/osv:latest`, '--data-dir', join(work, 'mirror'), '--json'], env);
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal(JSON.parse(imported.stdout).meta.contentHash, dirHash);
  });
});

describe('OSV artifact format', () => {
  const layer = (mediaType: string) => ({ mediaType, digest: `sha256:${'a'.repeat(64)}`, size: 10 });
  const manifest = (m: object) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }));

  test('anything but OSV data is refused with a reason', () => {
    assert.throws(() => parseOsvArtifact(Buffer.from('{')), /not JSON/);
    assert.throws(() => parseOsvArtifact(manifest({ artifactType: 'application/spdx+json', layers: [layer('application/zip')] })), /not OSV data: the artifact type is "application\/spdx\+json"/);
    assert.throws(() => parseOsvArtifact(manifest({ config: { mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [layer('application/zip')] })), /not OSV data/);
    assert.throws(() => parseOsvArtifact(manifest({ artifactType: ARTIFACT, layers: [] })), /no layers/);
    assert.throws(() => parseOsvArtifact(manifest({ artifactType: ARTIFACT, layers: [layer('application/x-executable')] })), /unsupported media type/);
    assert.throws(() => parseOsvArtifact(manifest({ artifactType: ARTIFACT, layers: [{ ...layer('application/zip'), digest: 'md5:abc' }] })), /digest must be/);
    assert.throws(
      () => parseOsvArtifact(manifest({ artifactType: ARTIFACT, layers: [{ ...layer('application/zip'), size: 2000 }] }), { maxEntries: 10, maxEntryBytes: 100, maxTotalBytes: 1000, maxDownloadBytes: 1000, maxDepth: 4 }),
      /2000 bytes > 1000/,
    );
    const ok = parseOsvArtifact(manifest({ artifactType: ARTIFACT, layers: [layer('application/zip'), layer('application/vnd.oci.image.layer.v1.tar+gzip')], annotations: { a: 'b', n: 1 } }));
    assert.deepEqual(
      ok.layers.map((l) => l.format),
      ['zip', 'tar+gzip'],
    );
    assert.deepEqual(ok.annotations, { a: 'b' });
  });

  test('tar layers: records read, other files skipped, limits and truncation are errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-osvtar-'));
    try {
      const image = buildImage({
        layers: [
          [
            { path: 'osv/DSA-1.json', content: Buffer.from('{"id":"DSA-1"}') },
            { path: 'osv/README', content: Buffer.from('not a record') },
            { path: 'osv/GHSA-2.yaml', content: Buffer.from('id: GHSA-2\n') },
          ],
        ],
      });
      const gz = image.layers[0]!.bytes;
      await writeFile(join(dir, 'l.tgz'), gz);
      const names: string[] = [];
      for await (const e of readTar(join(dir, 'l.tgz'), true)) names.push(e.name);
      assert.deepEqual(names, ['osv/DSA-1.json', 'osv/GHSA-2.yaml']);
      const limits = { maxEntries: 1, maxEntryBytes: 1000, maxTotalBytes: 10_000, maxDownloadBytes: 10_000, maxDepth: 4 };
      await assert.rejects(async () => {
        for await (const _ of readTar(join(dir, 'l.tgz'), true, limits));
      }, /too many entries/);
      const { gunzipSync } = await import('node:zlib');
      const tar = gunzipSync(gz);
      await writeFile(join(dir, 'cut.tgz'), gzipSync(tar.subarray(0, 700)));
      await assert.rejects(async () => {
        for await (const _ of readTar(join(dir, 'cut.tgz'), true));
      }, (err: unknown) => err instanceof SourceError && /corrupt tar layer/.test(err.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('server-side URL sources (scanner.vulnerabilityData.sources: {url})', { skip }, () => {
  test('imported at start, asked conditionally on each refresh, imported again when the content changes; a failing server changes nothing', async () => {
    const { createServer } = await import('node:http');
    const { readdir, readFile } = await import('node:fs/promises');
    const { buildZip } = await import('./zip-writer.ts');
    const { startScannerRegistry } = await import('./support.ts');
    const dir = join(fixtures, 'osv', 'npm');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
    const zipOf = async (names: string[]) => buildZip(await Promise.all(names.map(async (n) => ({ name: n, data: await readFile(join(dir, n)), deflate: true }))));
    let body = await zipOf(files);
    let etag = '"v1"';
    let failing = false;
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers['if-none-match'] ? `conditional ${req.headers['if-none-match']}` : 'plain');
      if (failing) return void res.writeHead(500).end('broken');
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { 'content-type': 'application/zip', etag, 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/npm/all.zip?token=secret`;
    const h = await startScannerRegistry({ overrides: [{ path: ['scanner', 'vulnerabilityData', 'sources'], value: [{ url }] }, { path: ['scanner', 'vulnerabilityData', 'refreshIntervalMinutes'], value: 0.005 }] });
    try {
      const status = async () => (await h.request('GET', '/api/v1/vulndb')).json();
      const first = await waitFor('the start import', async () => ((await status()).sources[0]?.etag === '"v1"' ? status() : undefined));
      assert.equal(first.records, files.length);
      assert.equal(first.sources[0].kind, 'url');
      assert.equal(first.sources[0].source, url.replace(/\?.*$/, ''), 'the token in the query is not shown');
      await waitFor('a conditional refresh', async () => (seen.includes('conditional "v1"') ? true : undefined));
      const hash = first.sources[0].contentHash;

      body = await zipOf(files.slice(1));
      etag = '"v2"';
      const second = await waitFor('the changed content imported', async () => ((await status()).sources[0]?.etag === '"v2"' ? status() : undefined));
      assert.equal(second.records, files.length - 1);
      assert.notEqual(second.sources[0].contentHash, hash);

      failing = true;
      const before = seen.length;
      await waitFor('a failing refresh', async () => (seen.length > before ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual((await status()).sources, second.sources, 'a failing server changes nothing');
    } finally {
      await h.close();
      server.close();
    }
  });
});
