/**
 * OpenAPI description of GET /api/v1/alerts (http.ts serves it), for the management API's
 * document; build-app adds it when the alert route is mounted.
 */
import type { ApiDescription } from '../api/management-api.ts';
import { array, digest, object, oneOf, str, time } from '../api/json-schema.ts';
import { alertQuerySchema } from './http.ts';

const alert = object(
  { id: str, rule: oneOf(...alertQuerySchema.shape.rule.unwrap().options), severity: oneOf('warning', 'critical'), subject: str, reason: str, facts: { type: 'object' }, at: time },
  { project: str, repository: str, digest, tag: str, actor: object({ kind: str }, { name: str }), clientAddress: str },
);

export const alertsOpenApi: ApiDescription[] = [
  { method: 'GET', path: '/alerts', tag: 'alerts', summary: 'The latest anomaly alerts, newest first (audit.read); older ones are in the audit log', query: alertQuerySchema, status: 200, response: object({ alerts: array(alert) }) },
];
