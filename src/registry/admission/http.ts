/**
 * The webhook endpoints and the deployment-record API.
 *
 *   POST /admission/validate   AdmissionReview v1 -> AdmissionReview v1 (allowed, status, warnings)
 *   POST /admission/mutate     AdmissionReview v1 -> AdmissionReview v1 (JSONPatch pinning tags to digests)
 *   GET  /api/v1/deployments?digest=&repository=&namespace=&cluster=&limit=   project.read
 *
 * Callers of the webhooks are checked before the body is read: a bearer token (the API server's
 * kubeconfig for the webhook), a client certificate from the configured CA (the dedicated
 * listener), or, only when configured, any loopback client. A body that is not an AdmissionReview
 * gets HTTP 400 naming what is wrong; a review the webhook can answer always gets 200 with the
 * verdict in it, and an internal error denies (allowed: false, code 500).
 */
import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { isDigest } from '../../oci/digest.ts';
import { isRepositoryName, projectOf } from '../../oci/reference.ts';
import type { RequestOrigin } from '../events/bus.ts';
import type { AdmissionController } from './controller.ts';
import { MalformedReviewError, parseReview, reviewResponse } from './review.ts';
import type { DeploymentStore } from './store.ts';

/** Largest review read: an object and its old version, each up to etcd's 1.5 MiB. */
export const MAX_REVIEW_BYTES = 8 * 1024 * 1024;
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface WebhookAuth {
  /** The bearer token the API server presents; undefined: no token accepted. */
  token: Buffer | undefined;
  /** Verified client certificates are accepted (the listener requires them from the CA). */
  clientCertificates: boolean;
  /** Accepted certificate subjects (CN or DNS SAN); any when empty. */
  clientNames: string[];
  allowUnauthenticatedLoopback: boolean;
}

export interface AdmissionRouteDeps {
  controller: AdmissionController;
  auth: WebhookAuth;
  clusterName: string;
  clusterHeader: boolean;
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** Null when the caller may call the webhooks, else why not. */
export function checkWebhookCaller(request: FastifyRequest, auth: WebhookAuth): string | null {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const presented = Buffer.from(/^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? '');
    if (auth.token && presented.length === auth.token.length && timingSafeEqual(presented, auth.token)) return null;
    return 'the bearer token is not the admission token';
  }
  const socket = request.raw.socket as TLSSocket;
  if (auth.clientCertificates && socket.encrypted && socket.authorized) {
    if (auth.clientNames.length === 0) return null;
    const cert = socket.getPeerCertificate();
    const names = [cert.subject?.CN, ...(cert.subjectaltname ?? '').split(/,\s*/).filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4))].filter((n): n is string => typeof n === 'string');
    if (names.some((n) => auth.clientNames.includes(n))) return null;
    return `client certificate ${cert.subject?.CN ?? ''} is not one of admission.tls.clientNames`;
  }
  if (auth.allowUnauthenticatedLoopback && isLoopback(request.socket.remoteAddress ?? '')) return null;
  return 'admission webhooks need the admission bearer token or a client certificate';
}

export async function registerWebhookRoutes(app: FastifyInstance, deps: AdmissionRouteDeps): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_REVIEW_BYTES }, (_request, body, done) => done(null, body));
    scope.addHook('onRequest', async (request, reply) => {
      const refused = checkWebhookCaller(request, deps.auth);
      if (refused) {
        deps.logger?.warn({ clientAddress: request.ip, reason: refused }, 'admission call refused');
        return reply.code(401).header('WWW-Authenticate', 'Bearer realm="portcullis-admission"').send({ errors: [{ code: 'UNAUTHORIZED', message: refused }] });
      }
    });
    const handle = (which: 'validate' | 'mutate') => async (request: FastifyRequest, reply: FastifyReply) => {
      const type = String(request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
      if (type !== 'application/json') return reply.code(415).send({ errors: [{ code: 'UNSUPPORTED', message: 'send the AdmissionReview as application/json' }] });
      let review;
      try {
        review = parseReview(JSON.parse(String(request.body ?? '')));
      } catch (error) {
        const message = error instanceof MalformedReviewError ? error.message : `the body is not JSON: ${(error as Error).message}`;
        return reply.code(400).send({ errors: [{ code: 'BAD_REQUEST', message }] });
      }
      const cluster = deps.clusterHeader ? String(request.headers['x-portcullis-cluster'] ?? '') || deps.clusterName : deps.clusterName;
      if (!CLUSTER_NAME.test(cluster)) return reply.code(400).send({ errors: [{ code: 'BAD_REQUEST', message: 'X-Portcullis-Cluster: letters, digits, ".", "_", "-" (at most 63)' }] });
      const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: { kind: 'anonymous' } };
      try {
        const response = which === 'validate' ? await deps.controller.validate(review, { cluster, origin }) : await deps.controller.mutate(review);
        return reply.send(reviewResponse(response));
      } catch (error) {
        deps.logger?.error({ err: error, uid: review.uid }, 'admission review failed');
        return reply.send(reviewResponse({ uid: review.uid, allowed: false, status: { code: 500, reason: 'InternalError', message: `portcullis could not evaluate this request (denied): ${(error as Error).message}` } }));
      }
    };
    scope.post('/admission/validate', handle('validate'));
    scope.post('/admission/mutate', handle('mutate'));
  });
}

/** Checks a project permission (throws UNAUTHORIZED/DENIED), as the other /api/v1 modules do. */
export type DeploymentAuthorizer = (request: FastifyRequest, need: { action: 'project.read'; project: string }) => Promise<unknown>;

export async function registerDeploymentRoutes(app: FastifyInstance, deps: { store: DeploymentStore; authorize?: DeploymentAuthorizer | undefined; projects?: (() => Promise<string[]>) | undefined }): Promise<void> {
  app.get('/api/v1/deployments', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    const bad = (message: string) => reply.code(400).send({ errors: [{ code: 'BAD_REQUEST', message }] });
    const limit = q['limit'] === undefined ? 100 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad('limit: an integer from 1 to 1000');
    if (q['digest'] !== undefined && !isDigest(q['digest'])) return bad(`digest: ${q['digest'].slice(0, 100)} is not a digest`);
    if (q['repository'] !== undefined && !isRepositoryName(q['repository'])) return bad('repository: not a valid repository name');
    if (!q['digest'] && !q['repository'] && !q['namespace']) return bad('give digest, repository or namespace');
    let projects: string[] | undefined;
    if (q['repository']) {
      await deps.authorize?.(request, { action: 'project.read', project: projectOf(q['repository']) });
    } else if (deps.authorize) {
      // Only records of projects the caller may read; a caller who may read none is told so.
      const candidates = await deps.store.list({ digest: q['digest'], namespace: q['namespace'], cluster: q['cluster'], limit: 1000 });
      const readable: string[] = [];
      let firstError: unknown;
      for (const project of new Set(candidates.map((r) => projectOf(r.repository)))) {
        try {
          await deps.authorize(request, { action: 'project.read', project });
          readable.push(project);
        } catch (error) {
          if (!(error instanceof RegistryError)) throw error;
          firstError ??= error;
        }
      }
      if (readable.length === 0 && firstError) throw firstError;
      projects = readable;
    }
    const records = await deps.store.list({ digest: q['digest'], repository: q['repository'], namespace: q['namespace'], cluster: q['cluster'], projects, limit });
    return {
      deployments: records.map((r) => ({
        cluster: r.cluster,
        namespace: r.namespace,
        workload: { kind: r.workloadKind, name: r.workloadName },
        container: r.container,
        repository: r.repository,
        digest: r.digest,
        image: r.image,
        firstSeen: r.firstSeen.toISOString(),
        lastSeen: r.lastSeen.toISOString(),
      })),
    };
  });
}
