/**
 * Fleet simulation: a candidate policy evaluated against every stored image of its scope (paged
 * over the metadata store) at every enforcement point, and against every recorded deployment
 * (admission's deployment records) as a restart would be evaluated, without enforcing,
 * publishing or storing anything. The report says what would be denied, per point, with reasons:
 * "3 of 40 images would be denied at pull; 12 running workloads would fail on restart".
 *
 * Facts are those the gates would gather (storedImageInput: image config, scan report, signature
 * and promotion facts); at push the scan and signature facts are neutral, as at the push gate,
 * and `image.tags` are the image's current tags (as if pushed again under them).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RegistryError } from '../../oci/errors.ts';
import { isRepositoryName, projectOf } from '../../oci/reference.ts';
import type { RequestOrigin } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import { ENFORCEMENT_POINTS, type EnforcementPoint, parsePolicy, PolicyError } from './document.ts';
import { CompiledPolicy, type PolicyDecision } from './evaluate.ts';
import type { PolicyInput } from './input.ts';
import { GLOBAL_PROJECT } from './source.ts';
import type { PromotionPolicy } from './promotion/service.ts';

/** Recorded deployments (admission/store.ts), structurally: what ran where. */
export interface DeploymentRecords {
  list(query: { digest?: string | undefined; limit: number }): Promise<Array<{ cluster: string; namespace: string; workloadKind: string; workloadName: string; container: string; digest: string; repository: string; firstSeen: Date }>>;
}

export interface SimulationOptions {
  /** Only this project's images (default: the candidate's project, or every project for `global`). */
  project?: string | undefined;
  points?: EnforcementPoint[] | undefined;
  /** Denied images and workloads listed at most (counts are always complete). */
  listLimit?: number | undefined;
  /** Called once per project before its images are read (authorisation); throws to refuse. */
  allowProject?: ((project: string) => Promise<void>) | undefined;
}

export interface SimulatedImage {
  repository: string;
  digest: string;
  tags: string[];
  /** Denials (enforce rules) and warnings per enforcement point where something failed. */
  points: Partial<Record<EnforcementPoint, { denials: string[]; warnings: string[] }>>;
}

export interface SimulatedWorkload {
  cluster: string;
  namespace: string;
  workload: { kind: string; name: string };
  container: string;
  repository: string;
  digest: string;
  denials: string[];
}

export interface SimulationReport {
  policy: PolicyDecision['policy'];
  scope: { project: string | null; points: EnforcementPoint[] };
  images: { evaluated: number; skipped: number; denied: number };
  points: Record<EnforcementPoint, { evaluated: number; denied: number; warned: number }>;
  denied: SimulatedImage[];
  /** Projects a `global` candidate would not apply to (they have a policy of their own). */
  shadowedProjects: string[];
  workloads: { recorded: boolean; evaluated: number; wouldFail: number; items: SimulatedWorkload[] };
  truncated: boolean;
  summary: string;
  durationMs: number;
}

const COSIGN_TAG = /^sha256-[0-9a-f]{64}(\.[a-z]+)?$/;
/** Images whose facts are gathered at once. */
const CONCURRENCY = 8;

export class PolicySimulator {
  readonly #meta: MetadataStore;
  readonly #policy: Pick<PromotionPolicy, 'policyFor' | 'storedImageInput'> & { resolveBaseImages?(policy: CompiledPolicy): Promise<void> };
  readonly #deployments: DeploymentRecords | undefined;
  readonly #pageSize: number;

  constructor(deps: { meta: MetadataStore; policy: Pick<PromotionPolicy, 'policyFor' | 'storedImageInput'> & { resolveBaseImages?(policy: CompiledPolicy): Promise<void> }; deployments?: DeploymentRecords | undefined }, options: { pageSize: number }) {
    this.#meta = deps.meta;
    this.#policy = deps.policy;
    this.#deployments = deps.deployments;
    this.#pageSize = options.pageSize;
  }

  async simulate(candidate: CompiledPolicy, origin: RequestOrigin, options: SimulationOptions = {}): Promise<SimulationReport> {
    const started = performance.now();
    const own = candidate.document.metadata.project;
    const scope = options.project ?? (own === GLOBAL_PROJECT ? undefined : own);
    if (own !== GLOBAL_PROJECT && scope !== own) throw new RegistryError('INVALID_REQUEST', `the candidate policy is for project ${own}; it cannot apply to project ${scope}`);
    const points = (options.points ?? [...ENFORCEMENT_POINTS]).filter((p) => candidate.appliesAt(p));
    const listLimit = options.listLimit ?? 1000;
    // the candidate's allowed base images, as the gates would resolve them
    await this.#policy.resolveBaseImages?.(candidate);
    const report: SimulationReport = {
      policy: { name: candidate.document.metadata.name, project: own, version: candidate.document.metadata.version, hash: candidate.hash },
      scope: { project: scope ?? null, points },
      images: { evaluated: 0, skipped: 0, denied: 0 },
      points: Object.fromEntries(ENFORCEMENT_POINTS.map((p) => [p, { evaluated: 0, denied: 0, warned: 0 }])) as SimulationReport['points'],
      denied: [],
      shadowedProjects: [],
      workloads: { recorded: this.#deployments !== undefined, evaluated: 0, wouldFail: 0, items: [] },
      truncated: false,
      summary: '',
      durationMs: 0,
    };
    const projects = new Map<string, boolean>();
    // a named project is checked even when it holds no image
    if (scope !== undefined) await options.allowProject?.(scope);
    let after: { repository: string; digest: string } | undefined;
    for (;;) {
      const page = await this.#meta.listManifests(this.#pageSize, after, scope);
      const todo: Array<{ repository: string; digest: string }> = [];
      for (const m of page.items) {
        const project = projectOf(m.repository);
        let applies = projects.get(project);
        if (applies === undefined) {
          await options.allowProject?.(project);
          // a global candidate does not reach projects with a policy of their own
          applies = own !== GLOBAL_PROJECT || (await this.#policy.policyFor(project))?.document.metadata.project !== project;
          if (!applies) report.shadowedProjects.push(project);
          projects.set(project, applies);
        }
        if (applies) todo.push(m);
      }
      // gathering facts is mostly waiting (blob reads, queries): a few images at a time
      let next = 0;
      const worker = async () => {
        while (next < todo.length) {
          const m = todo[next++]!;
          await this.#image(candidate, m.repository, m.digest, points, origin, report, listLimit);
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
      if (!page.more) break;
      after = page.items.at(-1);
    }
    const order = (a: { repository: string; digest: string }, b: { repository: string; digest: string }) => (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0);
    report.denied.sort(order);
    report.workloads.items.sort((a, b) => order(a, b) || (a.namespace + a.workload.name < b.namespace + b.workload.name ? -1 : 1));
    report.durationMs = Math.round(performance.now() - started);
    report.summary = summarise(report);
    return report;
  }

  async #image(candidate: CompiledPolicy, repository: string, digest: string, points: EnforcementPoint[], origin: RequestOrigin, report: SimulationReport, listLimit: number): Promise<void> {
    const allTags = await this.#meta.tagsOf(repository, digest);
    const tags = allTags.filter((t) => !COSIGN_TAG.test(t));
    // cosign's tag-scheme signatures are image manifests only in form
    if (tags.length === 0 && allTags.length > 0) {
      report.images.skipped++;
      return;
    }
    const base = await this.#policy.storedImageInput(repository, digest, undefined, 'pull', origin);
    if (!base) {
      report.images.skipped++;
      return;
    }
    report.images.evaluated++;
    const image: SimulatedImage = { repository, digest, tags, points: {} };
    const note = (point: EnforcementPoint, d: PolicyDecision) => {
      report.points[point].evaluated++;
      if (!d.allowed) report.points[point].denied++;
      if (d.warnings.length > 0) report.points[point].warned++;
      if (!d.allowed || d.warnings.length > 0) image.points[point] = { denials: d.denials, warnings: d.warnings };
    };
    for (const point of points) {
      const input: PolicyInput = { ...base, image: { ...base.image, tags }, request: { ...base.request, point, action: point === 'promotion' ? 'promote' : point } };
      if (point === 'push') Object.assign(input, { scan: neutral.scan, signatures: neutral.signatures, promotions: [], request: { ...input.request, previousTagTarget: digest } });
      if (point === 'promotion') input.request = { ...input.request, destination: repository, source: '' };
      if (point !== 'admission' || !this.#deployments) {
        note(point, candidate.evaluate(input));
        continue;
      }
      // admission: every recorded deployment of the digest, as its restart would be evaluated
      const deployments = await this.#deployments.list({ digest, limit: 10_000 });
      if (deployments.length === 0) note(point, candidate.evaluate(input));
      for (const d of deployments) {
        const decision = candidate.evaluate({ ...input, admission: { namespace: d.namespace, workload: { kind: d.workloadKind, name: d.workloadName }, operation: 'UPDATE', firstAdmitted: d.firstSeen.toISOString() } });
        note(point, decision);
        report.workloads.evaluated++;
        if (decision.allowed) continue;
        report.workloads.wouldFail++;
        if (report.workloads.items.length < listLimit) {
          report.workloads.items.push({ cluster: d.cluster, namespace: d.namespace, workload: { kind: d.workloadKind, name: d.workloadName }, container: d.container, repository: d.repository, digest, denials: decision.denials });
        } else report.truncated = true;
      }
    }
    if (Object.values(image.points).some((p) => p.denials.length > 0)) {
      report.images.denied++;
      if (report.denied.length < listLimit) report.denied.push(image);
      else report.truncated = true;
    }
  }
}

const neutral = { scan: { status: 'none', scannedAt: '', summary: { total: 0, critical: 0, high: 0, medium: 0, low: 0, fixable: 0 }, findings: [], licences: [] }, signatures: { verdict: 'unknown', signers: [], attestations: [], missing: [] } };

function summarise(r: SimulationReport): string {
  const parts = r.scope.points
    .filter((p) => p !== 'admission' || !r.workloads.recorded || r.workloads.evaluated === 0)
    .map((p) => `${r.points[p].denied} of ${r.points[p].evaluated} images would be denied at ${p}`);
  if (r.workloads.recorded && r.scope.points.includes('admission')) parts.push(`${r.workloads.wouldFail} of ${r.workloads.evaluated} running workloads would fail on restart`);
  return `${parts.join('; ') || 'no rule applies at the chosen points'}${r.shadowedProjects.length ? ` (not applied to ${r.shadowedProjects.join(', ')}: they have a policy of their own)` : ''}`;
}

/** Checks project.read on a project; throws UNAUTHORIZED/DENIED. */
export type SimulationAuthorizer = (request: FastifyRequest, project: string) => Promise<void>;

/**
 * POST /api/v1/policy/simulate?project=P&point=pull&point=admission&limit=N
 * Body: the candidate policy (YAML or JSON, as for PUT .../policies). Needs project.read on every
 * project evaluated. A bad document gets 400 with every issue naming its field.
 */
export async function registerSimulationRoutes(app: FastifyInstance, deps: { simulator: PolicySimulator; authorize?: SimulationAuthorizer | undefined }): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain', 'application/json'], { parseAs: 'string', bodyLimit: 256 * 1024 }, (_request, body, done) => done(null, body));
    scope.post('/api/v1/policy/simulate', async (request, reply) => {
      const q = request.query as Record<string, string | string[] | undefined>;
      const project = typeof q['project'] === 'string' ? q['project'] : undefined;
      if (project !== undefined && (!isRepositoryName(project) || project.includes('/'))) throw new RegistryError('NAME_INVALID', `invalid project name ${JSON.stringify(project.slice(0, 100))}`);
      const points = q['point'] === undefined ? undefined : [q['point']].flat();
      if (points?.some((p) => !ENFORCEMENT_POINTS.includes(p as EnforcementPoint))) throw new RegistryError('INVALID_REQUEST', `point: one of ${ENFORCEMENT_POINTS.join(', ')}`);
      const limit = q['limit'] === undefined ? 1000 : Number(q['limit']);
      if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) throw new RegistryError('PAGINATION_INVALID', 'limit: an integer from 0 to 10000');
      const text = typeof request.body === 'string' ? request.body : '';
      if (!text.trim()) throw new RegistryError('INVALID_REQUEST', 'send the candidate policy document (YAML or JSON) as the body');
      let candidate: CompiledPolicy;
      try {
        candidate = new CompiledPolicy(parsePolicy(text));
      } catch (error) {
        if (!(error instanceof PolicyError)) throw error;
        return reply.code(400).send({ errors: error.issues.map((message) => ({ code: 'POLICY_INVALID', message })) });
      }
      const origin: RequestOrigin = { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: { kind: 'anonymous' } };
      return deps.simulator.simulate(candidate, origin, { project, points: points as EnforcementPoint[] | undefined, listLimit: limit, allowProject: deps.authorize ? (p) => deps.authorize!(request, p) : undefined });
    });
  });
}
