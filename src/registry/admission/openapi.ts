/**
 * OpenAPI description of GET /api/v1/deployments (http.ts serves it), for the management API's
 * document; build-app adds it when admission is enabled. The webhooks themselves
 * (/admission/validate, /admission/mutate) are Kubernetes endpoints, not part of /api/v1.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { array, digest, object, q, str, time } from '../api/json-schema.ts';

export const admissionOpenApi: ApiDescription[] = [
  {
    method: 'GET',
    path: '/deployments',
    tag: 'admission',
    summary: 'Deployment records of the admission webhooks: where images run (project.read; without a repository, only projects the caller may read)',
    query: {
      digest: q(digest),
      repository: q(str),
      namespace: q(str),
      cluster: q(str, 'With digest, repository or namespace'),
      limit: q({ type: 'integer', minimum: 1, maximum: 1000 }, 'Default 100'),
    },
    status: 200,
    response: object({
      deployments: array(object({ cluster: str, namespace: str, workload: object({ kind: str, name: str }), container: str, repository: str, digest, image: str, firstSeen: time, lastSeen: time })),
    }),
  },
];
