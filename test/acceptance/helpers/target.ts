import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startRegistry } from '../../support/registry-process.ts';
import { findOnPath, makeTempDir, removeDir } from './tools.ts';

/**
 * The registry the acceptance suite runs against. Default: Portcullis (`bin/portcullis.js serve`).
 * `PORTCULLIS_ACCEPTANCE_TARGET=distribution` runs the very same tests against the reference
 * implementation (`docker-registry`, CNCF distribution 2.8) to validate the tests themselves.
 */
export type TargetName = 'portcullis' | 'distribution';

export const targetName: TargetName = process.env.PORTCULLIS_ACCEPTANCE_TARGET === 'distribution' ? 'distribution' : 'portcullis';

export interface Target {
  name: TargetName;
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Whether the process is still running (e.g. after a bad request). */
  alive: () => boolean;
  /** Server output so far, for failure messages. */
  output: () => string;
  stop: () => Promise<void>;
}

export async function startTarget(): Promise<Target> {
  if (targetName === 'distribution') return startDistribution();
  // The same protocol tests run against distribution: Portcullis' own SBOM referrers (the scanner
  // attaches them to every image) would be extra referrers there, so they are off here.
  const registry = await startRegistry({ env: { PORTCULLIS_SCANNER_SBOM_ATTACH: 'false' } });
  return {
    name: 'portcullis',
    host: registry.host,
    url: registry.url,
    alive: () => registry.process.exitCode === null && registry.process.signalCode === null,
    output: registry.output,
    stop: async () => {
      await registry.stop();
      await removeDir(registry.dataDir);
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function startDistribution(): Promise<Target> {
  const binary = findOnPath('docker-registry') ?? findOnPath('registry');
  if (!binary) throw new Error('PORTCULLIS_ACCEPTANCE_TARGET=distribution but neither docker-registry nor registry is on PATH');
  const dir = await makeTempDir('distribution');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const configPath = join(dir, 'config.yml');
    await writeFile(
      configPath,
      [
        'version: 0.1',
        'log: {level: warn, accesslog: {disabled: true}}',
        `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
        `http: {addr: 127.0.0.1:${port}}`,
        '',
      ].join('\n'),
    );
    const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const response = await fetch(`${url}/v2/`);
        await response.arrayBuffer();
        if (response.status === 200) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!ready) {
      child.kill('SIGKILL');
      if (attempt < 2) continue; // port race: try another port
      throw new Error(`docker-registry did not start:\n${output}`);
    }
    return {
      name: 'distribution',
      host: `127.0.0.1:${port}`,
      url,
      alive: () => child.exitCode === null && child.signalCode === null,
      output: () => output,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          await new Promise<void>((resolve) => {
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          });
        }
        await removeDir(dir);
      },
    };
  }
}
