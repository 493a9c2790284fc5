/**
 * Starting and stopping the two registries under test: Portcullis (`bin/portcullis.js serve`)
 * and the reference CNCF distribution (`docker-registry serve config.yml`). Both listen on
 * 127.0.0.1 only and keep their data in a fresh temporary directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from './http.ts';
import { makeTempDir, removeDir, stopChild, trackChild } from './procs.ts';

export const PORTCULLIS_BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

export type TargetName = 'portcullis' | 'distribution';

export interface Server {
  target: TargetName;
  url: string;
  pid: number;
  dataDir: string;
  process: ChildProcess;
  /** Last output of the process (stdout + stderr), for error messages. */
  output: () => string;
  stop: () => Promise<void>;
}

export interface TargetConfig {
  tmpParent: string;
  distributionBin: string;
  portcullisArgs: string[];
  portcullisEnv: Record<string, string>;
}

function captureOutput(child: ChildProcess, limit = 64 * 1024): () => string {
  let output = '';
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > limit) output = output.slice(-limit);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return () => output;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls GET /v2/ until it answers (any status below 500), bounded by `timeoutMs`. */
async function waitReady(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: false });
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
      try {
        const res = await request({ method: 'GET', url: `${url}/v2/`, agent, timeoutMs: 2_000 });
        if (res.status < 500) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`not ready within ${timeoutMs} ms:\n${output()}`);
  } finally {
    agent.destroy();
  }
}

export async function startDistribution(config: TargetConfig): Promise<Server> {
  const dir = await makeTempDir(config.tmpParent, 'bench-distribution-');
  const port = await freePort();
  const configPath = join(dir, 'config.yml');
  // Same storage settings as Debian's stock /etc/docker/registry/config.yml (in-memory blob
  // descriptor cache, deletes enabled), minus auth and with logging turned down.
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
      '  delete:',
      '    enabled: true',
      '  cache:',
      '    blobdescriptor: inmemory',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn(config.distributionBin, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } });
  trackChild(child);
  const output = captureOutput(child);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(url, child, output, 20_000);
  } catch (error) {
    await stopChild(child);
    await removeDir(dir);
    throw new Error(`docker-registry: ${(error as Error).message}`);
  }
  return {
    target: 'distribution',
    url,
    pid: child.pid!,
    dataDir: join(dir, 'data'),
    process: child,
    output,
    stop: async () => {
      await stopChild(child);
      await removeDir(dir);
    },
  };
}

export async function startPortcullis(config: TargetConfig): Promise<Server> {
  const dir = await makeTempDir(config.tmpParent, 'bench-portcullis-');
  const args = [PORTCULLIS_BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dir, ...config.portcullisArgs];
  // Logging turned down as for distribution (log level error, no access log), unless the
  // caller's environment says otherwise.
  // Authentication off unless a scenario turns it on (auth.mode none is allowed on loopback).
  const env = { PORTCULLIS_LOG_LEVEL: 'error', PORTCULLIS_AUTH_MODE: 'none', ...process.env, ...config.portcullisEnv };
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  trackChild(child);
  const output = captureOutput(child);
  try {
    const hostPort = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`did not print its listening line within 30 s:\n${output()}`)), 30_000);
      const check = () => {
        const match = /listening on http:\/\/([0-9.]+:\d+)/.exec(output());
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before listening:\n${output()}`));
      });
    });
    const url = `http://${hostPort}`;
    await waitReady(url, child, output, 10_000);
    return {
      target: 'portcullis',
      url,
      pid: child.pid!,
      dataDir: dir,
      process: child,
      output,
      stop: async () => {
        await stopChild(child);
        await removeDir(dir);
      },
    };
  } catch (error) {
    await stopChild(child);
    await removeDir(dir);
    throw new Error(`portcullis: ${(error as Error).message}`);
  }
}

export function startTarget(target: TargetName, config: TargetConfig): Promise<Server> {
  return target === 'portcullis' ? startPortcullis(config) : startDistribution(config);
}

/** Current and peak resident set size (bytes) of a process, from /proc/<pid>/status. */
export async function readRss(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

export function describeTarget(target: TargetName): string {
  return target === 'portcullis' ? 'Portcullis' : 'distribution 2.8.2';
}

