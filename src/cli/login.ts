/**
 * `portcullis login --oidc [--provider NAME] REGISTRY`: logs in through the registry's OpenID
 * provider with the device authorization grant (RFC 8628) and obtains a personal access token
 * for podman, skopeo, buildah and docker.
 *
 * With `--browser` (or when the provider has no device authorization endpoint) the CLI listens
 * on a loopback port instead, prints the registry's login URL for the browser, receives a one-time
 * code on `http://127.0.0.1:PORT/callback` and redeems it with its PKCE verifier (RFC 8252 style).
 *
 * The registry runs the grant on the CLI's behalf (POST /auth/oidc/device, then polls of
 * /auth/oidc/device/token), so the provider's client secret stays on the server and the CLI needs
 * no registration of its own. The token is written to the containers auth file
 * (`--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
 * `~/.config/containers/auth.json`: what podman reads) unless `--no-store`; `--print-token`
 * writes it to stdout (for `podman login --password-stdin`). Instructions go to stderr.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { authFiles } from './registry-client.ts';

const usage = `portcullis login --oidc [--provider NAME] [--browser] [--token-name NAME] [--authfile FILE] [--no-store] [--print-token] [--http] REGISTRY

Logs in through the registry's OpenID provider (device authorization: open the URL shown, enter
the code, sign in) and stores a personal access token for REGISTRY in the containers auth file.
--browser: log in in a browser on this machine instead (a loopback callback; also used when the
provider offers no device authorization).
Plain HTTP is used for loopback registries or with --http.`;

interface DeviceStart {
  handle: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval: number;
}

interface DeviceResult {
  username: string;
  token: string;
  token_name: string;
  expires_at: string;
  projects: string[];
}

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(url: string, body: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { error: 'invalid_response', error_description: `the registry answered ${response.status} with a body that is not JSON` };
  }
  return { status: response.status, body: parsed };
}

/** Adds (or replaces) the registry's entry in a containers auth file, keeping the others; written atomically, mode 0600. */
export async function storeCredentials(file: string, registry: string, username: string, secret: string): Promise<void> {
  let document: { auths?: Record<string, unknown> } = {};
  try {
    document = JSON.parse(await readFile(file, 'utf8')) as typeof document;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  document.auths = { ...document.auths, [registry]: { auth: Buffer.from(`${username}:${secret}`).toString('base64') } };
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

export async function loginMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        oidc: { type: 'boolean' },
        provider: { type: 'string' },
        'token-name': { type: 'string' },
        authfile: { type: 'string' },
        'no-store': { type: 'boolean' },
        'print-token': { type: 'boolean' },
        http: { type: 'boolean' },
        browser: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const registry = positionals[0];
  if (!values.oidc || registry === undefined || positionals.length > 1) {
    console.error(`${values.oidc ? 'give one REGISTRY (host[:port])' : 'only --oidc logins are supported (use podman login for passwords and tokens)'}\n\n${usage}`);
    return 2;
  }
  const base = `${values.http || isLoopback(registry) ? 'http' : 'https'}://${registry}/auth/oidc`;
  const finish = async (result: DeviceResult): Promise<number> => {
    if (!values['no-store']) {
      const file = values.authfile ?? authFiles()[0]!;
      await storeCredentials(file, registry, result.username, result.token);
      console.error(`Stored in ${file} (podman, skopeo and buildah read it).`);
    }
    console.error(`Logged in to ${registry} as ${result.username}: personal access token ${result.token_name}, expires ${result.expires_at}, projects ${result.projects.join(', ')}.`);
    if (values['print-token']) console.log(result.token);
    return 0;
  };
  const loopback = async (): Promise<number> => {
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    let resolveCode: (code: string) => void = () => undefined;
    const received = new Promise<string>((resolve) => (resolveCode = resolve));
    const server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const code = url.pathname === '/callback' ? url.searchParams.get('code') : null;
      response.writeHead(code ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8' }).end(code ? 'Logged in: you can close this window and return to the terminal.\n' : 'not found\n');
      if (code) resolveCode(code);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const query = new URLSearchParams({ ...(values.provider ? { provider: values.provider } : {}), cli_port: String(port), cli_challenge: challenge });
      console.error(`To log in, open ${base}/login?${query} in a browser on this machine.`);
      const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 600_000).unref());
      const code = await Promise.race([received, timeout]);
      if (code === undefined) {
        console.error('portcullis login: no login within 10 minutes');
        return 1;
      }
      const answer = await post(`${base}/cli/token`, { code, code_verifier: verifier, ...(values['token-name'] ? { token_name: values['token-name'] } : {}) });
      if (answer.status !== 200) {
        console.error(`portcullis login: ${String(answer.body.error ?? answer.status)}: ${String(answer.body.error_description ?? '')}`);
        return 1;
      }
      return await finish(answer.body as unknown as DeviceResult);
    } finally {
      server.close();
    }
  };
  if (values.browser) return loopback();
  let start: { status: number; body: Record<string, unknown> };
  try {
    start = await post(`${base}/device`, values.provider ? { provider: values.provider } : {});
  } catch (error) {
    console.error(`portcullis login: cannot reach ${registry}: ${(error as Error).message}`);
    return 1;
  }
  if (start.status === 404) {
    console.error(`portcullis login: ${registry} has no OIDC login (auth.oidc.providers is empty, or it is not a Portcullis registry)`);
    return 1;
  }
  if (start.status === 400 && start.body.error === 'unsupported_grant_type') {
    console.error('The provider offers no device authorization: logging in through a browser on this machine instead.');
    return loopback();
  }
  if (start.status !== 200) {
    console.error(`portcullis login: ${String(start.body.error ?? start.status)}: ${String(start.body.error_description ?? '')}`);
    return 1;
  }
  const device = start.body as unknown as DeviceStart;
  console.error(`To log in, open ${device.verification_uri_complete ?? device.verification_uri}`);
  console.error(`and confirm the code ${device.user_code} (valid ${Math.round(device.expires_in / 60)} minutes).`);
  let interval = Math.max(1, device.interval) * 1000;
  const deadline = Date.now() + device.expires_in * 1000;
  while (Date.now() < deadline) {
    await sleep(interval);
    let poll: { status: number; body: Record<string, unknown> };
    try {
      poll = await post(`${base}/device/token`, { handle: device.handle, ...(values['token-name'] ? { token_name: values['token-name'] } : {}) });
    } catch (error) {
      console.error(`portcullis login: ${(error as Error).message}; retrying`);
      continue;
    }
    if (poll.status === 200) return finish(poll.body as unknown as DeviceResult);
    const error = String(poll.body.error ?? '');
    if (error === 'authorization_pending') continue;
    if (error === 'slow_down') {
      interval += 5000;
      continue;
    }
    console.error(`portcullis login: ${error || poll.status}: ${String(poll.body.error_description ?? '')}`);
    return 1;
  }
  console.error('portcullis login: the code expired before it was confirmed');
  return 1;
}
