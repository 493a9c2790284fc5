import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

export interface RunningRegistry {
  /** e.g. `127.0.0.1:41234` (what clients put in image references). */
  host: string;
  /** e.g. `http://127.0.0.1:41234`. */
  url: string;
  dataDir: string;
  process: ChildProcess;
  /** Output printed so far (stdout + stderr). */
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

/**
 * Starts `portcullis serve` as a child process on a free loopback port and resolves once it
 * prints its listening line. `env` adds PORTCULLIS_* overrides; `args` adds CLI flags.
 * Authentication is off (`auth.mode: none`, allowed on loopback) unless `env` sets
 * PORTCULLIS_AUTH_MODE: these tests exercise the protocol; test/auth covers access control.
 */
export async function startRegistry(options: { dataDir?: string; env?: Record<string, string>; args?: string[]; configFile?: string } = {}): Promise<RunningRegistry> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portcullis-test-')));
  const args = [bin, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(options.configFile ? ['--config', options.configFile] : []), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { env: { PORTCULLIS_AUTH_MODE: 'none', ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const host = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on http:\/\/([0-9.]+:\d+)/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`registry exited with ${code} before listening:\n${output}`)));
    setTimeout(() => reject(new Error(`registry did not start within 20 s:\n${output}`)), 20_000).unref();
  });
  return {
    host,
    url: `http://${host}`,
    dataDir,
    process: child,
    output: () => output,
    stop: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

export interface GcReport {
  dryRun: boolean;
  manifestsDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  uploadsExpired: number;
}

/**
 * Runs `portcullis gc [--dry-run] --data-dir DIR` (as an operator would, next to a running
 * server) and returns the JSON report it prints. Rejects when it exits non-zero.
 */
export function runGc(dataDir: string, options: { dryRun?: boolean; env?: Record<string, string> } = {}): Promise<GcReport> {
  const args = [bin, 'gc', '--data-dir', dataDir, ...(options.dryRun ? ['--dry-run'] : [])];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env: { ...process.env, ...options.env }, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`portcullis gc failed: ${error.message}\n${stdout}${stderr}`));
      const line = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as GcReport);
      } catch {
        reject(new Error(`portcullis gc printed no report:\n${stdout}${stderr}`));
      }
    });
  });
}
