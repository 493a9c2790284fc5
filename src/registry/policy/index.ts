/** Policy as code: documents, the evaluator, and the push/pull gates (wired in app/build-app.ts). */
import type { Config } from '../config/schema.ts';
import { PolicyEnforcer, type PolicyEnforcerDeps } from './enforcer.ts';
import { LayeredPolicySource, loadPolicyFiles } from './source.ts';
import { type PolicyStore, StoredPolicySource } from './store.ts';

export { parsePolicy, PolicyError, validatePolicy, type PolicyDocument, type PolicyRule } from './document.ts';
export { CompiledPolicy, type PolicyDecision, type RuleResult } from './evaluate.ts';
export { completeInput, type PolicyInput } from './input.ts';
export { PolicyEnforcer, type PolicySource } from './enforcer.ts';
export { loadPolicyFiles, StaticPolicySource, LayeredPolicySource } from './source.ts';
export { CachedPolicyStore, MemoryPolicyStore, type PolicyStore, SqlPolicyStore, StoredPolicySource } from './store.ts';
export { type PolicyAuthorizer, registerPolicyRoutes } from './http.ts';

/**
 * The enforcer over stored policies (the API's) then the configured files (validated now: a bad
 * file stops the start); for each, the project's own policy before the global one.
 */
export async function createPolicyEnforcer(deps: Omit<PolicyEnforcerDeps, 'source'>, store: PolicyStore, settings: Config['policy']): Promise<PolicyEnforcer> {
  return new PolicyEnforcer({ ...deps, source: new LayeredPolicySource([new StoredPolicySource(store), await loadPolicyFiles(settings.files)]) });
}
