/**
 * HTTP integration-test target: a registry process listening on a loopback port, plus a small
 * raw HTTP/1.1 client (node:http, no path normalisation, full control of every header) and
 * helpers to push blobs and manifests.
 *
 * The target is Portcullis by default (`startRegistry()` from registry-process.ts).
 * `PORTCULLIS_HTTP_TARGET=distribution` runs the same tests against the CNCF reference
 * registry (`docker-registry`, distribution 2.8) instead, which is how the expectations in
 * test/http were checked while Portcullis was being written. Where the reference registry is
 * known to deviate from the spec (or from Portcullis policy), tests are marked `todo` for that
 * target only via {@link deviation}; against Portcullis every test is strict.
 *
 * `PORTCULLIS_HTTP_TARGET=portcullis-postgres` runs Portcullis with PostgreSQL metadata (a fresh
 * database per target, see test/support/postgres.ts) instead of SQLite; test/http/postgres.test.ts
 * runs a representative part of the suite that way in every `npm test`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { createTestDatabase } from './postgres.ts';
import { startRegistry } from './registry-process.ts';

export type TargetKind = 'portcullis' | 'distribution';

export const targetKind: TargetKind = process.env.PORTCULLIS_HTTP_TARGET === 'distribution' ? 'distribution' : 'portcullis';

/** Metadata backend of a Portcullis target. */
export const targetMetadata: 'sqlite' | 'postgres' = process.env.PORTCULLIS_HTTP_TARGET === 'portcullis-postgres' ? 'postgres' : 'sqlite';

/**
 * `todo` option for a test the reference registry is known to fail: returns the reason when
 * running against that target, otherwise `false` (the test is strict).
 */
export function deviation(kind: TargetKind, reason: string): string | false {
  return targetKind === kind ? `known ${kind} deviation: ${reason}` : false;
}

export interface TargetOptions {
  /** Deletion of manifests, tags and blobs (default true). */
  deleteEnabled?: boolean;
  /** Extra PORTCULLIS_* environment variables (Portcullis target only). */
  env?: Record<string, string>;
}

export interface Target {
  kind: TargetKind;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  client: Client;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * Portcullis environment variable that disables deletion. Kept in one place so it can follow
 * src/registry/config/schema.ts.
 */
export const deleteEnabledEnv = 'PORTCULLIS_STORAGE_DELETE_ENABLED';

export async function startTarget(options: TargetOptions = {}): Promise<Target> {
  const deleteEnabled = options.deleteEnabled ?? true;
  if (targetKind === 'distribution') return startDistribution(deleteEnabled);
  const env: Record<string, string> = { ...options.env };
  env[deleteEnabledEnv] = String(deleteEnabled);
  const database = targetMetadata === 'postgres' ? await createTestDatabase() : undefined;
  if (database) {
    env.PORTCULLIS_STORAGE_METADATA_KIND = 'postgres';
    env.PORTCULLIS_STORAGE_METADATA_POSTGRES_URL = database.url;
  }
  let registry;
  try {
    registry = await startRegistry({ env });
  } catch (error) {
    await database?.drop();
    throw error;
  }
  const client = new Client(registry.url);
  return {
    kind: 'portcullis',
    url: registry.url,
    host: registry.host,
    client,
    output: registry.output,
    stop: async () => {
      client.close();
      await registry.stop();
      await database?.drop();
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

async function startDistribution(deleteEnabled: boolean): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-distribution-'));
  const port = await freePort();
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    `    enabled: ${deleteEnabled}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, config);
  const child = spawn(process.env.DISTRIBUTION_REGISTRY_BIN ?? '/usr/bin/docker-registry', ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const client = new Client(url);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await client.request('GET', '/v2/');
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    kind: 'distribution',
    url,
    host,
    client,
    output: () => output,
    stop: async () => {
      client.close();
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

export interface RequestOptions {
  headers?: Record<string, string | number>;
  body?: Uint8Array | string;
  /** Do not add Content-Length automatically (use chunked transfer encoding for a body). */
  noContentLength?: boolean;
  /** Give up after this many ms (default 15 s). */
  timeoutMs?: number;
}

export class Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly method: string;
  readonly path: string;

  constructor(method: string, path: string, status: number, headers: http.IncomingHttpHeaders, body: Buffer) {
    this.method = method;
    this.path = path;
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  header(name: string): string | undefined {
    const value = this.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  text(): string {
    return this.body.toString('utf8');
  }

  json(): any {
    try {
      return JSON.parse(this.text());
    } catch (error) {
      throw new Error(`${this.describe()}: body is not JSON: ${this.text().slice(0, 500)}`, { cause: error });
    }
  }

  /** One line for assertion messages. */
  describe(): string {
    const body = this.body.length > 600 ? `${this.text().slice(0, 600)}…` : this.text();
    return `${this.method} ${this.path.length > 200 ? `${this.path.slice(0, 200)}…` : this.path} -> ${this.status} ${JSON.stringify(this.headers)} ${body}`;
  }
}

export class Client {
  readonly baseUrl: string;
  readonly origin: URL;
  private readonly agent: http.Agent;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
    this.origin = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * Turns a Location header (absolute or relative, RFC 7231 §7.1.2: relative references are
   * resolved against the request's URI, `requestPath`) into a request path on this registry,
   * asserting that an absolute one points at this registry.
   */
  pathOf(location: string, requestPath = '/'): string {
    const resolved = new URL(location, new URL(requestPath, this.baseUrl));
    assert.equal(resolved.host, this.origin.host, `Location ${location} points at another host`);
    return resolved.pathname + resolved.search;
  }

  /** Sends one request. `path` is sent verbatim (no normalisation, no encoding). */
  request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
    const headers: Record<string, string | number> = { ...options.headers };
    const hasLength = Object.keys(headers).some((h) => h.toLowerCase() === 'content-length');
    if (!hasLength && !options.noContentLength && (body !== undefined || ['POST', 'PUT', 'PATCH'].includes(method))) {
      headers['Content-Length'] = body?.length ?? 0;
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let responded = false;
      const settle = (fn: () => void) => {
        if (!settled) {
          settled = true;
          fn();
        }
      };
      const req = http.request(
        { host: this.origin.hostname, port: this.origin.port, method, path, headers, agent: this.agent, timeout: options.timeoutMs ?? 15_000 },
        (res) => {
          responded = true;
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => settle(() => resolve(new Response(method, path, res.statusCode ?? 0, res.headers, Buffer.concat(chunks)))));
          res.on('error', (error) => settle(() => reject(error)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', (error) => {
        // A server may answer early (413, 4xx) and close while the body is still being sent
        // (EPIPE/ECONNRESET on our side): the answer it sent still counts, so wait for it.
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EPIPE' || code === 'ECONNRESET') setTimeout(() => settle(() => reject(new Error(`${method} ${path}: ${code} and no response${responded ? ' body' : ''} received`, { cause: error }))), 500);
        else settle(() => reject(error));
      });
      if (body === undefined || body.length <= 64 * 1024) {
        req.end(body);
        return;
      }
      // Large bodies go in pieces, and stop as soon as the server has answered.
      req.on('response', () => req.end());
      let offset = 0;
      const pump = () => {
        while (offset < body.length && !responded && !req.destroyed) {
          const piece = body.subarray(offset, offset + 64 * 1024);
          offset += piece.length;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        if (offset >= body.length && !responded) req.end();
      };
      pump();
    });
  }

  get(path: string, options?: RequestOptions): Promise<Response> {
    return this.request('GET', path, options);
  }
  head(path: string, options?: RequestOptions): Promise<Response> {
    return this.request('HEAD', path, options);
  }
  delete(path: string, options?: RequestOptions): Promise<Response> {
    return this.request('DELETE', path, options);
  }

  /**
   * Starts a request with `Content-Length: declaredLength`, sends `sent` bytes, waits, then
   * destroys the socket: a client dying in the middle of an upload.
   */
  async abortMidway(method: string, path: string, headers: Record<string, string | number>, sent: Uint8Array, waitMs = 300): Promise<void> {
    await new Promise<void>((resolve) => {
      const req = http.request({ host: this.origin.hostname, port: this.origin.port, method, path, headers, agent: false });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.flushHeaders();
      req.write(sent, () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, waitMs);
      });
    });
    // Let the server notice the reset before the next request.
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

export function expectStatus(res: Response, status: number | number[]): void {
  const allowed = Array.isArray(status) ? status : [status];
  assert.ok(allowed.includes(res.status), `expected status ${allowed.join(' or ')}, got ${res.describe()}`);
  expectWellFormedWarnings(res);
}

/**
 * Spec §Warnings: `Warning` headers, if any, MUST use warn-code 299 and warn-agent `-`, MUST
 * NOT carry a warn-date, and all of them together MUST NOT exceed 4096 bytes.
 */
export function expectWellFormedWarnings(res: Response): void {
  const raw = res.headers.warning;
  if (raw === undefined) return;
  // Node joins repeated headers with ", ".
  const values = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => v.split(/,\s*(?=\d{3} )/));
  let total = 0;
  for (const value of values) {
    total += Buffer.byteLength(value);
    assert.match(value, /^299 - "(?:[^"\\]|\\.)*"$/, `malformed Warning header ${JSON.stringify(value)}: ${res.describe()}`);
  }
  assert.ok(total <= 4096, `more than 4096 bytes of Warning headers: ${res.describe()}`);
}

/**
 * The error envelope of spec §Error Codes: `{"errors":[{"code","message","detail"}]}` with a
 * JSON content type, and `code` among the entries.
 */
export function expectError(res: Response, status: number | number[], code: string | string[]): void {
  expectStatus(res, status);
  const codes = Array.isArray(code) ? code : [code];
  assert.match(res.header('content-type') ?? '', /^application\/json\b/, `error response is not JSON: ${res.describe()}`);
  const body = res.json();
  assert.ok(body && Array.isArray(body.errors) && body.errors.length > 0, `no "errors" array: ${res.describe()}`);
  for (const entry of body.errors) {
    assert.equal(typeof entry.code, 'string', `error code is not a string: ${res.describe()}`);
    assert.match(entry.code, /^[A-Z_]+$/, `error code must be uppercase letters and underscores: ${res.describe()}`);
    if (entry.message !== undefined) assert.equal(typeof entry.message, 'string', `error message is not a string: ${res.describe()}`);
  }
  assert.ok(
    body.errors.some((entry: { code: string }) => codes.includes(entry.code)),
    `expected error code ${codes.join(' or ')}, got ${res.describe()}`,
  );
}

/** The `Range: 0-N` header of an upload session that holds `size` bytes. */
export function expectUploadRange(res: Response, size: number): void {
  const range = res.header('range');
  if (size === 0) {
    // The spec defines `0-<end-of-range>` only once a byte was written; an empty session is
    // reported as `0-0` by distribution and accepted as such (or absent).
    assert.ok(range === undefined || range === '0-0', `unexpected Range ${range} for an empty upload: ${res.describe()}`);
    return;
  }
  assert.equal(range, `0-${size - 1}`, `upload Range header: ${res.describe()}`);
}

export const uuidPattern = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

// ---------------------------------------------------------------------------------------------
// Content helpers
// ---------------------------------------------------------------------------------------------

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function sha512(bytes: Uint8Array | string): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

let counter = 0;

/** A repository name unique to this process (tests in one file share a registry). */
export function uniqueRepo(prefix = 'test'): string {
  counter += 1;
  return `${prefix}/r${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Deterministic pseudo-random bytes (distinct per seed). */
export function randomBytesOf(size: number, seed = `${Date.now()}-${Math.random()}`): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset, 0, Math.min(block.length, size - offset));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  empty: 'application/vnd.oci.empty.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const emptyJson = Buffer.from('{}');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** POST then PUT (spec §Push › POST then PUT). Asserts success. */
export async function pushBlob(client: Client, repo: string, content: Uint8Array, digest = sha256(content)): Promise<string> {
  const start = await client.request('POST', `/v2/${repo}/blobs/uploads/`);
  expectStatus(start, 202);
  const location = start.header('location');
  assert.ok(location, `no Location: ${start.describe()}`);
  const path = client.pathOf(location, start.path);
  const sep = path.includes('?') ? '&' : '?';
  const put = await client.request('PUT', `${path}${sep}digest=${encodeURIComponent(digest)}`, {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: content,
  });
  expectStatus(put, 201);
  return digest;
}

export interface Image {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
  descriptor: Descriptor;
}

/** Builds (but does not push) an OCI image manifest over the given config and layers. */
export function imageManifest(
  config: Buffer,
  layers: Buffer[],
  extra: { subject?: Descriptor; artifactType?: string; annotations?: Record<string, string>; configMediaType?: string; indent?: boolean } = {},
): Buffer {
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MT.manifest,
    ...(extra.artifactType ? { artifactType: extra.artifactType } : {}),
    config: { mediaType: extra.configMediaType ?? MT.config, digest: sha256(config), size: config.length },
    layers: layers.map((layer) => ({ mediaType: MT.layer, digest: sha256(layer), size: layer.length })),
    ...(extra.subject ? { subject: extra.subject } : {}),
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
  };
  // Indented with tabs and a trailing newline: byte-exact storage is then observable.
  return Buffer.from(`${JSON.stringify(doc, null, extra.indent === false ? undefined : '\t')}\n`);
}

/** Pushes config + layers + manifest (tagged `tag` when given, otherwise by digest). */
export async function pushImage(
  client: Client,
  repo: string,
  options: { tag?: string; layers?: number; seed?: string; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string>; configMediaType?: string; config?: Buffer } = {},
): Promise<Image> {
  const seed = options.seed ?? `${Math.random()}`;
  const config = options.config ?? Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed }));
  const layers = Array.from({ length: options.layers ?? 1 }, (_, i) => randomBytesOf(512 + i * 37, `${seed}-layer-${i}`));
  await pushBlob(client, repo, config);
  for (const layer of layers) await pushBlob(client, repo, layer);
  const manifest = imageManifest(config, layers, options);
  const digest = sha256(manifest);
  const res = await client.request('PUT', `/v2/${repo}/manifests/${options.tag ?? digest}`, { headers: { 'Content-Type': MT.manifest }, body: manifest });
  expectStatus(res, 201);
  return { config, layers, manifest, digest, descriptor: { mediaType: MT.manifest, digest, size: manifest.length } };
}

export async function putManifest(client: Client, repo: string, reference: string, body: Buffer | string, contentType: string = MT.manifest): Promise<Response> {
  return client.request('PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'Content-Type': contentType }, body });
}
