/**
 * `portcullis login REGISTRY [-u USER] [--password-stdin]` and `portcullis logout REGISTRY|--all`,
 * as podman does them: the credentials are checked against the registry first (`GET /v2/` through
 * its challenge and token flow), then stored as a base64 `user:password` entry keyed by the host in
 * the containers auth file (`--authfile`, `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`,
 * else `~/.config/containers/auth.json`), written atomically with mode 0600. podman, skopeo and
 * buildah read that file, and so does every registry command of this CLI (registry-client.ts).
 * `login --oidc` (device authorization) is login.ts.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { authFiles, RegistryClient } from './registry-client.ts';

const loginUsage = `portcullis login REGISTRY [-u USER] [-p PASSWORD | --password-stdin] [--authfile FILE] [--http] [--insecure]
portcullis logout REGISTRY | --all [--authfile FILE]

login checks the credentials against REGISTRY (host[:port]) and stores them where podman, skopeo
and buildah read them: --authfile, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, else
~/.config/containers/auth.json. Without -u/--password-stdin it asks (on a terminal). Plain HTTP is
used for loopback registries or with --http; --insecure skips TLS certificate verification.
logout removes the entry (every entry with --all) from the auth files. For single sign-on see
portcullis login --oidc --help.`;

const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/** The auth file login writes (podman's choice). */
export function loginAuthFile(env: NodeJS.ProcessEnv = process.env): string {
  return authFiles(env)[0]!;
}

type AuthDocument = { auths?: Record<string, unknown> } & Record<string, unknown>;

async function readAuthDocument(file: string): Promise<AuthDocument | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
    return doc as AuthDocument;
  } catch (error) {
    // Never overwrite a file we cannot read: it may hold other registries' credentials.
    throw new Error(`${file} is not a valid auth file (${(error as Error).message}); fix or remove it`);
  }
}

async function writeAuthDocument(file: string, doc: AuthDocument): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(doc, null, '\t')}\n`, { mode: 0o600 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Adds or replaces `registry`'s entry, keeping everything else in the file (other hosts, credHelpers...). */
export async function saveAuthEntry(file: string, registry: string, username: string, password: string): Promise<void> {
  const doc = (await readAuthDocument(file)) ?? {};
  doc.auths = { ...(doc.auths ?? {}), [registry]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  await writeAuthDocument(file, doc);
}

/** Removes `registry`'s entry (also written as a URL); true when there was one. */
export async function removeAuthEntry(file: string, registry: string | undefined): Promise<boolean> {
  const doc = await readAuthDocument(file);
  if (!doc?.auths) return false;
  const keys = Object.keys(doc.auths).filter((k) => registry === undefined || k.replace(/^https?:\/\//, '').replace(/\/+$/, '').replace(/\/v[12]$/, '') === registry);
  if (keys.length === 0) return false;
  for (const k of keys) delete doc.auths[k];
  await writeAuthDocument(file, doc);
  return true;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (chunks.reduce((n, c) => n + c.length, 0) > 64 * 1024) throw new Error('--password-stdin: more than 64 KiB on standard input');
  }
  // podman strips one trailing newline (echo "$PW" | podman login --password-stdin).
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Reads a line from the terminal; `hidden` turns the echo off (passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new Error('no terminal to ask on: give -u USER and --password-stdin');
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else {
          value += ch;
          if (!hidden) process.stderr.write(ch);
        }
      }
    };
    stdin.on('data', onData);
  });
}

/** Parsed arguments, or the exit code when there is nothing more to do (usage error: 2, help: 0). */
function parseCommand<T extends ParseArgsOptionsConfig>(argv: string[], options: T) {
  try {
    const parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if (!(parsed.values as { help?: boolean }).help) return parsed;
    console.log(loginUsage);
    return 0;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${loginUsage}`);
    return 2;
  }
}

export async function passwordLoginMain(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    username: { type: 'string', short: 'u' },
    password: { type: 'string', short: 'p' },
    'password-stdin': { type: 'boolean' },
    authfile: { type: 'string' },
    http: { type: 'boolean' },
    insecure: { type: 'boolean' },
  });
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const registry = positionals[0]?.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (registry === undefined || positionals.length > 1 || !HOST.test(registry)) {
    console.error(`give one REGISTRY as host[:port]\n\n${loginUsage}`);
    return 2;
  }
  if (values.password !== undefined && values['password-stdin']) {
    console.error('-p and --password-stdin exclude each other');
    return 2;
  }
  let username = values.username;
  let password = values.password;
  try {
    if (values.password !== undefined) console.error('WARNING: a password on the command line is visible to other users of this machine; prefer --password-stdin');
    if (values['password-stdin']) {
      if (username === undefined) {
        console.error('--password-stdin needs -u USER');
        return 2;
      }
      password = await readStdin();
    }
    username ??= await prompt('Username: ', false);
    password ??= await prompt('Password: ', true);
  } catch (error) {
    console.error(`portcullis login: ${(error as Error).message}`);
    return 2;
  }
  if (!username || !password) {
    console.error('portcullis login: the user name and password must not be empty');
    return 2;
  }
  // Checked before anything is stored: a wrong password must not replace working credentials.
  const client = new RegistryClient(registry, { credentials: { username, password }, ...(values.http ? { http: true } : {}), ...(values.insecure ? { insecure: true } : {}), userAgent: 'portcullis-login' });
  let status: number;
  try {
    status = (await client.request('GET', '/v2/', { scope: '' })).status;
  } catch (error) {
    const denied = (error as { status?: number }).status;
    if (denied === 401 || denied === 403) {
      console.error(`portcullis login: ${registry} refused the credentials of ${username}`);
      return 1;
    }
    console.error(`portcullis login: cannot reach ${registry}: ${(error as Error).message}`);
    return 1;
  }
  if (status === 401 || status === 403) {
    console.error(`portcullis login: ${registry} refused the credentials of ${username}`);
    return 1;
  }
  if (status !== 200) {
    console.error(`portcullis login: ${registry} answered GET /v2/ with ${status}; is it an OCI registry?`);
    return 1;
  }
  const file = values.authfile ?? loginAuthFile();
  try {
    await saveAuthEntry(file, registry, username, password);
  } catch (error) {
    console.error(`portcullis login: ${(error as Error).message}`);
    return 1;
  }
  console.error(`Login Succeeded! (credentials stored in ${file})`);
  return 0;
}

export async function logoutMain(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { all: { type: 'boolean', short: 'a' }, authfile: { type: 'string' } });
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const registry = positionals[0]?.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if ((registry === undefined) === !values.all || positionals.length > 1) {
    console.error(`give one REGISTRY, or --all\n\n${loginUsage}`);
    return 2;
  }
  // Every file the CLI reads credentials from, so that none is left behind to be used.
  const files = values.authfile ? [values.authfile] : authFiles();
  const removed: string[] = [];
  try {
    for (const file of files) if (await removeAuthEntry(file, registry)) removed.push(file);
  } catch (error) {
    console.error(`portcullis logout: ${(error as Error).message}`);
    return 1;
  }
  if (removed.length === 0) {
    console.error(`portcullis logout: not logged in to ${registry ?? 'any registry'}`);
    return 1;
  }
  console.error(`Removed login credentials for ${registry ?? 'all registries'} from ${removed.join(', ')}`);
  return 0;
}
