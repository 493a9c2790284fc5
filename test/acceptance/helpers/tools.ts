import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';

/** True when running in CI: a missing client tool is then a failure, never a skip. */
export const inCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/**
 * Ensures every named CLI tool is installed. Outside CI a missing tool skips the test (returns
 * false, the caller must `return`); under CI=true it fails the test with a clear message.
 */
export function requireTools(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((name) => !findOnPath(name));
  if (missing.length === 0) return true;
  const message = `required client tool(s) not found on PATH: ${missing.join(', ')} (install the Debian packages skopeo/podman/buildah)`;
  if (inCI) assert.fail(`${message}; CI=true, so this acceptance test must not be skipped`);
  t.skip(message);
  return false;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class CommandError extends Error {
  readonly result: RunResult;
  constructor(command: string, result: RunResult) {
    super(`command failed (exit ${result.code}): ${command}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
    this.result = result;
  }
}

/** Runs a command; resolves with its output whatever the exit code. */
export function runRaw(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...options.env }, cwd: options.cwd, timeout: options.timeoutMs ?? 90_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          if (error.killed || error.signal) return resolve({ stdout, stderr: `${stderr}\n[killed by ${error.signal ?? 'timeout'}]`, code: -1 });
          return reject(error);
        }
        resolve({ stdout, stderr, code: error ? (error.code as number) : 0 });
      },
    );
  });
}

/** Runs a command and throws (with its full output) when it exits non-zero. */
export async function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const result = await runRaw(cmd, args, options);
  if (result.code !== 0) throw new CommandError([cmd, ...args].join(' '), result);
  return result;
}

/** Runs a command that is expected to fail; returns its output. */
export async function runExpectFailure(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const result = await runRaw(cmd, args, options);
  assert.notEqual(result.code, 0, `expected failure but command succeeded: ${[cmd, ...args].join(' ')}\n${result.stdout}\n${result.stderr}`);
  return result;
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `portcullis-acc-${prefix}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Isolated client configuration for skopeo, podman and buildah: a temporary containers/storage
 * root (vfs, works without fuse-overlayfs or kernel overlay), an accept-anything signature policy
 * and a registries.conf marking the registry under test as insecure (plain HTTP). Nothing on the
 * host's image store or configuration is touched.
 */
export interface ClientEnvironment {
  base: string;
  /** Environment variables for every client invocation. */
  env: NodeJS.ProcessEnv;
  /** Global flags for `skopeo`. */
  skopeo: string[];
  /** Global flags for `buildah`. */
  buildah: string[];
  /** Global flags for `podman`. */
  podman: string[];
  cleanup: () => Promise<void>;
}

export async function createClientEnvironment(registryHost: string): Promise<ClientEnvironment> {
  const base = await makeTempDir('clients');
  const policy = join(base, 'policy.json');
  const registriesConf = join(base, 'registries.conf');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await writeFile(join(base, 'auth.json'), JSON.stringify({ auths: {} }));
  await writeFile(registriesConf, `unqualified-search-registries = []\n\n[[registry]]\nlocation = "${registryHost}"\ninsecure = true\n`);
  const storage = ['--root', join(base, 'root'), '--runroot', join(base, 'runroot'), '--storage-driver', 'vfs'];
  return {
    base,
    env: { CONTAINERS_REGISTRIES_CONF: registriesConf, REGISTRY_AUTH_FILE: join(base, 'auth.json'), TMPDIR: base },
    skopeo: ['--policy', policy],
    buildah: storage,
    podman: [...storage, '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--tmpdir', join(base, 'libpod-tmp')],
    cleanup: () => removeDir(base),
  };
}
