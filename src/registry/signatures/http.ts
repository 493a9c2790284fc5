/**
 * The signature part of the management API (/api/v1):
 *
 * | route | answer | permission needed |
 * |---|---|---|
 * | `GET /api/v1/projects/<project>/trust-policy` | the policy, its version (also as `ETag`), the pull switch | `project.read` |
 * | `PUT /api/v1/projects/<project>/trust-policy` | replace it (new version); `If-Match: "<version>"` / `If-None-Match: *` guard against lost updates | `project.update` (project admins) |
 * | `DELETE /api/v1/projects/<project>/trust-policy` | remove it (the version counter stays) | `project.update` |
 * | `GET /api/v1/repositories/<name>/manifests/<digest or tag>/signatures` | every signature and attestation with its verification, signer and reason; the verdict; what is missing | `pull` on the repository |
 *
 * Like the scanner's routes, these are authorised through a hook that build-app wires to the
 * permission table (`AccessService.can`) when `auth.mode` is `token`; without one (auth.mode none)
 * every request is allowed, as for the registry itself.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import { isRepositoryName, isTag, projectOf } from '../../oci/reference.ts';
import type { AccessService } from '../auth/access-service.ts';
import { actorOf, type Identity } from '../auth/identity.ts';
import type { RequestOrigin } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import { PolicyInvalid, PolicyUnusable, type SignatureService } from './service.ts';
import { PolicyVersionConflict, type TrustPolicyRecord } from './store.ts';

export type SignatureAction = 'pull' | 'project.read' | 'project.update';

export interface SignaturePermission {
  action: SignatureAction;
  repository?: string;
  project?: string;
}

/** Throws UNAUTHORIZED (with a challenge) or DENIED to refuse; returns who acts, when known. */
export type SignatureAuthorizer = (request: FastifyRequest, need: SignaturePermission) => Promise<RequestOrigin['actor'] | undefined>;

/**
 * The authoriser for auth.mode token: `identify` turns the request's credentials into an identity
 * (the management API's own request authentication), the permission table decides.
 */
export function signatureAuthorizer(identify: (request: FastifyRequest) => Promise<Identity>, access: Pick<AccessService, 'can' | 'assertReachable'>): SignatureAuthorizer {
  const challenge = { headers: { 'WWW-Authenticate': 'Basic realm="portcullis"' } };
  return async (request, need) => {
    const identity = await identify(request);
    const resource = need.repository !== undefined ? { kind: 'repository' as const, name: need.repository } : { kind: 'project' as const, name: need.project ?? '' };
    if (await access.can(identity, need.action, resource)) {
      // Per-project IP lists apply to repository data here as on /v2/.
      if (need.repository !== undefined) access.assertReachable(need.repository, request.ip);
      return actorOf(identity);
    }
    if (identity.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'authentication required', challenge);
    throw new RegistryError('DENIED', `${need.action} on ${need.repository ?? need.project} is not allowed`);
  };
}

/** Repository names have up to this many path components in these routes (a longer one gets 404). */
export const MAX_NAME_COMPONENTS = 32;

export const putBodySchema = z.strictObject({
  /** Deny pulls of images that are not verified under this policy. */
  requireSignatureToPull: z.boolean().default(false),
  policy: z.unknown(),
});

function origin(request: FastifyRequest, actor: RequestOrigin['actor'] | undefined): RequestOrigin {
  return { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: actor ?? { kind: 'anonymous' } };
}

function policyView(record: TrustPolicyRecord, policyHash: string, error?: string) {
  return {
    project: record.project,
    version: record.version,
    requireSignatureToPull: record.requireSignatureToPull,
    policyHash,
    ...(error ? { error: `this stored policy cannot be used: ${error}` } : {}),
    updatedAt: record.updatedAt.toISOString(),
    updatedBy: record.updatedBy,
    policy: record.policy,
  };
}

/** `"<n>"` (or `W/"<n>"`) from If-Match; `*` from If-None-Match means "no policy yet" (0). */
function expectedVersion(request: FastifyRequest): number | undefined {
  const ifMatch = request.headers['if-match'];
  if (typeof ifMatch === 'string') {
    const m = /^(?:W\/)?"(\d+)"$/.exec(ifMatch.trim());
    if (!m) throw new RegistryError('INVALID_REQUEST', 'If-Match must be the quoted policy version, e.g. "3"');
    return Number(m[1]);
  }
  if (request.headers['if-none-match'] === '*') return 0;
  return undefined;
}

function projectParam(request: FastifyRequest): string {
  const project = (request.params as { project: string }).project;
  if (!isRepositoryName(project) || project.includes('/')) throw new RegistryError('NOT_FOUND', `no project ${JSON.stringify(project.slice(0, 100))}`);
  return project;
}

export async function registerSignatureRoutes(app: FastifyInstance, deps: { service: SignatureService; meta: MetadataStore; authorize?: SignatureAuthorizer | undefined }): Promise<void> {
  const { service, meta } = deps;
  const authorize = async (request: FastifyRequest, need: SignaturePermission) => (deps.authorize ? deps.authorize(request, need) : undefined);
  const noStore = (reply: FastifyReply) => reply.header('Cache-Control', 'no-store');

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 4 * 1024 * 1024 }, (_request, body, done) => {
      try {
        done(null, body === '' ? undefined : JSON.parse(body as string));
      } catch {
        done(new RegistryError('INVALID_REQUEST', 'the body is not valid JSON'), undefined);
      }
    });

    scope.get('/api/v1/projects/:project/trust-policy', async (request, reply) => {
      const project = projectParam(request);
      await authorize(request, { action: 'project.read', project });
      noStore(reply);
      const pp = await service.policy(project, { fresh: true });
      const record = pp.record;
      if (!record) throw new RegistryError('NOT_FOUND', `project ${project} has no trust policy`);
      return reply.header('ETag', `"${record.version}"`).send(policyView(record, pp.compiled.hash, pp.error));
    });

    scope.put('/api/v1/projects/:project/trust-policy', async (request, reply) => {
      const project = projectParam(request);
      const actor = await authorize(request, { action: 'project.update', project });
      const parsed = putBodySchema.safeParse(request.body ?? {});
      if (!parsed.success) throw new RegistryError('INVALID_REQUEST', parsed.error.issues.map((i) => `body${i.path.length ? `.${i.path.join('.')}` : ''}: ${i.message}`).join('; '));
      if (parsed.data.policy === undefined) throw new RegistryError('INVALID_REQUEST', 'body.policy: required');
      noStore(reply);
      try {
        const expected = expectedVersion(request);
        const result = await service.putPolicy(project, { policy: parsed.data.policy, requireSignatureToPull: parsed.data.requireSignatureToPull }, {
          ...(expected !== undefined ? { expectedVersion: expected } : {}),
          origin: origin(request, actor),
        });
        return reply
          .code(result.created ? 201 : 200)
          .header('ETag', `"${result.record.version}"`)
          .send(policyView(result.record, result.policyHash));
      } catch (err) {
        if (err instanceof PolicyInvalid) throw new RegistryError('INVALID_REQUEST', `invalid trust policy: ${err.message}`);
        if (err instanceof PolicyVersionConflict) throw new RegistryError('CONFLICT', `the trust policy changed meanwhile (${err.message}); read it again and retry`);
        throw err;
      }
    });

    scope.delete('/api/v1/projects/:project/trust-policy', async (request, reply) => {
      const project = projectParam(request);
      const actor = await authorize(request, { action: 'project.update', project });
      try {
        const expected = expectedVersion(request);
        const deleted = await service.deletePolicy(project, { ...(expected !== undefined ? { expectedVersion: expected } : {}), origin: origin(request, actor) });
        if (!deleted) throw new RegistryError('NOT_FOUND', `project ${project} has no trust policy`);
      } catch (err) {
        if (err instanceof PolicyVersionConflict) throw new RegistryError('CONFLICT', `the trust policy changed meanwhile (${err.message}); read it again and retry`);
        throw err;
      }
      return reply.code(204).send();
    });

    const signatures = async (request: FastifyRequest, reply: FastifyReply) => {
      const params = request.params as Record<string, string>;
      const parts: string[] = [];
      for (let i = 0; params[`n${i}`] !== undefined; i++) parts.push(params[`n${i}`]!);
      const repository = parts.join('/');
      const reference = decodeURIComponent(params['reference'] ?? '');
      if (!isRepositoryName(repository)) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(repository.slice(0, 200))}`);
      const actor = await authorize(request, { action: 'pull', repository });
      let digest: string | undefined;
      if (isDigest(reference)) digest = reference;
      else if (isTag(reference)) digest = await meta.resolveTag(repository, reference);
      else throw new RegistryError('INVALID_REQUEST', 'the reference must be a digest or a tag');
      if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in repository ${repository}`);
      noStore(reply);
      const exists = (await meta.getManifest(repository, digest)) !== undefined;
      let status;
      try {
        status = await service.status(repository, digest, 'api', origin(request, actor));
      } catch (err) {
        if (err instanceof PolicyUnusable) throw new RegistryError('UNAVAILABLE', `${err.message}; replace it (PUT /api/v1/projects/${projectOf(repository)}/trust-policy)`);
        throw err;
      }
      if (!exists && status.artifacts.length === 0 && status.rejected.length === 0) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in repository ${repository}, and nothing is attached to it`);
      }
      const facts = status.verdict === 'verified' ? undefined : await service.facts(repository, digest);
      return {
        ...status,
        manifestPresent: exists,
        ...(facts?.coveredBy ? { coveredBy: facts.coveredBy, coveredVerdict: facts.verdict } : {}),
      };
    };
    for (let n = 1; n <= MAX_NAME_COMPONENTS; n++) {
      const name = Array.from({ length: n }, (_, i) => `:n${i}`).join('/');
      scope.get(`/api/v1/repositories/${name}/manifests/:reference/signatures`, signatures);
    }
  });
}
