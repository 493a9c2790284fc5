/**
 * Policy documents: YAML, validated on load with errors naming the bad field. A document is
 * versioned, attached to one project (or `global`, the default for projects without their own),
 * and lists rules; each rule has a mode (`enforce` denies, `warn` allows with a warning, `audit`
 * only records) and the enforcement points it applies to.
 */
import { Environment } from '@marcbachmann/cel-js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isRepositoryName, isTag } from '../../oci/reference.ts';

export const ENFORCEMENT_POINTS = ['push', 'pull', 'promotion', 'admission'] as const;
export type EnforcementPoint = (typeof ENFORCEMENT_POINTS)[number];
export const RULE_MODES = ['enforce', 'warn', 'audit'] as const;
export type RuleMode = (typeof RULE_MODES)[number];
export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;

const ruleBase = {
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'rule names are lower case letters, digits, ".", "_", "-" (at most 63)'),
  description: z.string().max(500).optional(),
  mode: z.enum(RULE_MODES).default('enforce'),
  /** Where the rule applies; every point when absent. */
  points: z.array(z.enum(ENFORCEMENT_POINTS)).min(1).optional(),
  /** A message for users when the rule fails (the rule's own explanation otherwise). */
  message: z.string().max(500).optional(),
  /**
   * Admission only: when this enforced rule starts failing for a digest already running in a
   * workload (a newly published finding, say), restarts of that workload are allowed with a
   * warning for this many days; new deployments are denied at once (docs/policy.md#grace-periods).
   */
  graceDays: z.number().positive().max(365).optional(),
};

const pattern = z.string().min(1).max(256).refine((p) => { try { globToRegExp(p); return true; } catch { return false; } }, 'not a valid tag pattern');

/** Builder ids and source repositories are URIs: a glob without whitespace or control characters. */
const uriPattern = z.string().min(1).max(512).regex(/^[^\s\u0000-\u001f]+$/, 'not a valid pattern (no spaces or control characters)');
const layerDigest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'not a sha256 layer digest (sha256:<64 hex>)');
/** `repo@sha256:...` or `repo:tag` in this registry. */
const imageReference = z.string().max(400).refine((ref) => parseImageReference(ref) !== undefined, 'not an image reference in this registry (repo@sha256:<64 hex> or repo:tag)');
export const SBOM_FORMATS = ['cyclonedx', 'spdx'] as const;
export const SBOM_ORIGINS = ['attested', 'attached'] as const;

export const ruleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ ...ruleBase, kind: z.literal('forbidden-tags'), tags: z.array(pattern).min(1) }),
  z.strictObject({ ...ruleBase, kind: z.literal('immutable-tags'), tags: z.array(pattern).min(1) }),
  z.strictObject({ ...ruleBase, kind: z.literal('required-labels'), labels: z.array(z.string().min(1)).default([]), annotations: z.array(z.string().min(1)).default([]) })
    .refine((r) => r.labels.length + r.annotations.length > 0, { message: 'name at least one label or annotation', path: ['labels'] }),
  z.strictObject({ ...ruleBase, kind: z.literal('signature-required'), attestations: z.array(z.string().min(1)).default([]) }),
  z.strictObject({
    ...ruleBase,
    kind: z.literal('max-severity'),
    severity: z.enum(SEVERITIES).optional(),
    cvss: z.number().min(0).max(10).optional(),
    fixableOnly: z.boolean().default(false),
  }).refine((r) => r.severity !== undefined || r.cvss !== undefined, { message: 'set severity, cvss or both', path: ['severity'] }),
  z.strictObject({ ...ruleBase, kind: z.literal('scan-required'), maxAgeDays: z.number().positive().optional() }),
  z.strictObject({ ...ruleBase, kind: z.literal('max-image-age'), days: z.number().positive() }),
  z.strictObject({ ...ruleBase, kind: z.literal('licence-deny'), licences: z.array(z.string().min(1)).min(1) }),
  z.strictObject({ ...ruleBase, kind: z.literal('cel'), expression: z.string().min(1).max(4096) }),
  /** The image was promoted into its project by this registry (a verified promotion attestation), optionally from given projects. */
  z.strictObject({ ...ruleBase, kind: z.literal('promoted'), from: z.array(pattern).default([]) }),
  /** A verified SLSA provenance attestation from one of `builders`, built from one of `sources` (each list empty: any). */
  z.strictObject({ ...ruleBase, kind: z.literal('provenance-required'), builders: z.array(uriPattern).max(100).default([]), sources: z.array(uriPattern).max(100).default([]) }),
  /** An SBOM in one of `formats`, attested (verified in-toto attestation) and/or attached (builder SBOM the scanner ingested). */
  z.strictObject({
    ...ruleBase,
    kind: z.literal('sbom-required'),
    formats: z.array(z.enum(SBOM_FORMATS)).min(1).default([...SBOM_FORMATS]),
    origins: z.array(z.enum(SBOM_ORIGINS)).min(1).default([...SBOM_ORIGINS]),
  }),
  /** The image's layers start with every layer of one allowed base: an image of this registry, or a listed layer prefix. */
  z.strictObject({
    ...ruleBase,
    kind: z.literal('allowed-base-images'),
    images: z.array(imageReference).max(100).default([]),
    layerPrefixes: z.array(z.array(layerDigest).min(1).max(1000)).max(100).default([]),
  }).refine((r) => r.images.length + r.layerPrefixes.length > 0, { message: 'name at least one base image or layer prefix', path: ['images'] }),
]);
export type PolicyRule = z.infer<typeof ruleSchema>;

export const policyDocumentSchema = z.strictObject({
  apiVersion: z.literal('portcullis.dev/v1'),
  kind: z.literal('Policy'),
  metadata: z.strictObject({
    name: z.string().min(1).max(128),
    /** The project this applies to, or `global` (the default for every project without its own). */
    project: z.string().min(1).max(64).default('global'),
    version: z.number().int().positive().default(1),
    description: z.string().max(1000).optional(),
  }),
  rules: z.array(ruleSchema).max(200),
}).superRefine((doc, ctx) => {
  const seen = new Set<string>();
  doc.rules.forEach((r, i) => {
    if (seen.has(r.name)) ctx.addIssue({ code: 'custom', message: `duplicate rule name ${r.name}`, path: ['rules', i, 'name'] });
    seen.add(r.name);
  });
});
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;

/** A policy that failed to load; `issues` name the field (`rules[2].mode: ...`). */
export class PolicyError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid policy: ${issues.join('; ')}`);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

/** The CEL environment: the input document's top-level fields, all maps (see input.ts). */
export function celEnvironment(): Environment {
  return new Environment({ homogeneousAggregateLiterals: false })
    .registerVariable('image', 'map')
    .registerVariable('scan', 'map')
    .registerVariable('signatures', 'map')
    .registerVariable('request', 'map')
    .registerVariable('admission', 'map')
    .registerVariable('promotions', 'list')
    .registerVariable('provenance', 'list')
    .registerVariable('sboms', 'list')
    .registerVariable('now', 'google.protobuf.Timestamp');
}

function pathOf(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(document)';
}

/** Validates a parsed document (JSON/YAML value). CEL expressions are parsed and type-checked. @throws PolicyError */
export function validatePolicy(value: unknown): PolicyDocument {
  const result = policyDocumentSchema.safeParse(value);
  if (!result.success) throw new PolicyError(result.error.issues.map((i) => `${pathOf(i.path)}: ${i.message}`));
  const env = celEnvironment();
  const issues: string[] = [];
  result.data.rules.forEach((r, i) => {
    if (r.kind !== 'cel') return;
    try {
      const checked = env.parse(r.expression).check();
      if (!checked.valid) issues.push(`rules[${i}].expression: ${firstLine(checked.error?.message)}`);
      else if (checked.type !== 'bool' && checked.type !== 'dyn') issues.push(`rules[${i}].expression: must be a bool, is ${checked.type}`);
    } catch (error) {
      issues.push(`rules[${i}].expression: ${firstLine((error as Error).message)}`);
    }
  });
  if (issues.length > 0) throw new PolicyError(issues);
  return result.data;
}

function firstLine(message: string | undefined): string {
  return (message ?? 'invalid expression').split('\n', 1)[0]!.trim();
}

/** Parses and validates a YAML (or JSON) policy document. @throws PolicyError */
export function parsePolicy(text: string): PolicyDocument {
  let value: unknown;
  try {
    value = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new PolicyError([`(document): not valid YAML: ${firstLine((error as Error).message)}`]);
  }
  return validatePolicy(value);
}

/** `*` matches any run of characters, `?` one; everything else literally. Anchored. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** `repo@sha256:<hex>` or `repo:tag` split into repository and digest or tag; undefined when malformed. */
export function parseImageReference(ref: string): { repository: string; digest?: string; tag?: string } | undefined {
  const at = ref.indexOf('@');
  if (at >= 0) {
    const repository = ref.slice(0, at);
    const digest = ref.slice(at + 1);
    return isRepositoryName(repository) && /^sha256:[0-9a-f]{64}$/.test(digest) ? { repository, digest } : undefined;
  }
  const colon = ref.lastIndexOf(':');
  if (colon < 0) return undefined;
  const repository = ref.slice(0, colon);
  const tag = ref.slice(colon + 1);
  return isRepositoryName(repository) && isTag(tag) ? { repository, tag } : undefined;
}
