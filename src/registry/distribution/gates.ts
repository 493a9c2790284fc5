import type { ParsedManifest } from '../../oci/manifest.ts';
import type { RequestOrigin } from '../events/bus.ts';
import type { ManifestRecord } from '../storage/ports.ts';

/**
 * Gates are hooks the core awaits before committing or serving; optional modules (policy,
 * signatures, quotas) add them from `app/`. A gate denies by throwing a RegistryError (usually
 * DENIED); any other failure is turned into a denial by the core (deny on error).
 */
export interface ManifestPushGate {
  (request: { repository: string; reference: string; tag: string | undefined; digest: string; manifest: ParsedManifest; content: Buffer; origin: RequestOrigin }): Promise<void>;
}

export interface PullGate {
  /** `record`: the manifest being served, as the core read it (a gate need not read it again). */
  (request: { repository: string; digest: string; tag: string | undefined; mediaType: string; record: ManifestRecord; origin: RequestOrigin }): Promise<void>;
}

export interface Gates {
  manifestPush: ManifestPushGate[];
  manifestPull: PullGate[];
}

export function noGates(): Gates {
  return { manifestPush: [], manifestPull: [] };
}
