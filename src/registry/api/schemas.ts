/**
 * Shapes of the management API (/api/v1): request bodies (validated) and responses (documented
 * in the OpenAPI document, and checked against the answers by the API tests).
 */
import { z } from 'zod';
import { repositoryActions, roles } from '../auth/identity.ts';

const timestamp = z.iso.datetime().describe('RFC 3339 time (UTC)');

export const grantSchema = z
  .strictObject({
    repositories: z.array(z.string().min(1).max(255)).min(1).max(100).describe('Repository globs on full names: `*` within a path component, `**` across components; the first component is a literal project name (e.g. `team-a/app/**`).'),
    actions: z.array(z.enum(repositoryActions)).min(1).describe('Actions allowed on matching repositories: the Docker scope actions pull, push, delete, retag (moving an existing tag to another manifest), and promote (copying an image here from another project).'),
  })
  .meta({ id: 'Grant' });

const expiry = {
  expiresInDays: z.number().int().positive().optional().describe('Lifetime in days (mandatory unless expiresAt is given; at most the configured maximum).'),
  expiresAt: z.iso.datetime().optional().describe('Expiry time (alternative to expiresInDays).'),
};

export const userSchema = z
  .strictObject({
    name: z.string(),
    systemAdmin: z.boolean(),
    canCreateProjects: z.boolean(),
    disabled: z.boolean(),
    email: z.string().optional(),
    source: z.enum(['local', 'oidc']),
    createdAt: timestamp,
  })
  .meta({ id: 'User' });

export const createUserSchema = z.strictObject({
  name: z.string().min(1).max(64),
  password: z.string().max(1024).optional().describe('Omit for a user that logs in through an identity provider only.'),
  systemAdmin: z.boolean().optional(),
  canCreateProjects: z.boolean().optional(),
  email: z.string().max(320).optional(),
  source: z.enum(['local', 'oidc']).optional().describe('`oidc`: logs in through an OpenID provider only (no password), linked at its first login; for providers without auto-onboarding.'),
});

export const updateUserSchema = z.strictObject({
  password: z.string().max(1024).optional(),
  currentPassword: z.string().max(1024).optional().describe('Required to change your own password (unless you manage users).'),
  systemAdmin: z.boolean().optional(),
  canCreateProjects: z.boolean().optional(),
  disabled: z.boolean().optional(),
  email: z.string().max(320).nullable().optional(),
});

export const projectSchema = z
  .strictObject({
    name: z.string(),
    visibility: z.enum(['private', 'public']),
    createdAt: timestamp,
    createdBy: z.string().optional(),
  })
  .meta({ id: 'Project' });

export const createProjectSchema = z.strictObject({ name: z.string().min(1).max(64), visibility: z.enum(['private', 'public']).optional() });
export const updateProjectSchema = z.strictObject({ visibility: z.enum(['private', 'public']).optional() });

export const memberSchema = z
  .strictObject({
    id: z.string(),
    kind: z.enum(['user', 'group']),
    name: z.string(),
    role: z.enum(roles),
    repositories: z.array(z.string()).optional(),
  })
  .meta({ id: 'Member' });

export const addMemberSchema = z.strictObject({
  user: z.string().optional().describe('A user name (exactly one of user and group).'),
  group: z.string().optional().describe('An identity-provider group name.'),
  role: z.enum(roles),
  repositories: z.array(z.string().min(1).max(255)).min(1).max(100).optional().describe('Narrow the role to repositories matching these globs (inside the project).'),
});

const credentialFields = {
  id: z.string(),
  grants: z.array(grantSchema),
  expiresAt: timestamp,
  revokedAt: timestamp.optional(),
  createdAt: timestamp,
  lastUsedAt: timestamp.optional(),
  lastUsedFrom: z.string().optional(),
};

export const robotSchema = z
  .strictObject({
    ...credentialFields,
    name: z.string().describe('Log in with this user name: robot$<name> or robot$<project>+<name>.'),
    project: z.string().optional(),
    description: z.string().optional(),
    createdBy: z.string().optional(),
  })
  .meta({ id: 'Robot' });

export const createRobotSchema = z.strictObject({
  name: z.string().min(1).max(64),
  description: z.string().max(500).optional(),
  grants: z.array(grantSchema).min(1).max(50),
  ...expiry,
});

export const createdRobotSchema = z.strictObject({ robot: robotSchema, secret: z.string().describe('Shown once; store it now.') });

export const tokenSchema = z
  .strictObject({
    ...credentialFields,
    name: z.string(),
    management: z.boolean().describe('May call /api/v1 as the user.'),
  })
  .meta({ id: 'PersonalAccessToken' });

export const createTokenSchema = z.strictObject({
  name: z.string().min(1).max(64),
  grants: z.array(grantSchema).min(1).max(50),
  management: z.boolean().optional(),
  ...expiry,
});

export const createdTokenSchema = z.strictObject({ token: tokenSchema, secret: z.string().describe('Shown once; use it as the password with your user name.') });

export const whoamiSchema = z.strictObject({ kind: z.enum(['anonymous', 'user', 'robot', 'workload']), name: z.string().optional(), user: userSchema.optional() });

export const errorSchema = z
  .strictObject({ errors: z.array(z.strictObject({ code: z.string(), message: z.string(), detail: z.unknown().optional() })) })
  .meta({ id: 'Error' });

export const listQuerySchema = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional(), last: z.string().optional() });
