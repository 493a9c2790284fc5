import { z } from 'zod';

/**
 * The one configuration schema. Sources, lowest precedence first: built-in defaults, a YAML
 * file (`--config`), `PORTCULLIS_*` environment variables (one per leaf, upper snake case of the
 * dotted path: `storage.delete.enabled` -> `PORTCULLIS_STORAGE_DELETE_ENABLED`), then CLI flags.
 * Objects are strict so a misspelt key is an error naming it, not a silently ignored setting.
 */
export const configSchema = z.strictObject({
  server: z
    .strictObject({
      /** host:port to listen on. Loopback by default: until access control lands there is no authentication. */
      listen: z
        .string()
        .refine((value) => /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(value) && Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'expected HOST:PORT (port 0 to 65535)')
        .default('127.0.0.1:5000'),
      /** Trust X-Forwarded-* from a reverse proxy (client address, scheme). */
      trustProxy: z.boolean().default(false),
      /** Seconds an idle keep-alive connection stays open. */
      keepAliveTimeoutSeconds: z.number().int().positive().default(75),
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
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
