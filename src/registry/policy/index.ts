/** Policy as code: documents, the evaluator, and the push/pull gates (wired in app/build-app.ts). */
import type { Config } from '../config/schema.ts';
import { PolicyEnforcer, type PolicyEnforcerDeps } from './enforcer.ts';
import { loadPolicyFiles } from './source.ts';

export { parsePolicy, PolicyError, validatePolicy, type PolicyDocument, type PolicyRule } from './document.ts';
export { CompiledPolicy, type PolicyDecision, type RuleResult } from './evaluate.ts';
export { completeInput, type PolicyInput } from './input.ts';
export { PolicyEnforcer, type PolicySource } from './enforcer.ts';
export { loadPolicyFiles, StaticPolicySource, LayeredPolicySource } from './source.ts';

/** The enforcer over the configured policy files (validated now: a bad file stops the start). */
export async function createPolicyEnforcer(deps: Omit<PolicyEnforcerDeps, 'source'>, settings: Config['policy']): Promise<PolicyEnforcer> {
  return new PolicyEnforcer({ ...deps, source: await loadPolicyFiles(settings.files) });
}
