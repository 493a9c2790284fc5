/**
 * A small OCI distribution client for the CLI (`portcullis sign|attest|verify`): image references,
 * credentials read the way container tools read them, and the Docker token flow.
 *
 * Credentials, first match wins: `--registry-username/--registry-password`; then the auth files
 * podman, skopeo and buildah use, in their order (`$REGISTRY_AUTH_FILE`,
 * `${XDG_RUNTIME_DIR}/containers/auth.json`, `~/.config/containers/auth.json`), then Docker's
 * (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). An entry is chosen by the most
 * specific key (`host/namespace/repo` before `host`), as containers/image does; `auth`
 * (base64 `user:password`) and `identitytoken` (a refresh token) are understood. Credential helpers
 * are run as Docker and containers/image run them (`docker-credential-<name> get`, the server on
 * stdin, JSON on stdout): within a file, `credHelpers[host]` first, then `auths`, then `credsStore`;
 * a helper that knows no credentials for the host passes to the next source.
 *
 * Authentication: a request answered `401` with a `Bearer` challenge gets a token from the realm
 * (`GET realm?service=&scope=` with Basic credentials, or `POST` with a refresh token); a `Basic`
 * challenge gets the credentials directly. Tokens are reused per scope until they expire.
 *
 * Transport: HTTPS, except for loopback registries and with `--allow-http-registry`;
 * `--allow-insecure-registry` skips TLS certificate verification.
 * A Bearer realm must be HTTPS unless the registry itself is spoken to over plain HTTP
 * (credentials are sent to it).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ImageRef {
  /** `host[:port]`, as written. */
  registry: string;
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** `host[:port]/name[:tag][@sha256:hex]`; the registry host is required (no Docker Hub default). */
export function parseImageRef(text: string): ImageRef {
  let rest = text.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new Error(`${text}: the digest must be sha256:<64 hex>`);
  }
  const slash = rest.indexOf('/');
  const host = slash > 0 ? rest.slice(0, slash) : '';
  if (!host || !(host.includes('.') || host.includes(':') || host === 'localhost')) throw new Error(`${text}: an image reference names its registry, e.g. registry.example.com/project/app:tag`);
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`${text}: invalid tag ${JSON.stringify(tag)}`);
  }
  if (!path || !path.split('/').every((c) => COMPONENT.test(c))) throw new Error(`${text}: invalid repository name ${JSON.stringify(path)}`);
  return { registry: host, repository: path, tag, digest };
}

export function formatRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag && !ref.digest ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

export interface Credentials {
  username: string;
  password: string;
  /** A refresh token (`identitytoken`), used with the token endpoint's refresh_token grant. */
  identityToken?: string;
}

/** The auth files container tools read, in their order of precedence. */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env['REGISTRY_AUTH_FILE']) files.push(env['REGISTRY_AUTH_FILE']);
  if (env['XDG_RUNTIME_DIR']) files.push(join(env['XDG_RUNTIME_DIR'], 'containers', 'auth.json'));
  files.push(join(env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config'), 'containers', 'auth.json'));
  files.push(join(env['DOCKER_CONFIG'] ?? join(homedir(), '.docker'), 'config.json'));
  return files;
}

function normaliseKey(key: string): string {
  return key.replace(/^https?:\/\//, '').replace(/\/+$/, '').replace(/\/v[12]$/, '');
}

/** Credentials for `registry/repository` from the first auth file that has an entry for it. */
export function findCredentials(registry: string, repository: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  for (const file of authFiles(env)) {
    if (!existsSync(file)) continue;
    let json: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>; credHelpers?: Record<string, string>; credsStore?: string };
    try {
      json = JSON.parse(readFileSync(file, 'utf8')) as typeof json;
    } catch (err) {
      throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
    const helper = json.credHelpers?.[registry];
    if (helper) {
      const fromHelper = fromCredentialHelper(helper, registry, file, env);
      if (fromHelper) return fromHelper;
    }
    const auths = json.auths ?? {};
    // the most specific key first: host/ns/repo, host/ns, host
    const parts = repository.split('/');
    const candidates = [...parts.map((_, i) => `${registry}/${parts.slice(0, parts.length - i).join('/')}`), registry];
    for (const want of candidates) {
      const key = Object.keys(auths).find((k) => normaliseKey(k) === want);
      if (!key) continue;
      const entry = auths[key]!;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) throw new Error(`${file}: the auth entry for ${key} is not base64 user:password`);
        const creds: Credentials = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
        if (entry.identitytoken) creds.identityToken = entry.identitytoken;
        return creds;
      }
      if (entry.username && entry.password) return { username: entry.username, password: entry.password };
      if (entry.identitytoken) return { username: '<token>', password: '', identityToken: entry.identitytoken };
    }
    if (json.credsStore) {
      const fromStore = fromCredentialHelper(json.credsStore, registry, file, env);
      if (fromStore) return fromStore;
    }
  }
  return undefined;
}

/**
 * `docker-credential-<name> get`: undefined when the helper has nothing for `registry` (it exits
 * non-zero saying "credentials not found"); any other failure is an error naming the helper, never
 * the output (which may hold a secret).
 */
function fromCredentialHelper(name: string, registry: string, file: string, env: NodeJS.ProcessEnv): Credentials | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`${file}: credential helper name ${JSON.stringify(name.slice(0, 64))} is not a plain name`);
  const program = `docker-credential-${name}`;
  let out: string;
  try {
    out = execFileSync(program, ['get'], { input: registry, env, encoding: 'utf8', timeout: 30_000, maxBuffer: 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; status?: number | null };
    if (/credentials not found/i.test(e.stdout ?? '')) return undefined;
    throw new Error(e.code === 'ENOENT' ? `${file}: credential helper ${program} is not on PATH` : `${file}: credential helper ${program} failed (exit ${e.status ?? e.code ?? 'unknown'})`);
  }
  let reply: { Username?: unknown; Secret?: unknown };
  try {
    reply = JSON.parse(out) as typeof reply;
  } catch {
    throw new Error(`${file}: credential helper ${program} did not answer JSON`);
  }
  if (typeof reply.Username !== 'string' || typeof reply.Secret !== 'string' || reply.Secret === '') throw new Error(`${file}: credential helper ${program} answered without Username and Secret`);
  // Docker's convention: the user "<token>" means the secret is an identity (refresh) token.
  return reply.Username === '<token>' ? { username: '<token>', password: '', identityToken: reply.Secret } : { username: reply.Username, password: reply.Secret };
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class RegistryHttpError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'RegistryHttpError';
    this.status = status;
  }
}

export interface ClientOptions {
  credentials?: Credentials | undefined;
  /** Plain HTTP (default for loopback hosts). */
  http?: boolean;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  userAgent?: string;
  /** Largest response body read (manifests, tokens, signature blobs). */
  maxBodyBytes?: number;
  /** Plain HTTP for loopback hosts without `http` (default true; the admission webhook turns it off). */
  loopbackHttp?: boolean;
  /** Socket inactivity timeout of each request (default 60 s). */
  timeoutMs?: number;
  /** Aborts every request of this client (an overall deadline). */
  signal?: AbortSignal;
  /** CA certificates (PEM) trusted for HTTPS instead of the system's. */
  ca?: string | Buffer;
}

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(header.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  for (const p of m[2]!.matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** One registry; requests are for one repository at a time (the token scope). */
export class RegistryClient {
  readonly registry: string;
  readonly #base: string;
  readonly #options: ClientOptions;
  readonly #tokens = new Map<string, { token: string; expires: number }>();
  #basic = false;

  constructor(registry: string, options: ClientOptions = {}) {
    this.registry = registry;
    this.#options = options;
    const scheme = options.http || ((options.loopbackHttp ?? true) && isLoopback(registry)) ? 'http' : 'https';
    this.#base = `${scheme}://${registry}`;
  }

  async #raw(method: string, url: string, headers: Record<string, string>, body?: Buffer): Promise<Response> {
    const u = new URL(url, this.#base);
    const lib = u.protocol === 'https:' ? https : http;
    const max = this.#options.maxBodyBytes ?? 64 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        u,
        {
          method,
          headers: { 'user-agent': this.#options.userAgent ?? 'portcullis-cli', ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
          ...this.#transport(u),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let total = 0;
          res.on('data', (c: Buffer) => {
            total += c.length;
            if (total > max) {
              req.destroy(new Error(`response from ${u.host} larger than ${max} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${u.href} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** TLS, timeout and abort options of a request to `u`. */
  #transport(u: URL): https.RequestOptions {
    const o = this.#options;
    return {
      timeout: o.timeoutMs ?? 60_000,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(u.protocol === 'https:' && o.insecure ? { rejectUnauthorized: false } : {}),
      ...(u.protocol === 'https:' && o.ca ? { ca: o.ca } : {}),
    };
  }

  async #token(challenge: Record<string, string>, scope: string): Promise<string> {
    const realm = challenge['realm'];
    if (!realm) throw new RegistryHttpError(`${this.registry} sent a Bearer challenge without a realm`, 401);
    // Credentials go to the realm: never in clear text unless the registry itself is plain HTTP.
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new RegistryHttpError(`${this.registry} sent a Bearer realm that is not a URL`, 401);
    }
    if (realmUrl.protocol !== 'https:' && !(realmUrl.protocol === 'http:' && this.#base.startsWith('http:'))) {
      throw new RegistryHttpError(`${this.registry} sent a Bearer realm ${realmUrl.origin} that is not HTTPS`, 401);
    }
    const service = challenge['service'] ?? '';
    const cached = this.#tokens.get(scope);
    if (cached && cached.expires > Date.now()) return cached.token;
    const creds = this.#options.credentials;
    let res: Response;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service, scope, client_id: 'portcullis-cli' });
      res = await this.#raw('POST', realm, { 'content-type': 'application/x-www-form-urlencoded' }, Buffer.from(form.toString()));
    } else {
      const q = new URLSearchParams({ service });
      if (scope) q.set('scope', scope);
      const headers: Record<string, string> = {};
      if (creds) headers['authorization'] = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      res = await this.#raw('GET', `${realm}${realm.includes('?') ? '&' : '?'}${q}`, headers);
    }
    if (res.status !== 200) throw new RegistryHttpError(`token request to ${realm} failed: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`, res.status);
    const body = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryHttpError(`token response from ${realm} has no token`, 500);
    this.#tokens.set(scope, { token, expires: Date.now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    return token;
  }

  /** A request to `/v2/...` with authentication for `scope` (e.g. `repository:p/app:pull,push`). */
  async request(method: string, path: string, options: { headers?: Record<string, string>; body?: Buffer; scope: string }): Promise<Response> {
    const headers = { ...(options.headers ?? {}) };
    const cached = this.#tokens.get(options.scope);
    if (cached && cached.expires > Date.now()) headers['authorization'] = `Bearer ${cached.token}`;
    else if (this.#basic && this.#options.credentials) headers['authorization'] = this.#basicHeader();
    let res = await this.#raw(method, path, headers, options.body);
    if (res.status !== 401) return res;
    const header = res.headers['www-authenticate'];
    const challenge = parseChallenge(Array.isArray(header) ? header[0]! : (header ?? ''));
    if (challenge.scheme === 'bearer') {
      this.#tokens.delete(options.scope);
      headers['authorization'] = `Bearer ${await this.#token(challenge.params, challenge.params['scope'] ?? options.scope)}`;
      // the registry names the scope it wants; cache under ours as well
      const t = this.#tokens.get(challenge.params['scope'] ?? options.scope);
      if (t) this.#tokens.set(options.scope, t);
    } else if (challenge.scheme === 'basic' && this.#options.credentials) {
      this.#basic = true;
      headers['authorization'] = this.#basicHeader();
    } else {
      return res;
    }
    res = await this.#raw(method, path, headers, options.body);
    return res;
  }

  #basicHeader(): string {
    const c = this.#options.credentials!;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  static #fail(what: string, res: Response): never {
    let message = res.body.toString('utf8').slice(0, 500);
    try {
      const j = JSON.parse(message) as { errors?: { code: string; message: string }[] };
      if (j.errors?.[0]) message = `${j.errors[0].code}: ${j.errors[0].message}`;
    } catch {
      // not JSON
    }
    throw new RegistryHttpError(`${what}: HTTP ${res.status} ${message}`, res.status);
  }

  /** A manifest by tag or digest (undefined when unknown). The digest is computed from the bytes. */
  async getManifest(repository: string, reference: string, scope = `repository:${repository}:pull`): Promise<{ digest: string; mediaType: string; content: Buffer } | undefined> {
    const res = await this.request('GET', `/v2/${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT }, scope });
    if (res.status === 404) return undefined;
    if (res.status !== 200) RegistryClient.#fail(`GET ${repository}:${reference}`, res);
    const digest = `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) throw new Error(`${this.registry}/${repository}@${reference}: the registry sent content with digest ${digest}`);
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim() || (JSON.parse(res.body.toString('utf8')) as { mediaType?: string }).mediaType || '';
    return { digest, mediaType, content: res.body };
  }

  async putManifest(repository: string, reference: string, content: Buffer, mediaType: string): Promise<{ digest: string; subjectAccepted: boolean }> {
    const res = await this.request('PUT', `/v2/${repository}/manifests/${reference}`, { headers: { 'content-type': mediaType }, body: content, scope: `repository:${repository}:pull,push` });
    if (res.status !== 201) RegistryClient.#fail(`PUT ${repository}:${reference}`, res);
    return { digest: `sha256:${createHash('sha256').update(content).digest('hex')}`, subjectAccepted: res.headers['oci-subject'] !== undefined };
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull,push` });
    return res.status === 200;
  }

  /** Uploads a blob (monolithic POST, or POST then PUT) unless the repository has it. */
  async pushBlob(repository: string, content: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    if (await this.blobExists(repository, digest)) return digest;
    const scope = `repository:${repository}:pull,push`;
    let res = await this.request('POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { headers: { 'content-type': 'application/octet-stream' }, body: content, scope });
    if (res.status === 201) return digest;
    if (res.status !== 202) RegistryClient.#fail(`upload of ${digest} to ${repository}`, res);
    const location = String(res.headers['location'] ?? '');
    const url = new URL(location, this.#base);
    url.searchParams.set('digest', digest);
    res = await this.request('PUT', `${url.pathname}${url.search}`, { headers: { 'content-type': 'application/octet-stream' }, body: content, scope });
    if (res.status !== 201) RegistryClient.#fail(`upload of ${digest} to ${repository}`, res);
    return digest;
  }

  async getBlob(repository: string, digest: string, maxBytes: number): Promise<Buffer> {
    const res = await this.request('GET', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull` });
    if (res.status !== 200) RegistryClient.#fail(`GET blob ${digest}`, res);
    if (res.body.length > maxBytes) throw new Error(`blob ${digest} larger than ${maxBytes} bytes`);
    return res.body;
  }

  /**
   * A blob as a stream (for blobs too large to hold in memory), following the redirects registries
   * answer with for blob storage; credentials go only to the registry itself. The caller verifies
   * the digest.
   */
  async openBlob(repository: string, digest: string): Promise<http.IncomingMessage> {
    const scope = `repository:${repository}:pull`;
    // A HEAD runs the challenge/token exchange (and answers 404 cheaply).
    const head = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, { scope });
    if (head.status !== 200 && head.status !== 307 && head.status !== 302) RegistryClient.#fail(`HEAD blob ${digest}`, head);
    const cached = this.#tokens.get(scope);
    const auth = cached ? `Bearer ${cached.token}` : this.#basic && this.#options.credentials ? this.#basicHeader() : undefined;
    let url = new URL(`/v2/${repository}/blobs/${digest}`, this.#base);
    for (let hop = 0; hop < 5; hop++) {
      const sameHost = url.host === new URL(this.#base).host;
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const lib = url.protocol === 'https:' ? https : http;
        const req = lib.get(
          url,
          {
            headers: { 'user-agent': this.#options.userAgent ?? 'portcullis-cli', ...(auth && sameHost ? { authorization: auth } : {}) },
            ...this.#transport(url),
          },
          resolve,
        );
        req.on('timeout', () => req.destroy(new Error(`GET ${url.href} timed out`)));
        req.on('error', reject);
      });
      if (res.statusCode === 200) return res;
      const location = res.headers.location;
      res.resume();
      if (res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400 && location) {
        url = new URL(location, url);
        continue;
      }
      throw new RegistryHttpError(`GET blob ${digest}: HTTP ${res.statusCode}`, res.statusCode ?? 0);
    }
    throw new RegistryHttpError(`GET blob ${digest}: too many redirects`, 0);
  }

  /** Referrers of `digest` (the Referrers API; an empty list when the registry has none). */
  async referrers(repository: string, digest: string): Promise<string[]> {
    const res = await this.request('GET', `/v2/${repository}/referrers/${digest}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' }, scope: `repository:${repository}:pull` });
    if (res.status === 404) return [];
    if (res.status !== 200) RegistryClient.#fail(`referrers of ${digest}`, res);
    const index = JSON.parse(res.body.toString('utf8')) as { manifests?: { digest?: string }[] };
    return (index.manifests ?? []).map((m) => m.digest).filter((d): d is string => typeof d === 'string');
  }
}
