/**
 * Authorisation of the scanner's API routes with the registry's access control (auth.mode token):
 * the caller is identified as for the management and audit APIs (auth/request-identity.ts) and
 * the permission table decides (`AccessService.can`). Reading a report needs `pull` on the
 * repository, re-scanning `push`, listing exemptions `project.read`, managing them
 * `project.update` on the project; the database status any authenticated caller.
 */
import { RegistryError } from '../../oci/errors.ts';
import type { AccessService } from '../auth/access-service.ts';
import { actorOf } from '../auth/identity.ts';
import { basicChallenge, type IdentifyRequest } from '../auth/request-identity.ts';
import type { ScannerAuthorizer } from './http.ts';

export function accessAuthorizer(deps: { access: AccessService; identify: IdentifyRequest }): ScannerAuthorizer {
  const { access, identify } = deps;
  return async (request, need) => {
    const identity = await identify(request);
    const allowed =
      need.action === 'catalog'
        ? identity.kind !== 'anonymous'
        : await access.can(identity, need.action, need.repository !== undefined ? { kind: 'repository', name: need.repository } : { kind: 'project', name: need.project ?? '' });
    if (allowed) {
      // Per-project IP lists apply to repository data here as on /v2/.
      if (need.repository !== undefined) access.assertReachable(need.repository, request.ip);
      return actorOf(identity);
    }
    if (identity.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: basicChallenge });
    throw new RegistryError('DENIED', `${need.action} on ${need.repository ?? need.project ?? 'the registry'} is not allowed`);
  };
}
