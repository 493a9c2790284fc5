/**
 * Bookkeeping for everything the benchmark starts: child processes and temporary directories.
 * Whatever happens (normal end, thrown error, Ctrl-C, SIGTERM), every tracked child is killed
 * and every tracked directory removed (unless BENCH_KEEP=1).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let keepDirs = false;
let installed = false;

export function setKeepDirs(keep: boolean): void {
  keepDirs = keep;
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function trackChild(child: ChildProcess): void {
  installHandlers();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (!isRunning(child)) {
    children.delete(child);
    return;
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      if (isRunning(child)) child.kill('SIGKILL');
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
  children.delete(child);
}

export async function makeTempDir(parent: string, prefix: string): Promise<string> {
  installHandlers();
  const dir = await mkdtemp(join(parent, prefix));
  dirs.add(dir);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  if (keepDirs) return;
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  dirs.delete(dir);
}

/** Stops all children (gracefully, bounded) and removes all temp dirs. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child)));
  for (const dir of [...dirs]) await removeDir(dir).catch(() => undefined);
}

function killAllSync(): void {
  for (const child of children) {
    if (isRunning(child)) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  if (!keepDirs) {
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
    dirs.clear();
  }
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      log(`received ${signal}: stopping every process the benchmark started`);
      killAllSync();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}
