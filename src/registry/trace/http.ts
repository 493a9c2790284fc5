/**
 * The traceability API (docs/traceability.md):
 *
 *   GET /api/v1/trace/{digest}                                  provenance graph of a digest
 *   GET /api/v1/trace/images?commit=|source=|vulnerability=|digest=[&verified=true][&limit=N]
 *   GET /api/v1/trace/deployments?digest=|commit=|source=|vulnerability=[&verified=true][&limit=N]
 *
 * Every answer holds only what the caller can read: facts of repositories it may pull from.
 * A digest the caller cannot see is answered exactly like an unknown one. With access control on,
 * anonymous callers get 401 even for public projects: where images run (clusters, namespaces,
 * workloads) says more about an organisation than the images themselves.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import type { AccessService } from '../auth/access-service.ts';
import { basicChallenge, type IdentifyRequest } from '../auth/request-identity.ts';
import type { CanRead, ImagesQuery, TraceService } from './service.ts';

/** What the caller may read, per request. */
export type TraceVisibility = (request: FastifyRequest) => Promise<{ canRead: CanRead; anonymous: boolean }>;

/** Without access control (auth.mode none) everything is readable, as for the registry itself. */
export const everythingVisible: TraceVisibility = async () => ({ canRead: async () => true, anonymous: false });

/** With access control: repositories the identity may pull from (project read, robot scopes). */
export function accessVisibility(deps: { access: AccessService; identify: IdentifyRequest }): TraceVisibility {
  return async (request) => {
    const identity = await deps.identify(request);
    return { canRead: deps.access.catalogFilter(identity, request.ip), anonymous: identity.kind === 'anonymous' };
  };
}

const COMMIT = /^[0-9a-fA-F]{7,64}$/;
const VULNERABILITY = /^[A-Za-z0-9][A-Za-z0-9._:-]{1,127}$/;
const SOURCE = /^[A-Za-z0-9][A-Za-z0-9._~:/@+-]{0,511}$/;

/** The query string as an {@link ImagesQuery}, with a clear 400 for anything else. */
export function parseImagesQuery(q: Record<string, unknown>, maxResults: number): { query: ImagesQuery; limit: number } {
  const allowed = new Set(['digest', 'commit', 'source', 'vulnerability', 'verified', 'limit']);
  for (const [k, v] of Object.entries(q)) {
    if (!allowed.has(k)) throw new RegistryError('INVALID_REQUEST', `unknown query parameter ${JSON.stringify(k.slice(0, 64))}; use one of digest, commit, source, vulnerability (with verified, limit)`);
    if (typeof v !== 'string') throw new RegistryError('INVALID_REQUEST', `query parameter ${k} is given more than once`);
  }
  const given = ['digest', 'commit', 'source', 'vulnerability'].filter((k) => q[k] !== undefined);
  if (given.length !== 1) throw new RegistryError('INVALID_REQUEST', 'give exactly one of digest, commit, source, vulnerability');
  let limit = maxResults;
  if (q['limit'] !== undefined) {
    const n = String(q['limit']);
    if (!/^[1-9][0-9]{0,6}$/.test(n)) throw new RegistryError('INVALID_REQUEST', 'limit must be a positive integer');
    limit = Math.min(Number(n), maxResults);
  }
  const verifiedText = q['verified'];
  if (verifiedText !== undefined && verifiedText !== 'true' && verifiedText !== 'false') throw new RegistryError('INVALID_REQUEST', 'verified must be true or false');
  const verifiedOnly = verifiedText === 'true';
  const value = String(q[given[0]!]);
  switch (given[0]) {
    case 'digest':
      if (!isDigest(value)) throw new RegistryError('DIGEST_INVALID', `${JSON.stringify(value.slice(0, 100))} is not a digest`);
      return { query: { digest: value }, limit };
    case 'commit':
      if (!COMMIT.test(value)) throw new RegistryError('INVALID_REQUEST', 'commit must be 7 to 64 hexadecimal digits (a full or abbreviated commit id)');
      return { query: { commit: value.toLowerCase(), verifiedOnly }, limit };
    case 'source':
      if (!SOURCE.test(value)) throw new RegistryError('INVALID_REQUEST', 'source must be a repository URL or host/owner/name');
      return { query: { sourceRepository: value.replace(/^git\+/, '').replace(/^[a-z]+:\/\//, '').replace(/\.git$/, '').replace(/\/+$/, ''), verifiedOnly }, limit };
    default:
      if (!VULNERABILITY.test(value)) throw new RegistryError('INVALID_REQUEST', 'vulnerability must be an id such as CVE-2024-3094 or GHSA-xxxx-xxxx-xxxx');
      return { query: { vulnerability: value }, limit };
  }
}

export async function registerTraceRoutes(app: FastifyInstance, deps: { trace: TraceService; visibility?: TraceVisibility | undefined }): Promise<void> {
  const { trace } = deps;
  const visibility = deps.visibility ?? everythingVisible;
  const readable = async (request: FastifyRequest): Promise<CanRead> => {
    const { canRead, anonymous } = await visibility(request);
    if (anonymous) throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: basicChallenge });
    return canRead;
  };
  await app.register(async (scope) => {
    scope.get('/api/v1/trace/images', async (request, reply) => {
      const canRead = await readable(request);
      const { query, limit } = parseImagesQuery(request.query as Record<string, unknown>, trace.limits.maxResults);
      reply.header('Cache-Control', 'no-store');
      return trace.images(query, canRead, limit);
    });
    scope.get('/api/v1/trace/deployments', async (request, reply) => {
      const canRead = await readable(request);
      const { query, limit } = parseImagesQuery(request.query as Record<string, unknown>, trace.limits.maxResults);
      reply.header('Cache-Control', 'no-store');
      return trace.deployments(query, canRead, limit);
    });
    scope.get('/api/v1/trace/:digest', async (request, reply) => {
      const { digest } = request.params as { digest: string };
      const canRead = await readable(request);
      if (!isDigest(digest)) throw new RegistryError('DIGEST_INVALID', `${JSON.stringify(digest.slice(0, 100))} is not a digest (sha256:<hex>)`);
      const graph = await trace.graph(digest, canRead);
      if (!graph) throw new RegistryError('MANIFEST_UNKNOWN', `no image with digest ${digest} that you can read`);
      reply.header('Cache-Control', 'no-store');
      return graph;
    });
  });
}
