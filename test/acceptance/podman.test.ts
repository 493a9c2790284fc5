import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { buildahScratchImage } from './helpers/buildah.ts';
import { describeResponse, getBlob, getManifest, manifestDigest } from './helpers/http.ts';
import { MEDIA, randomFile, sha256 } from './helpers/oci.ts';
import { startTarget, type Target } from './helpers/target.ts';
import { createClientEnvironment, makeTempDir, removeDir, requireTools, run, type ClientEnvironment } from './helpers/tools.ts';

interface PodmanImage {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  Architecture: string;
  Os: string;
  RootFS: { Layers: string[] };
  Labels: Record<string, string> | null;
}

describe('podman against the registry', () => {
  let target: Target;
  let clients: ClientEnvironment;
  let work: string;

  before(async () => {
    target = await startTarget();
    clients = await createClientEnvironment(target.host);
    work = await makeTempDir('podman');
  });

  after(async () => {
    await target?.stop();
    await clients?.cleanup();
    await removeDir(work);
  });

  const podman = (...args: string[]) => run('podman', [...clients.podman, ...args], { env: clients.env });
  const inspectImage = async (name: string): Promise<PodmanImage> => {
    const [image] = JSON.parse((await podman('image', 'inspect', name)).stdout) as PodmanImage[];
    assert.ok(image, `podman image inspect ${name} returned nothing`);
    return image;
  };

  test('podman push and pull of a buildah-built image; podman image inspect', async (t) => {
    if (!requireTools(t, 'podman', 'buildah')) return;
    const files = [randomFile('app/payload.bin', 200 * 1024), randomFile('app/config.txt', 512)];
    const id = await buildahScratchImage(clients, 'localhost/acceptance/podman-app:1', files);
    const local = await inspectImage('localhost/acceptance/podman-app:1');
    assert.equal(local.Id, id);

    const digestFile = join(work, 'push.digest');
    await podman('push', '--tls-verify=false', '--digestfile', digestFile, 'localhost/acceptance/podman-app:1', `docker://${target.host}/podman/app:v1`);
    const pushedDigest = (await readFile(digestFile, 'utf8')).trim();
    assert.equal(await manifestDigest(target.url, 'podman/app', 'v1'), pushedDigest, 'registry serves the manifest podman pushed');

    // The layer in the registry decompresses to the layer podman had locally.
    const { bytes: manifestBytes } = await getManifest(target.url, 'podman/app', 'v1');
    const manifest = JSON.parse(manifestBytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(manifest.config.digest, `sha256:${id}`, 'config digest is the image ID');
    assert.equal(manifest.layers.length, local.RootFS.Layers.length);
    for (const [i, layer] of manifest.layers.entries()) {
      const { response, bytes } = await getBlob(target.url, 'podman/app', layer.digest);
      assert.equal(response.status, 200, await describeResponse(response, ''));
      assert.equal(sha256(bytes), layer.digest);
      assert.equal(sha256(gunzipSync(bytes)), local.RootFS.Layers[i], 'uncompressed layer matches the local diff ID');
    }

    await podman('rmi', 'localhost/acceptance/podman-app:1');
    await podman('pull', '--quiet', '--tls-verify=false', `${target.host}/podman/app:v1`);
    const pulled = await inspectImage(`${target.host}/podman/app:v1`);
    assert.equal(pulled.Id, id, 'pulled image has the same ID (config digest)');
    assert.equal(pulled.Digest, pushedDigest, 'pulled image digest is the pushed manifest digest');
    assert.ok(pulled.RepoDigests.includes(`${target.host}/podman/app@${pushedDigest}`), `RepoDigests: ${pulled.RepoDigests.join(', ')}`);
    assert.deepEqual(pulled.RootFS.Layers, local.RootFS.Layers, 'diff IDs unchanged');
    assert.equal(pulled.Architecture, 'amd64');
    assert.equal(pulled.Labels?.['org.example.acceptance'], 'portcullis');

    // Pull by digest too.
    await podman('pull', '--quiet', '--tls-verify=false', `${target.host}/podman/app@${pushedDigest}`);
  });

  test('podman search --list-tags lists every pushed tag', async (t) => {
    if (!requireTools(t, 'podman', 'buildah')) return;
    await buildahScratchImage(clients, 'localhost/acceptance/podman-tags:1', [randomFile('t.bin', 4096)]);
    for (const tag of ['1.0', '1.1', 'latest']) {
      await podman('push', '--tls-verify=false', 'localhost/acceptance/podman-tags:1', `docker://${target.host}/podman/tags:${tag}`);
    }
    const result = JSON.parse((await podman('search', '--list-tags', '--format', 'json', '--tls-verify=false', `${target.host}/podman/tags`)).stdout) as {
      Name: string;
      Tags: string[];
    }[];
    assert.equal(result.length, 1, JSON.stringify(result));
    assert.equal(result[0]!.Name, `${target.host}/podman/tags`);
    assert.deepEqual([...result[0]!.Tags].sort(), ['1.0', '1.1', 'latest']);
  });

  test('podman manifest: create a list of two platforms, push --all, pull one platform', async (t) => {
    if (!requireTools(t, 'podman', 'buildah')) return;
    const amdId = await buildahScratchImage(clients, 'localhost/acceptance/multi:amd64', [randomFile('bin/app', 16 * 1024)], { architecture: 'amd64' });
    const armId = await buildahScratchImage(clients, 'localhost/acceptance/multi:arm64', [randomFile('bin/app', 20 * 1024)], { architecture: 'arm64' });
    await podman('manifest', 'create', 'localhost/acceptance/multi-list:v1');
    await podman('manifest', 'add', 'localhost/acceptance/multi-list:v1', 'containers-storage:localhost/acceptance/multi:amd64');
    await podman('manifest', 'add', 'localhost/acceptance/multi-list:v1', 'containers-storage:localhost/acceptance/multi:arm64');
    const digestFile = join(work, 'list.digest');
    await podman('manifest', 'push', '--all', '--tls-verify=false', '--digestfile', digestFile, 'localhost/acceptance/multi-list:v1', `docker://${target.host}/podman/multi:v1`);
    const listDigest = (await readFile(digestFile, 'utf8')).trim();

    const { response, bytes } = await getManifest(target.url, 'podman/multi', 'v1');
    assert.equal(response.status, 200, await describeResponse(response, bytes.toString()));
    assert.equal(sha256(bytes), listDigest, 'registry serves the list podman pushed');
    const list = JSON.parse(bytes.toString()) as { mediaType: string; manifests: { digest: string; mediaType: string; platform: { architecture: string; os: string } }[] };
    assert.ok([MEDIA.ociIndex, MEDIA.dockerList].includes(list.mediaType as typeof MEDIA.ociIndex), `list mediaType ${list.mediaType}`);
    assert.equal(response.headers.get('content-type'), list.mediaType, 'Content-Type is the stored list media type');
    assert.deepEqual(list.manifests.map((entry) => entry.platform.architecture).sort(), ['amd64', 'arm64']);
    for (const entry of list.manifests) {
      const child = await getManifest(target.url, 'podman/multi', entry.digest);
      assert.equal(child.response.status, 200, `child manifest ${entry.digest} of the pushed list`);
      const config = JSON.parse(child.bytes.toString()) as { config: { digest: string } };
      assert.equal(config.config.digest, `sha256:${entry.platform.architecture === 'amd64' ? amdId : armId}`, `${entry.platform.architecture} child is the right image`);
    }

    await podman('pull', '--quiet', '--tls-verify=false', '--arch', 'arm64', `${target.host}/podman/multi:v1`);
    const pulled = await inspectImage(`${target.host}/podman/multi:v1`);
    assert.equal(pulled.Id, armId, 'pull --arch arm64 of the list gives the arm64 image');
    assert.equal(pulled.Architecture, 'arm64');
  });
});
