/**
 * OpenAPI descriptions of the signature routes (http.ts serves them), for the management API's
 * document; build-app adds them when signatures are enabled.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { anyObject, array, bool, digest, int, object, oneOf, str, time } from '../api/json-schema.ts';
import { putBodySchema } from './http.ts';
import { TrustPolicyDocumentSchema } from './service.ts';

const tag = 'signatures';
const policyView = object(
  { project: str, version: int, requireSignatureToPull: bool, policyHash: str, updatedAt: time, policy: anyObject },
  { updatedBy: str, error: { type: 'string', description: 'Set when the stored policy no longer compiles (it then trusts nothing)' } },
);
const artifact = object({ digest, source: str, kind: str }, { tag: str });
const status = object(
  {
    repository: str,
    project: str,
    digest,
    policyVersion: int,
    policyHash: str,
    verifiedAt: time,
    verdict: oneOf('verified', 'unsigned', 'failed'),
    signatures: array(object({ artifact: str, kind: str, ok: bool, reason: str }, { layer: int, method: str, signer: anyObject })),
    attestations: array(object({ artifact: str, kind: str, ok: bool, reason: str }, { layer: int, predicateType: str, signer: anyObject, facts: anyObject })),
    requirements: array(object({ requirement: anyObject, ok: bool, reasons: array(str) }, { satisfiedBy: str })),
    missing: array(str),
    artifacts: array(artifact),
    rejected: array(object({ digest, source: str, reason: str }, { tag: str })),
    truncated: bool,
    trustPolicy: object({ configured: bool, version: int, requireSignatureToPull: bool }),
    manifestPresent: bool,
  },
  { cacheKey: str, coveredBy: { ...digest, description: 'An index whose verified signature covers this image' }, coveredVerdict: str },
);
const versionHeaders = { 'If-Match': 'The quoted policy version it replaces, e.g. "3" (409 when it changed meanwhile)', 'If-None-Match': '`*`: only when the project has no policy yet' };

export const signaturesOpenApi: ApiDescription[] = [
  { method: 'GET', path: '/projects/{project}/trust-policy', tag, summary: "The project's trust policy, its version (also as ETag) and the pull switch (project.read)", status: 200, response: policyView },
  {
    method: 'PUT',
    path: '/projects/{project}/trust-policy',
    tag,
    summary: 'Replace the trust policy: a new version (project.update); 201 when the project had none',
    headers: versionHeaders,
    body: putBodySchema.extend({ policy: TrustPolicyDocumentSchema }),
    status: 200,
    otherStatus: 201,
    response: policyView,
  },
  { method: 'DELETE', path: '/projects/{project}/trust-policy', tag, summary: 'Remove the trust policy; the version counter stays (project.update)', headers: versionHeaders, status: 204 },
  {
    method: 'GET',
    path: '/repositories/{repository}/manifests/{reference}/signatures',
    params: { repository: 'Repository name; may contain `/` (`project/app`)', reference: 'A digest or a tag' },
    tag,
    summary: 'Every signature and attestation of an image with its verification, signer and reason; the verdict; what is missing (pull)',
    status: 200,
    response: status,
    errors: { 503: "The project's stored trust policy cannot be used (UNAVAILABLE)" },
  },
];
