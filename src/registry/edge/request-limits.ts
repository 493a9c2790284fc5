/**
 * The request-path part of the edge, run first for every request (a Fastify `onRequest` hook):
 * IP allow/deny lists (403 DENIED) and the per-address rate limit (429 TOOMANYREQUESTS with
 * Retry-After); and the per-identity rate limit applied once access control knows the caller.
 * The client address is `request.ip`, which honours `server.trustProxy` (X-Forwarded-For).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import type { RegistryAccessControl, RegistryRequest, RequestGrant } from '../auth/ports.ts';
import type { NetworkList } from './networks.ts';
import type { BucketSpec, TokenBuckets } from './ports.ts';

export interface AddressFilterOptions {
  /** When not empty, only these networks may connect. */
  allow: NetworkList;
  /** These networks may not (wins over `allow`). */
  deny: NetworkList;
}

/** Whether an address passes the lists. */
export function addressAllowed(lists: AddressFilterOptions, address: string): boolean {
  if (lists.deny.contains(address)) return false;
  return lists.allow.size === 0 || lists.allow.contains(address);
}

export interface RateLimitOptions {
  buckets: TokenBuckets;
  /** Per client address (every request); undefined: no limit. */
  perAddress?: BucketSpec;
  /** Per authenticated identity (user, robot) on /v2/; undefined: no limit. */
  perIdentity?: BucketSpec;
  /** Addresses never rate limited (trusted networks, e.g. the load balancer's health checks). */
  exempt: NetworkList;
  now?: () => number;
}

function tooMany(retryAfterMs: number, what: string): RegistryError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new RegistryError('TOOMANYREQUESTS', `rate limit exceeded for this ${what}: retry in ${seconds} s`, { headers: { 'Retry-After': String(seconds) } });
}

/** Installs the address filter and the per-address rate limit on every route of `app`. */
export function installRequestLimits(app: FastifyInstance, lists: AddressFilterOptions, limits: RateLimitOptions): void {
  const now = limits.now ?? Date.now;
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const address = request.ip;
    if (!addressAllowed(lists, address)) throw new RegistryError('DENIED', 'requests from this address are not allowed');
    if (limits.perAddress && !limits.exempt.contains(address)) {
      const taken = await limits.buckets.take(`address:${address}`, limits.perAddress, now());
      if (!taken.allowed) throw tooMany(taken.retryAfterMs, 'address');
    }
  });
}

/** Wraps access control so that each admitted identity spends a token of its own bucket. */
export function rateLimitedAccess(inner: RegistryAccessControl, limits: RateLimitOptions): RegistryAccessControl {
  const spec = limits.perIdentity;
  if (!spec) return inner;
  const now = limits.now ?? Date.now;
  return {
    async admit(request: FastifyRequest, target: RegistryRequest): Promise<RequestGrant> {
      const grant = await inner.admit(request, target);
      const actor = grant.actor;
      if ((actor.kind === 'user' || actor.kind === 'robot') && actor.name !== undefined && !limits.exempt.contains(request.ip)) {
        const taken = await limits.buckets.take(`identity:${actor.kind}:${actor.name}`, spec, now());
        if (!taken.allowed) throw tooMany(taken.retryAfterMs, 'identity');
      }
      return grant;
    },
  };
}
