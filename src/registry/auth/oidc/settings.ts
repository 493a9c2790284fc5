/**
 * OIDC provider settings an administrator may change through /api/v1 (`oidc_provider_settings`,
 * access-track migration 5), layered over the configuration file: per provider and per field,
 * a value set through the API wins; a field never set (or reset) keeps the file's value, which
 * is therefore the default. Only the authorisation settings can be changed this way: the group
 * -> project role mappings, the admin groups and the onboarding switch. The issuer, client id
 * and client secret stay configuration-only (a secret is never written or returned by the API).
 *
 * A change made through this process applies at once (the next authentication); other replicas
 * re-read the table when it is older than `refreshMs` (auth.revalidateSeconds), at the next
 * authentication after that.
 */
import type { OidcProviderConfig } from './config.ts';
import type { OidcSettingsOverrides, OidcSettingsRecord, SqlOidcStore } from './store.ts';

export const overridableFields = ['groupMappings', 'adminGroups', 'autoOnboard'] as const;

/** The file's provider configuration with the API's values over it. */
export function effectiveProvider(file: OidcProviderConfig, overrides: OidcSettingsOverrides | undefined): OidcProviderConfig {
  const effective = { ...file };
  if (overrides?.groupMappings !== undefined) effective.groupMappings = overrides.groupMappings;
  if (overrides?.adminGroups !== undefined) effective.adminGroups = overrides.adminGroups;
  if (overrides?.autoOnboard !== undefined) effective.autoOnboard = overrides.autoOnboard;
  return effective;
}

/** Why a combination cannot be used (the same rule as the configuration schema), or undefined. */
export function settingsProblem(effective: OidcProviderConfig): string | undefined {
  if (effective.requireMappedGroup && effective.groupMappings.length === 0 && effective.adminGroups.length === 0) {
    return `provider ${effective.name} has requireMappedGroup (configuration): without groupMappings or adminGroups it would refuse everyone`;
  }
  return undefined;
}

export class OidcSettings {
  readonly #store: SqlOidcStore;
  readonly #refreshMs: number;
  readonly #now: () => number;
  readonly #apply: (records: ReadonlyMap<string, OidcSettingsRecord>) => void;
  #records = new Map<string, OidcSettingsRecord>();
  #loadedAt = Number.NEGATIVE_INFINITY;
  #loading: Promise<void> | undefined;
  /** Bumped by every local change: a read that started before it is discarded. */
  #generation = 0;

  /** `apply` receives every provider's overrides after each read or change. */
  constructor(store: SqlOidcStore, options: { refreshMs: number; now: () => number; apply: (records: ReadonlyMap<string, OidcSettingsRecord>) => void }) {
    this.#store = store;
    this.#refreshMs = options.refreshMs;
    this.#now = options.now;
    this.#apply = options.apply;
  }

  get(provider: string): OidcSettingsRecord | undefined {
    return this.#records.get(provider);
  }

  /** Reads the table (at start: a failure fails the start). */
  async load(): Promise<void> {
    const generation = this.#generation;
    const records = await this.#store.listSettings();
    this.#loadedAt = this.#now();
    if (generation !== this.#generation) return;
    this.#records = new Map(records.map((record) => [record.provider, record]));
    this.#apply(this.#records);
  }

  /**
   * Re-reads the table when the last read is older than `refreshMs` (changes made on other
   * replicas). A failed read keeps the settings in force and is retried at the next call.
   */
  async fresh(): Promise<void> {
    if (this.#now() - this.#loadedAt < this.#refreshMs) return;
    this.#loading ??= this.load()
      .catch(() => undefined)
      .finally(() => (this.#loading = undefined));
    await this.#loading;
  }

  /** Stores and applies a provider's overrides (`undefined`: back to the configuration file). */
  async put(provider: string, overrides: OidcSettingsOverrides | undefined, updatedBy: string | undefined): Promise<OidcSettingsRecord | undefined> {
    if (overrides === undefined) await this.#store.deleteSettings(provider);
    else await this.#store.putSettings(provider, overrides, updatedBy);
    this.#generation++;
    const next = new Map(this.#records);
    const record = overrides === undefined ? undefined : { provider, overrides, updatedBy, updatedAt: new Date(this.#now()) };
    if (record) next.set(provider, record);
    else next.delete(provider);
    this.#records = next;
    this.#apply(next);
    return record;
  }
}
