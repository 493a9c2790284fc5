/** The workload a restart is recognised by, from the object's controller owner reference. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { containersOf, workloadOf } from '../../src/registry/admission/review.ts';
import { KINDS, type WorkloadKind, workloadObject } from './fixtures.ts';

const owned = (kind: WorkloadKind, name: string, owner: { kind: string; name: string; controller?: boolean }, labels: Record<string, string> = {}) =>
  workloadObject(kind, name, 'ns', { containers: [{ name: 'c', image: 'x' }] }, { labels, ownerReferences: [{ apiVersion: 'apps/v1', uid: 'u', controller: true, ...owner }] });

describe('workload identity', () => {
  it('pods and replica sets of a Deployment are the Deployment (pod-template-hash)', () => {
    assert.deepEqual(workloadOf('Pod', owned('Pod', 'web-6d4cf56db6-2xk8p', { kind: 'ReplicaSet', name: 'web-6d4cf56db6' }, { 'pod-template-hash': '6d4cf56db6' }), undefined), { kind: 'Deployment', name: 'web' });
    assert.deepEqual(workloadOf('ReplicaSet', owned('ReplicaSet', 'web-6d4cf56db6', { kind: 'Deployment', name: 'web' }), undefined), { kind: 'Deployment', name: 'web' });
    // a bare ReplicaSet's pods (no hash label) are the ReplicaSet
    assert.deepEqual(workloadOf('Pod', owned('Pod', 'rs-abcde', { kind: 'ReplicaSet', name: 'rs' }), undefined), { kind: 'ReplicaSet', name: 'rs' });
  });

  it('pods of StatefulSets, DaemonSets, Jobs, ReplicationControllers are their controller', () => {
    for (const kind of ['StatefulSet', 'DaemonSet', 'Job', 'ReplicationController']) {
      assert.deepEqual(workloadOf('Pod', owned('Pod', 'p-0', { kind, name: 'db' }), undefined), { kind, name: 'db' });
    }
  });

  it('jobs of a CronJob and their pods are the CronJob', () => {
    assert.deepEqual(workloadOf('Job', owned('Job', 'nightly-29403840', { kind: 'CronJob', name: 'nightly' }), undefined), { kind: 'CronJob', name: 'nightly' });
    assert.deepEqual(workloadOf('Pod', owned('Pod', 'nightly-29403840-q7x2s', { kind: 'Job', name: 'nightly-29403840' }), undefined), { kind: 'CronJob', name: 'nightly' });
  });

  it('objects without a controller are themselves; generateName when the name is not set yet', () => {
    assert.deepEqual(workloadOf('Deployment', workloadObject('Deployment', 'api', 'ns', { containers: [] }), 'api'), { kind: 'Deployment', name: 'api' });
    const generated = workloadObject('Pod', 'x', 'ns', { containers: [] }, { name: undefined, generateName: 'debug-' });
    assert.deepEqual(workloadOf('Pod', generated, ''), { kind: 'Pod', name: 'debug-' });
    const notController = owned('Pod', 'p', { kind: 'ReplicaSet', name: 'rs', controller: false });
    assert.deepEqual(workloadOf('Pod', notController, undefined), { kind: 'Pod', name: 'p' });
  });

  it('finds the containers of every kind at its pod spec, with JSON pointers', () => {
    for (const kind of Object.keys(KINDS) as WorkloadKind[]) {
      const refs = containersOf(kind, workloadObject(kind, 'w', 'ns', { containers: [{ name: 'a', image: 'i1' }], initContainers: [{ name: 'b', image: 'i2' }] }));
      const base = kind === 'Pod' ? '/spec' : kind === 'CronJob' ? '/spec/jobTemplate/spec/template/spec' : '/spec/template/spec';
      assert.deepEqual(refs.map((r) => [r.list, r.name, r.image, r.pointer]), [['initContainers', 'b', 'i2', `${base}/initContainers/0/image`], ['containers', 'a', 'i1', `${base}/containers/0/image`]], kind);
    }
    assert.deepEqual(containersOf('Deployment', { spec: {} }), [], 'no template yet');
    assert.deepEqual(containersOf('Pod', { spec: { containers: [{ name: 'a' }] } }), [], 'no image (config management fills it)');
    assert.throws(() => containersOf('Pod', { spec: { containers: [{ name: 'a', image: 7 }] } }), /spec\.containers\[0\]\.image: expected a string/);
    assert.throws(() => containersOf('Job', { spec: { template: [] } }), /expected an object/);
  });
});
