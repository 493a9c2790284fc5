/**
 * The `anomaly` section of the configuration (docs/notifications.md#anomaly-rules): one block
 * per rule, each with `enabled` and its thresholds.
 */
import { z } from 'zod';

const seconds = z.number().int().positive();

export const anomalySchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Alerts kept in memory for GET /api/v1/alerts (every alert is also an audit record). */
  recentAlerts: z.number().int().positive().max(100_000).default(1000),
  /** The same rule is not raised again for the same subject within this time. */
  cooldownSeconds: seconds.default(3600),
  /** Identities, networks and repositories remembered per rule at most (least recently seen forgotten first). */
  maxTrackedIdentities: z.number().int().positive().default(100_000),
  /** Failed logins per account and per client address within a window. */
  failedLogins: z
    .strictObject({
      enabled: z.boolean().default(true),
      perAccount: z.number().int().positive().default(10),
      perAddress: z.number().int().positive().default(20),
      windowSeconds: seconds.default(600),
    })
    .prefault({}),
  /** A credential used from a network (IPv4 /24, IPv6 /64 by default) it was never used from. */
  newNetwork: z
    .strictObject({
      enabled: z.boolean().default(true),
      ipv4PrefixLength: z.number().int().min(8).max(32).default(24),
      ipv6PrefixLength: z.number().int().min(16).max(128).default(64),
      /** Networks remembered per identity (oldest forgotten first). */
      maxNetworksPerIdentity: z.number().int().positive().max(1000).default(32),
    })
    .prefault({}),
  /** Many manifest or tag deletions by one identity within a window. */
  massDeletion: z
    .strictObject({
      enabled: z.boolean().default(true),
      threshold: z.number().int().positive().default(25),
      windowSeconds: seconds.default(600),
    })
    .prefault({}),
  /** Manifest pulls in the current hour far above an identity's baseline (EWMA of its hourly pulls). */
  pullVolume: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Alert when this hour's pulls reach multiplier x baseline ... */
      multiplier: z.number().min(1).default(10),
      /** ... and at least this many. */
      minPulls: z.number().int().positive().default(200),
      /** EWMA smoothing factor per hour (higher: the baseline follows recent hours faster). */
      alpha: z.number().gt(0).max(1).default(0.2),
      /** Hours an identity must have been seen before its baseline is trusted. */
      learningHours: z.number().int().nonnegative().default(24),
    })
    .prefault({}),
  /** A robot account touching a repository outside the set it used during its learning period. */
  robotScope: z
    .strictObject({
      enabled: z.boolean().default(true),
      learningDays: z.number().nonnegative().default(7),
      maxRepositoriesPerRobot: z.number().int().positive().default(1000),
    })
    .prefault({}),
  /** An image pushed into a project whose trust policy requires signatures, still not verified after a grace period. */
  unsignedPush: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Time allowed to push the signature after the image (cosign signs after the push). */
      graceSeconds: seconds.default(300),
    })
    .prefault({}),
  /** A tag that looks like a released version (semver) moved to another manifest. */
  releasedTagMoved: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Regular expression a tag must match to count as released. */
      pattern: z
        .string()
        .min(1)
        .refine((p) => {
          try {
            new RegExp(p);
            return true;
          } catch {
            return false;
          }
        }, 'expected a regular expression')
        .default('^v?\\d+\\.\\d+\\.\\d+(?:[-+][0-9A-Za-z.+-]*)?$'),
    })
    .prefault({}),
});

export type AnomalySettings = z.infer<typeof anomalySchema>;
