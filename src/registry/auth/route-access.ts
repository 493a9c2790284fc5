/**
 * The access each `/v2/` endpoint needs, derived from route and method (as distribution's
 * `appendAccessRecords` does): reads need `pull`, writes `push`, deletions `delete`, the catalog
 * `registry:catalog:*`. A cross-repository mount also wants `pull` on the source; without it
 * the request continues as an ordinary upload.
 */
import type { RegistryRequest } from './ports.ts';
import type { AccessEntry } from './scope.ts';

export interface RequiredAccess {
  /** What the request needs (empty for the API base `/v2/`, which only needs a valid token). */
  needs: AccessEntry[];
  /** What a challenge should ask for (push operations ask for `pull,push`, as clients expect). */
  challenge: AccessEntry[];
  /** Source repository of a cross-repository mount (optional access). */
  mountFrom: string | undefined;
}

export function requiredAccess(target: RegistryRequest): RequiredAccess {
  const { route, method, query } = target;
  if (route.kind === 'base') return { needs: [], challenge: [], mountFrom: undefined };
  if (route.kind === 'catalog') {
    const entry = { type: 'registry', name: 'catalog', actions: ['*'] };
    return { needs: [entry], challenge: [entry], mountFrom: undefined };
  }
  const name = route.name!;
  const repository = (actions: string[]) => ({ type: 'repository', name, actions });
  if (method === 'DELETE' && (route.kind === 'blob' || route.kind === 'manifest')) {
    return { needs: [repository(['delete'])], challenge: [repository(['delete'])], mountFrom: undefined };
  }
  const write = route.kind === 'uploads' || route.kind === 'upload' || (route.kind === 'manifest' && method === 'PUT');
  if (!write) return { needs: [repository(['pull'])], challenge: [repository(['pull'])], mountFrom: undefined };
  const from = route.kind === 'uploads' && query.has('mount') ? (query.get('from') ?? undefined) : undefined;
  const mountFrom = from !== undefined && from !== name ? from : undefined;
  const challenge = [repository(['pull', 'push'])];
  if (mountFrom !== undefined) challenge.push({ type: 'repository', name: mountFrom, actions: ['pull'] });
  return { needs: [repository(['push'])], challenge, mountFrom };
}
