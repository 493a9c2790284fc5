/**
 * The one evaluator: a policy document and an input document in, an explainable decision out.
 * Every rule that applies at the request's enforcement point is evaluated; a failing `enforce`
 * rule denies, a failing `warn` rule allows with a warning, a failing `audit` rule is only
 * recorded. A rule that cannot be evaluated (CEL runtime error) counts as failed: gates deny on
 * error. Rules never throw out of `evaluate`.
 */
import { createHash } from 'node:crypto';
import type { ParseResult } from '@marcbachmann/cel-js';
import { celEnvironment, type EnforcementPoint, globToRegExp, type PolicyDocument, type PolicyRule, type RuleMode } from './document.ts';
import type { PolicyInput } from './input.ts';

export interface RuleResult {
  rule: string;
  kind: PolicyRule['kind'];
  mode: RuleMode;
  /** `skipped`: the rule does not apply at this enforcement point. */
  outcome: 'pass' | 'fail' | 'error' | 'skipped';
  /** Why it failed, for people (the rule's `message` when set). */
  message?: string;
  /** The facts that made it fail, e.g. `tag latest matches forbidden pattern latest`. */
  facts: string[];
}

export interface PolicyDecision {
  allowed: boolean;
  point: EnforcementPoint;
  repository: string;
  digest: string;
  policy: { name: string; project: string; version: number; hash: string };
  rules: RuleResult[];
  /** One line per failed enforce rule (`rule NAME: message`). */
  denials: string[];
  /** One line per failed warn rule. */
  warnings: string[];
}

const SEVERITY_RANK: Record<string, number> = { critical: 4, high: 3, medium: 2, low: 1 };
const DAY_MS = 86_400_000;
const SLSA_PROVENANCE = new Set(['https://slsa.dev/provenance/v0.2', 'https://slsa.dev/provenance/v1']);

/** A validated policy made ready for evaluation (CEL parsed once). */
export class CompiledPolicy {
  readonly document: PolicyDocument;
  readonly hash: string;
  readonly #cel = new Map<string, ParseResult>();
  /** `allowed-base-images` image references of the document (resolved by the enforcer: resolveBaseImages). */
  readonly baseImageRefs: string[];
  /** Resolved base images: reference -> the layer lists it allows (one per platform of an index), or why it did not resolve. */
  baseImages = new Map<string, string[][] | string>();
  /** When baseImages was last resolved (ms since epoch; 0: never). */
  baseImagesAt = 0;

  constructor(document: PolicyDocument) {
    this.document = document;
    this.hash = `sha256:${createHash('sha256').update(JSON.stringify(document)).digest('hex')}`;
    const env = celEnvironment();
    for (const r of document.rules) if (r.kind === 'cel') this.#cel.set(r.name, env.parse(r.expression));
    this.baseImageRefs = [...new Set(document.rules.flatMap((r) => (r.kind === 'allowed-base-images' ? r.images : [])))];
    this.usesPlatformLayers = document.rules.some((r) => r.kind === 'allowed-base-images' || (r.kind === 'cel' && r.expression.includes('platformLayers')));
  }

  /** Whether a rule reads `image.platformLayers` (one manifest read per platform of an index). */
  readonly usesPlatformLayers: boolean;

  /** True when some rule applies at `point` (lets gates skip gathering facts). */
  appliesAt(point: EnforcementPoint): boolean {
    return this.document.rules.some((r) => !r.points || r.points.includes(point));
  }

  /** `only`: evaluate just the rules it accepts (others are `skipped`), e.g. immutability on a tag delete. */
  evaluate(input: PolicyInput, only?: (rule: PolicyRule) => boolean): PolicyDecision {
    const point = input.request.point;
    const rules: RuleResult[] = [];
    const denials: string[] = [];
    const warnings: string[] = [];
    for (const rule of this.document.rules) {
      if ((rule.points && !rule.points.includes(point)) || (only && !only(rule))) {
        rules.push({ rule: rule.name, kind: rule.kind, mode: rule.mode, outcome: 'skipped', facts: [] });
        continue;
      }
      let facts: string[];
      let outcome: RuleResult['outcome'];
      try {
        facts = this.#check(rule, input);
        outcome = facts.length === 0 ? 'pass' : 'fail';
      } catch (error) {
        facts = [`evaluation error: ${((error as Error).message ?? String(error)).split('\n', 1)[0]}`];
        outcome = 'error';
      }
      const result: RuleResult = { rule: rule.name, kind: rule.kind, mode: rule.mode, outcome, facts };
      if (outcome !== 'pass') {
        result.message = rule.message ?? facts.join('; ');
        const line = `rule ${rule.name}: ${result.message}`;
        if (rule.mode === 'enforce') denials.push(line);
        else if (rule.mode === 'warn') warnings.push(line);
      }
      rules.push(result);
    }
    const d = this.document.metadata;
    return {
      allowed: denials.length === 0,
      point,
      repository: input.image.repository,
      digest: input.image.digest,
      policy: { name: d.name, project: d.project, version: d.version, hash: this.hash },
      rules,
      denials,
      warnings,
    };
  }

  /** The facts that make `rule` fail on `input` (empty: it passes). */
  #check(rule: PolicyRule, input: PolicyInput): string[] {
    const { image, scan, signatures, request } = input;
    const now = Date.parse(input.now);
    switch (rule.kind) {
      case 'forbidden-tags': {
        const out: string[] = [];
        for (const tag of image.tags) for (const p of rule.tags) if (globToRegExp(p).test(tag)) out.push(`tag ${tag} matches forbidden pattern ${p}`);
        return out;
      }
      case 'immutable-tags': {
        const out: string[] = [];
        for (const tag of image.tags) {
          const p = rule.tags.find((q) => globToRegExp(q).test(tag));
          if (!p) continue;
          if (request.action === 'delete') out.push(`tag ${tag} matches immutable pattern ${p} and cannot be deleted`);
          else if (request.previousTagTarget && request.previousTagTarget !== image.digest) out.push(`tag ${tag} matches immutable pattern ${p} and already points at ${request.previousTagTarget}`);
        }
        return out;
      }
      case 'required-labels': {
        const out: string[] = [];
        for (const l of rule.labels) if (!image.labels[l]) out.push(`label ${l} is missing`);
        for (const a of rule.annotations) if (!image.annotations[a]) out.push(`annotation ${a} is missing`);
        return out;
      }
      case 'signature-required': {
        const out: string[] = [];
        if (signatures.verdict !== 'verified') out.push(`signature verdict is ${signatures.verdict}${signatures.missing.length ? ` (missing: ${signatures.missing.join(', ')})` : ''}`);
        for (const t of rule.attestations) if (!signatures.attestations.includes(t)) out.push(`no verified attestation of type ${t}`);
        return out;
      }
      case 'max-severity': {
        if (scan.status !== 'complete') return [`no complete scan (status ${scan.status})`];
        const limit = rule.severity ? SEVERITY_RANK[rule.severity]! : Infinity;
        const out: string[] = [];
        for (const f of scan.findings) {
          if (rule.fixableOnly && !f.fixAvailable) continue;
          const where = `${f.id} in ${f.package.name} ${f.package.version}`;
          if ((SEVERITY_RANK[f.severity] ?? 0) > limit) out.push(`${where} is ${f.severity} (maximum ${rule.severity})`);
          else if (rule.cvss !== undefined && f.score !== undefined && f.score > rule.cvss) out.push(`${where} has CVSS ${f.score} (maximum ${rule.cvss})`);
        }
        return out.length > 10 ? [...out.slice(0, 10), `and ${out.length - 10} more`] : out;
      }
      case 'scan-required': {
        if (scan.status !== 'complete') return [`no complete scan (status ${scan.status})`];
        if (rule.maxAgeDays !== undefined) {
          const at = Date.parse(scan.scannedAt);
          if (!Number.isFinite(at)) return ['scan time is unknown'];
          const days = (now - at) / DAY_MS;
          if (days > rule.maxAgeDays) return [`last scan is ${days.toFixed(1)} days old (maximum ${rule.maxAgeDays})`];
        }
        return [];
      }
      case 'max-image-age': {
        const created = Date.parse(image.created);
        if (!Number.isFinite(created)) return ['image creation time is unknown'];
        const days = (now - created) / DAY_MS;
        return days > rule.days ? [`image is ${days.toFixed(1)} days old (maximum ${rule.days})`] : [];
      }
      case 'licence-deny': {
        const patterns = rule.licences.map((l) => new RegExp(globToRegExp(l).source, 'i'));
        const out = new Set<string>();
        for (const expression of scan.licences) {
          for (const id of expression.split(/\s+(?:AND|OR|WITH)\s+|[()\s,]+/i).filter(Boolean)) {
            const p = patterns.findIndex((re) => re.test(id));
            if (p >= 0) out.add(`licence ${id} is denied (${rule.licences[p]})`);
          }
        }
        return [...out];
      }
      case 'promoted': {
        // promoted into this image's project, from an allowed source project when `from` is set
        const into = input.promotions.filter((p) => p.destinationProject === image.project);
        if (into.length === 0) return [`no promotion into project ${image.project} attested by this registry${input.promotions.length ? ` (promotions into ${[...new Set(input.promotions.map((p) => p.destinationProject))].join(', ')} only)` : ''}`];
        if (rule.from.length === 0 || into.some((p) => rule.from.some((f) => globToRegExp(f).test(p.sourceProject)))) return [];
        return [`promoted into ${image.project} only from ${[...new Set(into.map((p) => p.sourceProject))].join(', ')}, not from ${rule.from.join(', ')}`];
      }
      case 'provenance-required': {
        const slsa = input.provenance.filter((p) => SLSA_PROVENANCE.has(p.predicateType));
        if (slsa.length === 0) return [`no verified SLSA provenance attestation${input.provenance.length ? ` (only ${[...new Set(input.provenance.map((p) => p.predicateType))].join(', ')})` : ''}`];
        const matches = (patterns: string[], value: string) => patterns.length === 0 || patterns.some((p) => globToRegExp(p).test(value));
        if (slsa.some((p) => matches(rule.builders, p.builder) && matches(rule.sources, p.sourceRepository))) return [];
        return slsa.map((p) => {
          const why = [
            matches(rule.builders, p.builder) ? '' : `builder ${p.builder || '(none)'} is not one of ${rule.builders.join(', ')}`,
            matches(rule.sources, p.sourceRepository) ? '' : `source repository ${p.sourceRepository || '(none)'} is not one of ${rule.sources.join(', ')}`,
          ].filter(Boolean);
          return `provenance (${p.predicateType}): ${why.join(' and ')}`;
        });
      }
      case 'sbom-required': {
        const ok = input.sboms.filter((b) => rule.formats.includes(b.format) && rule.origins.includes(b.origin) && (b.origin !== 'attested' || b.verified));
        if (ok.length > 0) return [];
        const have = input.sboms.map((b) => `${b.format} ${b.origin}${b.origin === 'attested' && !b.verified ? ' (unverified)' : ''}`);
        return [`no ${rule.formats.join(' or ')} SBOM ${rule.origins.join(' or ')}${have.length ? ` (the image has: ${[...new Set(have)].join(', ')})` : ' (the image has none)'}`];
      }
      case 'allowed-base-images': {
        // an index: every platform image must be built on an allowed base
        const images = image.layers.length > 0 ? [image.layers] : image.platformLayers.filter((l) => l.length > 0);
        if (images.length === 0) return ['the image has no layers (an artifact, or an index without platform images here): its base image cannot be checked'];
        const unresolved = new Set<string>();
        const allowedBase = (layers: string[]) => {
          const startsWith = (prefix: string[]) => prefix.length > 0 && prefix.length <= layers.length && prefix.every((d, i) => layers[i] === d);
          if (rule.layerPrefixes.some(startsWith)) return true;
          for (const ref of rule.images) {
            const resolved = this.baseImages.get(ref);
            if (typeof resolved !== 'object') unresolved.add(`base image ${ref} ${resolved ?? 'is not resolved'}`);
            else if (resolved.some(startsWith)) return true;
          }
          return false;
        };
        const failing = images.filter((layers) => !allowedBase(layers));
        if (failing.length === 0) return [];
        const allowed = [...rule.images, ...rule.layerPrefixes.map((p) => `layers ${p[0]}${p.length > 1 ? ` (+${p.length - 1})` : ''}`)].join(', ');
        const platform = images.length > 1 || image.layers.length === 0 ? 'platform image ' : '';
        return [...failing.slice(0, 5).map((l) => `${platform}layers (${l.length}, first ${l[0]}) do not start with an allowed base image: ${allowed}`), ...unresolved];
      }
      case 'cel': {
        const expression = this.#cel.get(rule.name)!;
        const value = expression({ ...input, now: new Date(input.now) });
        if (value === true) return [];
        if (value === false) return [`expression is false: ${rule.expression}`];
        throw new Error(`expression returned ${typeof value}, not a bool`);
      }
    }
  }
}
