/**
 * OpenAPI descriptions of the traceability routes (http.ts serves them), for the management API's
 * document; build-app adds them when traceability is on.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { array, bool, digest, int, object, oneOf, q, str, time } from '../api/json-schema.ts';

const tag = 'trace';
const imageRef = object({ repository: str, digest });
const source = object({ repository: str, how: str, verified: bool }, { sourceRepository: str, sourceUri: str, commit: str, builder: str, buildType: str, created: str, evidence: str });
const deployment = object(
  { cluster: str, namespace: str, workloadKind: str, workloadName: str, container: str, digest, repository: str, image: str, firstSeen: time, lastSeen: time },
  { via: { ...digest, description: 'The traced image this deployment runs (an index digest runs its platform image)' } },
);
const finding = object({ id: str, package: str, installedVersion: str, severity: str, fixAvailable: bool });
const images = array(object({ repository: str, digest }, { sources: array(source), findings: array(finding) }));
/** Exactly one of digest, commit, source, vulnerability. */
const query = {
  digest: q(digest),
  commit: q({ type: 'string', pattern: '^[0-9a-fA-F]{7,64}$' }, 'A full or abbreviated commit id'),
  source: q(str, 'A source repository URL or host/owner/name'),
  vulnerability: q(str, 'A vulnerability id such as CVE-2024-3094'),
  verified: q(oneOf('true', 'false'), 'Only facts from verified provenance (commit, source)'),
  limit: q({ type: 'integer', minimum: 1 }, 'Capped at trace.maxResults'),
};

export const traceOpenApi: ApiDescription[] = [
  {
    method: 'GET',
    path: '/trace/{digest}',
    tag,
    summary: 'Provenance graph of a digest: repositories, sources, bases, signatures, SBOMs, findings, promotions, deployments (only what the caller may pull)',
    status: 200,
    response: object({
      digest,
      images: array(object({ repository: str, mediaType: str, tags: array(str), layers: int, pushedAt: time }, { configDigest: digest, created: str })),
      sources: array(source),
      bases: array(object({ repository: str, how: str, digest }, { baseRepository: str, baseName: str, layers: int })),
      derived: array(object({ repository: str, digest, how: str, baseRepository: str })),
      indexes: array(imageRef),
      children: array(imageRef),
      signatures: array(object({ repository: str, verdict: str, signers: array(str), attestations: array(str), policyVersion: int, verifiedAt: time })),
      sboms: array(object({ repository: str, digest, artifactType: str })),
      findings: object({ total: int, bySeverity: { type: 'object', additionalProperties: int }, fixable: int, top: array(finding) }),
      promotions: array(object({ id: str, at: time, sourceRepository: str, sourceReference: str, digest, destinationRepository: str }, { actor: str, destinationTag: str })),
      deployments: array(deployment),
    }),
  },
  { method: 'GET', path: '/trace/images', tag, summary: 'Images built from a commit or source, affected by a vulnerability, or with a digest (readable ones only)', query, status: 200, response: object({ images, truncated: bool }) },
  { method: 'GET', path: '/trace/deployments', tag, summary: 'Where those images run: recorded deployments (readable ones only)', query, status: 200, response: object({ images, deployments: array(deployment), truncated: bool }) },
];
