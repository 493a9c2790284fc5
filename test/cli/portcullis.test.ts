/**
 * The `portcullis` command as users run it (`npx portcullis ...` runs bin/portcullis.js): help,
 * `config check` on good and bad configurations, and what `serve` tells the operator.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/** The environment of this process without PORTCULLIS_* settings, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('PORTCULLIS_')) env[name] = value;
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => Run; exited: Promise<Run> } {
  const child = spawn(process.execPath, [bin, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Run>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, output: () => ({ code: child.exitCode, stdout, stderr }), exited };
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return start(args, env).exited;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('portcullis --help', () => {
  test('lists serve, gc and config check, and exits 0', async () => {
    const result = await run(['--help']);
    assert.equal(result.code, 0, result.stderr);
    for (const command of ['portcullis serve', 'portcullis gc', 'portcullis config check']) assert.ok(result.stdout.includes(command), `--help lists ${command}`);
    assert.match(result.stdout, /PORTCULLIS_SERVER_LISTEN/);
    assert.match(result.stdout, /127\.0\.0\.1:5000/);
  });

  test('no command prints the usage and fails; so does an unknown flag or command', async () => {
    const bare = await run([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stdout, /portcullis serve/);
    const badFlag = await run(['serve', '--no-such-flag']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /no-such-flag/);
    const badCommand = await run(['frobnicate']);
    assert.equal(badCommand.code, 2);
    assert.match(badCommand.stderr, /unknown command "frobnicate"/);
  });
});

describe('portcullis config check', () => {
  test('a bad value fails with the dotted key and the file named', async () => {
    const file = await configFile('bad-value.yaml', 'storage:\n  delete:\n    enabled: sometimes\n');
    const result = await run(['config', 'check', '--config', file]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /storage\.delete\.enabled/);
    assert.ok(result.stderr.includes(file), result.stderr);
    assert.equal(result.stdout, '');
  });

  test('an unknown key fails with the key named', async () => {
    const file = await configFile('unknown-key.yaml', 'storage:\n  dataDirectory: /srv/registry\n');
    const result = await run(['config', 'check', '--config', file]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /storage\.dataDirectory .*unknown setting/);
  });

  test('a bad flag or environment value names the flag or the variable', async () => {
    const flag = await run(['config', 'check', '--listen', 'everywhere']);
    assert.notEqual(flag.code, 0);
    assert.match(flag.stderr, /server\.listen \(from --listen/);
    const env = await run(['config', 'check'], { PORTCULLIS_GC_INTERVAL_SECONDS: 'hourly' });
    assert.notEqual(env.code, 0);
    assert.match(env.stderr, /gc\.intervalSeconds \(from PORTCULLIS_GC_INTERVAL_SECONDS\)/);
    const unknown = await run(['config', 'check'], { PORTCULLIS_LISTEN: '127.0.0.1:5000' });
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown environment variable PORTCULLIS_LISTEN/);
  });

  test('a valid configuration is printed as JSON and exits 0', async () => {
    const file = await configFile('good.yaml', 'server:\n  listen: 127.0.0.1:5055\n');
    const result = await run(['config', 'check', '--config', file, '--data-dir', join(dir, 'data')]);
    assert.equal(result.code, 0, result.stderr);
    const config = JSON.parse(result.stdout) as { server: { listen: string }; storage: { dataDir: string; metadata: { kind: string } } };
    assert.equal(config.server.listen, '127.0.0.1:5055');
    assert.equal(config.storage.dataDir, join(dir, 'data'));
    assert.equal(config.storage.metadata.kind, 'sqlite');
  });

  test('the printed configuration does not show the database password', async () => {
    const result = await run(['config', 'check'], {
      PORTCULLIS_STORAGE_METADATA_KIND: 'postgres',
      PORTCULLIS_STORAGE_METADATA_POSTGRES_URL: 'postgres://registry:hunter2-secret@db.internal:5432/portcullis',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!result.stdout.includes('hunter2-secret'), result.stdout);
    assert.match(result.stdout, /postgres:\/\/registry:\*\*\*@db\.internal:5432\/portcullis/);
  });
});

describe('portcullis serve', () => {
  test('prints the address it listens on and that there is no authentication, so loopback only; stops on SIGTERM', { timeout: 60_000 }, async () => {
    const server = start(['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'serve-data')], { PORTCULLIS_LOG_LEVEL: 'silent', PORTCULLIS_GC_INTERVAL_SECONDS: '0', PORTCULLIS_AUTH_MODE: 'none' });
    const wanted = [/listening on http:\/\/127\.0\.0\.1:(\d+)/, /no authentication.*loopback only/i];
    // Wait for both lines (or for the process to end, which fails below).
    const ended = server.exited.then(() => 'ended' as const);
    for (;;) {
      const { stdout } = server.output();
      if (wanted.every((pattern) => pattern.test(stdout))) break;
      const outcome = await Promise.race([ended, new Promise<'poll'>((resolve) => setTimeout(() => resolve('poll'), 25))]);
      if (outcome === 'ended') break;
    }
    const { stdout, stderr } = server.output();
    server.child.kill('SIGTERM');
    const final = await server.exited;
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
    assert.ok(port > 0, `a real port is printed:\n${stdout}\n${stderr}`);
    assert.match(stdout, /no authentication.*loopback only/i);
    assert.doesNotMatch(stdout + stderr, /WARNING/);
    assert.equal(final.code, 0, final.stderr);
  });
});
