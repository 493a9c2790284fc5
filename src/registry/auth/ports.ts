/**
 * What the protocol core and the network edge need from access control, and what access
 * control needs from the edge. The distribution core imports only this file of the module.
 */
import type { FastifyRequest } from 'fastify';
import type { RequestOrigin } from '../events/bus.ts';

/** A request to `/v2/...` as the core has classified it. */
export interface RegistryRequest {
  /** e.g. `{ kind: 'manifest', name: 'team-a/app', reference: 'v1' }` (see distribution/route-path.ts). */
  route: { kind: string; name?: string };
  method: string;
  /**
   * The query; access control may remove `mount`/`from` when the caller may not read the source
   * repository, turning a cross-repository mount into an ordinary upload (what distribution does).
   */
  query: URLSearchParams;
}

/** The outcome for an admitted request. */
export interface RequestGrant {
  actor: RequestOrigin['actor'];
  /** Whether the caller may see a repository in `/v2/_catalog`. */
  canList(repository: string): Promise<boolean>;
}

/**
 * Decides whether a `/v2/` request may proceed. Throws a RegistryError: UNAUTHORIZED (401, with
 * the Bearer challenge in its headers) when credentials are missing, invalid or lack a scope a
 * new token could provide; DENIED (403) when the caller is known and not allowed.
 */
export interface RegistryAccessControl {
  admit(request: FastifyRequest, target: RegistryRequest): Promise<RequestGrant>;
}

/** One login attempt (password, robot secret, access token or refresh token). */
export interface LoginAttempt {
  username: string;
  clientAddress: string;
}

/**
 * Brute-force protection hook (implemented at the edge: back-off and lockout per account and
 * address). `check` runs before a credential is verified and refuses by throwing a RegistryError
 * (TOOMANYREQUESTS with Retry-After); `record` reports the outcome.
 */
export interface LoginGuard {
  check(attempt: LoginAttempt): Promise<void>;
  record(attempt: LoginAttempt, success: boolean): void;
}

export const noLoginGuard: LoginGuard = { check: async () => undefined, record: () => undefined };
