/**
 * Policy sources. Files named in configuration are loaded and validated at start (a bad policy
 * stops the server with the field named); stored policies (the API) override them per project.
 * Lookup: the project's own policy, else the `global` one.
 */
import { readFile } from 'node:fs/promises';
import { parsePolicy, PolicyError } from './document.ts';
import { CompiledPolicy } from './evaluate.ts';
import type { PolicySource } from './enforcer.ts';

export const GLOBAL_PROJECT = 'global';

/** Policies held in memory, one per project (the newest version wins). */
export class StaticPolicySource implements PolicySource {
  readonly #byProject = new Map<string, CompiledPolicy>();

  constructor(policies: CompiledPolicy[] = []) {
    for (const p of policies) this.set(p);
  }

  set(policy: CompiledPolicy): void {
    const project = policy.document.metadata.project;
    const current = this.#byProject.get(project);
    if (current && current.document.metadata.version > policy.document.metadata.version) return;
    this.#byProject.set(project, policy);
  }

  async policyFor(project: string): Promise<CompiledPolicy | undefined> {
    return this.#byProject.get(project) ?? this.#byProject.get(GLOBAL_PROJECT);
  }

  /** The project's own policy only (no fallback to global). */
  own(project: string): CompiledPolicy | undefined {
    return this.#byProject.get(project);
  }
}

/** Loads policy files; errors name the file and the field. @throws PolicyError */
export async function loadPolicyFiles(paths: readonly string[]): Promise<StaticPolicySource> {
  const policies: CompiledPolicy[] = [];
  const seen = new Map<string, string>();
  for (const path of paths) {
    let doc;
    try {
      doc = parsePolicy(await readFile(path, 'utf8'));
    } catch (error) {
      if (error instanceof PolicyError) throw new PolicyError(error.issues.map((i) => `${path}: ${i}`));
      throw new PolicyError([`${path}: ${(error as Error).message}`]);
    }
    const other = seen.get(doc.metadata.project);
    if (other) throw new PolicyError([`${path}: project ${doc.metadata.project} already has a policy in ${other}`]);
    seen.set(doc.metadata.project, path);
    policies.push(new CompiledPolicy(doc));
  }
  return new StaticPolicySource(policies);
}

/** Stored policies first, then configured ones, each project before global. */
export class LayeredPolicySource implements PolicySource {
  readonly #layers: PolicySource[];
  constructor(layers: PolicySource[]) {
    this.#layers = layers;
  }
  async policyFor(project: string): Promise<CompiledPolicy | undefined> {
    let fallback: CompiledPolicy | undefined;
    for (const layer of this.#layers) {
      const p = await layer.policyFor(project);
      if (p && p.document.metadata.project === project) return p;
      fallback ??= p;
    }
    return fallback;
  }
}
