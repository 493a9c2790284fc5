/**
 * The admission controller with the real evaluator, a moving clock and a deployment store:
 * grace-aware enforcement (a restart inside a grace window is allowed with a warning, a new
 * deployment is denied, the window closes), the verdict cache and its invalidation by events,
 * namespace selection and the external-registry setting.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { AdmissionController, type AdmissionPolicy, type AdmissionSettings } from '../../src/registry/admission/controller.ts';
import { parseReview } from '../../src/registry/admission/review.ts';
import { MemoryDeploymentStore } from '../../src/registry/admission/store.ts';
import { EventBus, type RegistryEvent, type RequestOrigin } from '../../src/registry/events/bus.ts';
import { parsePolicy } from '../../src/registry/policy/document.ts';
import { CompiledPolicy } from '../../src/registry/policy/evaluate.ts';
import { completeInput, type PolicyInput } from '../../src/registry/policy/input.ts';
import type { MetadataStore } from '../../src/registry/storage/ports.ts';
import { review, workloadObject } from './fixtures.ts';

const DAY = 86_400_000;
const DIGEST = `sha256:${'a'.repeat(64)}`;
const HOST = 'reg.example.com';
const origin: RequestOrigin = { clientAddress: '10.0.0.1', userAgent: 'kube-apiserver-admission', requestId: 'r1', actor: { kind: 'anonymous' } };

const POLICY = new CompiledPolicy(parsePolicy(`
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: prod, project: team, version: 4 }
rules:
  - { name: no-criticals, kind: max-severity, severity: high, points: [admission], graceDays: 7 }
  - { name: signed, kind: signature-required, points: [admission] }
`));

interface World {
  findings: PolicyInput['scan']['findings'];
  verdict: string;
  inputs: number;
}

function setup(settings: Partial<AdmissionSettings> = {}) {
  const world: World = { findings: [], verdict: 'verified', inputs: 0 };
  let now = Date.parse('2026-11-01T00:00:00Z');
  const events = new EventBus({ onHandlerError: (error) => { throw error; } });
  const published: RegistryEvent[] = [];
  events.subscribe('*', (e) => void published.push(e));
  const deployments = new MemoryDeploymentStore();
  const policy: AdmissionPolicy = {
    policyFor: async (project) => (project === 'team' ? POLICY : undefined),
    storedImageInput: async (repository, digest) => {
      world.inputs++;
      return completeInput({
        image: { repository, digest, platform: { os: 'linux', architecture: 'amd64', variant: '' } },
        scan: { status: 'complete', scannedAt: new Date(now).toISOString(), findings: world.findings },
        signatures: { verdict: world.verdict },
      });
    },
  };
  const meta = {
    resolveTag: async (repository: string, tag: string) => (repository.startsWith('team/') && tag === 'v1' ? DIGEST : undefined),
    getManifest: async (_repository: string, digest: string) => (digest === DIGEST ? { digest } : undefined),
  } as unknown as MetadataStore;
  const controller = new AdmissionController(
    { policy, meta, deployments, events, now: () => new Date(now) },
    { registryHosts: [HOST], external: { action: 'deny', allow: [] }, unknownKinds: 'deny', namespaces: { include: [], exclude: ['kube-system'] }, cacheMs: 60_000, cacheEntries: 100, ...settings },
  );
  controller.subscribe();
  const admit = async (workload: string, options: { namespace?: string; image?: string; kind?: 'Deployment' | 'Pod' } = {}) => {
    const object = workloadObject(options.kind ?? 'Deployment', workload, options.namespace ?? 'prod', { containers: [{ name: 'app', image: options.image ?? `${HOST}/team/app:v1` }] });
    return controller.validate(parseReview(review(object)), { cluster: 'east', origin });
  };
  return { world, controller, deployments, events, published, admit, advance: (ms: number) => (now += ms), now: () => now };
}

// bus handlers run on a later macrotask, and the grace review after an event awaits the stores
const settle = () => new Promise((r) => setTimeout(r, 100));
async function waitFor(condition: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
const critical = [{ id: 'CVE-2026-0001', severity: 'critical', fixAvailable: true, package: { name: 'openssl', version: '3.0.0' } }];

describe('grace-aware admission', () => {
  let t: ReturnType<typeof setup>;
  beforeEach(() => {
    t = setup();
  });

  it('a finding published after admission: restarts allowed with a warning for graceDays, new deployments denied at once', async () => {
    assert.equal((await t.admit('web')).allowed, true);
    t.advance(DAY);
    // the scanner publishes a critical finding for the deployed digest: the window opens now
    t.world.findings = critical;
    t.events.publish({ type: 'scan.findings.changed', at: new Date(t.now()), origin: undefined, repository: 'team/app', digest: DIGEST, database: 'x', summary: { critical: 1, high: 0, medium: 0, low: 0, none: 0, unknown: 0, total: 1, fixable: 1, malicious: 0 }, newCritical: 1, added: [], removed: [], changed: [] });
    await waitFor(() => t.published.some((e) => e.type === 'admission.grace'));
    const opened = t.published.filter((e) => e.type === 'admission.grace');
    assert.equal(opened.length, 1);
    assert.equal((opened[0] as Extract<RegistryEvent, { type: 'admission.grace' }>).action, 'opened');
    assert.equal((opened[0] as Extract<RegistryEvent, { type: 'admission.grace' }>).until, new Date(t.now() + 7 * DAY).toISOString());

    t.advance(2 * DAY);
    const restart = await t.admit('web');
    assert.equal(restart.allowed, true, JSON.stringify(restart));
    assert.equal(restart.warnings?.length, 1);
    assert.match(restart.warnings![0]!, /rule no-criticals: CVE-2026-0001 in openssl 3\.0\.0 is critical \(maximum high\) \(grace period until 2026-11-09T00:00:00\.000Z: Deployment\/web already ran this digest; new deployments are denied\)/);
    const fresh = await t.admit('api');
    assert.equal(fresh.allowed, false);
    assert.match(fresh.status!.message, /rule no-criticals: CVE-2026-0001/);
    await settle();
    assert.ok(t.published.some((e) => e.type === 'admission.grace' && e.action === 'allowed' && e.admission?.workload.name === 'web'));
    const decision = t.published.findLast((e) => e.type === 'policy.decision' && e.admission?.workload.name === 'web');
    assert.equal(decision?.type === 'policy.decision' && decision.outcome, 'success');
    assert.equal(decision?.type === 'policy.decision' && decision.admission?.restart, true);

    t.advance(6 * DAY); // past the window (opened on day 1, 7 days)
    const late = await t.admit('web');
    assert.equal(late.allowed, false);
    assert.match(late.status!.message, /no-criticals/);
  });

  it('a pod of a Deployment is recognised through its ReplicaSet owner (a reschedule is a restart)', async () => {
    assert.equal((await t.admit('web')).allowed, true);
    t.world.findings = critical;
    t.controller.invalidate();
    t.advance(DAY);
    const pod = workloadObject('Pod', 'web-7d9f8b6c5-x2x4z', 'prod', { containers: [{ name: 'app', image: `${HOST}/team/app:v1` }] }, {
      labels: { app: 'web', 'pod-template-hash': '7d9f8b6c5' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8b6c5', uid: 'u', controller: true, blockOwnerDeletion: true }],
    });
    const res = await t.controller.validate(parseReview(review(pod)), { cluster: 'east', origin });
    assert.equal(res.allowed, true, JSON.stringify(res));
    assert.match(res.warnings![0]!, /grace period until/);
    // the same pod in another cluster is a new deployment there
    const elsewhere = await t.controller.validate(parseReview(review(pod)), { cluster: 'west', origin });
    assert.equal(elsewhere.allowed, false);
  });

  it('no grace for rules without graceDays, nor when any failing rule lacks it', async () => {
    assert.equal((await t.admit('web')).allowed, true);
    t.advance(DAY);
    t.world.verdict = 'unsigned';
    t.controller.invalidate();
    const res = await t.admit('web');
    assert.equal(res.allowed, false);
    assert.match(res.status!.message, /rule signed: signature verdict is unsigned/);
    t.world.findings = critical;
    t.controller.invalidate();
    assert.equal((await t.admit('web')).allowed, false, 'signed has no grace, so the restart is denied');
  });

  it('a window opened at the first denied restart when no event opened it; dry runs record nothing', async () => {
    assert.equal((await t.admit('web')).allowed, true);
    t.world.findings = critical;
    t.controller.invalidate();
    t.advance(DAY);
    const res = await t.admit('web');
    assert.equal(res.allowed, true);
    await settle();
    assert.deepEqual(t.published.filter((e) => e.type === 'admission.grace').map((e) => e.type === 'admission.grace' && e.action), ['opened', 'allowed']);
    const dry = await t.controller.validate(parseReview(review(workloadObject('Deployment', 'dry', 'prod', { containers: [{ name: 'app', image: `${HOST}/team/app@${DIGEST}` }] }), { dryRun: true })), { cluster: 'east', origin });
    assert.equal(dry.allowed, false, 'a new deployment, even as a dry run');
    t.world.findings = [];
    t.controller.invalidate();
    await t.controller.validate(parseReview(review(workloadObject('Deployment', 'dry', 'prod', { containers: [{ name: 'app', image: `${HOST}/team/app@${DIGEST}` }] }), { dryRun: true })), { cluster: 'east', origin });
    assert.deepEqual((await t.deployments.list({ namespace: 'prod', limit: 10 })).map((r) => r.workloadName), ['web']);
  });

  it('refreshes last seen at most once a minute per record', async () => {
    await t.admit('web');
    const first = (await t.deployments.list({ namespace: 'prod', limit: 1 }))[0]!;
    t.advance(30_000);
    await t.admit('web');
    assert.equal((await t.deployments.list({ namespace: 'prod', limit: 1 }))[0]!.lastSeen.getTime(), first.lastSeen.getTime());
    t.advance(31_000);
    await t.admit('web');
    const later = (await t.deployments.list({ namespace: 'prod', limit: 1 }))[0]!;
    assert.equal(later.lastSeen.getTime(), first.lastSeen.getTime() + 61_000);
    assert.equal(later.firstSeen.getTime(), first.firstSeen.getTime());
  });
});

describe('admission verdict cache and settings', () => {
  it('serves repeated reviews from the cache; signature, scan and trust-policy events drop it', async () => {
    const t = setup();
    await t.admit('web');
    await t.admit('web');
    await t.admit('api');
    assert.equal(t.world.inputs, 1, 'image facts gathered once');
    t.world.verdict = 'failed';
    t.events.publish({ type: 'signature.verified', at: new Date(), origin: undefined, repository: 'team/app', digest: DIGEST, verdict: 'failed', outcome: 'failure', policyVersion: 1, trigger: 'api', signatures: 1, signers: [], attestations: [] });
    await settle();
    const res = await t.admit('web2');
    assert.ok(t.world.inputs >= 2, 'gathered again (the grace review of the deployed digest reads them too)');
    const before = t.world.inputs;
    assert.equal(res.allowed, false);
    t.events.publish({ type: 'trust-policy.changed', at: new Date(), origin: undefined, project: 'team', change: 'updated', version: 2, requireSignatureToPull: false, keys: [] });
    await settle();
    await t.admit('web3');
    assert.equal(t.world.inputs, before + 1);
    assert.ok(t.controller.evaluations >= 3);
  });

  it('namespace include lists, and external images allowed by configuration', async () => {
    const t = setup({ namespaces: { include: ['prod'], exclude: [] }, external: { action: 'allow', allow: [] } });
    t.world.verdict = 'unsigned';
    assert.equal((await t.admit('web', { namespace: 'dev' })).allowed, true, 'not an included namespace');
    assert.equal((await t.admit('web', { namespace: 'prod' })).allowed, false);
    assert.equal((await t.admit('web', { namespace: 'prod', image: 'ghcr.io/x/y:1' })).allowed, true);
    const patch = await t.controller.mutate(parseReview(review(workloadObject('Pod', 'p', 'dev', { containers: [{ name: 'a', image: `${HOST}/team/app:v1` }] }))));
    assert.equal(patch.patch, undefined, 'excluded namespaces are not mutated either');
  });

  it('images of a project without a policy are allowed and recorded', async () => {
    const t = setup();
    const res = await t.admit('tool', { image: `${HOST}/other/tool:v1` });
    assert.equal(res.allowed, false, 'other/tool:v1 does not exist');
    assert.match(res.status!.message, /tag v1 is not in repository other\/tool/);
  });
});
