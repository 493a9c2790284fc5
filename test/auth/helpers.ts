/**
 * Helpers for the access-control tests: a registry process with token authentication and a
 * known administrator password, the management API, the token endpoint, and pushes/pulls with
 * registry tokens.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/** Runs `portcullis ARGS` (token authentication) to its end, with `stdin` as its input. */
export function runPortcullis(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, PORTCULLIS_AUTH_MODE: 'token' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

export const ADMIN_PASSWORD = `Adm1n-${randomBytes(12).toString('base64url')}`;
/** A password that satisfies the policy, distinct per call. */
export const newPassword = () => `pw-${randomBytes(12).toString('base64url')}`;

export interface Credentials {
  username: string;
  password: string;
}

export const admin: Credentials = { username: 'admin', password: ADMIN_PASSWORD };

export function basic(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

export interface AuthRegistry extends RunningRegistry {
  api<T = any>(method: string, path: string, options?: { auth?: Credentials | string; body?: unknown }): Promise<{ status: number; body: T; headers: Headers }>;
  /** GET /auth/token; `auth` as Basic credentials, or anonymous. */
  token(scopes: string[], auth?: Credentials, extra?: Record<string, string>): Promise<string>;
  /** Raw fetch relative to the registry. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export async function startAuthRegistry(env: Record<string, string> = {}, options: { configFile?: string } = {}): Promise<AuthRegistry> {
  // PORTCULLIS_ADMIN_PASSWORD: '' makes the registry generate (and print) the password.
  const registry = await startRegistry({ env: { PORTCULLIS_AUTH_MODE: 'token', PORTCULLIS_ADMIN_PASSWORD: ADMIN_PASSWORD, PORTCULLIS_GC_INTERVAL_SECONDS: '0', ...env }, ...options });
  const doFetch = (path: string, init?: RequestInit) => fetch(new URL(path, registry.url), init);
  return {
    ...registry,
    fetch: doFetch,
    async api(method, path, options = {}) {
      const headers: Record<string, string> = {};
      if (typeof options.auth === 'string') headers.authorization = `Bearer ${options.auth}`;
      else if (options.auth) headers.authorization = basic(options.auth);
      if (options.body !== undefined) headers['content-type'] = 'application/json';
      const res = await doFetch(`/api/v1${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    async token(scopes, auth, extra = {}) {
      const query = new URLSearchParams({ service: 'portcullis', ...extra });
      for (const scope of scopes) query.append('scope', scope);
      const res = await doFetch(`/auth/token?${query}`, { headers: auth ? { authorization: basic(auth) } : {} });
      const body = (await res.json()) as { token?: string };
      assert.equal(res.status, 200, `token request failed: ${JSON.stringify(body)}`);
      return body.token!;
    },
    async close() {
      await registry.stop();
      await rm(registry.dataDir, { recursive: true, force: true });
    },
  };
}

/** Asserts an API call succeeded and returns its body. */
export async function ok<T = any>(call: Promise<{ status: number; body: T }>, status = [200, 201, 204]): Promise<T> {
  const res = await call;
  assert.ok(status.includes(res.status), `API call failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function createUser(registry: AuthRegistry, name: string, extra: Record<string, unknown> = {}): Promise<Credentials> {
  const password = newPassword();
  await ok(registry.api('POST', '/users', { auth: admin, body: { name, password, ...extra } }));
  return { username: name, password };
}

export const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Pushes a tiny image (config + one layer + manifest) with a bearer token; returns the status of the manifest PUT (or the first failure). */
export async function pushImage(registry: AuthRegistry, repository: string, tag: string, token: string): Promise<{ status: number; digest: string; manifest: Buffer }> {
  const auth = { authorization: `Bearer ${token}` };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: Math.random() }));
  const layer = randomBytes(256);
  for (const blob of [config, layer]) {
    const res = await registry.fetch(`/v2/${repository}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob });
    await res.arrayBuffer();
    if (res.status !== 201) return { status: res.status, digest: '', manifest: Buffer.alloc(0) };
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const res = await registry.fetch(`/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  await res.arrayBuffer();
  return { status: res.status, digest: sha256(manifest), manifest };
}

/** Decodes a JWT payload (no verification). */
export function claims(token: string): any {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
}
