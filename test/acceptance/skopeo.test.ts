import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { describeResponse, getBlob, getManifest, manifestDigest } from './helpers/http.ts';
import { buildImage, buildIndex, MEDIA, randomFile, readOciLayout, sha256, writeOciLayout, type BuiltImage } from './helpers/oci.ts';
import { startTarget, type Target } from './helpers/target.ts';
import { createClientEnvironment, makeTempDir, removeDir, requireTools, run, runExpectFailure, type ClientEnvironment } from './helpers/tools.ts';

describe('skopeo against the registry', () => {
  let target: Target;
  let clients: ClientEnvironment;
  let work: string;
  let counter = 0;

  before(async () => {
    target = await startTarget();
    clients = await createClientEnvironment(target.host);
    work = await makeTempDir('skopeo');
  });

  after(async () => {
    await target?.stop();
    await clients?.cleanup();
    await removeDir(work);
  });

  const skopeo = (...args: string[]) => run('skopeo', [...clients.skopeo, ...args], { env: clients.env });
  const ref = (repo: string) => `docker://${target.host}/${repo}`;
  const freshDir = () => join(work, `d${++counter}`);

  /** Writes an image to a fresh OCI layout and pushes it with `skopeo copy`. */
  async function pushWithSkopeo(image: BuiltImage, repo: string, extra: string[] = []): Promise<void> {
    const layout = freshDir();
    await writeOciLayout(layout, { src: image });
    await skopeo('copy', '--dest-tls-verify=false', ...extra, `oci:${layout}:src`, ref(repo));
  }

  function smallImage(architecture = 'amd64'): BuiltImage {
    return buildImage({
      architecture,
      layers: [[randomFile('data/small.bin', 4 * 1024)], [randomFile('data/medium.bin', 96 * 1024), randomFile('etc/acceptance.txt', 300)]],
    });
  }

  /** Copies `repo` back into an OCI layout and asserts manifest, config and layers are identical. */
  async function assertRoundTrip(t: TestContext, image: BuiltImage, repo: string, extra: string[] = []): Promise<void> {
    const out = freshDir();
    await skopeo('copy', '--src-tls-verify=false', ...extra, ref(repo), `oci:${out}:back`);
    const layout = await readOciLayout(out, 'back');
    assert.equal(layout.descriptor.digest, image.manifest.descriptor.digest, 'pulled manifest digest');
    assert.ok(layout.manifest.equals(image.manifest.bytes), 'pulled manifest bytes are identical');
    const config = await layout.blob(image.config.descriptor.digest);
    assert.ok(config.equals(image.config.bytes), 'config blob identical');
    for (const layer of image.layers) {
      const bytes = await layout.blob(layer.descriptor.digest);
      assert.equal(sha256(bytes), layer.descriptor.digest, `layer ${layer.descriptor.digest} digest`);
      assert.ok(bytes.equals(layer.bytes), `layer ${layer.descriptor.digest} is byte-identical`);
    }
    t.diagnostic(`round-tripped ${image.layers.length} layers of ${repo}`);
  }

  test('copy an OCI layout to the registry, inspect it and list its tags', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/basic:v1');

    const inspect = JSON.parse((await skopeo('inspect', '--tls-verify=false', ref('skopeo/basic:v1'))).stdout) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
      Os: string;
      RepoTags: string[];
      Labels: Record<string, string>;
    };
    assert.equal(inspect.Digest, image.manifest.descriptor.digest, 'skopeo inspect Digest is the pushed manifest digest');
    assert.deepEqual(inspect.Layers, image.layers.map((layer) => layer.descriptor.digest));
    assert.equal(inspect.Architecture, 'amd64');
    assert.equal(inspect.Os, 'linux');
    assert.equal(inspect.Labels['org.example.acceptance'], 'portcullis');
    assert.deepEqual(inspect.RepoTags, ['v1']);

    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', ref('skopeo/basic:v1'));
    assert.equal(raw.stdout, image.manifest.bytes.toString(), 'inspect --raw returns the manifest byte-for-byte');
    const rawConfig = await skopeo('inspect', '--config', '--raw', '--tls-verify=false', ref('skopeo/basic:v1'));
    assert.equal(rawConfig.stdout, image.config.bytes.toString(), 'inspect --config --raw returns the config blob byte-for-byte');

    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', ref('skopeo/basic'))).stdout) as { Repository: string; Tags: string[] };
    assert.equal(tags.Repository, `${target.host}/skopeo/basic`);
    assert.deepEqual(tags.Tags, ['v1']);

    // The registry itself agrees on the digest.
    assert.equal(await manifestDigest(target.url, 'skopeo/basic', 'v1'), image.manifest.descriptor.digest);
  });

  test('copy back from the registry: manifest, config and every layer are byte-identical', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = buildImage({ layers: [[randomFile('big.bin', 1024 * 1024)], [randomFile('a/b/c.txt', 10)], [randomFile('x.bin', 33 * 1024)]] });
    await pushWithSkopeo(image, 'skopeo/roundtrip:v1');
    await assertRoundTrip(t, image, 'skopeo/roundtrip:v1');
    // and by digest
    await assertRoundTrip(t, image, `skopeo/roundtrip@${image.manifest.descriptor.digest}`);
  });

  test('--format v2s2 stores a Docker schema2 manifest', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/v2s2:v1', ['--format', 'v2s2']);

    const raw = (await skopeo('inspect', '--raw', '--tls-verify=false', ref('skopeo/v2s2:v1'))).stdout;
    const manifest = JSON.parse(raw) as { schemaVersion: number; mediaType: string; config: { mediaType: string; digest: string }; layers: { mediaType: string; digest: string }[] };
    assert.equal(manifest.schemaVersion, 2);
    assert.equal(manifest.mediaType, MEDIA.dockerManifest, 'manifest mediaType is Docker schema2');
    assert.equal(manifest.config.mediaType, MEDIA.dockerConfig);
    assert.deepEqual(
      manifest.layers.map((layer) => [layer.mediaType, layer.digest]),
      image.layers.map((layer) => [MEDIA.dockerLayerGzip, layer.descriptor.digest]),
      'gzip layers are reused unchanged with Docker media types',
    );

    // Raw HTTP: Content-Type must be the stored media type and the digest must match the bytes.
    const { response, bytes } = await getManifest(target.url, 'skopeo/v2s2', 'v1');
    assert.equal(response.status, 200, await describeResponse(response, bytes.toString()));
    assert.equal(response.headers.get('content-type'), MEDIA.dockerManifest, 'Content-Type of a schema2 manifest');
    assert.equal(bytes.toString(), raw);
    assert.equal(response.headers.get('docker-content-digest'), sha256(bytes));

    // A v2s2 image pulls back with the same layers.
    const out = freshDir();
    await skopeo('copy', '--src-tls-verify=false', ref('skopeo/v2s2:v1'), `dir:${out}`);
    for (const layer of image.layers) {
      const bytesOut = await readFile(join(out, layer.descriptor.digest.replace('sha256:', '')));
      assert.ok(bytesOut.equals(layer.bytes), `layer ${layer.descriptor.digest} byte-identical after v2s2 round trip`);
    }
  });

  test('--dest-compress-format zstd: recompressed zstd layers are stored and served unchanged', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/zstd:v1', ['--dest-compress-format', 'zstd']);
    const { response, bytes } = await getManifest(target.url, 'skopeo/zstd', 'v1');
    assert.equal(response.status, 200, await describeResponse(response, bytes.toString()));
    const manifest = JSON.parse(bytes.toString()) as { layers: { mediaType: string; digest: string; size: number }[] };
    assert.deepEqual(
      manifest.layers.map((layer) => layer.mediaType),
      image.layers.map(() => 'application/vnd.oci.image.layer.v1.tar+zstd'),
      'layers were recompressed to zstd',
    );
    for (const layer of manifest.layers) {
      const blob = await getBlob(target.url, 'skopeo/zstd', layer.digest);
      assert.equal(blob.response.status, 200);
      assert.equal(blob.bytes.length, layer.size);
      assert.equal(sha256(blob.bytes), layer.digest, 'zstd blob served with the digest it was pushed under');
      assert.equal(blob.bytes.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
    }
    // A client pulls back exactly what it pushed.
    const out = freshDir();
    await skopeo('copy', '--src-tls-verify=false', ref('skopeo/zstd:v1'), `oci:${out}:back`);
    const pulled = await readOciLayout(out, 'back');
    assert.equal(pulled.descriptor.digest, sha256(bytes), 'pulled the zstd manifest unchanged');
    for (const layer of manifest.layers) assert.equal(sha256(await pulled.blob(layer.digest)), layer.digest, 'pulled zstd layer intact');
  });

  test('copy --all of a multi-arch index, then pull one platform with --override-arch', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const amd64 = buildImage({ architecture: 'amd64', layers: [[randomFile('arch.bin', 8 * 1024)]] });
    const arm64 = buildImage({ architecture: 'arm64', layers: [[randomFile('arch.bin', 12 * 1024)], [randomFile('arm-only.bin', 2048)]] });
    assert.notEqual(amd64.layers[0]!.descriptor.digest, arm64.layers[0]!.descriptor.digest);
    const index = buildIndex([amd64, arm64]);
    const layout = freshDir();
    await writeOciLayout(layout, { multi: index });
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, ref('skopeo/multi:v1'));

    const raw = (await skopeo('inspect', '--raw', '--tls-verify=false', ref('skopeo/multi:v1'))).stdout;
    assert.equal(sha256(raw), index.manifest.descriptor.digest, 'index stored unchanged (same digest)');
    const { response } = await getManifest(target.url, 'skopeo/multi', 'v1');
    assert.equal(response.headers.get('content-type'), MEDIA.ociIndex);
    for (const image of [amd64, arm64]) {
      assert.equal(await manifestDigest(target.url, 'skopeo/multi', image.manifest.descriptor.digest), image.manifest.descriptor.digest);
    }

    for (const [arch, image] of [['arm64', arm64], ['amd64', amd64]] as const) {
      const out = freshDir();
      await skopeo('copy', '--override-arch', arch, '--override-os', 'linux', '--src-tls-verify=false', ref('skopeo/multi:v1'), `oci:${out}:one`);
      const pulled = await readOciLayout(out, 'one');
      assert.equal(pulled.descriptor.digest, image.manifest.descriptor.digest, `--override-arch ${arch} selects the ${arch} manifest`);
      for (const layer of image.layers) {
        assert.ok((await pulled.blob(layer.descriptor.digest)).equals(layer.bytes), `${arch} layer byte-identical`);
      }
      const config = JSON.parse((await pulled.blob(image.config.descriptor.digest)).toString()) as { architecture: string };
      assert.equal(config.architecture, arch);
    }
  });

  test('skopeo delete removes the manifest; inspect then fails', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/delete:v1');
    assert.equal(await manifestDigest(target.url, 'skopeo/delete', 'v1'), image.manifest.descriptor.digest);

    await skopeo('delete', '--tls-verify=false', ref('skopeo/delete:v1'));

    const failed = await runExpectFailure('skopeo', [...clients.skopeo, 'inspect', '--tls-verify=false', ref('skopeo/delete:v1')], { env: clients.env });
    assert.match(failed.stderr, /manifest unknown|not found/i, 'inspect of the deleted tag reports manifest unknown');
    const byDigest = await getManifest(target.url, 'skopeo/delete', image.manifest.descriptor.digest);
    assert.equal(byDigest.response.status, 404, `GET by digest after delete:\n${await describeResponse(byDigest.response, byDigest.bytes.toString())}`);
    const byTag = await getManifest(target.url, 'skopeo/delete', 'v1');
    assert.equal(byTag.response.status, 404, 'the tag pointing at the deleted manifest is gone too');
  });

  test('registry-to-registry copy into another repository of the same registry (cross-repo mount)', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/mount-src:v1');
    await skopeo('copy', '--src-tls-verify=false', '--dest-tls-verify=false', ref('skopeo/mount-src:v1'), ref('skopeo/mount-dst/nested:copied'));

    assert.equal(await manifestDigest(target.url, 'skopeo/mount-dst/nested', 'copied'), image.manifest.descriptor.digest);
    for (const blob of [image.config, ...image.layers]) {
      const { response, bytes } = await getBlob(target.url, 'skopeo/mount-dst/nested', blob.descriptor.digest);
      assert.equal(response.status, 200, `blob ${blob.descriptor.digest} readable in the destination repository`);
      assert.ok(bytes.equals(blob.bytes), `blob ${blob.descriptor.digest} byte-identical in the destination repository`);
    }
    await assertRoundTrip(t, image, 'skopeo/mount-dst/nested:copied');

    // The explicit mount request a client sends: POST ?mount=&from= answers 201 Created.
    const layer = image.layers[1]!;
    const mount = await fetch(`${target.url}/v2/skopeo/mount-third/blobs/uploads/?mount=${layer.descriptor.digest}&from=skopeo/mount-src`, { method: 'POST' });
    const mountBody = await mount.text();
    assert.equal(mount.status, 201, `cross-repository mount should succeed:\n${await describeResponse(mount, mountBody)}`);
    assert.equal(mount.headers.get('docker-content-digest'), layer.descriptor.digest);
    assert.ok(mount.headers.get('location'), 'mount response has a Location');
    const head = await fetch(`${target.url}/v2/skopeo/mount-third/blobs/${layer.descriptor.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.descriptor.size));
  });

  test('copy an image to a second tag', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const image = smallImage();
    await pushWithSkopeo(image, 'skopeo/retag:v1');
    await skopeo('copy', '--src-tls-verify=false', '--dest-tls-verify=false', ref('skopeo/retag:v1'), ref('skopeo/retag:v2'));
    // a second, different image under a third tag must not disturb the others
    const other = smallImage();
    await pushWithSkopeo(other, 'skopeo/retag:latest');

    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', ref('skopeo/retag'))).stdout) as { Tags: string[] };
    assert.deepEqual([...tags.Tags].sort(), ['latest', 'v1', 'v2']);
    assert.equal(await manifestDigest(target.url, 'skopeo/retag', 'v1'), image.manifest.descriptor.digest);
    assert.equal(await manifestDigest(target.url, 'skopeo/retag', 'v2'), image.manifest.descriptor.digest);
    assert.equal(await manifestDigest(target.url, 'skopeo/retag', 'latest'), other.manifest.descriptor.digest);
    const inspect = JSON.parse((await skopeo('inspect', '--tls-verify=false', ref('skopeo/retag:v2'))).stdout) as { Digest: string; RepoTags: string[] };
    assert.equal(inspect.Digest, image.manifest.descriptor.digest);
  });
});
