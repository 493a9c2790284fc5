/**
 * /api/v1/projects/{project}/policies: the project's policy document, versioned.
 *   GET     current document (YAML) and version history        project.read
 *   PUT     a new version (body: the YAML or JSON document)     project.update (project admins)
 *   DELETE  remove the project's policy (the global one applies) project.update
 * `global` is the default policy; writing it needs project.update on a project named `global`
 * (system administrators). Bad documents get 400 with every issue naming its field.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { projectOf as ociProjectOf } from '../../oci/reference.ts';
import type { RequestOrigin } from '../events/bus.ts';
import { ENFORCEMENT_POINTS, type EnforcementPoint, parsePolicy, PolicyError } from './document.ts';
import type { PolicyEnforcer } from './enforcer.ts';
import { compileStored, type PolicyStore } from './store.ts';

/** Checks a project permission; returns the actor (or undefined), throws UNAUTHORIZED/DENIED. */
export type PolicyAuthorizer = (request: FastifyRequest, need: { action: 'project.read' | 'project.update'; project: string }) => Promise<{ name?: string | undefined } | undefined>;

const PROJECT = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const MAX_DOCUMENT_BYTES = 256 * 1024;

export async function registerPolicyRoutes(app: FastifyInstance, deps: { store: PolicyStore; authorize?: PolicyAuthorizer | undefined; enforcer?: Pick<PolicyEnforcer, 'explain'> | undefined }): Promise<void> {
  const authorize = async (request: FastifyRequest, action: 'project.read' | 'project.update', project: string) => (deps.authorize ? (await deps.authorize(request, { action, project }))?.name : undefined);
  const projectOf = (request: FastifyRequest): string => {
    const project = (request.params as { project: string }).project;
    if (!PROJECT.test(project)) throw new RegistryError('NAME_INVALID', `invalid project name ${project}`);
    return project;
  };

  await app.register(async (scope) => {
    // The document is YAML (or JSON) text, kept as written.
    scope.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain', 'application/json'], { parseAs: 'string', bodyLimit: MAX_DOCUMENT_BYTES }, (_request, body, done) => done(null, body));

    scope.get('/api/v1/projects/:project/policies', async (request) => {
      const project = projectOf(request);
      await authorize(request, 'project.read', project);
      const history = await deps.store.history(project, 100);
      const current = history[0]?.document !== undefined ? history[0] : undefined;
      return {
        project,
        current: current ? { version: current.version, hash: current.hash, document: current.document, createdAt: current.createdAt.toISOString(), createdBy: current.createdBy ?? null } : null,
        versions: history.map((h) => ({ version: h.version, hash: h.hash ?? null, deleted: h.document === undefined, createdAt: h.createdAt.toISOString(), createdBy: h.createdBy ?? null })),
      };
    });

    scope.put('/api/v1/projects/:project/policies', async (request, reply) => {
      const project = projectOf(request);
      const actor = await authorize(request, 'project.update', project);
      const text = typeof request.body === 'string' ? request.body : '';
      if (!text.trim()) throw new RegistryError('MANIFEST_INVALID', 'send the policy document (YAML or JSON) as the body');
      let compiled;
      let declared: string;
      try {
        declared = parsePolicy(text).metadata.project;
        compiled = compileStored({ project, version: 0, document: text, hash: undefined, createdAt: new Date(), createdBy: undefined });
      } catch (error) {
        if (!(error instanceof PolicyError)) throw error;
        return reply.code(400).send({ errors: error.issues.map((message) => ({ code: 'POLICY_INVALID', message })) });
      }
      if (declared !== 'global' && declared !== project) {
        return reply.code(400).send({ errors: [{ code: 'POLICY_INVALID', message: `metadata.project: the document names project ${declared}, not ${project}` }] });
      }
      const version = await deps.store.append(project, text, actor);
      return reply.code(201).send({ project, version, rules: compiled.document.rules.length });
    });

    // GET /api/v1/policy/explain?repository=R&reference=TAG|DIGEST&point=pull: the decision, not enforced.
    scope.get('/api/v1/policy/explain', async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      const repository = q['repository'] ?? '';
      const reference = q['reference'] ?? '';
      const point = (q['point'] ?? 'pull') as EnforcementPoint;
      if (!repository || !reference || !ENFORCEMENT_POINTS.includes(point)) {
        return reply.code(400).send({ errors: [{ code: 'UNSUPPORTED', message: `give repository, reference and point (${ENFORCEMENT_POINTS.join(', ')})` }] });
      }
      await authorize(request, 'project.read', ociProjectOf(repository));
      const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: { kind: 'anonymous' } };
      const decision = await deps.enforcer?.explain(repository, reference, point, origin);
      if (!decision) throw new RegistryError('MANIFEST_UNKNOWN', `no policy applies to ${repository}:${reference}, or the image is unknown`);
      return decision;
    });

    scope.delete('/api/v1/projects/:project/policies', async (request, reply) => {
      const project = projectOf(request);
      const actor = await authorize(request, 'project.update', project);
      const latest = await deps.store.latest(project);
      if (!latest?.document) throw new RegistryError('NAME_UNKNOWN', `project ${project} has no policy`);
      await deps.store.append(project, undefined, actor);
      return reply.code(204).send();
    });
  });
}
