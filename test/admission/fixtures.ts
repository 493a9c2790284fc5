/**
 * AdmissionReview v1 requests as the API server sends them, per the Kubernetes API reference
 * (admission.k8s.io/v1 AdmissionReview; core/v1 Pod and ReplicationController; apps/v1
 * Deployment, StatefulSet, DaemonSet, ReplicaSet; batch/v1 Job and CronJob).
 */
import { randomUUID } from 'node:crypto';

export interface Containers {
  containers: Array<{ name: string; image: string }>;
  initContainers?: Array<{ name: string; image: string }>;
  ephemeralContainers?: Array<{ name: string; image: string }>;
}

function podSpec(c: Containers): Record<string, unknown> {
  return {
    restartPolicy: 'Always',
    ...(c.initContainers ? { initContainers: c.initContainers.map((x) => ({ ...x, imagePullPolicy: 'IfNotPresent' })) } : {}),
    containers: c.containers.map((x) => ({ ...x, ports: [{ containerPort: 8080, protocol: 'TCP' }], resources: {}, imagePullPolicy: 'IfNotPresent' })),
    ...(c.ephemeralContainers ? { ephemeralContainers: c.ephemeralContainers.map((x) => ({ ...x, targetContainerName: c.containers[0]?.name })) } : {}),
    dnsPolicy: 'ClusterFirst',
    terminationGracePeriodSeconds: 30,
  };
}

const template = (c: Containers, labels: Record<string, string>) => ({ metadata: { labels }, spec: podSpec(c) });

export const KINDS = {
  Pod: { group: '', version: 'v1', resource: 'pods', apiVersion: 'v1' },
  ReplicationController: { group: '', version: 'v1', resource: 'replicationcontrollers', apiVersion: 'v1' },
  Deployment: { group: 'apps', version: 'v1', resource: 'deployments', apiVersion: 'apps/v1' },
  StatefulSet: { group: 'apps', version: 'v1', resource: 'statefulsets', apiVersion: 'apps/v1' },
  DaemonSet: { group: 'apps', version: 'v1', resource: 'daemonsets', apiVersion: 'apps/v1' },
  ReplicaSet: { group: 'apps', version: 'v1', resource: 'replicasets', apiVersion: 'apps/v1' },
  Job: { group: 'batch', version: 'v1', resource: 'jobs', apiVersion: 'batch/v1' },
  CronJob: { group: 'batch', version: 'v1', resource: 'cronjobs', apiVersion: 'batch/v1' },
} as const;
export type WorkloadKind = keyof typeof KINDS;

/** The object of `kind` with these containers at the kind's pod spec. */
export function workloadObject(kind: WorkloadKind, name: string, namespace: string, c: Containers, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  const labels = { app: name };
  const meta = { name, namespace, labels, uid: randomUUID(), ...metadata };
  const head = { apiVersion: KINDS[kind].apiVersion, kind, metadata: meta };
  switch (kind) {
    case 'Pod':
      return { ...head, spec: podSpec(c), status: {} };
    case 'Deployment':
      return { ...head, spec: { replicas: 2, selector: { matchLabels: labels }, strategy: { type: 'RollingUpdate' }, template: template(c, labels) } };
    case 'StatefulSet':
      return { ...head, spec: { replicas: 1, serviceName: name, selector: { matchLabels: labels }, template: template(c, labels), volumeClaimTemplates: [] } };
    case 'DaemonSet':
      return { ...head, spec: { selector: { matchLabels: labels }, template: template(c, labels), updateStrategy: { type: 'RollingUpdate' } } };
    case 'ReplicaSet':
      return { ...head, spec: { replicas: 1, selector: { matchLabels: labels }, template: template(c, labels) } };
    case 'ReplicationController':
      return { ...head, spec: { replicas: 1, selector: labels, template: template(c, labels) } };
    case 'Job':
      return { ...head, spec: { backoffLimit: 6, completions: 1, template: { metadata: { labels }, spec: { ...podSpec(c), restartPolicy: 'Never' } } } };
    case 'CronJob':
      return { ...head, spec: { schedule: '*/5 * * * *', concurrencyPolicy: 'Forbid', jobTemplate: { spec: { template: { metadata: { labels }, spec: { ...podSpec(c), restartPolicy: 'OnFailure' } } } } } };
  }
}

export interface ReviewOptions {
  operation?: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  dryRun?: boolean;
  oldObject?: Record<string, unknown> | null;
  subResource?: string;
  name?: string;
}

/** An AdmissionReview v1 request for `object` (its kind, name and namespace). */
export function review(object: Record<string, unknown> | null, o: ReviewOptions & { kind?: WorkloadKind; namespace?: string } = {}): Record<string, unknown> {
  const kind = (o.kind ?? (object?.['kind'] as WorkloadKind)) as WorkloadKind;
  const k = KINDS[kind] ?? { group: 'example.com', version: 'v1', resource: 'widgets' };
  const meta = (object?.['metadata'] ?? {}) as { name?: string; namespace?: string };
  const operation = o.operation ?? 'CREATE';
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: k.group, version: k.version, kind },
      resource: { group: k.group, version: k.version, resource: k.resource },
      ...(o.subResource ? { subResource: o.subResource } : {}),
      requestKind: { group: k.group, version: k.version, kind },
      requestResource: { group: k.group, version: k.version, resource: k.resource },
      name: o.name ?? meta.name,
      namespace: o.namespace ?? meta.namespace,
      operation,
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: randomUUID(), groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: operation === 'DELETE' ? null : object,
      oldObject: operation === 'CREATE' || operation === 'CONNECT' ? null : (o.oldObject ?? object),
      dryRun: o.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'UPDATE' ? 'UpdateOptions' : operation === 'DELETE' ? 'DeleteOptions' : 'CreateOptions' },
    },
  };
}

/** RFC 6902 apply of the operations admission emits (replace/add/remove) to a copy of `doc`. */
export function applyJsonPatch(doc: unknown, patch: Array<{ op: string; path: string; value?: unknown }>): unknown {
  const out = structuredClone(doc);
  for (const op of patch) {
    const segments = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = segments.pop()!;
    let node = out as Record<string, unknown>;
    for (const s of segments) {
      const next = Array.isArray(node) ? (node as unknown[])[Number(s)] : node[s];
      if (next === undefined || next === null || typeof next !== 'object') throw new Error(`patch path ${op.path} does not exist`);
      node = next as Record<string, unknown>;
    }
    if (op.op === 'replace') {
      if (!(last in node)) throw new Error(`replace: ${op.path} does not exist`);
      node[last] = op.value;
    } else if (op.op === 'add') node[last] = op.value;
    else if (op.op === 'remove') delete node[last];
    else throw new Error(`unsupported op ${op.op}`);
  }
  return out;
}
