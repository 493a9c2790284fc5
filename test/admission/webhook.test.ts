/**
 * The admission webhooks over real HTTP against an in-process registry: AdmissionReview v1 for
 * every workload kind, every container list, every image reference form; malformed reviews,
 * unknown kinds, dryRun, UPDATE/DELETE/CONNECT, warn and audit modes, external registries,
 * namespace exclusion, caller authentication, mutation patches (applied), deployment records.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RegistryEvent } from '../../src/registry/events/bus.ts';
import { applyJsonPatch, KINDS, review, type WorkloadKind, workloadObject } from './fixtures.ts';
import { type AdmissionHarness, HOST, settle, startAdmissionRegistry, TOKEN } from './helpers.ts';

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: cluster-policy, project: team, version: 2 }
rules:
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [admission] }
  - { name: linux-only, kind: cel, expression: 'image.platform.os == "linux"', points: [admission] }
  - { name: owner, kind: required-labels, labels: [owner], mode: warn, points: [admission] }
  - { name: no-debug-in-prod, kind: cel, expression: '!(admission.namespace == "prod" && "debug" in image.labels)', points: [admission] }
  - { name: watch-batch, kind: cel, expression: 'admission.workload.kind != "CronJob"', mode: audit, points: [admission] }
`;

const ALL_KINDS = Object.keys(KINDS) as WorkloadKind[];

describe('admission webhooks over HTTP', () => {
  let h: AdmissionHarness;
  let good: string;
  let windows: string;
  let unowned: string;
  let debug: string;

  before(async () => {
    h = await startAdmissionRegistry(POLICY, [{ path: ['admission', 'external', 'allow'], value: ['registry.k8s.io/*'] }]);
    good = await h.image('team/app', '1.0', { labels: { owner: 'team' } });
    await h.image('team/app', 'latest', { labels: { owner: 'team' } });
    windows = await h.image('team/win', '1.0', { os: 'windows', labels: { owner: 'team' } });
    unowned = await h.image('team/app', '2.0');
    debug = await h.image('team/app', 'debug', { labels: { owner: 'team', debug: 'yes' } });
  });
  after(() => h.close());

  const img = (ref: string) => `${HOST}/${ref}`;

  for (const kind of ALL_KINDS) {
    it(`${kind}: allows a compliant image and denies a forbidden tag, naming container and rule`, async () => {
      const ok = await h.call('validate', review(workloadObject(kind, `ok-${kind.toLowerCase()}`, 'apps', { containers: [{ name: 'app', image: img('team/app:1.0') }] })));
      assert.equal(ok.status, 200);
      assert.equal(ok.body.apiVersion, 'admission.k8s.io/v1');
      assert.equal(ok.body.kind, 'AdmissionReview');
      assert.equal(ok.body.response.allowed, true, JSON.stringify(ok.body));
      const rv = review(workloadObject(kind, `bad-${kind.toLowerCase()}`, 'apps', { containers: [{ name: 'app', image: img('team/app:1.0') }], initContainers: [{ name: 'migrate', image: img('team/app:latest') }] }));
      const denied = await h.call('validate', rv);
      assert.equal(denied.body.response.uid, (rv['request'] as { uid: string }).uid, 'uid echoed');
      assert.equal(denied.body.response.allowed, false);
      assert.equal(denied.body.response.status.code, 403);
      assert.match(denied.body.response.status.message, new RegExp(`portcullis denied ${kind} apps/bad-${kind.toLowerCase()}: init container migrate: registry.test:5000/team/app:latest denied by policy cluster-policy v2: rule no-latest: tag latest matches forbidden pattern latest`));
    });

    it(`${kind}: the mutating webhook pins every tag of this registry to its digest (JSONPatch applied)`, async () => {
      const object = workloadObject(kind, `pin-${kind.toLowerCase()}`, 'apps', {
        containers: [{ name: 'app', image: img('team/app:1.0') }, { name: 'pause', image: 'registry.k8s.io/pause:3.9' }, { name: 'pinned', image: img(`team/app@${good}`) }],
        initContainers: [{ name: 'init', image: img('team/win:1.0') }],
      });
      const res = await h.call('mutate', review(object));
      assert.equal(res.status, 200);
      assert.equal(res.body.response.allowed, true);
      assert.equal(res.body.response.patchType, 'JSONPatch');
      const patch = JSON.parse(Buffer.from(res.body.response.patch, 'base64').toString('utf8'));
      assert.equal(patch.length, 2, 'the external image and the pinned one are left alone');
      const patched = applyJsonPatch(object, patch) as Record<string, any>;
      let spec = patched;
      for (const s of ({ Pod: ['spec'], CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'] } as Record<string, string[]>)[kind] ?? ['spec', 'template', 'spec']) spec = spec[s];
      assert.deepEqual(spec['containers'].map((c: { image: string }) => c.image), [img(`team/app:1.0@${good}`), 'registry.k8s.io/pause:3.9', img(`team/app@${good}`)]);
      assert.deepEqual(spec['initContainers'].map((c: { image: string }) => c.image), [img(`team/win:1.0@${windows}`)]);
      // what was pinned is what the validating webhook then checks
      const checked = await h.call('validate', review(patched));
      assert.equal(checked.body.response.allowed, false);
      assert.match(checked.body.response.status.message, /init container init: .*team\/win:1\.0@sha256:[0-9a-f]{64} denied .*rule linux-only: expression is false/);
    });
  }

  it('evaluates init and ephemeral containers of a pod (ephemeralcontainers sub-resource)', async () => {
    const pod = workloadObject('Pod', 'debugged', 'apps', { containers: [{ name: 'app', image: img('team/app:1.0') }] });
    const withEphemeral = workloadObject('Pod', 'debugged', 'apps', { containers: [{ name: 'app', image: img('team/app:1.0') }], ephemeralContainers: [{ name: 'shell', image: img('team/win:1.0') }] });
    const res = await h.call('validate', review(withEphemeral, { operation: 'UPDATE', oldObject: pod, subResource: 'ephemeralcontainers' }));
    assert.equal(res.body.response.allowed, false);
    assert.match(res.body.response.status.message, /ephemeral container shell: .*linux-only/);
    const patch = await h.call('mutate', review(withEphemeral, { operation: 'UPDATE', oldObject: pod, subResource: 'ephemeralcontainers' }));
    assert.deepEqual(JSON.parse(Buffer.from(patch.body.response.patch, 'base64').toString()), [{ op: 'replace', path: '/spec/ephemeralContainers/0/image', value: img(`team/win:1.0@${windows}`) }]);
  });

  it('image references in every form', async () => {
    const cases: Array<[string, boolean, RegExp?]> = [
      [img('team/app:1.0'), true],
      [img(`team/app@${good}`), true],
      [img(`team/app:1.0@${good}`), true],
      [img(`team/app:whatever@${good}`), true], // the runtime pulls the digest; the tag is not evaluated as moved
      [img('team/app'), false, /tag latest .*forbidden|no-latest/], // no tag means latest
      [img(`team/app@sha256:${'0'.repeat(64)}`), false, /manifest sha256:0+ is not in repository team\/app/],
      [img('team/app:9.9'), false, /tag 9\.9 is not in repository team\/app/],
      [img('team/Bad:1'), false, /is invalid: team\/Bad is not a valid repository name/],
      ['nginx', false, /image nginx is from docker\.io, not this registry/],
      ['nginx:1.27', false, /from docker\.io/],
      [`docker.io/library/nginx@sha256:${'1'.repeat(64)}`, false, /from docker\.io/],
      ['quay.io/team/app:v1', false, /from quay\.io/],
      ['registry.k8s.io/pause:3.9', true],
      ['registry.k8s.io/sub/pause:3.9', true],
      ['registry.test:5001/team/app:1.0', false, /from registry\.test:5001/],
    ];
    for (const [image, allowed, reason] of cases) {
      const res = await h.call('validate', review(workloadObject('Pod', 'forms', 'apps', { containers: [{ name: 'c', image }] })));
      assert.equal(res.body.response.allowed, allowed, `${image}: ${JSON.stringify(res.body.response)}`);
      if (reason) assert.match(res.body.response.status.message, reason, image);
    }
  });

  it('warn rules become AdmissionReview warnings; audit rules only events', async () => {
    h.events.length = 0;
    const res = await h.call('validate', review(workloadObject('CronJob', 'nightly', 'apps', { containers: [{ name: 'job', image: img('team/app:2.0') }] })));
    assert.equal(res.body.response.allowed, true);
    assert.deepEqual(res.body.response.warnings, [`${img('team/app:2.0')}: rule owner: label owner is missing`]);
    await settle();
    const decision = h.events.find((e): e is Extract<RegistryEvent, { type: 'policy.decision' }> => e.type === 'policy.decision' && e.point === 'admission' && e.digest === unowned);
    assert.ok(decision);
    assert.deepEqual(decision.rules.map((r) => `${r.rule}:${r.mode}:${r.outcome}`), ['owner:warn:fail', 'watch-batch:audit:fail']);
    assert.deepEqual(decision.admission, { cluster: 'test-cluster', namespace: 'apps', workload: { kind: 'CronJob', name: 'nightly' }, container: 'job', operation: 'CREATE', dryRun: false, restart: false });
    assert.equal(decision.origin?.actor.name, 'system:serviceaccount:kube-system:replicaset-controller');
  });

  it('CEL rules see the Kubernetes facts (namespace)', async () => {
    const pod = (ns: string) => review(workloadObject('Pod', 'dbg', ns, { containers: [{ name: 'c', image: img('team/app:debug') }] }));
    assert.equal((await h.call('validate', pod('staging'))).body.response.allowed, true);
    const prod = await h.call('validate', pod('prod'));
    assert.equal(prod.body.response.allowed, false);
    assert.match(prod.body.response.status.message, /rule no-debug-in-prod: expression is false/);
    assert.ok(debug);
  });

  it('excluded namespaces are not evaluated (kube-system by default)', async () => {
    const res = await h.call('validate', review(workloadObject('DaemonSet', 'kube-proxy', 'kube-system', { containers: [{ name: 'c', image: 'nginx:latest' }] })));
    assert.equal(res.body.response.allowed, true);
    const m = await h.call('mutate', review(workloadObject('DaemonSet', 'kube-proxy', 'kube-system', { containers: [{ name: 'c', image: img('team/app:1.0') }] })));
    assert.equal(m.body.response.patch, undefined);
  });

  it('DELETE and CONNECT are allowed; UPDATE evaluates only changed images; updates during deletion pass', async () => {
    const bad = workloadObject('Deployment', 'web', 'apps', { containers: [{ name: 'c', image: img('team/win:1.0') }] });
    assert.equal((await h.call('validate', review(null, { kind: 'Deployment', operation: 'DELETE', name: 'web', namespace: 'apps', oldObject: bad }))).body.response.allowed, true);
    assert.equal((await h.call('validate', review(bad, { operation: 'CONNECT' }))).body.response.allowed, true);
    // a label edit of a workload whose image was admitted before is not blocked
    const relabelled = { ...bad, metadata: { ...(bad['metadata'] as object), labels: { app: 'web', tier: 'x' } } };
    assert.equal((await h.call('validate', review(relabelled, { operation: 'UPDATE', oldObject: bad }))).body.response.allowed, true);
    // changing the image is evaluated
    const good = workloadObject('Deployment', 'web', 'apps', { containers: [{ name: 'c', image: img('team/app:1.0') }] });
    const changed = await h.call('validate', review(bad, { operation: 'UPDATE', oldObject: good }));
    assert.equal(changed.body.response.allowed, false);
    assert.match(changed.body.response.status.message, /linux-only/);
    const deleting = { ...bad, metadata: { ...(bad['metadata'] as object), deletionTimestamp: '2026-11-27T00:00:00Z' } };
    assert.equal((await h.call('validate', review(deleting, { operation: 'UPDATE', oldObject: good }))).body.response.allowed, true);
    assert.equal((await h.call('validate', review(bad, { operation: 'UPDATE', oldObject: good, subResource: 'status' }))).body.response.allowed, true);
  });

  it('malformed reviews get HTTP 400 with a clear message; malformed objects a 400 denial', async () => {
    const cases: Array<[unknown, RegExp]> = [
      ['{not json', /the body is not JSON/],
      ['[]', /must be an AdmissionReview/],
      [{ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }, /apiVersion must be admission\.k8s\.io\/v1/],
      [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request: /],
      [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE' } }, /request\.uid/],
      [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'PATCH' } }, /request\.operation/],
    ];
    for (const [body, message] of cases) {
      const res = await h.call('validate', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.errors[0].message, message);
    }
    const wrongType = await fetch(`${h.base}/admission/validate`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(wrongType.status, 415);
    const pod = workloadObject('Pod', 'broken', 'apps', { containers: [] });
    (pod['spec'] as Record<string, unknown>)['containers'] = 'nginx';
    const broken = await h.call('validate', review(pod));
    assert.equal(broken.status, 200);
    assert.equal(broken.body.response.allowed, false);
    assert.equal(broken.body.response.status.code, 400);
    assert.match(broken.body.response.status.message, /malformed Pod: spec\.containers: expected a list/);
    const noObject = await h.call('validate', review(null, { kind: 'Pod', operation: 'CREATE', name: 'x', namespace: 'apps' }));
    assert.equal(noObject.body.response.allowed, false);
    assert.match(noObject.body.response.status.message, /request\.object is missing/);
  });

  it('unknown kinds are denied by default (admission.unknownKinds)', async () => {
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'apps' }, spec: { image: 'nginx' } };
    const res = await h.call('validate', review(widget, { kind: 'Widget' as WorkloadKind }));
    assert.equal(res.body.response.allowed, false);
    assert.equal(res.body.response.status.code, 400);
    assert.match(res.body.response.status.message, /not example\.com\/v1\/Widget \(admission\.unknownKinds: deny\)/);
    // a Deployment of another API group is not apps/Deployment
    const rv = review(workloadObject('Deployment', 'x', 'apps', { containers: [{ name: 'c', image: img('team/app:1.0') }] })) as { request: { kind: { group: string } } };
    rv.request.kind.group = 'example.com';
    assert.equal((await h.call('validate', rv)).body.response.allowed, false);
  });

  it('refuses callers without the admission token', async () => {
    const body = review(workloadObject('Pod', 'p', 'apps', { containers: [{ name: 'c', image: img('team/app:1.0') }] }));
    const none = await fetch(`${h.base}/admission/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(none.status, 401);
    assert.match(await none.text(), /need the admission bearer token or a client certificate/);
    const wrong = await h.call('validate', body, { authorization: `Bearer ${TOKEN.slice(0, -1)}x` });
    assert.equal(wrong.status, 401);
    assert.equal((await h.call('mutate', body, { authorization: 'Basic YTpi' })).status, 401);
  });

  it('records allowed admissions (not dry runs) and lists them by digest, repository, namespace', async () => {
    const obj = workloadObject('StatefulSet', 'db', 'records', { containers: [{ name: 'db', image: img('team/app:1.0') }], initContainers: [{ name: 'init', image: 'registry.k8s.io/pause:3.9' }] });
    assert.equal((await h.call('validate', review(obj, { dryRun: true }))).body.response.allowed, true);
    const list = async (q: string) => (await (await fetch(`${h.base}/api/v1/deployments?${q}`)).json()) as { deployments: Array<Record<string, unknown>> };
    assert.deepEqual((await list('namespace=records')).deployments, [], 'a dry run records nothing');
    assert.equal((await h.call('validate', review(obj))).body.response.allowed, true);
    const first = (await list('namespace=records')).deployments;
    assert.equal(first.length, 1, 'only images of this registry are recorded');
    assert.deepEqual({ ...first[0], firstSeen: undefined, lastSeen: undefined }, {
      cluster: 'test-cluster', namespace: 'records', workload: { kind: 'StatefulSet', name: 'db' }, container: 'db', repository: 'team/app', digest: good, image: img('team/app:1.0'), firstSeen: undefined, lastSeen: undefined,
    });
    await new Promise((r) => setTimeout(r, 5));
    await h.call('validate', review(obj), { 'x-portcullis-cluster': 'ignored-without-clusterHeader' });
    const again = (await list(`digest=${good}&namespace=records`)).deployments;
    assert.equal(again.length, 1);
    assert.equal(again[0]!['firstSeen'], first[0]!['firstSeen']);
    assert.equal(again[0]!['lastSeen'], first[0]!['lastSeen'], 'last seen is refreshed at most once a minute');
    assert.ok((await list('repository=team/app')).deployments.length >= 1);
    const denied = workloadObject('StatefulSet', 'db2', 'records', { containers: [{ name: 'db', image: img('team/win:1.0') }] });
    await h.call('validate', review(denied));
    assert.equal((await list('namespace=records')).deployments.length, 1, 'a denial records nothing');
    for (const q of ['', 'digest=sha256:xyz', 'repository=Bad', 'namespace=x&limit=0']) {
      const res = await fetch(`${h.base}/api/v1/deployments?${q}`);
      assert.equal(res.status, 400, q);
    }
  });

  it('grace through the registry: a tightened policy lets a restart run with a warning and denies a new deployment', async () => {
    const web = review(workloadObject('Deployment', 'web', 'grace', { containers: [{ name: 'app', image: img('team/app:1.0') }] }));
    assert.equal((await h.call('validate', web)).body.response.allowed, true);
    const tightened = `${POLICY.replace('version: 2', 'version: 3')}  - { name: plan9-only, kind: cel, expression: 'image.platform.os == "plan9"', points: [admission], graceDays: 3 }\n`;
    const put = await fetch(`${h.base}/api/v1/projects/team/policies`, { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: tightened });
    assert.equal(put.status, 201, await put.text());
    try {
      const restart = await h.call('validate', review(workloadObject('Deployment', 'web', 'grace', { containers: [{ name: 'app', image: img('team/app:1.0') }] })));
      assert.equal(restart.body.response.allowed, true, JSON.stringify(restart.body));
      assert.match(restart.body.response.warnings.join('\n'), /rule plan9-only: expression is false: .* \(grace period until \d{4}-\d\d-\d\dT[^ ]+Z: Deployment\/web already ran this digest; new deployments are denied\)/);
      const fresh = await h.call('validate', review(workloadObject('Deployment', 'api', 'grace', { containers: [{ name: 'app', image: img('team/app:1.0') }] })));
      assert.equal(fresh.body.response.allowed, false);
      assert.match(fresh.body.response.status.message, /denied by policy cluster-policy v1: rule plan9-only/);
      await settle();
      assert.ok(h.events.some((e) => e.type === 'admission.grace' && e.action === 'opened' && e.rule === 'plan9-only' && e.digest === good));
    } finally {
      assert.equal((await fetch(`${h.base}/api/v1/projects/team/policies`, { method: 'DELETE' })).status, 204);
    }
  });
});
