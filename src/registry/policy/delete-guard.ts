import type { FastifyInstance } from 'fastify';
import type { RequestOrigin } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import type { PolicyEnforcer } from './enforcer.ts';

/**
 * Deleting a manifest by digest removes its tags with it, so an immutable tag must guard that
 * deletion as it guards its own: each tag of the digest goes through the `immutable-tags` check of
 * a tag deletion (PolicyEnforcer.checkTagDelete) before the route runs.
 */
export function guardDigestDeletes(app: FastifyInstance, deps: { meta: Pick<MetadataStore, 'tagsOf'>; enforcer: Pick<PolicyEnforcer, 'checkTagDelete'> }): void {
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'DELETE') return;
    const path = request.url.split('?', 1)[0]!;
    const at = path.lastIndexOf('/manifests/');
    if (!path.startsWith('/v2/') || at < 0) return;
    let reference: string;
    try {
      reference = decodeURIComponent(path.slice(at + '/manifests/'.length));
    } catch {
      return; // not a reference: the route answers it
    }
    if (!/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(reference)) return;
    const repository = path.slice('/v2/'.length, at);
    const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: { kind: 'anonymous' } };
    for (const tag of await deps.meta.tagsOf(repository, reference)) await deps.enforcer.checkTagDelete(repository, tag, origin);
  });
}
