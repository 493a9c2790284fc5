/**
 * The management REST API under /api/v1: users, projects, members, robot accounts and personal
 * access tokens, described by an OpenAPI 3.1 document at /api/v1/openapi.json generated from the
 * same zod schemas that validate the requests.
 *
 * Authentication: Basic (password, personal access token with `management`) or a registry token
 * (`Bearer`); without credentials the caller is anonymous (who may list public projects). Every
 * operation is authorised by the permission table (through {@link Administration}); an anonymous
 * caller that is denied gets 401 with a Basic challenge, anyone else 403.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { RegistryError } from '../../oci/errors.ts';
import type { AccessService } from '../auth/access-service.ts';
import type { Administration } from '../auth/administration.ts';
import type { Identity } from '../auth/identity.ts';
import { requestOrigin } from '../auth/registry-access.ts';
import type { RegistryTokens } from '../auth/registry-tokens.ts';
import { basicChallenge, identifyRequest } from '../auth/request-identity.ts';
import type { RequestOrigin } from '../events/bus.ts';
import * as s from './schemas.ts';

export const apiBase = '/api/v1';

export interface Context {
  actor: Identity;
  origin: RequestOrigin;
  params: Record<string, string>;
  body: any;
  query: any;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** OpenAPI-style path below /api/v1, e.g. `/projects/{project}`. */
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodType;
  status: number;
  response?: z.ZodType;
  handler(ctx: Context): Promise<unknown>;
}

/** A hand-written JSON schema (OpenAPI 3.1 uses JSON Schema 2020-12), for routes without a zod schema. */
export type JsonSchema = { [key: string]: unknown };

/**
 * The OpenAPI description of a route a capability module registers and serves itself (e.g.
 * scanner/openapi.ts): describe-only. build-app passes the descriptions of the enabled modules in,
 * so the document lists exactly the routes this server answers.
 */
export interface ApiDescription {
  method: ApiRoute['method'];
  /** OpenAPI-style path below /api/v1; every `{name}` is declared as a string path parameter. */
  path: string;
  summary: string;
  tag: string;
  /** Descriptions of path parameters (e.g. that `{repository}` may contain `/`). */
  params?: Record<string, string>;
  query?: z.ZodType | Record<string, { schema: JsonSchema; description?: string; required?: boolean }>;
  body?: z.ZodType | JsonSchema;
  /** Media types of the body; default application/json. */
  bodyTypes?: string[];
  /** Request headers the route reads (name: description), e.g. If-Match. */
  headers?: Record<string, string>;
  status: number;
  /** Another success status with the same answer (e.g. PUT: 201 when it created the object). */
  otherStatus?: number;
  response?: z.ZodType | JsonSchema;
  /** Media type(s) of the success answer; default application/json. */
  responseType?: string | string[];
  /** Error answers besides the common ones (400, 401, 403, 404, 409), e.g. `{ 503: '...' }`. */
  errors?: Record<number, string>;
}

function routes(admin: Administration): ApiRoute[] {
  const projectRobots = (ctx: Context) => ctx.params.project;
  return [
    { method: 'GET', path: '/me', tag: 'account', summary: 'Who am I', status: 200, response: s.whoamiSchema, handler: (c) => admin.whoami(c.actor) },
    { method: 'GET', path: '/users', tag: 'users', summary: 'List users (user.manage)', query: s.listQuerySchema, status: 200, response: z.array(s.userSchema), handler: (c) => admin.listUsers(c.actor, c.query) },
    { method: 'POST', path: '/users', tag: 'users', summary: 'Create a local user (user.manage)', body: s.createUserSchema, status: 201, response: s.userSchema, handler: (c) => admin.createUser(c.actor, c.body, c.origin) },
    { method: 'GET', path: '/users/{user}', tag: 'users', summary: 'Get a user (yourself, or user.manage)', status: 200, response: s.userSchema, handler: (c) => admin.getUser(c.actor, c.params.user!) },
    { method: 'PATCH', path: '/users/{user}', tag: 'users', summary: 'Change a user (your own password and e-mail, or user.manage)', body: s.updateUserSchema, status: 200, response: s.userSchema, handler: (c) => admin.updateUser(c.actor, c.params.user!, c.body, c.origin) },
    { method: 'DELETE', path: '/users/{user}', tag: 'users', summary: 'Delete a user with its memberships and tokens (user.manage)', status: 204, handler: (c) => admin.deleteUser(c.actor, c.params.user!, c.origin) },
    { method: 'GET', path: '/users/{user}/tokens', tag: 'tokens', summary: "List a user's personal access tokens", status: 200, response: z.array(s.tokenSchema), handler: (c) => admin.listTokens(c.actor, c.params.user!) },
    {
      method: 'POST',
      path: '/users/{user}/tokens',
      tag: 'tokens',
      summary: 'Create a personal access token for yourself (the secret is shown once)',
      body: s.createTokenSchema,
      status: 201,
      response: s.createdTokenSchema,
      handler: async (c) => {
        if (c.actor.kind !== 'user' || c.actor.name !== c.params.user) throw new RegistryError('DENIED', 'personal access tokens are created by their owner only');
        return admin.createToken(c.actor, c.body, c.origin);
      },
    },
    { method: 'POST', path: '/users/{user}/tokens/{id}/revoke', tag: 'tokens', summary: 'Revoke a personal access token', status: 200, response: s.tokenSchema, handler: (c) => admin.revokeToken(c.actor, c.params.user!, c.params.id!, c.origin) },
    { method: 'GET', path: '/projects', tag: 'projects', summary: 'List the projects you can see', status: 200, response: z.array(s.projectSchema), handler: (c) => admin.listProjects(c.actor) },
    { method: 'POST', path: '/projects', tag: 'projects', summary: 'Create a project (project.create); you become its admin', body: s.createProjectSchema, status: 201, response: s.projectSchema, handler: (c) => admin.createProject(c.actor, c.body, c.origin) },
    { method: 'GET', path: '/projects/{project}', tag: 'projects', summary: 'Get a project (project.read)', status: 200, response: s.projectSchema, handler: (c) => admin.getProject(c.actor, c.params.project!) },
    { method: 'PATCH', path: '/projects/{project}', tag: 'projects', summary: 'Change visibility (project.update)', body: s.updateProjectSchema, status: 200, response: s.projectSchema, handler: (c) => admin.updateProject(c.actor, c.params.project!, c.body, c.origin) },
    { method: 'DELETE', path: '/projects/{project}', tag: 'projects', summary: 'Delete an empty project with its members and robots (project.delete)', status: 204, handler: (c) => admin.deleteProject(c.actor, c.params.project!, c.origin) },
    { method: 'GET', path: '/projects/{project}/members', tag: 'members', summary: 'List role grants (project.read)', status: 200, response: z.array(s.memberSchema), handler: (c) => admin.listMembers(c.actor, c.params.project!) },
    { method: 'POST', path: '/projects/{project}/members', tag: 'members', summary: 'Grant a role to a user or group, optionally narrowed to repository patterns (member.manage)', body: s.addMemberSchema, status: 201, response: s.memberSchema, handler: (c) => admin.addMember(c.actor, c.params.project!, c.body, c.origin) },
    { method: 'DELETE', path: '/projects/{project}/members/{id}', tag: 'members', summary: 'Remove a role grant (member.manage)', status: 204, handler: (c) => admin.removeMember(c.actor, c.params.project!, c.params.id!, c.origin) },
    { method: 'GET', path: '/projects/{project}/robots', tag: 'robots', summary: 'List project robots (robot.manage)', status: 200, response: z.array(s.robotSchema), handler: (c) => admin.listRobots(c.actor, projectRobots(c)) },
    {
      method: 'POST',
      path: '/projects/{project}/robots',
      tag: 'robots',
      summary: 'Create a project robot (robot.manage; the secret is shown once)',
      body: s.createRobotSchema,
      status: 201,
      response: s.createdRobotSchema,
      handler: (c) => admin.createRobot(c.actor, { ...c.body, project: projectRobots(c) }, c.origin),
    },
    { method: 'POST', path: '/projects/{project}/robots/{id}/revoke', tag: 'robots', summary: 'Revoke a project robot (robot.manage)', status: 200, response: s.robotSchema, handler: (c) => admin.revokeRobot(c.actor, c.params.id!, projectRobots(c), c.origin) },
    { method: 'DELETE', path: '/projects/{project}/robots/{id}', tag: 'robots', summary: 'Delete a project robot (robot.manage)', status: 204, handler: (c) => admin.deleteRobot(c.actor, c.params.id!, projectRobots(c), c.origin) },
    { method: 'GET', path: '/robots', tag: 'robots', summary: 'List system robots (system.robot.manage)', status: 200, response: z.array(s.robotSchema), handler: (c) => admin.listRobots(c.actor, undefined) },
    { method: 'POST', path: '/robots', tag: 'robots', summary: 'Create a system robot (system.robot.manage; the secret is shown once)', body: s.createRobotSchema, status: 201, response: s.createdRobotSchema, handler: (c) => admin.createRobot(c.actor, { ...c.body, project: undefined }, c.origin) },
    { method: 'POST', path: '/robots/{id}/revoke', tag: 'robots', summary: 'Revoke a system robot (system.robot.manage)', status: 200, response: s.robotSchema, handler: (c) => admin.revokeRobot(c.actor, c.params.id!, undefined, c.origin) },
    { method: 'DELETE', path: '/robots/{id}', tag: 'robots', summary: 'Delete a system robot (system.robot.manage)', status: 204, handler: (c) => admin.deleteRobot(c.actor, c.params.id!, undefined, c.origin) },
  ];
}

function jsonSchema(schema: z.ZodType | JsonSchema, io: 'input' | 'output'): Record<string, unknown> {
  if (!(schema instanceof z.ZodType)) return schema;
  const { $schema: _ignored, $defs, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', reused: 'inline' }) as Record<string, unknown>;
  return $defs ? (inlineDefs(rest, $defs as Record<string, unknown>) as Record<string, unknown>) : rest;
}

/**
 * zod puts schemas with a meta id in `$defs` and refers to them as `#/$defs/<id>`; inside the
 * OpenAPI document that pointer would resolve against the document root. The (non-recursive)
 * definitions are inlined instead.
 */
function inlineDefs(node: unknown, defs: Record<string, unknown>, depth = 0): unknown {
  if (Array.isArray(node)) return node.map((item) => inlineDefs(item, defs, depth));
  if (node === null || typeof node !== 'object') return node;
  const { $ref, ...rest } = node as Record<string, unknown>;
  const id = typeof $ref === 'string' && $ref.startsWith('#/$defs/') ? $ref.slice('#/$defs/'.length) : undefined;
  if (id !== undefined && defs[id] !== undefined && depth < 32) return { ...(inlineDefs(defs[id], defs, depth + 1) as object), ...(inlineDefs(rest, defs, depth) as object) };
  return Object.fromEntries(Object.entries(node as Record<string, unknown>).map(([key, value]) => [key, inlineDefs(value, defs, depth)]));
}

/** The document itself, so that every /api/v1 route is described. */
const documentRoute: ApiDescription = { method: 'GET', path: '/openapi.json', tag: 'meta', summary: 'This OpenAPI 3.1 document (the operations of the enabled modules)', status: 200, response: { type: 'object', required: ['openapi', 'paths'] } };

/**
 * The OpenAPI 3.1 document of the API (`extra`: routes of optional capabilities, e.g.
 * auth/federation/api.ts; `described`: routes modules serve themselves, e.g. scanner/openapi.ts).
 */
export function openApiDocument(admin: Administration, extra: ApiRoute[] = [], described: readonly ApiDescription[] = []): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: jsonSchema(s.errorSchema, 'output') } } });
  for (const route of [...routes(admin), ...extra, documentRoute, ...described] as ApiDescription[]) {
    const parameters: Array<Record<string, unknown>> = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, ...(route.params?.[m[1]!] ? { description: route.params[m[1]!] } : {}), schema: { type: 'string' } }));
    if (route.query instanceof z.ZodObject) {
      for (const [name, field] of Object.entries(route.query.shape as Record<string, z.ZodType>)) parameters.push({ name, in: 'query', required: false, schema: jsonSchema(field, 'input') as never });
    } else if (route.query && !(route.query instanceof z.ZodType)) {
      for (const [name, q] of Object.entries(route.query)) parameters.push({ name, in: 'query', required: q.required ?? false, ...(q.description ? { description: q.description } : {}), schema: q.schema });
    }
    for (const [name, description] of Object.entries(route.headers ?? {})) parameters.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
    const success = route.response ? { description: 'Success', content: Object.fromEntries([route.responseType ?? 'application/json'].flat().map((type) => [type, { schema: jsonSchema(route.response!, 'output') }])) } : { description: 'Done' };
    const responses: Record<string, unknown> = {
      [route.status]: success,
      ...(route.otherStatus ? { [route.otherStatus]: success } : {}),
      400: errorResponse('Invalid request (INVALID_REQUEST)'),
      401: errorResponse('Authentication required (UNAUTHORIZED)'),
      403: errorResponse('Not allowed (DENIED)'),
      404: errorResponse('No such object (NOT_FOUND)'),
      409: errorResponse('Name taken or object in use (CONFLICT)'),
      ...Object.fromEntries(Object.entries(route.errors ?? {}).map(([status, description]) => [status, errorResponse(description)])),
    };
    const body = route.body && { required: true, content: Object.fromEntries((route.bodyTypes ?? ['application/json']).map((type) => [type, { schema: jsonSchema(route.body!, 'input') }])) };
    paths[`${apiBase}${route.path}`] ??= {};
    paths[`${apiBase}${route.path}`]![route.method.toLowerCase()] = {
      summary: route.summary,
      tags: [route.tag],
      operationId: `${route.method.toLowerCase()}${route.path.replace(/\{(\w)(\w*)\}/g, (_m, a: string, b: string) => `By${a.toUpperCase()}${b}`).replace(/\/(\w)/g, (_m, a: string) => a.toUpperCase())}`,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(body ? { requestBody: body } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Portcullis management API', version: '1', description: 'Users, projects, members, robot accounts and personal access tokens, and the routes of the enabled capability modules (scanner, signatures, policy, audit, traceability...). Every call is authorised by the same permission table as the registry.' },
    components: { securitySchemes: { basic: { type: 'http', scheme: 'basic' }, bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (registry token)' } } },
    security: [{ basic: [] }, { bearer: [] }, {}],
    paths,
  };
}

function validate(schema: z.ZodType | undefined, value: unknown, what: string): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new RegistryError('INVALID_REQUEST', `${what}${issue.path.length > 0 ? `.${issue.path.join('.')}` : ''}: ${issue.message}`);
}

/** `describedRoutes` is read at the first request of the document: modules registered later (build-app) are in it. */
export async function registerManagementApi(app: FastifyInstance, deps: { admin: Administration; access: AccessService; tokens: RegistryTokens; extraRoutes?: ApiRoute[]; describedRoutes?: readonly ApiDescription[] }): Promise<void> {
  const { admin, access, tokens } = deps;
  const extra = deps.extraRoutes ?? [];
  let document: Record<string, unknown> | undefined;

  const authenticate = identifyRequest({ access, tokens });

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_request, body, done) => {
      try {
        done(null, body === '' ? undefined : JSON.parse(body as string));
      } catch {
        done(new RegistryError('INVALID_REQUEST', 'the body is not valid JSON'), undefined);
      }
    });
    scope.get(`${apiBase}/openapi.json`, async (_request, reply) => reply.send((document ??= openApiDocument(admin, extra, deps.describedRoutes))));
    for (const route of [...routes(admin), ...extra]) {
      scope.route({
        method: route.method,
        url: `${apiBase}${route.path.replace(/\{(\w+)\}/g, ':$1')}`,
        handler: async (request, reply) => {
          const actor = await authenticate(request);
          const ctx: Context = {
            actor,
            origin: requestOrigin(request, actor),
            params: request.params as Record<string, string>,
            body: validate(route.body, request.body, 'body'),
            query: validate(route.query, request.query, 'query') ?? {},
          };
          reply.header('Cache-Control', 'no-store');
          try {
            const result = await route.handler(ctx);
            return route.status === 204 ? reply.code(204).send() : reply.code(route.status).send(result);
          } catch (error) {
            if (error instanceof RegistryError && error.code === 'DENIED' && actor.kind === 'anonymous') {
              throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: basicChallenge });
            }
            throw error;
          }
        },
      });
    }
  });
}
