/**
 * /api/v1 routes of per-project IP lists, added to the management API (api/management-api.ts)
 * with their OpenAPI entries.
 */
import { z } from 'zod';
import type { ApiRoute } from '../../api/management-api.ts';
import { maxNetworksPerList, type ProjectNetworkAdministration } from './project-networks.ts';

const list = (what: string) =>
  z
    .array(z.string().max(64))
    .max(maxNetworksPerList)
    .describe(`${what}: CIDR blocks or single addresses, IPv4 or IPv6 (e.g. \`10.0.0.0/8\`, \`2001:db8::/32\`); IPv4-mapped IPv6 client addresses match IPv4 blocks.`);

export const projectNetworksSchema = z
  .strictObject({
    project: z.string(),
    allow: list('When not empty, only these networks reach the project'),
    deny: list('These networks never reach the project (wins over allow)'),
    updatedBy: z.string().optional(),
    updatedAt: z.iso.datetime().optional(),
  })
  .meta({ id: 'ProjectNetworks' });

export const putProjectNetworksSchema = z.strictObject({
  allow: list('When not empty, only these networks reach the project (omitted: empty, any address)').optional(),
  deny: list('These networks never reach the project (omitted: empty)').optional(),
});

export function projectNetworkRoutes(admin: ProjectNetworkAdministration): ApiRoute[] {
  const path = '/projects/{project}/networks';
  return [
    { method: 'GET', path, tag: 'projects', summary: "The project's IP allow and deny lists (project.update)", status: 200, response: projectNetworksSchema, handler: (c) => admin.get(c.actor, c.params.project!) },
    {
      method: 'PUT',
      path,
      tag: 'projects',
      summary: "Replace the project's IP allow and deny lists, checked on /v2/ and the token endpoint for its repositories (project.update)",
      body: putProjectNetworksSchema,
      status: 200,
      response: projectNetworksSchema,
      handler: (c) => admin.put(c.actor, c.params.project!, c.body, c.origin),
    },
  ];
}
