/**
 * OpenAPI descriptions of the policy routes (http.ts, simulate.ts, promotion/http.ts serve them),
 * for the management API's document; build-app adds them when policy (and promotion) is enabled.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { anyObject, array, bool, digest, int, nullable, object, oneOf, q, str, time } from '../api/json-schema.ts';
import { ENFORCEMENT_POINTS } from './document.ts';

const tag = 'policy';
const point = oneOf(...ENFORCEMENT_POINTS);
const policyRef = object({ name: str, project: str, version: int, hash: str });
/** The document is kept as written: YAML, or JSON. */
const documentBody = { description: 'The policy document (apiVersion, kind, metadata.project, rules) as YAML or JSON, at most 256 KiB' };
const documentTypes = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain', 'application/json'];
const invalid = { 400: 'A bad document: one error (POLICY_INVALID) per issue, naming its field' };
const byPoint = object({ evaluated: int, denied: int, warned: int });

export const policyOpenApi: ApiDescription[] = [
  {
    method: 'GET',
    path: '/projects/{project}/policies',
    tag,
    summary: "The project's policy document (`global`: the default policy) and its version history (project.read)",
    status: 200,
    response: object({
      project: str,
      current: nullable(object({ version: int, hash: str, document: str, createdAt: time, createdBy: nullable(str) })),
      versions: array(object({ version: int, hash: nullable(str), deleted: bool, createdAt: time, createdBy: nullable(str) })),
    }),
  },
  { method: 'PUT', path: '/projects/{project}/policies', tag, summary: 'Store a new version of the policy document (project.update)', body: documentBody, bodyTypes: documentTypes, status: 201, response: object({ project: str, version: int, rules: int }), errors: invalid },
  { method: 'DELETE', path: '/projects/{project}/policies', tag, summary: "Remove the project's policy: the global one applies (project.update)", status: 204 },
  {
    method: 'GET',
    path: '/policy/explain',
    tag,
    summary: "The decision the policy would take for an image at a point, not enforced (project.read on the repository's project)",
    query: { repository: q(str, undefined, true), reference: q(str, 'A tag or a digest', true), point: q(point, 'Default pull') },
    status: 200,
    response: object({ allowed: bool, point, repository: str, digest, policy: policyRef, rules: array(anyObject), denials: array(str), warnings: array(str) }),
  },
  {
    method: 'POST',
    path: '/policy/simulate',
    tag,
    summary: 'What a candidate policy would deny among the stored images and recorded workloads, without storing it (project.read on every project evaluated)',
    query: {
      project: q(str, 'Only this project (default: every project the caller can read)'),
      point: q({ type: 'array', items: point }, 'Enforcement points (repeat the parameter); default all'),
      limit: q({ type: 'integer', minimum: 0, maximum: 10_000 }, 'Denied images and workloads listed at most (default 1000)'),
    },
    body: documentBody,
    bodyTypes: documentTypes,
    status: 200,
    response: object({
      policy: policyRef,
      scope: object({ project: nullable(str), points: array(point) }),
      images: object({ evaluated: int, skipped: int, denied: int }),
      points: object(Object.fromEntries(ENFORCEMENT_POINTS.map((p) => [p, byPoint]))),
      denied: array(object({ repository: str, digest, tags: array(str), points: anyObject })),
      shadowedProjects: array(str),
      workloads: object({ recorded: bool, evaluated: int, wouldFail: int, items: array(object({ cluster: str, namespace: str, workload: object({ kind: str, name: str }), container: str, repository: str, digest, denials: array(str) })) }),
      truncated: bool,
      summary: str,
      durationMs: int,
    }),
    errors: invalid,
  },
];

const promotionTag = 'promotions';
const copied = object({ manifests: int, tags: array(str), blobsLinked: int });

export const promotionOpenApi: ApiDescription[] = [
  {
    method: 'POST',
    path: '/promotions',
    tag: promotionTag,
    summary: "Promote an image to another project under the destination's policy (pull on the source; push, promote, and retag when a tag moves, on the destination); 403 names the failed rules",
    body: { ...object({ source: { type: 'string', description: '`project/repo@sha256:...` or `project/repo:tag`' }, destination: { type: 'string', description: '`project/repo`' } }, { tag: str }), additionalProperties: false },
    status: 201,
    response: object({
      id: str,
      digest,
      source: object({ repository: str, reference: str }),
      destination: object({ repository: str, tag: nullable(str) }),
      decision: { const: 'allowed' },
      policy: nullable(policyRef),
      warnings: array(str),
      attestation: { ...digest, description: 'The signed promotion attestation (a referrer of the image)' },
      copied,
    }),
  },
  {
    method: 'GET',
    path: '/promotions',
    tag: promotionTag,
    summary: 'Promotion records, newest first (project.read on the project, or on the repository\'s project)',
    query: {
      project: q(str, 'Give project or repository'),
      repository: q(str),
      digest: q(digest),
      decision: q(oneOf('allowed', 'denied')),
      limit: q({ type: 'integer', minimum: 1, maximum: 500 }, 'Default 100'),
      cursor: q(str, 'From the previous page (`next`)'),
    },
    status: 200,
    response: object({
      promotions: array(
        object({
          id: str,
          createdAt: time,
          actor: object({ kind: str, name: nullable(str) }),
          source: object({ repository: str, reference: str }),
          digest,
          destination: object({ repository: str, tag: nullable(str) }),
          decision: oneOf('allowed', 'denied'),
          policy: nullable(policyRef),
          denials: array(str),
          attestation: nullable(str),
          copied: array(str),
        }),
      ),
      next: nullable(str),
    }),
  },
  { method: 'GET', path: '/promotions/public-key', tag: promotionTag, summary: "The registry's promotion attestation key (PEM), for cosign and trust policies (anyone)", status: 200, responseType: 'application/x-pem-file', response: str },
];
