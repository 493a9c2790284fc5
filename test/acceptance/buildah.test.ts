import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildahScratchImage } from './helpers/buildah.ts';
import { getManifest, manifestDigest } from './helpers/http.ts';
import { MEDIA, randomFile, type LayerFile } from './helpers/oci.ts';
import { startTarget, type Target } from './helpers/target.ts';
import { createClientEnvironment, makeTempDir, removeDir, requireTools, run, type ClientEnvironment } from './helpers/tools.ts';

describe('buildah against the registry', () => {
  let target: Target;
  let clients: ClientEnvironment;
  let work: string;

  before(async () => {
    target = await startTarget();
    clients = await createClientEnvironment(target.host);
    work = await makeTempDir('buildah');
  });

  after(async () => {
    await target?.stop();
    await clients?.cleanup();
    await removeDir(work);
  });

  const buildah = (...args: string[]) => run('buildah', [...clients.buildah, ...args], { env: clients.env });

  /** sha256 (hex) of files inside a working container's root filesystem. */
  async function hashFilesInContainer(container: string, paths: string[]): Promise<Map<string, string>> {
    const hashes = new Map<string, string>();
    if (process.getuid?.() === 0) {
      const mountPoint = (await buildah('mount', container)).stdout.trim();
      try {
        for (const path of paths) hashes.set(path, createHash('sha256').update(await readFile(join(mountPoint, path))).digest('hex'));
      } finally {
        await buildah('umount', container);
      }
      return hashes;
    }
    // Rootless: the mount only exists inside buildah's user namespace.
    const quoted = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;
    const flags = clients.buildah.map(quoted).join(' ');
    const script = `set -e; m=$(buildah ${flags} mount ${quoted(container)}); cd "$m"; sha256sum ${paths.map(quoted).join(' ')}; buildah ${flags} umount ${quoted(container)} >/dev/null`;
    const output = (await run('buildah', [...clients.buildah, 'unshare', 'sh', '-c', script], { env: clients.env })).stdout;
    for (const line of output.trim().split('\n')) {
      const [hash, path] = line.split(/\s+/);
      hashes.set(path!, hash!);
    }
    return hashes;
  }

  async function pushPullAndCompare(repoTag: string, files: LayerFile[], pushFlags: string[]): Promise<{ digest: string; mediaType: string }> {
    const local = `localhost/acceptance/${repoTag.replaceAll('/', '-')}`;
    const id = await buildahScratchImage(clients, local, files, { label: 'buildah' });
    const digestFile = join(work, `${repoTag.replaceAll(/[/:]/g, '-')}.digest`);
    await buildah('push', '--quiet', '--tls-verify=false', '--digestfile', digestFile, ...pushFlags, local, `docker://${target.host}/${repoTag}`);
    const digest = (await readFile(digestFile, 'utf8')).trim();
    const [repo, tag] = repoTag.split(':') as [string, string];
    assert.equal(await manifestDigest(target.url, repo, tag), digest, 'registry serves the manifest buildah pushed');
    const { response, bytes } = await getManifest(target.url, repo, tag);
    const manifest = JSON.parse(bytes.toString()) as { mediaType?: string; config: { digest: string } };
    assert.equal(manifest.config.digest, `sha256:${id}`);

    // Remove every local trace, then build on top of the pushed image.
    await buildah('rmi', '--all', '--force');
    const container = (await buildah('from', '--quiet', '--tls-verify=false', `docker://${target.host}/${repoTag}`)).stdout.trim();
    try {
      const fromDigest = (await buildah('inspect', '--type', 'container', '--format', '{{.FromImageDigest}}', container)).stdout.trim();
      assert.equal(fromDigest, digest, 'buildah from used the pushed manifest');
      const fromId = (await buildah('inspect', '--type', 'container', '--format', '{{.FromImageID}}', container)).stdout.trim();
      assert.equal(fromId, id, 'buildah from has the pushed image ID');
      const hashes = await hashFilesInContainer(
        container,
        files.map((file) => file.path),
      );
      for (const file of files) {
        assert.equal(hashes.get(file.path), createHash('sha256').update(file.content).digest('hex'), `${file.path} is byte-identical in the pulled image`);
      }
    } finally {
      await buildah('rm', container);
    }
    return { digest, mediaType: response.headers.get('content-type') ?? '' };
  }

  test('buildah push (OCI), then buildah from the pushed image: files are byte-identical', async (t) => {
    if (!requireTools(t, 'buildah')) return;
    const { mediaType } = await pushPullAndCompare('buildah/app:v1', [randomFile('srv/data.bin', 300 * 1024), randomFile('srv/readme.txt', 100)], []);
    assert.equal(mediaType, MEDIA.ociManifest);
  });

  test('buildah push --format v2s2, then buildah from the pushed image', async (t) => {
    if (!requireTools(t, 'buildah')) return;
    const { mediaType } = await pushPullAndCompare('buildah/docker-format:v1', [randomFile('opt/tool.bin', 50 * 1024)], ['--format', 'v2s2']);
    assert.equal(mediaType, MEDIA.dockerManifest);
  });
});
