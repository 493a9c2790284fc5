import { z } from 'zod';
import { isCidr } from '../edge/networks.ts';
import { oidcSchema } from '../auth/oidc/config.ts';
import { federationSchema } from '../auth/federation/config.ts';
import { anomalySchema } from '../anomaly/config.ts';
import { webhooksSchema } from '../notifications/config.ts';

/**
 * The one configuration schema. Sources, lowest precedence first: built-in defaults, a YAML
 * file (`--config`), `PORTCULLIS_*` environment variables (one per leaf, upper snake case of the
 * dotted path: `storage.delete.enabled` -> `PORTCULLIS_STORAGE_DELETE_ENABLED`), then CLI flags.
 * Objects are strict so a misspelt key is an error naming it, not a silently ignored setting.
 */
export const configSchema = z.strictObject({
  server: z
    .strictObject({
      /** host:port to listen on. Loopback by default. */
      listen: z
        .string()
        .refine((value) => /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(value) && Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'expected HOST:PORT (port 0 to 65535)')
        .default('127.0.0.1:5000'),
      /**
       * Trust X-Forwarded-* from a reverse proxy (client address, scheme): true trusts every hop;
       * a list of addresses/CIDR blocks trusts only proxies connecting from there (the client
       * address is then the right-most untrusted X-Forwarded-For entry).
       */
      trustProxy: z.union([z.boolean(), z.array(z.string().refine(isCidr, 'expected an address or CIDR block')).min(1)]).default(false),
      /** HTTPS (src/registry/edge/tls.ts): PEM certificate chain and key; re-read when they change. */
      tls: z
        .strictObject({
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
          minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
          /** How often the files are checked for a new certificate; 0 never. */
          reloadIntervalSeconds: z.number().int().nonnegative().default(10),
          /** PEM CA(s) of client certificates (mutual TLS for robots bound to a certificate); certificates are requested, never required. */
          clientCaFile: z.string().min(1).optional(),
        })
        .optional(),
      /** Serve plain HTTP on a non-loopback address (e.g. behind a TLS-terminating proxy). Without tls it is refused otherwise. */
      allowPlainHttp: z.boolean().default(false),
      /** Seconds an idle keep-alive connection stays open. */
      keepAliveTimeoutSeconds: z.number().int().positive().default(75),
    })
    .prefault({}),
  /** The network edge (src/registry/edge/, docs/edge.md): brute-force protection, rate limits, IP lists, request limits. */
  edge: z
    .strictObject({
      /** Redis holding login failures and rate-limit buckets for every replica (e.g. redis://127.0.0.1:6379); in memory (this process only) when unset. */
      redisUrl: z.string().regex(/^rediss?:\/\//, 'expected redis://... or rediss://...').optional(),
      /** Prefix of every Redis key (several registries may share one Redis). */
      redisKeyPrefix: z.string().min(1).default('portcullis:edge:'),
      /**
       * Networks (CIDR) never locked out or rate limited: the administrators' networks. Loopback by
       * default, because behind a local reverse proxy without trustProxy every client has that
       * address (and would be locked out together); set [] to protect loopback too.
       */
      trustedNetworks: z.array(z.string().refine(isCidr, 'expected an address or CIDR block')).default(['127.0.0.0/8', '::1']),
      /** Only these networks may connect when not empty (CIDR, IPv4 and IPv6); the client address honours server.trustProxy. */
      allow: z.array(z.string().refine(isCidr, 'expected an address or CIDR block')).default([]),
      /** These networks may not connect (403 DENIED); wins over allow. */
      deny: z.array(z.string().refine(isCidr, 'expected an address or CIDR block')).default([]),
      /** Failed logins per account and per address: free failures, then doubling delays up to a lockout (429 + Retry-After). */
      logins: z
        .strictObject({
          enabled: z.boolean().default(true),
          /** The freeFailures-th failure starts the back-off: baseDelaySeconds, doubling with each further failure up to lockoutSeconds. */
          freeFailures: z.number().int().positive().default(5),
          baseDelaySeconds: z.number().positive().default(1),
          lockoutSeconds: z.number().positive().default(900),
          /** Failures are forgotten this long after the last one. */
          forgetAfterSeconds: z.number().int().positive().default(3600),
        })
        .prefault({}),
      /** Token buckets (429 TOOMANYREQUESTS + Retry-After); 0 requests per second disables one. */
      rateLimits: z
        .strictObject({
          /** Every request from one client address. */
          perAddress: z.strictObject({ requestsPerSecond: z.number().nonnegative().default(200), burst: z.number().int().positive().default(1000) }).prefault({}),
          /** /v2/ requests of one user or robot (after authentication). */
          perIdentity: z.strictObject({ requestsPerSecond: z.number().nonnegative().default(100), burst: z.number().int().positive().default(500) }).prefault({}),
        })
        .prefault({}),
      /** Slow or huge requests: the whole header must arrive within headersTimeoutSeconds, a request within requestTimeoutSeconds (0: none; blob uploads can be long), an idle socket is closed after socketIdleSeconds. */
      headersTimeoutSeconds: z.number().int().positive().max(600).default(30),
      requestTimeoutSeconds: z.number().int().nonnegative().default(3600),
      socketIdleSeconds: z.number().int().nonnegative().default(300),
      /** Largest request header block (bytes). */
      maxHeaderBytes: z.number().int().min(4096).max(1024 * 1024).default(16 * 1024),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** Root of the embedded stores (blobs, uploads, SQLite database). */
      dataDir: z.string().min(1).default('./data'),
      metadata: z
        .strictObject({
          kind: z.enum(['sqlite', 'postgres']).default('sqlite'),
          /** SQLite file; defaults to `<dataDir>/metadata.sqlite`. */
          sqlitePath: z.string().optional(),
          /** PostgreSQL connection string, e.g. postgres://user@127.0.0.1:5432/portcullis. */
          postgresUrl: z.string().optional(),
          postgresPoolSize: z.number().int().positive().default(10),
        })
        .prefault({})
        .refine((m) => m.kind !== 'postgres' || !!m.postgresUrl, { message: 'postgresUrl is required when kind is postgres', path: ['postgresUrl'] }),
      blobs: z
        .strictObject({
          kind: z.enum(['filesystem']).default('filesystem'),
          /** Blob directory; defaults to `<dataDir>`. */
          path: z.string().optional(),
        })
        .prefault({}),
      delete: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Largest manifest accepted (the spec's recommendation is 4 MiB). */
      manifestMaxBytes: z.number().int().positive().max(64 * 1024 * 1024).default(4 * 1024 * 1024),
      /** Largest blob accepted; 0 = unlimited. */
      blobMaxBytes: z.number().int().nonnegative().default(0),
      /** Page size for tag and catalog listings when the client sends no `n`, and the largest `n` honoured. */
      listDefaultPageSize: z.number().int().positive().default(1000),
      listMaxPageSize: z.number().int().positive().default(10000),
    })
    .prefault({})
    .refine((l) => l.listDefaultPageSize <= l.listMaxPageSize, { message: 'must not exceed listMaxPageSize', path: ['listDefaultPageSize'] }),
  uploads: z
    .strictObject({
      /** An upload session with no activity for this long is abandoned and removed. */
      expireAfterSeconds: z.number().int().positive().default(24 * 3600),
    })
    .prefault({}),
  gc: z
    .strictObject({
      /** Run the collector inside the server every N seconds; 0 disables the schedule. */
      intervalSeconds: z.number().int().nonnegative().default(3600),
      /** A newly uploaded blob is safe from collection for this long, so a manifest push can reference it. */
      blobGraceSeconds: z.number().int().nonnegative().default(3600),
      /** Delete untagged manifests (not listed by an index, not a referrer of a live subject) older than this; 0 keeps them. */
      untaggedManifestsAfterSeconds: z.number().int().nonnegative().default(0),
    })
    .prefault({}),
  /** The tamper-evident audit log (docs/audit.md). Files live in `<dataDir>/audit/` unless set. */
  audit: z
    .strictObject({
      /** Record every security-relevant event: pushes, pulls, deletes, tag moves, logins, decisions. */
      enabled: z.boolean().default(true),
      /** SQLite file of the audit log (SQLite metadata only; with PostgreSQL it uses that database); default `<dataDir>/audit/audit.sqlite`. */
      sqlitePath: z.string().optional(),
      /** Ed25519 key signing checkpoints, created at first start (mode 0600, public key beside it as `.pub.pem`); default `<dataDir>/audit/signing-key.pem`. */
      keyFile: z.string().optional(),
      queue: z
        .strictObject({
          /** Records held in memory at most; observations beyond are dropped and counted (an `audit.dropped` record says how many). */
          maxRecords: z.number().int().positive().default(100_000),
          /** Records per transaction at most. */
          batchSize: z.number().int().positive().max(10_000).default(1000),
          /** Observations (pulls, pushes) reach the database within this time; security-critical appends are written at once. */
          flushIntervalMs: z.number().int().positive().max(60_000).default(200),
        })
        .prefault({}),
      pulls: z
        .strictObject({
          /**
           * Identical successful pulls (same actor, authentication, client address, user agent,
           * action, repository, digest and tag) within this window become one record whose
           * details carry `count` and `lastAt`; 0 records every pull separately. A pull-heavy
           * registry (every node of a cluster pulling the same image) otherwise writes one row
           * per request. A crash loses at most this window of pull records.
           */
          coalesceMs: z.number().int().nonnegative().max(60_000).default(1000),
          /** Distinct pulls held open at once; past it, pulls are recorded one by one. */
          maxOpen: z.number().int().positive().max(1_000_000).default(10_000),
        })
        .prefault({}),
      checkpoint: z
        .strictObject({
          /** Sign a checkpoint after this many records... */
          everyRecords: z.number().int().positive().default(10_000),
          /** ...or when the last one is older than this (and records were added). */
          everySeconds: z.number().int().positive().default(60),
        })
        .prefault({}),
      retention: z
        .strictObject({
          enabled: z.boolean().default(true),
          /** Archive records older than this to files; 0 keeps them until the size budget needs room. */
          maxAgeDays: z.number().int().nonnegative().default(0),
          /** Size budget of the audit log in the database (bytes); 0 = none. Past it the oldest records are archived. */
          maxBytes: z.number().int().nonnegative().default(1024 ** 3),
          /** Alert (log, `audit.budget` event) when usage reaches this share of the budget. */
          alertAtPercent: z.number().int().min(1).max(99).default(80),
          intervalSeconds: z.number().int().nonnegative().default(3600),
          /** Archive directory (gzip JSON Lines with their checkpoints); default `<dataDir>/audit/archive`. */
          archiveDir: z.string().optional(),
        })
        .prefault({}),
      api: z
        .strictObject({
          /** Mount GET /api/v1/audit. Off by default: until access control authorises it, anyone reaching the server could read it. */
          enabled: z.boolean().default(false),
          maxPageSize: z.number().int().positive().max(10_000).default(1000),
        })
        .prefault({}),
      forward: z
        .strictObject({
          /** Receivers (syslog RFC 5424 over TCP/TLS, CloudEvents over HTTP); each gets every record at least once. */
          sinks: z
            .array(
              z.discriminatedUnion('kind', [
                z.strictObject({
                  kind: z.literal('syslog'),
                  /** Cursor key; default `syslog:<url>`. */
                  name: z.string().min(1).max(100).optional(),
                  url: z.string().regex(/^(tcp|tls):\/\/[^/]+:\d{1,5}\/?$/, 'expected tcp://HOST:PORT or tls://HOST:PORT'),
                  caFile: z.string().optional(),
                  certFile: z.string().optional(),
                  keyFile: z.string().optional(),
                  serverName: z.string().optional(),
                  /** Syslog facility; 13 is "log audit". */
                  facility: z.number().int().min(0).max(23).default(13),
                  hostname: z.string().optional(),
                  appName: z.string().min(1).max(48).default('portcullis'),
                  /** Private Enterprise Number of the structured-data id (32473: the documentation number). */
                  enterpriseId: z.number().int().positive().default(32473),
                  /** A record counts as delivered after this long on a healthy connection (TCP has no acknowledgements). */
                  settleMs: z.number().int().nonnegative().default(2000),
                  connectTimeoutMs: z.number().int().positive().default(10_000),
                  startAt: z.enum(['now', 'oldest']).default('now'),
                }),
                z.strictObject({
                  kind: z.literal('cloudevents'),
                  name: z.string().min(1).max(100).optional(),
                  url: z.url({ protocol: /^https?$/ }),
                  source: z.string().min(1).default('/portcullis/audit'),
                  /** File with a bearer token (kept out of the configuration). */
                  bearerTokenFile: z.string().optional(),
                  headers: z.record(z.string(), z.string()).default({}),
                  timeoutMs: z.number().int().positive().default(10_000),
                  concurrency: z.number().int().positive().max(64).default(4),
                  startAt: z.enum(['now', 'oldest']).default('now'),
                }),
              ]),
            )
            .default([]),
          batchSize: z.number().int().positive().max(10_000).default(200),
          retryInitialMs: z.number().int().positive().default(500),
          retryMaxMs: z.number().int().positive().default(60_000),
          /** A record a receiver rejects (HTTP 4xx) this many times goes to the dead-letter table. */
          maxAttempts: z.number().int().positive().default(5),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Policy as code (policy/): documents loaded at start, enforced at the push and pull gates. */
  policy: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Policy documents (YAML); each names its project or `global` (the default for every project). */
      files: z.array(z.string().min(1)).default([]),
      /** Promotion between projects (POST /api/v1/promotions, `portcullis promote`). */
      promotion: z
        .strictObject({
          enabled: z.boolean().default(true),
          /** Ed25519 key signing promotion attestations; default `<dataDir>/promotion/signing-key.pem` (created at first start). Replicas share one. */
          keyFile: z.string().min(1).optional(),
          /** More public keys (PEM) whose promotion attestations count: a previous key, another registry's. */
          trustedKeyFiles: z.array(z.string().min(1)).default([]),
          /** Manifests one promotion may copy (image, index children, referrers, cosign tags). */
          maxManifests: z.number().int().min(1).max(100_000).default(1000),
        })
        .prefault({}),
      /** Seconds a replica keeps a project's stored policy in memory: another replica's policy change takes effect here within this time (0: read at every decision). */
      cacheSeconds: z.number().int().nonnegative().max(3600).default(5),
      /** Manifests evaluated per page (one metadata query) by fleet simulation. */
      simulatePageSize: z.number().int().min(1).max(10_000).default(200),
    })
    .prefault({}),
  /** Kubernetes admission webhooks (admission/, docs/policy.md#admission): the policy at enforcement point `admission`. */
  admission: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** `host[:port]` names clients use for this registry: their images are evaluated; others are external. Default: signatures.registryHost, else server.listen. */
      registryHosts: z.array(z.string().min(1)).default([]),
      /** Recorded in deployment records; a request header `X-Portcullis-Cluster` overrides it when `clusterHeader` is true. */
      clusterName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/).default('default'),
      clusterHeader: z.boolean().default(false),
      /** Images from other registries: deny, allow, or verify by pulling their metadata; those matching `allow` (globs over `registry/repository`, e.g. `registry.k8s.io/*`) are allowed unverified. */
      external: z
        .strictObject({
          action: z.enum(['deny', 'allow', 'verify']).default('deny'),
          allow: z.array(z.string().min(1)).default([]),
          /** action `verify` (admission/external.ts): manifest and signatures fetched from the image's registry, verified under `trustPolicyFile`. */
          verify: z
            .strictObject({
              /** `warn`: every problem (also errors) becomes an AdmissionReview warning instead of a denial. */
              mode: z.enum(['enforce', 'warn']).default('enforce'),
              /** Globs over `registry/repository` that may be verified; other external images are denied without a request. */
              registries: z.array(z.string().min(1)).default([]),
              /** External images must be written with a digest. */
              requireDigest: z.boolean().default(false),
              /** The project whose policy (its own, else global) is evaluated for external images, rules that need no scan only; null: none. */
              policyProject: z.string().min(1).nullable().default('global'),
              /** A trust policy document (JSON or YAML, the format of PUT /api/v1/projects/{p}/trust-policy) for external images. */
              trustPolicyFile: z.string().min(1).optional(),
              /** Per registry host: transport and credentials (anonymous when none). */
              hosts: z
                .array(
                  z.strictObject({
                    host: z.string().min(1),
                    /** Plain HTTP instead of HTTPS (a loopback or lab registry only). */
                    plainHttp: z.boolean().default(false),
                    caFile: z.string().min(1).optional(),
                    username: z.string().min(1).optional(),
                    /** File holding the password or token for `username` (never logged). */
                    passwordFile: z.string().min(1).optional(),
                  }),
                )
                .default([]),
              /** Deadline for all requests about one image (keep it below admission.timeoutSeconds). */
              timeoutMs: z.number().int().min(100).max(30_000).default(3000),
              maxManifestBytes: z.number().int().min(1024).max(4 * 1024 * 1024).default(1024 * 1024),
              /** Signature payloads and envelopes read at most. */
              maxBlobBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024),
              /** Signature artifacts read per image. */
              maxArtifacts: z.number().int().min(1).max(256).default(16),
              /** Platform manifests of an index verified one by one when the index itself is not signed. */
              maxPlatforms: z.number().int().min(1).max(64).default(16),
            })
            .prefault({}),
        })
        .prefault({}),
      /** Kinds without a pod spec (only a misconfigured webhook sends them). */
      unknownKinds: z.enum(['allow', 'deny']).default('deny'),
      /** Namespaces evaluated (empty: all) and never evaluated; also the generated namespaceSelector. */
      namespaces: z.strictObject({ include: z.array(z.string().min(1)).default([]), exclude: z.array(z.string().min(1)).default(['kube-system']) }).prefault({}),
      auth: z
        .strictObject({
          /** File holding the bearer token the API server sends (its kubeconfig for this webhook). */
          tokenFile: z.string().min(1).optional(),
          /** Answer unauthenticated calls from loopback (development, a sidecar proxy). */
          allowUnauthenticatedLoopback: z.boolean().default(false),
        })
        .prefault({}),
      /** A dedicated HTTPS listener for the webhooks only, with client certificates (mTLS) when clientCaFile is set. */
      listen: z.string().min(1).optional(),
      tls: z
        .strictObject({
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
          /** CA of the API server's client certificate: required, verified, on the dedicated listener. */
          clientCaFile: z.string().min(1).optional(),
          /** Accepted client certificate subjects (CN or DNS SAN); any certificate from the CA when empty. */
          clientNames: z.array(z.string().min(1)).default([]),
        })
        .optional(),
      /** Image verdicts served from memory this long (signature, scan and policy events invalidate them at once). */
      cacheSeconds: z.number().int().nonnegative().max(3600).default(30),
      cacheEntries: z.number().int().positive().default(50_000),
      /** Written into the generated webhook configurations. */
      failurePolicy: z.enum(['Fail', 'Ignore']).default('Fail'),
      timeoutSeconds: z.number().int().min(1).max(30).default(5),
    })
    .superRefine((a, ctx) => {
      if (a.listen && !(a.tls?.certFile && a.tls.keyFile)) ctx.addIssue({ code: 'custom', path: ['listen'], message: 'admission.listen needs admission.tls.certFile and keyFile (the API server calls webhooks over HTTPS only)' });
      if (a.tls?.certFile && !a.tls.keyFile) ctx.addIssue({ code: 'custom', path: ['tls', 'certFile'], message: 'admission.tls.certFile needs admission.tls.keyFile' });
      if (a.tls?.keyFile && !a.tls.certFile) ctx.addIssue({ code: 'custom', path: ['tls', 'keyFile'], message: 'admission.tls.keyFile needs admission.tls.certFile' });
      const v = a.external.verify;
      if (a.external.action === 'verify' && v.registries.length === 0) ctx.addIssue({ code: 'custom', path: ['external', 'verify', 'registries'], message: 'admission.external.action verify needs admission.external.verify.registries (globs over registry/repository; no request goes to other hosts)' });
      if (a.external.action === 'verify' && !v.trustPolicyFile) ctx.addIssue({ code: 'custom', path: ['external', 'verify', 'trustPolicyFile'], message: 'admission.external.action verify needs admission.external.verify.trustPolicyFile (the keys or identities external images are signed with)' });
      if (a.external.action === 'verify' && v.timeoutMs >= a.timeoutSeconds * 1000) ctx.addIssue({ code: 'custom', path: ['external', 'verify', 'timeoutMs'], message: `admission.external.verify.timeoutMs must be below admission.timeoutSeconds (${a.timeoutSeconds} s): the API server gives up on the webhook then` });
      v.hosts.forEach((h, i) => {
        if (Boolean(h.username) !== Boolean(h.passwordFile)) ctx.addIssue({ code: 'custom', path: ['external', 'verify', 'hosts', i], message: 'username and passwordFile go together' });
      });
      if (a.tls?.clientCaFile && !a.listen) ctx.addIssue({ code: 'custom', path: ['tls', 'clientCaFile'], message: 'admission.tls.clientCaFile needs admission.listen (client certificates are checked on the dedicated listener)' });
      if (a.enabled && !a.auth.tokenFile && !a.tls?.clientCaFile && !a.auth.allowUnauthenticatedLoopback) {
        ctx.addIssue({ code: 'custom', path: ['auth'], message: 'admission needs a caller check: admission.auth.tokenFile, admission.tls.clientCaFile (mTLS on admission.listen), or admission.auth.allowUnauthenticatedLoopback' });
      }
    })
    .prefault({}),
  /** Prometheus metrics (src/registry/metrics/metrics.ts). */
  metrics: z
    .strictObject({
      enabled: z.boolean().default(false),
      path: z.string().regex(/^\/[A-Za-z0-9/_-]*$/).default('/metrics'),
      /** File with the bearer token scrapes must send; without it only loopback clients are answered. */
      bearerTokenFile: z.string().optional(),
    })
    .prefault({}),
  auth: z
    .strictObject({
      /**
       * `token`: Docker token authentication with projects, roles and robot accounts (the default).
       * `none`: no authentication at all, anyone who can connect may push and delete; only
       * accepted with a loopback `server.listen` (tests, benchmarks, local experiments).
       */
      mode: z.enum(['token', 'none']).default('token'),
      /** Service name tokens are issued for and bound to (`aud`); clients send it as `service`. */
      service: z.string().min(1).max(200).default('portcullis'),
      /** Token issuer (`iss`). */
      issuer: z.string().min(1).max(200).default('portcullis'),
      /** Absolute URL of the token endpoint in challenges; default: `/auth/token` on the host and scheme the client used. */
      realm: z.url({ protocol: /^https?$/ }).optional(),
      /** Also accept Basic credentials directly on /v2/ (for simple clients; costs a password check per cache miss). */
      basicAuth: z.boolean().default(false),
      registryTokens: z
        .strictObject({
          /** Lifetime of registry (access) tokens. */
          ttlSeconds: z.number().int().min(60).max(3600).default(300),
          /** Lifetime of refresh tokens (offline_token / access_type=offline). */
          refreshTtlDays: z.number().int().positive().max(365).default(30),
          /** A new signing key is created this often; old keys stay valid until their tokens expired. */
          keyRotationDays: z.number().int().positive().max(3650).default(30),
          /** Tolerated clock difference between replicas for `nbf`/`exp`. */
          clockSkewSeconds: z.number().int().nonnegative().max(300).default(10),
        })
        .prefault({}),
      /** A verified password or secret is remembered this long (in memory, as an HMAC) so that clients sending Basic credentials for every token do not pay argon2 each time; 0 disables. */
      credentialCacheSeconds: z.number().int().nonnegative().max(3600).default(60),
      /** Revocations (robots, tokens, disabled users) take effect on issued registry tokens within this time. */
      revalidateSeconds: z.number().int().positive().max(300).default(10),
      /** Per-project IP lists are re-read this often (changes made on another replica apply within this time; on this one at once). */
      projectNetworksRefreshSeconds: z.number().int().positive().max(300).default(5),
      passwords: z.strictObject({ minLength: z.number().int().min(8).max(128).default(12) }).prefault({}),
      /** Robot accounts must expire; their lifetime is at most this. */
      robots: z.strictObject({ maxLifetimeDays: z.number().int().positive().max(3650).default(365) }).prefault({}),
      /** Personal access tokens must expire; their lifetime is at most this. */
      personalTokens: z.strictObject({ maxLifetimeDays: z.number().int().positive().max(3650).default(365) }).prefault({}),
      /** Create a missing project when a user allowed to create projects asks to push into it. */
      autoCreateProjects: z.boolean().default(false),
      /** OpenID Connect login (auth/oidc/config.ts, docs/auth.md). */
      oidc: oidcSchema.prefault({}),
      /** Workload identity federation: CI jobs and service accounts log in with their own OIDC token (auth/federation/config.ts, docs/auth.md). */
      federation: federationSchema.prefault({}),
    })
    .prefault({}),
  /** Vulnerability scanning (docs/scanning.md): inventories, findings, SBOMs, exemptions. */
  scanner: z
    .strictObject({
      /** Scan every pushed image and keep findings current when vulnerability data changes. */
      enabled: z.boolean().default(true),
      /** SQLite file of the scanner's jobs and results (SQLite metadata only; with PostgreSQL it uses that database); default `<dataDir>/scanner/scanner.sqlite`. */
      sqlitePath: z.string().optional(),
      /** Scans running at the same time in one server process. */
      concurrency: z.number().int().min(1).max(64).default(2),
      /** How often an idle worker looks for jobs (other replicas' pushes, retries that became due). */
      pollIntervalMs: z.number().int().min(50).max(600_000).default(2000),
      /** A job whose worker stops renewing its lease for this long is taken over by another. */
      leaseSeconds: z.number().int().min(5).max(86_400).default(120),
      /** Attempts of a scan that fails for a transient reason (a permanent one, such as a hostile layer, fails at once). */
      maxAttempts: z.number().int().min(1).max(100).default(5),
      retryInitialMs: z.number().int().positive().default(5000),
      retryMaxMs: z.number().int().positive().default(600_000),
      /** Key of the secret fingerprints (HMAC); set it to keep fingerprints unlinkable to other installations. */
      secretsFingerprintKey: z.string().min(16).optional(),
      /** Limits against tar and decompression bombs (see scanner/inventory/limits.ts). */
      limits: z
        .strictObject({
          maxEntriesPerLayer: z.number().int().positive().default(500_000),
          maxEntriesPerImage: z.number().int().positive().default(2_000_000),
          maxLayerBytes: z.number().int().positive().default(32 * 1024 ** 3),
          maxImageBytes: z.number().int().positive().default(128 * 1024 ** 3),
          maxCompressionRatio: z.number().positive().default(200),
        })
        .prefault({}),
      vulnerabilityData: z
        .strictObject({
          /** Findings computed with data older than this are reported as stale (a warning, and a fact for policy). */
          maxAgeHours: z.number().positive().default(48),
          /** How often the server checks whether an import elsewhere (CLI, another replica) replaced the database. */
          reloadIntervalSeconds: z.number().int().nonnegative().default(30),
          /**
           * Imported by the server itself: an OSV artifact in this registry (read from the blob store;
           * imported again whenever the tag moves) or an http(s) URL (fetched conditionally).
           */
          sources: z
            .array(
              z.union([
                z.strictObject({ repository: z.string().min(1), tag: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/).default('latest') }),
                z.strictObject({ url: z.url({ protocol: /^https?$/ }) }),
              ]),
            )
            .default([]),
          /** How often the sources are checked (a moved tag is also noticed at once). */
          refreshIntervalMinutes: z.number().positive().default(60),
        })
        .prefault({}),
      /** Stored inventories re-evaluated per page (one transaction) when the database changes. */
      rematchPageSize: z.number().int().min(1).max(10_000).default(500),
      sbom: z
        .strictObject({
          /** Attach SBOMs to each scanned image as OCI referrers. */
          attach: z.boolean().default(true),
          formats: z.array(z.enum(['cyclonedx', 'spdx'])).min(1).default(['cyclonedx', 'spdx']),
          /** Host:port clients use, for the image purl's `repository_url` in SBOMs. */
          registryHost: z.string().optional(),
        })
        .prefault({}),
      exemptions: z
        .strictObject({
          /** Longest allowed lifetime of an exemption. */
          maxDays: z.number().int().positive().max(3650).default(365),
          /** Reports warn, and the log and an event tell, this long before an exemption expires. */
          warnDays: z.number().int().nonnegative().default(14),
        })
        .prefault({}),
      /** Walk layers in a worker thread: the event loop stays free, and an image needing more memory than `maxMemoryMb` fails alone. */
      isolation: z
        .strictObject({
          thread: z.boolean().default(true),
          maxMemoryMb: z.number().int().min(64).max(65_536).default(2048),
        })
        .prefault({}),
      /** Re-scan (read the layers again) results of an older scanner version at start. */
      rescanOnUpgrade: z.boolean().default(true),
    })
    .prefault({}),
  /** Signatures and attestations (docs/signatures.md): per-project trust policies, verification, "require a valid signature to pull". */
  signatures: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** `host[:port]` clients use for this registry, for Notation trust-policy registry scopes; default `server.listen`. */
      registryHost: z.string().min(1).optional(),
      /** Verify an image when it or a signature for it is pushed (projects with a trust policy); otherwise at first pull or API read. */
      verifyOnPush: z.boolean().default(true),
      /** Verdicts kept in memory. */
      cacheEntries: z.number().int().positive().default(100_000),
      /** How long a verdict or policy is served from memory: another replica's change is seen within this time. */
      cacheSeconds: z.number().int().nonnegative().max(3600).default(30),
      /** A verdict older than this is recomputed (certificates, signatures and CRLs expire). */
      maxVerdictAgeSeconds: z.number().int().positive().default(3600),
      /** Signature artifacts read per image at most. */
      maxArtifactsPerImage: z.number().int().positive().max(1000).default(64),
    })
    .prefault({}),
  /** Per-project webhooks (notifications/, docs/notifications.md): signed CloudEvents, durable retried deliveries. */
  webhooks: webhooksSchema.prefault({}),
  /** Anomaly rules raising alerts (anomaly/, docs/notifications.md#anomaly-rules). */
  anomaly: anomalySchema.prefault({}),
  /** Traceability (docs/traceability.md): provenance graph per digest, images by commit, workloads affected by a vulnerability. */
  trace: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Most images or deployments one query answers (`limit` is capped to it). */
      maxResults: z.number().int().positive().max(100_000).default(1000),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
}).superRefine((config, ctx) => {
  const tls = config.server.tls;
  if (tls?.certFile && !tls.keyFile) ctx.addIssue({ code: 'custom', path: ['server', 'tls', 'certFile'], message: 'server.tls.certFile needs server.tls.keyFile' });
  if (tls?.keyFile && !tls.certFile) ctx.addIssue({ code: 'custom', path: ['server', 'tls', 'keyFile'], message: 'server.tls.keyFile needs server.tls.certFile' });
  if (!tls?.certFile && !config.server.allowPlainHttp && !isLoopbackListen(config.server.listen)) {
    ctx.addIssue({ code: 'custom', path: ['server', 'tls'], message: `plain HTTP on ${config.server.listen} (not loopback): configure server.tls, or set server.allowPlainHttp behind a TLS-terminating proxy` });
  }
  if (config.auth.mode === 'none' && !isLoopbackListen(config.server.listen)) {
    ctx.addIssue({ code: 'custom', path: ['auth', 'mode'], message: `auth.mode none (no authentication) is only allowed on a loopback listen address, not ${config.server.listen}` });
  }
});

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackListen(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
