import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LayerFile } from './oci.ts';
import { makeTempDir, removeDir, run, type ClientEnvironment } from './tools.ts';

/**
 * Builds an image without any network access: `buildah from scratch`, `buildah copy` of the given
 * files (one layer per commit of a copy), `buildah config`, `buildah commit`. Returns the image ID
 * (the config digest, hex).
 */
export async function buildahScratchImage(
  clients: ClientEnvironment,
  name: string,
  files: LayerFile[],
  options: { architecture?: string; label?: string } = {},
): Promise<string> {
  const buildah = (...args: string[]) => run('buildah', [...clients.buildah, ...args], { env: clients.env });
  const context = await makeTempDir('buildctx');
  try {
    for (const file of files) {
      const path = join(context, file.path);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, file.content);
    }
    const container = (await buildah('from', '--quiet', 'scratch')).stdout.trim();
    try {
      await buildah('copy', '--quiet', container, `${context}/.`, '/');
      await buildah(
        'config',
        '--arch',
        options.architecture ?? 'amd64',
        '--os',
        'linux',
        '--cmd',
        '/bin/true',
        '--label',
        `org.example.acceptance=${options.label ?? 'portcullis'}`,
        container,
      );
      const id = (await buildah('commit', '--quiet', container, name)).stdout.trim();
      return id.replace(/^sha256:/, '');
    } finally {
      await buildah('rm', container);
    }
  } finally {
    await removeDir(context);
  }
}
