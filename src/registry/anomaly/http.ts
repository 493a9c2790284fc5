/**
 * `GET /api/v1/alerts?rule=&subject=&project=&since=&limit=`: the latest anomaly alerts, newest
 * first (system administrators: `audit.read`). Older alerts are in the audit log
 * (`action=alert.raised`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AnomalyDetector } from './detector.ts';

export const alertQuerySchema = z.strictObject({
  rule: z.enum(['failed-logins', 'new-network', 'mass-deletion', 'pull-volume', 'robot-scope', 'unsigned-push', 'released-tag-moved']).optional(),
  subject: z.string().min(1).max(512).optional(),
  project: z.string().min(1).max(255).optional(),
  since: z.iso.datetime({ offset: true }).transform((value) => Date.parse(value)).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export async function registerAlertRoutes(app: FastifyInstance, deps: { detector: AnomalyDetector; authorize?: ((request: FastifyRequest) => Promise<void> | void) | undefined }): Promise<void> {
  app.get('/api/v1/alerts', async (request, reply) => {
    await deps.authorize?.(request);
    const parsed = alertQuerySchema.safeParse(request.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return reply.code(400).send({ errors: [{ code: 'INVALID_REQUEST', message: `${issue.path.join('.') || 'query'}: ${issue.message}` }] });
    }
    reply.header('Cache-Control', 'no-store');
    return { alerts: deps.detector.recent(parsed.data) };
  });
}
