import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import type { RegistryAccessControl, RequestGrant } from '../auth/ports.ts';
import type { RequestOrigin } from '../events/bus.ts';
import { sendBlobFile } from './blob-sender.ts';
import { type BlobService, discardBlobBody } from './blobs.ts';
import { parseChunkRange, uploadProgressRange } from './content-range.ts';
import type { ListingService, ListPage } from './listing.ts';
import type { ManifestService } from './manifests.ts';
import { type DistributionRoute, allowedMethods, matchRoute } from './route-path.ts';
import type { UploadService } from './uploads.ts';

export interface DistributionServices {
  uploads: UploadService;
  blobs: BlobService;
  manifests: ManifestService;
  listing: ListingService;
  /** Authentication and authorisation of every request (absent when auth.mode is none). */
  access?: RegistryAccessControl;
}

const apiVersionHeader = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/**
 * The OCI distribution HTTP surface under `/v2/`. Repository names contain slashes, so one
 * wildcard route per method hands the raw path to {@link matchRoute}; request bodies are left
 * unread (the catch-all content parser) and streamed by the handlers themselves.
 */
export async function registerDistributionRoutes(app: FastifyInstance, services: DistributionServices): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.headers(apiVersionHeader);
    const url = request.raw.url ?? '/';
    const queryStart = url.indexOf('?');
    const path = (queryStart === -1 ? url : url.slice(0, queryStart)).slice('/v2/'.length);
    const route = matchRoute(path);
    const method = request.method;
    if (!allowedMethods[route.kind].includes(method)) {
      reply.header('Allow', allowedMethods[route.kind].join(', '));
      throw new RegistryError('METHOD_NOT_ALLOWED', `${method} is not supported on this endpoint`);
    }
    const query = new URLSearchParams(queryStart === -1 ? '' : url.slice(queryStart + 1));
    const grant = services.access ? await services.access.admit(request, { route, method, query }) : undefined;
    return dispatch(route, method, query, request, reply, services, grant);
  };
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const) {
    app.route({ method, url: '/v2', handler: async (request, reply) => reply.redirect('/v2/', 301) });
    app.route({ method, url: '/v2/*', handler });
  }
}

/** Who is asking, for events (and audit). */
export function originOf(request: FastifyRequest, actor: RequestOrigin['actor'] = { kind: 'anonymous' }): RequestOrigin {
  return { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor };
}

function contentLength(request: FastifyRequest): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new RegistryError('SIZE_INVALID', 'malformed Content-Length');
  return Number(header);
}

/** True when the request carries a body (Content-Length > 0 or chunked). */
function hasBody(request: FastifyRequest): boolean {
  return request.headers['transfer-encoding'] !== undefined || (contentLength(request) ?? 0) > 0;
}

function sendJson(reply: FastifyReply, status: number, body: unknown, contentType = 'application/json'): FastifyReply {
  // A Buffer, so that fastify sends the media type exactly as given (no added charset parameter).
  return reply.code(status).header('Content-Type', contentType).send(Buffer.from(JSON.stringify(body)));
}

function sendList(reply: FastifyReply, key: 'tags' | 'repositories', page: ListPage, name?: string): FastifyReply {
  if (page.link) reply.header('Link', page.link);
  return sendJson(reply, 200, name === undefined ? { [key]: page.items } : { name, [key]: page.items });
}

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

async function dispatch(route: DistributionRoute, method: string, query: URLSearchParams, request: FastifyRequest, reply: FastifyReply, s: DistributionServices, grant: RequestGrant | undefined): Promise<FastifyReply> {
  const origin = originOf(request, grant?.actor);
  switch (route.kind) {
    case 'base':
      return sendJson(reply, 200, {});
    case 'catalog':
      return sendList(reply, 'repositories', await s.listing.catalog(query.get('n') ?? undefined, query.get('last') ?? undefined, grant?.canList));
    case 'tags':
      return sendList(reply, 'tags', await s.listing.tags(route.name, query.get('n') ?? undefined, query.get('last') ?? undefined), route.name);
    case 'referrers': {
      const result = await s.listing.referrers(route.name, route.digest, query.get('artifactType') ?? undefined);
      if (result.filtered) reply.header('OCI-Filters-Applied', 'artifactType');
      return sendJson(reply, 200, result.index, 'application/vnd.oci.image.index.v1+json');
    }
    case 'blob': {
      if (method === 'DELETE') {
        await s.blobs.delete(route.name, route.digest, origin);
        return reply.code(202).header('Content-Length', '0').send();
      }
      const withBody = method === 'GET';
      const result = await s.blobs.fetch(route.name, route.digest, request.headers.range, withBody, origin);
      reply.header('Docker-Content-Digest', result.digest).header('ETag', `"${result.digest}"`).header('Accept-Ranges', 'bytes');
      if (result.kind === 'unsatisfiable') {
        reply.header('Content-Range', `bytes */${result.size}`);
        throw new RegistryError('RANGE_INVALID', `requested range is not within the ${result.size}-byte blob`, { headers: { 'Content-Range': `bytes */${result.size}` } });
      }
      if (request.headers['if-none-match'] === `"${result.digest}"`) {
        await discardBlobBody(result.body);
        return reply.code(304).send();
      }
      reply.header('Content-Type', 'application/octet-stream').header('Cache-Control', 'max-age=31536000, immutable');
      if (result.kind === 'partial') {
        reply.code(206).header('Content-Range', `bytes ${result.range.start}-${result.range.end}/${result.size}`).header('Content-Length', String(result.range.end - result.range.start + 1));
      } else {
        reply.code(200).header('Content-Length', String(result.size));
      }
      if (result.body && 'file' in result.body) return sendBlobFile(reply, result.body);
      return reply.send(result.body?.stream);
    }
    case 'uploads': {
      const mount = query.get('mount');
      if (mount !== null) {
        const from = query.get('from') ?? undefined;
        if (from !== undefined) matchRoute(`${from}/tags/list`); // validates the name
        const mounted = await s.blobs.mount(route.name, mount, from, origin);
        if (mounted) {
          return reply.code(201).headers({ Location: `/v2/${route.name}/blobs/${mounted.digest}`, 'Docker-Content-Digest': mounted.digest, 'Content-Length': '0' }).send();
        }
        // Not mountable: the spec's fallback is an ordinary upload session.
      }
      const digest = query.get('digest');
      if (digest !== null) {
        const result = await s.uploads.monolithic(route.name, digest, request.raw, contentLength(request), origin);
        return reply.code(201).headers({ Location: `/v2/${route.name}/blobs/${result.digest}`, 'Docker-Content-Digest': result.digest, 'Content-Length': '0' }).send();
      }
      if (hasBody(request)) {
        request.raw.resume();
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'a POST with a body needs ?digest= (single-request upload)');
      }
      const session = await s.uploads.start(route.name);
      return reply
        .code(202)
        .headers({ Location: uploadLocation(route.name, session.id), Range: '0-0', 'Docker-Upload-UUID': session.id, 'Content-Length': '0', 'OCI-Chunk-Min-Length': '0' })
        .send();
    }
    case 'upload': {
      const session = await s.uploads.get(route.name, route.id);
      const progressHeaders = (size: number) => ({ Location: uploadLocation(route.name, session.id), Range: uploadProgressRange(size), 'Docker-Upload-UUID': session.id });
      if (method === 'GET') return reply.code(204).headers({ ...progressHeaders(session.size), 'Content-Length': '0' }).send();
      if (method === 'DELETE') {
        await s.uploads.cancel(session, origin);
        return reply.code(204).header('Content-Length', '0').send();
      }
      if (method === 'PATCH') {
        const rangeHeader = request.headers['content-range'];
        const range = rangeHeader ? parseChunkRange(rangeHeader) : undefined;
        const updated = await s.uploads.appendChunk(session, request.raw, range, contentLength(request));
        return reply.code(202).headers({ ...progressHeaders(updated.size), 'Content-Length': '0' }).send();
      }
      // PUT: complete, with an optional final chunk.
      const finalChunk = hasBody(request) ? request.raw : undefined;
      const result = await s.uploads.commit(session, query.get('digest') ?? undefined, finalChunk, finalChunk ? contentLength(request) : undefined, origin);
      return reply.code(201).headers({ Location: `/v2/${route.name}/blobs/${result.digest}`, 'Docker-Content-Digest': result.digest, 'Content-Length': '0' }).send();
    }
    case 'manifest': {
      if (method === 'PUT') {
        const body = await s.manifests.readBody(request.raw, contentLength(request));
        const result = await s.manifests.put(route.name, route.reference, body, request.headers['content-type'], origin);
        reply.headers({ Location: `/v2/${route.name}/manifests/${result.digest}`, 'Docker-Content-Digest': result.digest, 'Content-Length': '0' });
        if (result.subject) reply.header('OCI-Subject', result.subject);
        return reply.code(201).send();
      }
      if (method === 'DELETE') {
        await s.manifests.delete(route.name, route.reference, origin);
        return reply.code(202).header('Content-Length', '0').send();
      }
      const record = await s.manifests.get(route.name, route.reference, request.headers.accept, origin, method === 'GET');
      reply.headers({ 'Content-Type': record.mediaType, 'Docker-Content-Digest': record.digest, ETag: `"${record.digest}"`, 'Content-Length': String(record.size) });
      if (request.headers['if-none-match'] === `"${record.digest}"`) return reply.code(304).send();
      return reply.code(200).send(method === 'GET' ? record.content : undefined);
    }
  }
}

/** One error handler for the whole server: the spec's JSON envelope, no internals on a 500. */
export function registryErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let registryError: RegistryError;
  if (error instanceof RegistryError) {
    registryError = error;
  } else {
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      registryError = new RegistryError(status === 413 ? 'BODY_TOO_LARGE' : status === 415 ? 'UNSUPPORTED' : 'BLOB_UPLOAD_INVALID', (error as Error).message);
    } else {
      request.log.error({ err: error, url: request.raw.url, method: request.method }, 'request failed');
      registryError = new RegistryError('INTERNAL');
    }
  }
  if (registryError.status >= 500 && registryError.code !== 'INTERNAL') request.log.warn({ err: registryError.cause ?? registryError }, registryError.message);
  // Unread request bytes would otherwise be parsed as the next request on a keep-alive connection.
  // A request without a body (most 401s) keeps its connection.
  const declaresBody = request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] ?? '0') !== '0';
  if (declaresBody && !request.raw.readableEnded && !request.raw.destroyed) reply.header('Connection', 'close');
  return reply.code(registryError.status).headers({ ...apiVersionHeader, ...registryError.headers, 'Content-Type': 'application/json' }).send(JSON.stringify(registryError.toJSON()));
}
