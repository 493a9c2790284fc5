/**
 * Traceability from build to deployment (docs/traceability.md): the provenance graph of a digest
 * and the queries "where does X run", "which images come from commit Y", "which running workloads
 * are affected by vulnerability Z", answered from an index kept up to date from the event bus.
 */
export { TraceStore } from './store.ts';
export { TraceService, type CanRead, type ImagesQuery, type TraceGraph, type TraceDeps } from './service.ts';
export { registerTraceRoutes, accessVisibility, everythingVisible, parseImagesQuery, type TraceVisibility } from './http.ts';
export { deploymentSourceOf, promotionSourceOf, type DeploymentFact, type DeploymentSource, type PromotionFact, type PromotionSource } from './sources.ts';
