/**
 * `GET /api/v1/audit`: query the audit log.
 *
 * Query parameters: `from`, `to` (RFC 3339 times; `to` exclusive), `actor`, `repository`
 * (exact, or `project/*`), `action` (exact, or `manifest.*`), `outcome`, `order` (`desc`,
 * newest first, by default), `limit` (default 100), `cursor` (from the previous page). Answer:
 * `{"records": [...], "nextCursor": "..."}` and, when there is a next page, a `Link: <...>;
 * rel="next"` header.
 *
 * Who may read it is decided by `authorize`, a hook access control wires (it throws a
 * RegistryError such as DENIED to refuse). The route is mounted only when `audit.api.enabled`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditPage } from './service.ts';
import type { AuditFilter } from './store.ts';
import { auditOutcomes } from './record.ts';

export type AuditAuthorizer = (request: FastifyRequest) => Promise<void> | void;

const time = z.iso.datetime({ offset: true }).transform((value) => Date.parse(value));

export function auditQuerySchema(maxPageSize: number) {
  return z.strictObject({
    from: time.optional(),
    to: time.optional(),
    actor: z.string().min(1).max(256).optional(),
    repository: z.string().min(1).max(1024).optional(),
    action: z.string().min(1).max(64).optional(),
    outcome: z.enum(auditOutcomes as [string, ...string[]]).optional(),
    order: z.enum(['asc', 'desc']).default('desc'),
    limit: z.coerce.number().int().min(1).max(maxPageSize).default(Math.min(100, maxPageSize)),
    cursor: z.string().max(64).optional(),
  });
}

export type AuditQuery = Omit<AuditFilter, 'cursor'> & { cursor?: string };

export async function registerAuditRoutes(
  app: FastifyInstance,
  audit: { query(filter: AuditQuery): Promise<AuditPage> },
  options: { authorize?: AuditAuthorizer | undefined; maxPageSize: number },
): Promise<void> {
  const schema = auditQuerySchema(options.maxPageSize);
  app.get('/api/v1/audit', async (request, reply) => {
    await options.authorize?.(request);
    const parsed = schema.safeParse(request.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return reply.code(400).send({ errors: [{ code: 'INVALID_REQUEST', message: `${issue.path.join('.') || 'query'}: ${issue.message}` }] });
    }
    let page: AuditPage;
    try {
      page = await audit.query(parsed.data);
    } catch (error) {
      if (error instanceof RangeError) return reply.code(400).send({ errors: [{ code: 'INVALID_REQUEST', message: `cursor: ${error.message}` }] });
      throw error;
    }
    if (page.nextCursor) {
      const url = new URL(request.url, 'http://registry');
      url.searchParams.set('cursor', page.nextCursor);
      reply.header('Link', `<${url.pathname}${url.search}>; rel="next"`);
    }
    reply.header('Cache-Control', 'no-store');
    return page;
  });
}
