import { dirname, join, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { type ApiDescription, type ApiRoute, registerManagementApi } from '../api/management-api.ts';
import { admissionOpenApi } from '../admission/openapi.ts';
import { alertsOpenApi } from '../anomaly/openapi.ts';
import { auditOpenApi } from '../audit/openapi.ts';
import { policyOpenApi, promotionOpenApi } from '../policy/openapi.ts';
import { scannerOpenApi } from '../scanner/openapi.ts';
import { signaturesOpenApi } from '../signatures/openapi.ts';
import { traceOpenApi } from '../trace/openapi.ts';
import { AccessService } from '../auth/access-service.ts';
import { Administration } from '../auth/administration.ts';
import type { LoginGuard, RegistryAccessControl } from '../auth/ports.ts';
import { TokenAccessControl } from '../auth/registry-access.ts';
import { RegistryTokens } from '../auth/registry-tokens.ts';
import { SigningKeys } from '../auth/signing-keys.ts';
import type { AccessStore } from '../auth/store/ports.ts';
import { SqlAccessStore } from '../auth/store/sql-access-store.ts';
import { identifyRequest, requireAction } from '../auth/request-identity.ts';
import { RetagGuard } from '../auth/retag-gate.ts';
import { ProjectNetworkAdministration, ProjectNetworks } from '../auth/networks/project-networks.ts';
import { type ProjectNetworkStore, SqlProjectNetworkStore } from '../auth/networks/store.ts';
import { projectNetworkRoutes } from '../auth/networks/api.ts';
import { registerTokenEndpoint } from '../auth/token-endpoint.ts';
import { OidcService } from '../auth/oidc/service.ts';
import { registerOidcRoutes } from '../auth/oidc/http.ts';
import { oidcApi } from '../auth/oidc/api.ts';
import { SqlOidcStore } from '../auth/oidc/store.ts';
import { createFederation, federationApi, type FederationStore, RobotCertificates, SqlFederationStore } from '../auth/federation/index.ts';
import type { Config } from '../config/schema.ts';
import { edgeServerOptions, openEdge, openEdgeState, tlsServerFactory } from './edge.ts';
import { BlobService } from '../distribution/blobs.ts';
import { type Gates, noGates } from '../distribution/gates.ts';
import { registerDistributionRoutes, registryErrorHandler } from '../distribution/http.ts';
import { ListingService } from '../distribution/listing.ts';
import { ManifestService } from '../distribution/manifests.ts';
import { UploadService } from '../distribution/uploads.ts';
import { EventBus } from '../events/bus.ts';
import { AnomalyDetector, registerAlertRoutes } from '../anomaly/index.ts';
import { createWebhooks, webhookApi, type WebhookApiRoute, WebhookStore } from '../notifications/index.ts';
import { type AuditAuthorizer, registerAuditRoutes } from '../audit/http.ts';
import { Audit } from '../audit/service.ts';
import { SqlAuditStore } from '../audit/store.ts';
import { RegistryMetrics } from '../metrics/metrics.ts';
import { GarbageCollector } from '../gc/collector.ts';
import { CachedPolicyStore, createPolicyEnforcer, MemoryPolicyStore, type PolicyStore, registerPolicyRoutes, SqlPolicyStore } from '../policy/index.ts';
import { destinationSignatureFacts, MemoryPromotionStore, openPromotion, promotionAuthorizer, type PromotionAuthorizer, PromotionService, type PromotionStore, registerPromotionRoutes, SqlPromotionStore } from '../policy/promotion/index.ts';
import { PolicySimulator, registerSimulationRoutes } from '../policy/simulate.ts';
import { type Admission, createAdmission, type DeploymentStore, MemoryDeploymentStore, SqlDeploymentStore } from '../admission/index.ts';
import { accessAuthorizer, createScanner, registerScannerRoutes, type ScanService, ScanStore } from '../scanner/index.ts';
import { FsBlobStore } from '../storage/fs/fs-blob-store.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import type { SqlDriver } from '../storage/sql/driver.ts';
import { SqlMetadataStore } from '../storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../storage/sqlite/sqlite-driver.ts';
import { accessVisibility, deploymentSourceOf, promotionSourceOf, registerTraceRoutes, TraceService, TraceStore, type TraceVisibility } from '../trace/index.ts';
import { MemorySignatureStore, registerSignatureRoutes, type SignatureAuthorizer, signatureAuthorizer, signaturePullGate, SignatureService, signatureSettings, type SignatureStore, SqlSignatureStore } from '../signatures/index.ts';

/** The stores chosen by configuration (the only place that names concrete backends). */
export interface Stores {
  blobs: BlobStore;
  meta: MetadataStore;
  /** Projects, users, robots, tokens, signing keys (same database as `meta`); needed when auth.mode is token. */
  access?: AccessStore;
  /** OIDC logins: linked provider identities, pending authorizations, sessions (same database as `meta`); needed when auth.oidc has providers. */
  oidc?: SqlOidcStore;
  /** Workload identity trust rules and robot certificate bindings (same database as `meta`); only configured rules when absent. */
  federation?: FederationStore;
  /** Trust policies, verdicts (same database as `meta`); in memory when absent. */
  signatures?: SignatureStore;
  /** Policy documents (same database as `meta`); in memory when absent. */
  policies?: PolicyStore;
  /** Promotion records (same database as `meta`); in memory when absent. */
  promotions?: PromotionStore;
  /** Admission deployment records and grace windows (same database as `meta`); in memory when absent. */
  deployments?: DeploymentStore;
  /** The traceability index (same database as `meta`); traceability is off when absent. */
  trace?: TraceStore;
  /** Per-project IP allow/deny lists (same database as `meta`); no per-project lists when absent. */
  projectNetworks?: ProjectNetworkStore;
  close(): Promise<void>;
}

/** The PostgreSQL driver, loaded only by servers configured for PostgreSQL (pg stays out of the embedded default). */
async function postgresDriver(options: { connectionString: string; max: number }): Promise<SqlDriver> {
  const { PostgresDriver } = await import('../storage/postgres/postgres-driver.ts');
  return new PostgresDriver(options);
}

export async function openStores(config: Config): Promise<Stores> {
  const dataDir = resolve(config.storage.dataDir);
  await mkdir(dataDir, { recursive: true });
  let blobs: BlobStore;
  switch (config.storage.blobs.kind) {
    case 'filesystem': {
      const store = new FsBlobStore(resolve(config.storage.blobs.path ?? dataDir));
      await store.init();
      blobs = store;
      break;
    }
  }
  let driver: SqlDriver;
  switch (config.storage.metadata.kind) {
    case 'sqlite':
      driver = new SqliteDriver(resolve(config.storage.metadata.sqlitePath ?? join(dataDir, 'metadata.sqlite')));
      break;
    case 'postgres':
      driver = await postgresDriver({ connectionString: config.storage.metadata.postgresUrl!, max: config.storage.metadata.postgresPoolSize });
      break;
  }
  const meta = new SqlMetadataStore(driver);
  await meta.migrate();
  const access = new SqlAccessStore(driver);
  await access.migrate();
  return { blobs, meta, access, oidc: new SqlOidcStore(driver), federation: new SqlFederationStore(driver), signatures: new SqlSignatureStore(driver), policies: new SqlPolicyStore(driver), promotions: new SqlPromotionStore(driver), deployments: new SqlDeploymentStore(driver), trace: new TraceStore(driver), projectNetworks: new SqlProjectNetworkStore(driver), close: () => meta.close() };
}

/**
 * The audit log's store. SQLite: a database file of its own, so that audit batches never hold the
 * metadata write lock and its size is measured apart; PostgreSQL: the metadata database, through a
 * small pool of its own.
 */
export async function openAuditStore(config: Config): Promise<SqlAuditStore> {
  let driver: SqlDriver;
  if (config.storage.metadata.kind === 'postgres') {
    driver = await postgresDriver({ connectionString: config.storage.metadata.postgresUrl!, max: 4 });
  } else {
    const path = resolve(config.audit.sqlitePath ?? join(config.storage.dataDir, 'audit', 'audit.sqlite'));
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    driver = new SqliteDriver(path);
  }
  const store = new SqlAuditStore(driver);
  await store.migrate();
  return store;
}

/**
 * The scanner's store (jobs, results, exemptions). SQLite: a database file of its own, so that
 * re-evaluation writes never hold the metadata write lock; PostgreSQL: the metadata database,
 * through a small pool of its own.
 */
export async function openScanStore(config: Config): Promise<ScanStore> {
  let driver: SqlDriver;
  if (config.storage.metadata.kind === 'postgres') {
    driver = await postgresDriver({ connectionString: config.storage.metadata.postgresUrl!, max: 4 });
  } else {
    const path = resolve(config.scanner.sqlitePath ?? join(config.storage.dataDir, 'scanner', 'scanner.sqlite'));
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    driver = new SqliteDriver(path);
  }
  const store = new ScanStore(driver);
  await store.migrate();
  return store;
}

/**
 * The webhook store (definitions, deliveries, attempts). SQLite: a database file of its own, so
 * that delivery bookkeeping never holds the metadata write lock; PostgreSQL: the metadata
 * database, through a small pool of its own.
 */
export async function openWebhookStore(config: Config): Promise<WebhookStore> {
  let driver: SqlDriver;
  if (config.storage.metadata.kind === 'postgres') {
    driver = await postgresDriver({ connectionString: config.storage.metadata.postgresUrl!, max: 4 });
  } else {
    const path = resolve(config.webhooks.sqlitePath ?? join(config.storage.dataDir, 'notifications', 'webhooks.sqlite'));
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    driver = new SqliteDriver(path);
  }
  const store = new WebhookStore(driver);
  await store.migrate();
  return store;
}

export interface Registry {
  app: FastifyInstance;
  events: EventBus;
  collector: GarbageCollector;
  stores: Stores;
  /** The audit log (absent when audit.enabled is false); `audit.log.append` for security-critical records. */
  audit: Audit | undefined;
  /** Identity and access (absent when auth.mode is none). */
  access: AccessService | undefined;
  /** Signatures, trust policies and the pull gate (absent when signatures.enabled is false). */
  signatures: SignatureService | undefined;
  /** Vulnerability scanning (absent when scanner.enabled is false). */
  scanner: ScanService | undefined;
  /** Kubernetes admission webhooks and deployment records (absent when admission.enabled is false). */
  admission: Admission | undefined;
  /** Traceability (absent when trace.enabled is false or the stores have no trace index). */
  trace: TraceService | undefined;
  /** Set when this start created the first administrator; `generatedPassword` must be shown once. */
  adminBootstrap: { generatedPassword: string | undefined } | undefined;
  /** Every route registered (method, Fastify URL pattern): what the OpenAPI document is checked against. */
  routes: ReadonlyArray<{ method: string; url: string }>;
  close(): Promise<void>;
}

function originForm(url: string): string {
  if (url.startsWith('/')) return url;
  const match = /^https?:\/\/[^/?#]*(.*)$/i.exec(url);
  if (!match) return url;
  return match[1] === '' ? '/' : match[1]!.startsWith('/') ? match[1]! : `/${match[1]}`;
}

/** Composition root: configuration in, a ready (not yet listening) server out. */
export async function buildRegistry(
  config: Config,
  options: { stores?: Stores; gates?: Gates; /** PORTCULLIS_ADMIN_PASSWORD */ adminPassword?: string; loginGuard?: LoginGuard; /** Who may read GET /api/v1/audit */ auditAuthorize?: AuditAuthorizer } = {},
): Promise<Registry> {
  const stores = options.stores ?? (await openStores(config));
  const app = Fastify({
    logger: config.log.level === 'silent' ? false : { level: config.log.level, redact: ['req.headers.authorization', 'req.headers.cookie'] },
    // Per-request lines would dominate a pull-heavy registry's logs; audit records requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    trustProxy: config.server.trustProxy,
    keepAliveTimeout: config.server.keepAliveTimeoutSeconds * 1000,
    ...edgeServerOptions(config.edge),
    serverFactory: tlsServerFactory(config),
    // Distribution URLs are case-sensitive and may be long (nested names + digests).
    routerOptions: { maxParamLength: 1024, caseSensitive: true, ignoreTrailingSlash: false },
    return503OnClosing: true,
    // RFC 9112 §3.2.2: a server MUST accept the absolute-form; clients following an absolute
    // Location may send it verbatim. Routing only ever sees the origin-form.
    rewriteUrl: (request) => originForm(request.url ?? '/'),
  });
  const registeredRoutes: Array<{ method: string; url: string }> = [];
  app.addHook('onRoute', (route) => void registeredRoutes.push(...[route.method].flat().map((method) => ({ method, url: route.url }))));
  // OpenAPI descriptions of the /api/v1 routes enabled modules serve themselves (management API document)
  const described: ApiDescription[] = [];
  const events = new EventBus({ onHandlerError: (error, event) => app.log.error({ err: error, event: event.type }, 'event handler failed') });
  const audit = config.audit.enabled ? await Audit.start({ store: await openAuditStore(config), events, logger: app.log }, config.audit, config.storage.dataDir) : undefined;
  const metrics = config.metrics.enabled ? new RegistryMetrics({ events, audit }) : undefined;
  metrics?.instrument(app);
  const webhooks = config.webhooks.enabled
    ? await createWebhooks({ store: await openWebhookStore(config), events, logger: app.log, metrics: metrics?.registry, dataDir: config.storage.dataDir }, config.webhooks)
    : undefined;
  // served by the management API (token authentication): project admins manage them
  let webhookRoutes: WebhookApiRoute[] = [];
  // First hook of every request: IP lists and per-address rate limit.
  const edge = openEdge(config.edge, app, options.loginGuard, await openEdgeState(config.edge));
  const gates = options.gates ?? noGates();
  const blobGraceMs = config.gc.blobGraceSeconds * 1000;
  const uploads = new UploadService({ blobs: stores.blobs, meta: stores.meta, events }, { blobMaxBytes: config.limits.blobMaxBytes, blobGraceMs });
  let accessControl: RegistryAccessControl | undefined;
  let access: AccessService | undefined;
  let signatureAuthorize: SignatureAuthorizer | undefined;
  let promotionAuthorize: PromotionAuthorizer | undefined;
  let adminBootstrap: Registry['adminBootstrap'];
  let keys: SigningKeys | undefined;
  let registerAuthRoutes = async () => undefined;
  let scannerAuthorize: Parameters<typeof registerScannerRoutes>[1]['authorize'];
  let auditAuthorize = options.auditAuthorize;
  let traceVisibility: TraceVisibility | undefined;
  let projectNetworks: ProjectNetworks | undefined;
  if (config.auth.mode === 'token') {
    const a = config.auth;
    if (!stores.access) throw new Error('auth.mode token needs an access store');
    const federation = createFederation(a.federation, stores.federation);
    access = new AccessService(
      { store: stores.access, events, guard: edge.loginGuard, federation, certificates: stores.federation ? new RobotCertificates(stores.federation) : undefined },
      {
        passwordPolicy: a.passwords,
        credentialCacheMs: a.credentialCacheSeconds * 1000,
        revalidateMs: a.revalidateSeconds * 1000,
        refreshTokenTtlMs: a.registryTokens.refreshTtlDays * 86_400_000,
        autoCreateProjects: a.autoCreateProjects,
      },
    );
    keys = new SigningKeys(stores.access, { rotationMs: a.registryTokens.keyRotationDays * 86_400_000, retainMs: (a.registryTokens.ttlSeconds + a.registryTokens.clockSkewSeconds) * 1000 });
    await keys.maintain();
    const tokens = new RegistryTokens(keys, { issuer: a.issuer, service: a.service, ttlSeconds: a.registryTokens.ttlSeconds, clockToleranceSeconds: a.registryTokens.clockSkewSeconds });
    const retag = new RetagGuard({ meta: stores.meta, access });
    gates.manifestPush.push(retag.gate);
    accessControl = edge.limitIdentity(new TokenAccessControl({ tokens, access, retag }, { realm: a.realm, basic: a.basicAuth }));
    // Operators see failed logins and access changes in the log (names and reasons, never secrets).
    events.subscribe('auth.failed', (e) => app.log.warn({ username: e.username, method: e.method, reason: e.reason, clientAddress: e.origin?.clientAddress }, 'authentication failed'));
    events.subscribe('access.changed', (e) => app.log.info({ change: e.change, target: e.target, actor: e.origin?.actor }, 'access changed'));
    const bootstrap = await access.bootstrapAdmin(options.adminPassword);
    if (bootstrap.created) adminBootstrap = { generatedPassword: bootstrap.generatedPassword };
    // Per-project IP lists: in memory, re-read periodically (no query on the request path).
    let networkRoutes: ApiRoute[] = [];
    if (stores.projectNetworks) {
      projectNetworks = new ProjectNetworks(stores.projectNetworks, { refreshMs: a.projectNetworksRefreshSeconds * 1000, onError: (error) => app.log.error({ err: error }, 'reading the project IP lists failed; keeping the previous ones') });
      await projectNetworks.load();
      projectNetworks.start();
      projectNetworks.observe(events);
      access.setNetworkPolicy(projectNetworks);
      networkRoutes = projectNetworkRoutes(new ProjectNetworkAdministration({ access, store: stores.projectNetworks, networks: projectNetworks, events }));
    }
    const admin = new Administration({ access, meta: stores.meta, events }, { robotMaxLifetimeDays: a.robots.maxLifetimeDays, tokenMaxLifetimeDays: a.personalTokens.maxLifetimeDays });
    const authDeps = { access, tokens, keys, admin };
    let registerOidc: () => Promise<void> = async () => undefined;
    let oidcRoutes: ReturnType<typeof oidcApi> = [];
    if (a.oidc.providers.length > 0) {
      if (!stores.oidc) throw new Error('auth.oidc needs the OIDC store');
      // Settings changed through /api/v1 on another replica apply within revalidateSeconds here.
      const oidc = await OidcService.create({ users: stores.access, store: stores.oidc, events, settingsRefreshMs: a.revalidateSeconds * 1000 }, a.oidc);
      // OIDC users' groups and admin status are re-read from their provider at authentication.
      access.setExternalDirectory(oidc);
      const users = stores.access;
      registerOidc = () => registerOidcRoutes(app, { oidc, admin, users, tokenMaxLifetimeDays: a.personalTokens.maxLifetimeDays });
      oidcRoutes = oidcApi({ oidc, access, events });
    }
    if (webhooks) webhookRoutes = webhookApi({ service: webhooks.service, access });
    signatureAuthorize = signatureAuthorizer(identifyRequest(authDeps), access);
    promotionAuthorize = promotionAuthorizer(identifyRequest(authDeps), access);
    scannerAuthorize = accessAuthorizer({ access, identify: identifyRequest(authDeps) });
    traceVisibility = accessVisibility({ access, identify: identifyRequest(authDeps) });
    // The audit API is for system administrators (unless the caller decides otherwise).
    auditAuthorize ??= requireAction(identifyRequest(authDeps), access, 'audit.read', { kind: 'system' });
    registerAuthRoutes = async () => {
      await registerTokenEndpoint(app, authDeps);
      await registerOidc();
      await registerManagementApi(app, { ...authDeps, extraRoutes: [...federationApi({ access: access!, store: stores.federation, events, federation }, { service: a.service, tokenTtlSeconds: a.registryTokens.ttlSeconds }), ...webhookRoutes, ...oidcRoutes, ...networkRoutes], describedRoutes: described });
    };
  }
  const services = {
    access: accessControl,
    uploads,
    blobs: new BlobService({ blobs: stores.blobs, meta: stores.meta, events }, { deleteEnabled: config.storage.delete.enabled, blobGraceMs }),
    manifests: new ManifestService({ meta: stores.meta, events, gates }, { maxBytes: config.limits.manifestMaxBytes, deleteEnabled: config.storage.delete.enabled }),
    listing: new ListingService({ meta: stores.meta }, { defaultPageSize: config.limits.listDefaultPageSize, maxPageSize: config.limits.listMaxPageSize }),
  };
  const collector = new GarbageCollector(
    { blobs: stores.blobs, meta: stores.meta, uploads, events },
    { untaggedManifestsAfterMs: config.gc.untaggedManifestsAfterSeconds * 1000, uploadExpiryMs: config.uploads.expireAfterSeconds * 1000 },
  );

  app.setErrorHandler(registryErrorHandler);
  app.setNotFoundHandler((request, reply) => registryErrorHandler(new RegistryError('NOT_FOUND', `no endpoint at ${request.method} ${request.url.slice(0, 200)}`), request, reply));
  await registerDistributionRoutes(app, services);
  if (audit && config.audit.api.enabled) {
    await registerAuditRoutes(app, audit, { authorize: auditAuthorize, maxPageSize: config.audit.api.maxPageSize });
    described.push(...auditOpenApi(config.audit.api.maxPageSize));
  }
  if (metrics) await metrics.register(app, config.metrics);
  await registerAuthRoutes();
  const signatures = config.signatures.enabled
    ? new SignatureService({ meta: stores.meta, blobs: stores.blobs, store: stores.signatures ?? new MemorySignatureStore(), events, logger: app.log }, signatureSettings(config))
    : undefined;
  if (signatures) {
    signatures.subscribe();
    gates.manifestPull.push(signaturePullGate({ service: signatures, events, logger: app.log }));
    await registerSignatureRoutes(app, { service: signatures, meta: stores.meta, authorize: signatureAuthorize });
    described.push(...signaturesOpenApi);
  }
  const anomaly = config.anomaly.enabled
    ? new AnomalyDetector(
        {
          events,
          logger: app.log,
          metrics: metrics?.registry,
          requiresSignature: signatures ? async (project) => (await signatures.policy(project)).record?.requireSignatureToPull ?? false : undefined,
          // counts shared by every replica when the edge shares its state
          state: config.edge.redisUrl ? new (await import('../anomaly/redis-state.ts')).RedisAnomalyState(config.edge.redisUrl, `${config.edge.redisKeyPrefix}anomaly:`) : undefined,
        },
        config.anomaly,
      )
    : undefined;
  if (anomaly) {
    anomaly.start();
    // like the audit API: never open to whoever reaches the server
    if (auditAuthorize) {
      await registerAlertRoutes(app, { detector: anomaly, authorize: auditAuthorize });
      described.push(...alertsOpenApi);
    }
  }
  const scanStore = config.scanner.enabled ? await openScanStore(config) : undefined;
  const scanner = scanStore
    ? await createScanner({ store: scanStore, dataDir: config.storage.dataDir, meta: stores.meta, blobs: stores.blobs, events, uploads, manifests: services.manifests, logger: app.log }, config.scanner)
    : undefined;
  if (scanner) {
    await registerScannerRoutes(app, { scanner, exemptions: scanner.exemptions, meta: stores.meta, events, authorize: scannerAuthorize });
    described.push(...scannerOpenApi);
    await scanner.start();
  }
  const trace =
    config.trace.enabled && stores.trace
      ? new TraceService({
          store: stores.trace,
          meta: stores.meta,
          blobs: stores.blobs,
          events,
          signatures,
          scans: scanner,
          deployments: stores.deployments && deploymentSourceOf(stores.deployments),
          promotions: stores.promotions && promotionSourceOf(stores.promotions),
          logger: app.log,
        }, { maxResults: config.trace.maxResults })
      : undefined;
  if (trace) {
    trace.subscribe();
    await registerTraceRoutes(app, { trace, visibility: traceVisibility });
    described.push(...traceOpenApi);
    const stopBackfill = new AbortController();
    const backfill = trace
      .backfill({ signal: stopBackfill.signal })
      .then((recorded) => recorded > 0 && app.log.info({ recorded }, 'trace: recorded stored images the index had not seen'))
      .catch((err: unknown) => app.log.error({ err }, 'trace: backfill failed'));
    app.addHook('onClose', async () => {
      stopBackfill.abort();
      await backfill;
    });
  }
  let admission: Admission | undefined;
  if (config.policy.enabled) {
    const policyStore = new CachedPolicyStore(stores.policies ?? new MemoryPolicyStore(), config.policy.cacheSeconds);
    const promotion = config.policy.promotion.enabled ? await openPromotion({ meta: stores.meta, blobs: stores.blobs }, config) : undefined;
    const policy = await createPolicyEnforcer({ meta: stores.meta, blobs: stores.blobs, events, scans: scanner, signatures, promotions: promotion?.facts }, policyStore, config.policy);
    await registerPolicyRoutes(app, { store: policyStore, authorize: signatureAuthorize, enforcer: policy });
    described.push(...policyOpenApi);
    policy.register(app);
    gates.manifestPush.push(policy.pushGate);
    gates.manifestPull.push(policy.pullGate);
    if (promotion) {
      const store = stores.promotions ?? new MemoryPromotionStore();
      const signatureFacts = signatures ? destinationSignatureFacts({ service: signatures, meta: stores.meta, blobs: stores.blobs }, signatureSettings(config)) : undefined;
      const service = new PromotionService(
        { meta: stores.meta, blobs: stores.blobs, events, policy, store, key: promotion.key, signatureFacts },
        { registryName: config.auth.mode === 'token' ? config.auth.service : config.server.listen, blobGraceMs, maxManifests: config.policy.promotion.maxManifests },
      );
      await registerPromotionRoutes(app, { service, store, key: promotion.key, authorize: promotionAuthorize });
      described.push(...promotionOpenApi);
    }
    // recorded deployments (admission) let simulation count the running workloads a policy would stop
    const simulator = new PolicySimulator({ meta: stores.meta, policy, deployments: stores.deployments }, { pageSize: config.policy.simulatePageSize });
    const authorizeProject = promotionAuthorize;
    await registerSimulationRoutes(app, { simulator, authorize: authorizeProject ? async (request, project) => void (await authorizeProject(request, { action: 'project.read', project })) : undefined });
    if (config.admission.enabled) {
      admission = await createAdmission(app, { policy, meta: stores.meta, deployments: stores.deployments ?? new MemoryDeploymentStore(), events, authorize: signatureAuthorize, logger: app.log }, config);
      described.push(...admissionOpenApi);
      const started = admission;
      app.addHook('onReady', () => started.start());
    }
  }
  if (config.admission.enabled && !admission) throw new Error('admission.enabled needs policy.enabled (admission evaluates the policy)');

  let timer: NodeJS.Timeout | undefined;
  if (config.gc.intervalSeconds > 0) {
    let running = false;
    timer = setInterval(() => {
      if (running) return;
      running = true;
      collector
        .collect()
        .then((report) => app.log.info({ gc: report }, 'garbage collection finished'))
        .catch((error) => app.log.error({ err: error }, 'garbage collection failed'))
        .finally(() => (running = false));
    }, config.gc.intervalSeconds * 1000);
    timer.unref();
  }
  // Key rotation and pruning, and refresh-token housekeeping.
  const authTimer = keys
    ? setInterval(() => {
        keys.maintain().catch((error) => app.log.error({ err: error }, 'signing-key maintenance failed'));
        stores.access?.deleteExpiredRefreshTokens().catch((error) => app.log.error({ err: error }, 'refresh-token cleanup failed'));
        stores.oidc?.deleteExpired().catch((error) => app.log.error({ err: error }, 'OIDC login cleanup failed'));
      }, 3_600_000)
    : undefined;
  authTimer?.unref();

  return {
    app,
    events,
    collector,
    stores,
    audit,
    access,
    scanner,
    signatures,
    admission,
    trace,
    adminBootstrap,
    routes: registeredRoutes,
    async close() {
      if (timer) clearInterval(timer);
      if (authTimer) clearInterval(authTimer);
      projectNetworks?.close();
      await anomaly?.stop();
      await scanner?.stop();
      await admission?.close();
      await app.close();
      await webhooks?.close();
      await signatures?.idle();
      await trace?.idle();
      await scanStore?.close();
      await audit?.close();
      await stores.close();
      await edge.close();
    },
  };
}
