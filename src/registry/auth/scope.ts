/**
 * Docker token scopes (distribution `docs/spec/auth/scope.md`):
 *
 *   scope         := resourcescope [ ' ' resourcescope ]*
 *   resourcescope := resourcetype ":" resourcename ":" action [ ',' action ]*
 *   resourcetype  := /[a-z0-9]+/ [ '(' /[a-z0-9]+/ ')' ]
 *   action        := /[a-z*]*\/
 *
 * The name may itself contain one ':' (a host port), so the type ends at the first ':' and the
 * actions start after the last one. Resource classes (`repository(plugin)`) are deprecated and
 * ignored. A scope that breaks the grammar is a client error; an unknown type or action is not
 * (it simply grants nothing).
 */
import { isRepositoryName } from '../../oci/reference.ts';

/** One resource and the actions asked for (or granted) on it; also the JWT `access` entry. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export class ScopeError extends Error {
  override name = 'ScopeError';
}

const MAX_SCOPES = 64;
const MAX_SCOPE_LENGTH = 1024;
const typeGrammar = /^([a-z0-9]+)(?:\([a-z0-9]+\))?$/;
const actionGrammar = /^[a-z*]*$/;

/** Parses `scope` parameters (each possibly space-separated); merges entries for the same resource. */
export function parseScopes(values: readonly string[]): AccessEntry[] {
  const merged = new Map<string, AccessEntry>();
  for (const value of values) {
    if (value.length > MAX_SCOPE_LENGTH) throw new ScopeError(`a scope is limited to ${MAX_SCOPE_LENGTH} characters`);
    for (const part of value.split(' ')) {
      if (part === '') continue;
      const entry = parseResourceScope(part);
      const key = `${entry.type}:${entry.name}`;
      const existing = merged.get(key);
      if (existing) {
        for (const action of entry.actions) if (!existing.actions.includes(action)) existing.actions.push(action);
      } else {
        if (merged.size >= MAX_SCOPES) throw new ScopeError(`at most ${MAX_SCOPES} resources per token request`);
        merged.set(key, entry);
      }
    }
  }
  return [...merged.values()];
}

function parseResourceScope(scope: string): AccessEntry {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 200))}: expected type:name:actions`);
  const typeMatch = typeGrammar.exec(scope.slice(0, first));
  if (!typeMatch) throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 200))}: bad resource type`);
  const type = typeMatch[1]!;
  const name = scope.slice(first + 1, last);
  if (name === '') throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 200))}: empty resource name`);
  if (type === 'repository' && !isRepositoryName(name)) throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 200))}: invalid repository name`);
  const actions = scope.slice(last + 1).split(',');
  for (const action of actions) {
    if (!actionGrammar.test(action)) throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 200))}: bad action ${JSON.stringify(action.slice(0, 50))}`);
  }
  return { type, name, actions: [...new Set(actions.filter((a) => a !== ''))] };
}

/** `repository:team-a/app:pull,push` */
export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}
