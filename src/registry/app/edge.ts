/**
 * Composition of the network edge from `config.edge`: the state backend (Redis when configured,
 * memory otherwise), the brute-force guard, the IP lists and rate limits, and the HTTP server
 * limits against slow or huge requests.
 */
import type { FastifyInstance } from 'fastify';
import type { LoginGuard, RegistryAccessControl } from '../auth/ports.ts';
import type { Config } from '../config/schema.ts';
import { BruteForceGuard } from '../edge/login-guard.ts';
import { memoryEdgeState } from '../edge/memory-state.ts';
import { NetworkList } from '../edge/networks.ts';
import type { BucketSpec, EdgeState } from '../edge/ports.ts';
import { installRequestLimits, rateLimitedAccess, type RateLimitOptions } from '../edge/request-limits.ts';
import { createTlsServer } from '../edge/tls.ts';
import type { Server } from 'node:http';

type EdgeConfig = Config['edge'];

/** Options of Node's HTTP server (through Fastify) against slowloris and header floods. */
export function edgeServerOptions(config: EdgeConfig): { requestTimeout: number; connectionTimeout: number; http: { headersTimeout: number; requestTimeout: number; maxHeaderSize: number; connectionsCheckingInterval: number } } {
  const requestTimeout = config.requestTimeoutSeconds * 1000;
  // Node requires headersTimeout <= requestTimeout when the latter is set.
  const headersTimeout = requestTimeout > 0 ? Math.min(config.headersTimeoutSeconds * 1000, requestTimeout) : config.headersTimeoutSeconds * 1000;
  // Node enforces both timeouts only when it checks its connections (every 30 s by default).
  const connectionsCheckingInterval = Math.min(1000, headersTimeout);
  return { requestTimeout, connectionTimeout: config.socketIdleSeconds * 1000, http: { headersTimeout, requestTimeout, maxHeaderSize: config.maxHeaderBytes, connectionsCheckingInterval } };
}

/**
 * The HTTPS server when `server.tls` is set (for Fastify's `serverFactory`), else undefined (plain HTTP).
 * Fastify types its raw server as http.Server; an https.Server serves the same request events.
 */
export function tlsServerFactory(config: Config): ((handler: (request: never, response: never) => void) => Server) | undefined {
  const tls = config.server.tls;
  if (!tls?.certFile || !tls.keyFile) return undefined;
  const { certFile, keyFile } = tls;
  const options = edgeServerOptions(config.edge);
  return (handler) =>
    createTlsServer(
      { certFile, keyFile, minVersion: tls.minVersion, reloadIntervalMs: tls.reloadIntervalSeconds * 1000, clientCaFile: tls.clientCaFile },
      { ...options.http, keepAliveTimeout: config.server.keepAliveTimeoutSeconds * 1000, connectionTimeout: options.connectionTimeout },
      handler as never,
      (error) => (error ? console.error(`portcullis: TLS certificate reload failed, keeping the previous one: ${(error as Error).message}`) : console.log('portcullis: TLS certificate reloaded')),
    ) as unknown as Server;
}

export interface Edge {
  loginGuard: LoginGuard;
  /** Applies the per-identity rate limit to /v2/ access control. */
  limitIdentity(access: RegistryAccessControl): RegistryAccessControl;
  close(): Promise<void>;
}

function bucket(limit: { requestsPerSecond: number; burst: number }): BucketSpec | undefined {
  return limit.requestsPerSecond > 0 ? { capacity: limit.burst, refillPerSecond: limit.requestsPerSecond } : undefined;
}

/** The edge's state: in Redis when configured (ioredis is loaded only then), else in this process. */
export async function openEdgeState(config: EdgeConfig): Promise<EdgeState> {
  if (!config.redisUrl) return memoryEdgeState();
  const { RedisEdgeState } = await import('../edge/redis-state.ts');
  return new RedisEdgeState(config.redisUrl, config.redisKeyPrefix);
}

/** Builds the edge and installs its request hook on `app` (before any route is registered). */
export function openEdge(config: EdgeConfig, app: FastifyInstance, loginGuard: LoginGuard | undefined, edgeState: EdgeState): Edge {
  const trusted = new NetworkList(config.trustedNetworks);
  const limits: RateLimitOptions = { buckets: edgeState.buckets, perAddress: bucket(config.rateLimits.perAddress), perIdentity: bucket(config.rateLimits.perIdentity), exempt: trusted };
  installRequestLimits(app, { allow: new NetworkList(config.allow), deny: new NetworkList(config.deny) }, limits);
  const guard =
    loginGuard ??
    (config.logins.enabled
      ? new BruteForceGuard(edgeState.failures, {
          freeFailures: config.logins.freeFailures,
          baseDelayMs: config.logins.baseDelaySeconds * 1000,
          maxDelayMs: config.logins.lockoutSeconds * 1000,
          forgetAfterMs: config.logins.forgetAfterSeconds * 1000,
          trusted,
          onError: (error) => app.log.error({ err: error }, 'login guard could not record a login'),
        })
      : undefined);
  return {
    loginGuard: guard ?? { check: async () => undefined, record: () => undefined },
    limitIdentity: (access) => rateLimitedAccess(access, limits),
    close: () => edgeState.close(),
  };
}
