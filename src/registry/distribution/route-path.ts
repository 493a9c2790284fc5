import { RegistryError } from '../../oci/errors.ts';
import { assertRepositoryName } from '../../oci/reference.ts';

/** An OCI distribution endpoint recognised from a request path. */
export type DistributionRoute =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

// Matched on the raw (undecoded) path: the name grammar has no '%', so an encoded traversal
// such as %2e%2e can never become a valid name.
const patterns: Array<[RegExp, (m: RegExpExecArray) => DistributionRoute]> = [
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/**
 * Maps a path below `/v2/` to an endpoint, validating the repository name.
 * @throws RegistryError NAME_INVALID for a bad name, NOT_FOUND for no endpoint
 */
export function matchRoute(pathAfterV2: string): DistributionRoute {
  if (pathAfterV2 === '') return { kind: 'base' };
  if (pathAfterV2 === '_catalog') return { kind: 'catalog' };
  for (const [pattern, build] of patterns) {
    const match = pattern.exec(pathAfterV2);
    if (!match) continue;
    const route = build(match);
    if ('name' in route) assertRepositoryName(route.name);
    return route;
  }
  throw new RegistryError('NOT_FOUND', `no registry endpoint at /v2/${pathAfterV2.slice(0, 200)}`);
}

/** The methods each endpoint answers (for 405 and `Allow`). */
export const allowedMethods: Record<DistributionRoute['kind'], string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET'],
  uploads: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  tags: ['GET'],
  referrers: ['GET'],
};
