/** The `webhooks` section of the configuration (docs/notifications.md). */
import { z } from 'zod';
import { isCidr } from '../edge/networks.ts';

export const webhooksSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** SQLite: the webhook database file (default `<dataDir>/notifications/webhooks.sqlite`); PostgreSQL uses the metadata database. */
  sqlitePath: z.string().min(1).optional(),
  /** AES-256 key (32 random bytes, base64) encrypting webhook secrets at rest; default `<dataDir>/notifications/secret.key`, created at first start. Replicas sharing PostgreSQL need the same file. */
  secretKeyFile: z.string().min(1).optional(),
  /**
   * Targets resolving to loopback, link-local, private, shared or multicast addresses are refused
   * (SSRF) unless inside one of these networks (CIDR).
   */
  allowedNetworks: z.array(z.string().refine(isCidr, 'expected an address or CIDR block')).default([]),
  /** Allow plain http:// targets (HMAC still signs them; payloads travel in clear). */
  allowHttp: z.boolean().default(true),
  /** Deliveries in flight at once (all webhooks of this process). */
  concurrency: z.number().int().positive().max(256).default(8),
  /** Per request: connect + answer. */
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
  /** Attempts per delivery before it is marked failed (redeliver through the API). */
  maxAttempts: z.number().int().positive().max(100).default(8),
  /** Back-off before attempt n+1: min(retryMaxMs, retryInitialMs x 2^(n-1)), with jitter (50-100%). */
  retryInitialMs: z.number().int().positive().default(2000),
  retryMaxMs: z.number().int().positive().default(600_000),
  /** How often the delivery table is polled for due retries (new deliveries start at once). */
  pollIntervalMs: z.number().int().positive().default(1000),
  /** Delivered and failed deliveries older than this are deleted. */
  retentionDays: z.number().int().positive().default(30),
  /** The CloudEvents `source` of every payload. */
  source: z.string().min(1).default('/portcullis'),
  /** Webhooks per project at most. */
  maxPerProject: z.number().int().positive().max(1000).default(20),
}).refine((w) => w.retryInitialMs <= w.retryMaxMs, { path: ['retryInitialMs'], message: 'webhooks.retryInitialMs must not exceed webhooks.retryMaxMs' });

export type WebhookSettings = z.infer<typeof webhooksSchema>;
