/**
 * Fleet simulation (POST /api/v1/policy/simulate and PolicySimulator) on a seeded registry:
 * counts per enforcement point with reasons, recorded deployments that would fail on restart,
 * artifacts skipped, a global candidate not reaching projects with their own policy, paging over
 * the metadata store, nothing stored or enforced, bad candidates refused.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { EventBus } from '../../src/registry/events/bus.ts';
import { createPolicyEnforcer, MemoryPolicyStore } from '../../src/registry/policy/index.ts';
import { CompiledPolicy } from '../../src/registry/policy/evaluate.ts';
import { parsePolicy } from '../../src/registry/policy/document.ts';
import { PolicySimulator } from '../../src/registry/policy/simulate.ts';
import { pushCosignSignature, startTestRegistry, type TestRegistry } from '../signatures/registry-helpers.ts';

const CANDIDATE = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: fleet-next, project: fleet }
rules:
  - { name: no-old, kind: forbidden-tags, tags: ["old-*"], points: [pull, admission] }
  - { name: not-legacy, kind: cel, expression: '!image.repository.endsWith("/legacy")', points: [push], mode: warn }
`;

describe('policy simulation', () => {
  let t: TestRegistry;
  const digests: Record<string, string> = {};
  before(async () => {
    t = await startTestRegistry();
    for (let i = 1; i <= 8; i++) digests[`v${i}`] = (await t.pushImage('fleet/app', `v${i}`)).digest;
    for (const tag of ['old-1', 'old-2']) digests[tag] = (await t.pushImage('fleet/legacy', tag)).digest;
    // a tag-scheme signature (an image manifest in form) and a referrer: not evaluated
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await pushCosignSignature(t, 'fleet/app', digests['v1']!, key.privateKey);
    await pushCosignSignature(t, 'fleet/app', digests['v2']!, key.privateKey, { referrer: true });
    await t.pushImage('own/app', 'x');
    await t.request('PUT', '/api/v1/projects/own/policies', { body: 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: own, project: own }\nrules: [{ name: any, kind: forbidden-tags, tags: [nothing] }]\n', headers: { 'content-type': 'application/yaml' } });
    const deployments = t.registry.stores.deployments!;
    const at = new Date('2026-11-01T00:00:00Z');
    const workload = (name: string, digest: string, repository: string) => ({ cluster: 'c1', namespace: 'shop', workloadKind: 'Deployment', workloadName: name, container: 'app', digest, repository, image: `${repository}@${digest}` });
    await deployments.record([workload('a', digests['old-1']!, 'fleet/legacy'), workload('b', digests['old-1']!, 'fleet/legacy'), workload('c', digests['old-2']!, 'fleet/legacy'), workload('d', digests['v1']!, 'fleet/app'), workload('e', digests['v3']!, 'fleet/app')], at);
  });
  after(() => t.close());

  const simulate = (body: string, query = '') => t.request('POST', `/api/v1/policy/simulate${query}`, { body, headers: { 'content-type': 'application/yaml' } });

  it('reports what would be denied per point, with reasons, and the workloads that would fail on restart', async () => {
    const before = t.events.length;
    const res = await simulate(CANDIDATE);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const r = res.body;
    assert.deepEqual(r.scope, { project: 'fleet', points: ['push', 'pull', 'admission'] });
    assert.deepEqual(r.images, { evaluated: 10, skipped: 1, denied: 2 }, 'the .sig manifest is skipped, the referrer never listed');
    assert.deepEqual(r.points.pull, { evaluated: 10, denied: 2, warned: 0 });
    assert.deepEqual(r.points.push, { evaluated: 10, denied: 0, warned: 2 });
    assert.equal(r.workloads.recorded, true);
    assert.equal(r.workloads.evaluated, 5);
    assert.equal(r.workloads.wouldFail, 3);
    assert.deepEqual(r.workloads.items.map((w: { workload: { name: string } }) => w.workload.name).sort(), ['a', 'b', 'c']);
    assert.match(r.workloads.items[0].denials[0], /rule no-old: tag old-\d matches forbidden pattern old-\*/);
    const legacy = r.denied.find((d: { tags: string[] }) => d.tags.includes('old-1'));
    assert.deepEqual(legacy.points.pull.denials, ['rule no-old: tag old-1 matches forbidden pattern old-*']);
    assert.deepEqual(legacy.points.push.warnings, ['rule not-legacy: expression is false: !image.repository.endsWith("/legacy")']);
    assert.match(r.summary, /2 of 10 images would be denied at pull; 3 of 5 running workloads would fail on restart/);
    // nothing was enforced, published as a decision or stored
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(!t.events.slice(before).some((e) => e.type === 'policy.decision'));
    assert.equal((await t.request('GET', '/api/v1/projects/fleet/policies')).body.current, null);
    assert.equal((await t.request('GET', '/v2/fleet/legacy/manifests/old-1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).status, 200);
  });

  it('a global candidate does not reach projects with their own policy; points and limits narrow the report', async () => {
    const global = CANDIDATE.replace('project: fleet', 'project: global');
    const res = await simulate(global, '?point=pull&limit=1');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.shadowedProjects, ['own']);
    assert.equal(res.body.scope.project, null);
    assert.deepEqual(res.body.scope.points, ['pull']);
    assert.equal(res.body.images.denied, 2);
    assert.equal(res.body.denied.length, 1);
    assert.equal(res.body.truncated, true);
    assert.match(res.body.summary, /\(not applied to own: they have a policy of their own\)/);
    const fleetOnly = await simulate(global, '?project=own');
    assert.equal(fleetOnly.body.images.evaluated, 0);
  });

  it('refuses bad candidates and parameters with clear errors', async () => {
    const bad = await simulate(CANDIDATE.replace('kind: forbidden-tags', 'kind: forbidden-tag'));
    assert.equal(bad.status, 400);
    assert.match(bad.body.errors[0].message, /rules\[0\]\.kind/);
    assert.equal((await simulate(CANDIDATE, '?project=other')).status, 400, 'a fleet policy cannot be simulated on another project');
    assert.equal((await simulate(CANDIDATE, '?point=mars')).status, 400);
    assert.equal((await simulate(CANDIDATE, '?limit=-1')).status, 400);
    assert.equal((await simulate('')).status, 400);
  });

  it('pages over the metadata store (PolicySimulator with a small page)', async () => {
    const stores = t.registry.stores;
    const enforcer = await createPolicyEnforcer({ meta: stores.meta, blobs: stores.blobs, events: new EventBus() }, new MemoryPolicyStore(), { enabled: true, files: [] } as never);
    const simulator = new PolicySimulator({ meta: stores.meta, policy: enforcer }, { pageSize: 3 });
    const origin = { clientAddress: '127.0.0.1', userAgent: undefined, requestId: 'sim', actor: { kind: 'system' as const } };
    const report = await simulator.simulate(new CompiledPolicy(parsePolicy(CANDIDATE)), origin);
    assert.deepEqual(report.images, { evaluated: 10, skipped: 1, denied: 2 });
    assert.equal(report.workloads.recorded, false);
    assert.equal(report.points.admission.denied, 2, 'without deployment records, admission is evaluated once per image');
  });
});
