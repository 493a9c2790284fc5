/**
 * /api/v1/promotions:
 *   POST  {source, destination, tag?}: promote (201 with the result; 403 DENIED naming the failed
 *         rules when the destination's policy refuses; nothing is written then)
 *         needs pull on the source, push and promote on the destination repository (and
 *         retag when an existing destination tag would move to another digest)
 *   GET   ?project=P | ?repository=R [&digest=D&decision=allowed|denied&limit=N&cursor=C]:
 *         promotion records, newest first             project.read on P (or on R's project)
 *   GET   /api/v1/promotions/public-key: the registry's promotion key (PEM), for cosign and
 *         trust policies                                  anyone
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RegistryError } from '../../../oci/errors.ts';
import { isRepositoryName, projectOf } from '../../../oci/reference.ts';
import type { AccessService } from '../../auth/access-service.ts';
import { actorOf, type Identity } from '../../auth/identity.ts';
import type { RequestOrigin } from '../../events/bus.ts';
import type { RegistryKey } from './attestation.ts';
import type { PromotionService } from './service.ts';
import type { PromotionRecord, PromotionStore } from './store.ts';

export type PromotionAction = 'pull' | 'push' | 'promote' | 'retag' | 'project.read';

/** Checks one permission (repository or project); returns who acts; throws UNAUTHORIZED / DENIED. */
export type PromotionAuthorizer = (request: FastifyRequest, need: { action: PromotionAction; repository?: string; project?: string }) => Promise<RequestOrigin['actor'] | undefined>;

const MAX_PAGE = 500;

/** The authoriser for auth.mode token: the request's identity against the permission table. */
export function promotionAuthorizer(identify: (request: FastifyRequest) => Promise<Identity>, access: Pick<AccessService, 'can' | 'assertReachable'>): PromotionAuthorizer {
  return async (request, need) => {
    const identity = await identify(request);
    const resource = need.repository !== undefined ? { kind: 'repository' as const, name: need.repository } : { kind: 'project' as const, name: need.project ?? '' };
    if (await access.can(identity, need.action, resource)) {
      // Per-project IP lists apply to repository data here as on /v2/.
      if (need.repository !== undefined) access.assertReachable(need.repository, request.ip);
      return actorOf(identity);
    }
    if (identity.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': 'Basic realm="portcullis"' } });
    throw new RegistryError('DENIED', `${need.action} on ${need.repository ?? need.project} is not allowed`);
  };
}

export function recordView(r: PromotionRecord) {
  return {
    id: r.id,
    createdAt: r.createdAt.toISOString(),
    actor: { kind: r.actor.kind, name: r.actor.name ?? null },
    source: r.source,
    digest: r.digest,
    destination: { repository: r.destination.repository, tag: r.destination.tag ?? null },
    decision: r.decision,
    policy: r.policy ?? null,
    denials: r.denials,
    attestation: r.attestation ?? null,
    copied: r.copied,
  };
}

export async function registerPromotionRoutes(app: FastifyInstance, deps: { service: PromotionService; store: PromotionStore; key: RegistryKey; authorize?: PromotionAuthorizer | undefined }): Promise<void> {
  const authorize = async (request: FastifyRequest, need: Parameters<PromotionAuthorizer>[1]) => (deps.authorize ? deps.authorize(request, need) : undefined);
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => {
      try {
        done(null, body === '' ? undefined : JSON.parse(body as string));
      } catch {
        done(new RegistryError('INVALID_REQUEST', 'the body is not valid JSON'), undefined);
      }
    });
    await routes(scope);
  });

  async function routes(app: FastifyInstance): Promise<void> {
    app.post('/api/v1/promotions', async (request, reply) => {
      const body = request.body;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RegistryError('INVALID_REQUEST', 'send JSON {"source": "project/repo@sha256:... or :tag", "destination": "project/repo", "tag"?: "..."}');
      const b = body as Record<string, unknown>;
      for (const key of Object.keys(b)) if (!['source', 'destination', 'tag'].includes(key)) throw new RegistryError('INVALID_REQUEST', `unknown field ${JSON.stringify(key.slice(0, 100))}`);
      const promotion = { source: b['source'] as string, destination: b['destination'] as string, tag: b['tag'] as string | undefined };
      const { source, destination } = deps.service.parse(promotion);
      // Every permission is checked before anything is read or written; the actor is the destination check's.
      await authorize(request, { action: 'pull', repository: source.repository });
      await authorize(request, { action: 'push', repository: destination.repository });
      const actor = await authorize(request, { action: 'promote', repository: destination.repository });
    // moving an existing tag to another digest is a retag, here as at push
    if (await deps.service.movesTag(promotion)) await authorize(request, { action: 'retag', repository: destination.repository });
      const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: actor ?? { kind: 'anonymous' } };
      const result = await deps.service.promote(promotion, origin);
      if (result.warnings.length > 0) reply.header('Warning', result.warnings.map((w) => `299 - "${w.replace(/[\\"]/g, '\\$&').replace(/[\r\n]+/g, ' ').slice(0, 1000)}"`));
      return reply.code(201).header('Location', `/v2/${result.destination.repository}/manifests/${result.digest}`).send(result);
    });

    app.get('/api/v1/promotions/public-key', async (_request, reply) => {
      return reply.header('content-type', 'application/x-pem-file').send(deps.key.publicKeyPem);
    });

    app.get('/api/v1/promotions', async (request) => {
      const q = request.query as Record<string, string | undefined>;
      const repository = q['repository'];
      const project = q['project'];
      if ((repository === undefined) === (project === undefined)) throw new RegistryError('INVALID_REQUEST', 'give project=P or repository=R');
      if (repository !== undefined && !isRepositoryName(repository)) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(repository.slice(0, 300))}`);
      if (project !== undefined && (!isRepositoryName(project) || project.includes('/'))) throw new RegistryError('NAME_INVALID', `invalid project name ${JSON.stringify(project.slice(0, 100))}`);
      const limit = q['limit'] === undefined ? 100 : Number(q['limit']);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new RegistryError('PAGINATION_INVALID', `limit: an integer from 1 to ${MAX_PAGE}`);
      const decision = q['decision'];
      if (decision !== undefined && decision !== 'allowed' && decision !== 'denied') throw new RegistryError('INVALID_REQUEST', 'decision: allowed or denied');
      const digest = q['digest'];
      if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw new RegistryError('DIGEST_INVALID', 'digest: sha256:<64 hex>');
      await authorize(request, { action: 'project.read', project: project ?? projectOf(repository!) });
      let page;
      try {
        page = await deps.store.list({ ...(project !== undefined ? { project } : { repository: repository! }), ...(digest ? { digest } : {}), ...(decision ? { decision } : {}), limit, ...(q['cursor'] ? { cursor: q['cursor'] } : {}) });
      } catch (error) {
        if (error instanceof RangeError) throw new RegistryError('PAGINATION_INVALID', 'cursor: not a cursor this API returned');
        throw error;
      }
      return { promotions: page.items.map(recordView), next: page.next ?? null };
    });
  }
}
