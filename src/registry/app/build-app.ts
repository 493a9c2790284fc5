import { join, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import type { Config } from '../config/schema.ts';
import { BlobService } from '../distribution/blobs.ts';
import { type Gates, noGates } from '../distribution/gates.ts';
import { registerDistributionRoutes, registryErrorHandler } from '../distribution/http.ts';
import { ListingService } from '../distribution/listing.ts';
import { ManifestService } from '../distribution/manifests.ts';
import { UploadService } from '../distribution/uploads.ts';
import { EventBus } from '../events/bus.ts';
import { GarbageCollector } from '../gc/collector.ts';
import { FsBlobStore } from '../storage/fs/fs-blob-store.ts';
import { PostgresDriver } from '../storage/postgres/postgres-driver.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import type { SqlDriver } from '../storage/sql/driver.ts';
import { SqlMetadataStore } from '../storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../storage/sqlite/sqlite-driver.ts';

/** The stores chosen by configuration (the only place that names concrete backends). */
export interface Stores {
  blobs: BlobStore;
  meta: MetadataStore;
  close(): Promise<void>;
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
      driver = new PostgresDriver({ connectionString: config.storage.metadata.postgresUrl!, max: config.storage.metadata.postgresPoolSize });
      break;
  }
  const meta = new SqlMetadataStore(driver);
  await meta.migrate();
  return { blobs, meta, close: () => meta.close() };
}

export interface Registry {
  app: FastifyInstance;
  events: EventBus;
  collector: GarbageCollector;
  stores: Stores;
  close(): Promise<void>;
}

function originForm(url: string): string {
  if (url.startsWith('/')) return url;
  const match = /^https?:\/\/[^/?#]*(.*)$/i.exec(url);
  if (!match) return url;
  return match[1] === '' ? '/' : match[1]!.startsWith('/') ? match[1]! : `/${match[1]}`;
}

/** Composition root: configuration in, a ready (not yet listening) server out. */
export async function buildRegistry(config: Config, options: { stores?: Stores; gates?: Gates } = {}): Promise<Registry> {
  const stores = options.stores ?? (await openStores(config));
  const app = Fastify({
    logger: config.log.level === 'silent' ? false : { level: config.log.level, redact: ['req.headers.authorization', 'req.headers.cookie'] },
    // Per-request lines would dominate a pull-heavy registry's logs; audit records requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    trustProxy: config.server.trustProxy,
    keepAliveTimeout: config.server.keepAliveTimeoutSeconds * 1000,
    // Distribution URLs are case-sensitive and may be long (nested names + digests).
    routerOptions: { maxParamLength: 1024, caseSensitive: true, ignoreTrailingSlash: false },
    return503OnClosing: true,
    // RFC 9112 §3.2.2: a server MUST accept the absolute-form; clients following an absolute
    // Location may send it verbatim. Routing only ever sees the origin-form.
    rewriteUrl: (request) => originForm(request.url ?? '/'),
  });
  const events = new EventBus({ onHandlerError: (error, event) => app.log.error({ err: error, event: event.type }, 'event handler failed') });
  const gates = options.gates ?? noGates();
  const blobGraceMs = config.gc.blobGraceSeconds * 1000;
  const uploads = new UploadService({ blobs: stores.blobs, meta: stores.meta, events }, { blobMaxBytes: config.limits.blobMaxBytes, blobGraceMs });
  const services = {
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

  return {
    app,
    events,
    collector,
    stores,
    async close() {
      if (timer) clearInterval(timer);
      await app.close();
      await stores.close();
    },
  };
}
