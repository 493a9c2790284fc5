/**
 * Who sent an HTTP request outside /v2/ (the management API, the audit API): Basic credentials
 * (password, personal access token, robot secret) or a registry token (`Bearer`); no
 * credentials is the anonymous caller; bad ones are `401`.
 */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { type AccessService, AuthenticationError } from './access-service.ts';
import { type Action, type Identity, anonymous } from './identity.ts';
import type { Resource } from './permissions.ts';
import { parseBasic, requestOrigin } from './registry-access.ts';
import { type RegistryTokens, TokenError } from './registry-tokens.ts';
import { clientCertificate } from '../edge/client-certificate.ts';

export const basicChallenge = { 'WWW-Authenticate': 'Basic realm="portcullis"' };

export type IdentifyRequest = (request: FastifyRequest) => Promise<Identity>;

export function identifyRequest(deps: { access: AccessService; tokens: RegistryTokens }): IdentifyRequest {
  return async (request) => {
    const header = request.headers.authorization;
    if (header === undefined) return anonymous;
    try {
      if (/^Bearer\s/i.test(header)) {
        const identity = await deps.access.resolve((await deps.tokens.verify(header.slice(7).trim())).principal);
        if (identity) return identity;
      } else {
        const credentials = parseBasic(header);
        if (credentials) return await deps.access.authenticate(credentials.username, credentials.password, requestOrigin(request), clientCertificate(request));
      }
    } catch (error) {
      if (!(error instanceof AuthenticationError) && !(error instanceof TokenError)) throw error;
    }
    throw new RegistryError('UNAUTHORIZED', 'invalid credentials', { headers: basicChallenge });
  };
}

/** A request check for one action (e.g. `audit.read` on the system): 401 for anonymous callers, 403 for others. */
export function requireAction(identify: IdentifyRequest, access: AccessService, action: Action, resource: Resource): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const identity = await identify(request);
    if (await access.can(identity, action, resource)) return;
    if (identity.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: basicChallenge });
    throw new RegistryError('DENIED', 'requested access to the resource is denied');
  };
}
