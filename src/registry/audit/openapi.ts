/**
 * OpenAPI description of GET /api/v1/audit (http.ts serves it), for the management API's
 * document; build-app adds it when audit.api.enabled.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { array, digest, int, object, str, time } from '../api/json-schema.ts';
import { auditQuerySchema } from './http.ts';

export function auditOpenApi(maxPageSize: number): ApiDescription[] {
  const record = object(
    { seq: int, time, actor: object({ kind: str }, { name: str, auth: str }), action: str, outcome: str, prevHash: str, hash: str },
    { client: str, userAgent: str, requestId: str, repository: str, digest, tag: str, reason: str, details: { type: 'object' } },
  );
  return [
    {
      method: 'GET',
      path: '/audit',
      tag: 'audit',
      summary: 'Query the audit log (audit.read); a next page is linked by `nextCursor` and a `Link: rel="next"` header',
      query: auditQuerySchema(maxPageSize),
      status: 200,
      response: object({ records: array(record) }, { nextCursor: str }),
    },
  ];
}
