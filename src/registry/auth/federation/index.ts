/**
 * Workload identity federation and robot client certificates, as wired by app/build-app.ts.
 */
import type { ApiRoute } from '../../api/management-api.ts';
import type { EventBus } from '../../events/bus.ts';
import type { AccessService } from '../access-service.ts';
import { FederationAdministration } from './administration.ts';
import { federationRoutes } from './api.ts';
import type { FederationConfig } from './config.ts';
import type { FederationStore } from './store.ts';
import { WorkloadFederation } from './workload-federation.ts';

export { SqlFederationStore, type FederationStore } from './store.ts';
export { WorkloadFederation } from './workload-federation.ts';
export { RobotCertificates } from './robot-certificates.ts';

export function createFederation(config: FederationConfig, store: FederationStore | undefined): WorkloadFederation {
  return new WorkloadFederation({ store }, config);
}

/** The /api/v1 routes (trust rules, certificate bindings); none without a store. */
export function federationApi(deps: { access: AccessService; store: FederationStore | undefined; events: EventBus; federation: WorkloadFederation }, settings: { service: string; tokenTtlSeconds: number }): ApiRoute[] {
  if (!deps.store) return [];
  const admin = new FederationAdministration(
    { access: deps.access, store: deps.store, events: deps.events },
    { issuers: () => deps.federation.issuers, defaultAudience: settings.service, maxLifetimeSeconds: deps.federation.maxLifetimeSeconds, defaultLifetimeSeconds: settings.tokenTtlSeconds },
  );
  return federationRoutes(admin);
}
