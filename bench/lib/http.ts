/**
 * A small HTTP/1.1 client over node:http with keep-alive agents. Bodies are written from
 * in-memory Buffers (possibly the same Buffer many times, to stream large blobs without holding
 * them), with back-pressure. Only loopback URLs are accepted.
 */
import http from 'node:http';

export interface Body {
  /** Total length (sent as Content-Length). */
  length: number;
  /** The parts, in order; called once per request. */
  parts: () => Iterable<Buffer>;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body when `read` is 'buffer' (else empty). */
  body: Buffer;
  /** Bytes of body received. */
  bytes: number;
}

export interface RequestOptions {
  method: string;
  url: string | URL;
  agent: http.Agent;
  headers?: http.OutgoingHttpHeaders;
  body?: Body | Buffer;
  /** Socket idle timeout (default 120 s). */
  timeoutMs?: number;
  /** 'buffer' keeps up to `maxBufferBytes` of the body; 'drain' only counts bytes. */
  read?: 'buffer' | 'drain';
  maxBufferBytes?: number;
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function assertLoopback(url: URL): void {
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) {
    throw new Error(`refusing to send a request to a non-loopback URL: ${url.href}`);
  }
}

export function bufferBody(buffer: Buffer): Body {
  return { length: buffer.length, parts: () => [buffer] };
}

export function request(options: RequestOptions): Promise<HttpResponse> {
  const url = typeof options.url === 'string' ? new URL(options.url) : options.url;
  assertLoopback(url);
  const body = Buffer.isBuffer(options.body) ? bufferBody(options.body) : options.body;
  const headers: http.OutgoingHttpHeaders = { ...options.headers };
  if (body) headers['content-length'] = String(body.length);
  else if (options.method === 'PUT' || options.method === 'POST' || options.method === 'PATCH') headers['content-length'] = '0';
  const readMode = options.read ?? 'buffer';
  const maxBuffer = options.maxBufferBytes ?? 16 * 1024 * 1024;

  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    let bodyDone = !body;
    const req = http.request({
      method: options.method,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      path: url.pathname + url.search,
      headers,
      agent: options.agent,
    });
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(error);
    };
    req.setTimeout(options.timeoutMs ?? 120_000, () => fail(new Error(`${options.method} ${url.pathname}: socket idle timeout`)));
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (readMode === 'buffer' && bytes <= maxBuffer) chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('close', () => {
        if (!res.complete) fail(new Error(`${options.method} ${url.pathname}: response aborted after ${bytes} bytes`));
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        // The server answered before we finished sending (e.g. an error): the connection
        // cannot be reused.
        if (!bodyDone) req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes });
      });
    });
    if (!body) {
      req.end();
      return;
    }
    void (async () => {
      try {
        for (const part of body.parts()) {
          if (settled || req.destroyed) return;
          if (!req.write(part)) await drained(req);
        }
        if (!settled && !req.destroyed) req.end();
        bodyDone = true;
      } catch (error) {
        fail(error as Error);
      }
    })();
  });
}

function drained(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  readonly status: number;
  constructor(what: string, res: HttpResponse) {
    super(`${what}: HTTP ${res.status} ${res.body.toString('utf8', 0, Math.min(res.body.length, 300))}`);
    this.status = res.status;
  }
}

export function expectStatus(what: string, res: HttpResponse, ...statuses: number[]): HttpResponse {
  if (!statuses.includes(res.status)) throw new HttpStatusError(what, res);
  return res;
}

/** The `rel="next"` target of a Link header, resolved against `base`, or undefined. */
export function nextLink(link: string | string[] | undefined, base: URL): URL | undefined {
  if (!link) return undefined;
  const values = Array.isArray(link) ? link : [link];
  for (const value of values) {
    for (const part of value.split(/,(?=\s*<)/)) {
      const match = /<([^>]+)>\s*;(.*)$/.exec(part.trim());
      if (match && /\brel="?next"?/.test(match[2]!)) {
        const next = new URL(match[1]!, base);
        if (next.origin !== base.origin) throw new Error(`Link header points to another origin: ${next.href}`);
        return next;
      }
    }
  }
  return undefined;
}
