/**
 * AdmissionReview v1 (admission.k8s.io/v1) in and out, and the containers of every workload kind
 * that embeds a pod spec. The API server sends `request` (uid, kind, operation, namespace, name,
 * object, oldObject, dryRun, ...) and expects `response` with the same uid, `allowed`, an optional
 * `status` (code, message), `warnings`, and for mutating webhooks a base64 JSONPatch.
 */
import { z } from 'zod';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

/** Where each workload kind keeps its pod spec (JSON pointer segments from the object root). */
export const POD_SPEC_PATHS: Record<string, { group: string; path: string[] }> = {
  Pod: { group: '', path: ['spec'] },
  Deployment: { group: 'apps', path: ['spec', 'template', 'spec'] },
  StatefulSet: { group: 'apps', path: ['spec', 'template', 'spec'] },
  DaemonSet: { group: 'apps', path: ['spec', 'template', 'spec'] },
  ReplicaSet: { group: 'apps', path: ['spec', 'template', 'spec'] },
  ReplicationController: { group: '', path: ['spec', 'template', 'spec'] },
  Job: { group: 'batch', path: ['spec', 'template', 'spec'] },
  CronJob: { group: 'batch', path: ['spec', 'jobTemplate', 'spec', 'template', 'spec'] },
};

/** Resource names for the webhook rules (plural, per API group). */
export const WORKLOAD_RESOURCES: Array<{ group: string; resources: string[] }> = [
  { group: '', resources: ['pods', 'pods/ephemeralcontainers', 'replicationcontrollers'] },
  { group: 'apps', resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets'] },
  { group: 'batch', resources: ['jobs', 'cronjobs'] },
];

export const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

const kindSchema = z.object({ group: z.string(), version: z.string(), kind: z.string().min(1) });

const reviewSchema = z.object({
  apiVersion: z.literal(ADMISSION_API_VERSION, { message: `apiVersion must be ${ADMISSION_API_VERSION}` }),
  kind: z.literal('AdmissionReview', { message: 'kind must be AdmissionReview' }),
  request: z.object({
    uid: z.string().min(1).max(256),
    kind: kindSchema,
    resource: z.object({ group: z.string(), version: z.string(), resource: z.string() }).optional(),
    subResource: z.string().optional(),
    name: z.string().optional(),
    namespace: z.string().optional(),
    operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
    userInfo: z.object({ username: z.string().optional() }).loose().optional(),
    object: z.record(z.string(), z.unknown()).nullable().optional(),
    oldObject: z.record(z.string(), z.unknown()).nullable().optional(),
    dryRun: z.boolean().optional(),
  }).loose(),
}).loose();

export type AdmissionRequest = z.infer<typeof reviewSchema>['request'];

export class MalformedReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedReviewError';
  }
}

function pathOf(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(body)';
}

/** @throws MalformedReviewError naming the first bad fields */
export function parseReview(body: unknown): AdmissionRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new MalformedReviewError('the body must be an AdmissionReview (admission.k8s.io/v1) JSON object');
  const result = reviewSchema.safeParse(body);
  if (!result.success) throw new MalformedReviewError(`not an AdmissionReview v1 request: ${result.error.issues.slice(0, 5).map((i) => `${pathOf(i.path)}: ${i.message}`).join('; ')}`);
  return result.data.request;
}

export interface AdmissionResponseBody {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
  patchType?: 'JSONPatch';
  patch?: string;
}

const MAX_WARNINGS = 32;
const MAX_WARNING_CHARS = 256;
const MAX_MESSAGE_CHARS = 4096;

/** The AdmissionReview answer; warnings are capped (the API server truncates long ones anyway). */
export function reviewResponse(r: AdmissionResponseBody): { apiVersion: string; kind: 'AdmissionReview'; response: AdmissionResponseBody } {
  const response: AdmissionResponseBody = { uid: r.uid, allowed: r.allowed };
  if (r.status) response.status = { ...r.status, message: r.status.message.slice(0, MAX_MESSAGE_CHARS) };
  if (r.warnings?.length) {
    const unique = [...new Set(r.warnings)].map((w) => (w.length > MAX_WARNING_CHARS ? `${w.slice(0, MAX_WARNING_CHARS - 1)}…` : w));
    response.warnings = unique.length > MAX_WARNINGS ? [...unique.slice(0, MAX_WARNINGS - 1), `and ${unique.length - MAX_WARNINGS + 1} more warnings`] : unique;
  }
  if (r.patch) {
    response.patchType = 'JSONPatch';
    response.patch = r.patch;
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

export interface ContainerRef {
  /** `containers`, `initContainers` or `ephemeralContainers`. */
  list: (typeof CONTAINER_LISTS)[number];
  name: string;
  image: string;
  /** JSON pointer of the container's `image` field. */
  pointer: string;
}

/** Thrown for an object whose pod spec has the wrong shape (answered as a 400 denial). */
export class InvalidObjectError extends Error {}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The containers of a workload object (pod spec at the kind's path); empty when it has no pod spec yet. */
export function containersOf(kind: string, object: Record<string, unknown>): ContainerRef[] {
  const where = POD_SPEC_PATHS[kind];
  if (!where) throw new InvalidObjectError(`kind ${kind} has no pod spec`);
  let node: unknown = object;
  for (const segment of where.path) {
    if (node === undefined || node === null) return [];
    if (typeof node !== 'object' || Array.isArray(node)) throw new InvalidObjectError(`${where.path.join('.')}: expected an object`);
    node = (node as Record<string, unknown>)[segment];
  }
  if (node === undefined || node === null) return [];
  if (typeof node !== 'object' || Array.isArray(node)) throw new InvalidObjectError(`${where.path.join('.')}: expected an object`);
  const spec = node as Record<string, unknown>;
  const out: ContainerRef[] = [];
  for (const list of CONTAINER_LISTS) {
    const items = spec[list];
    if (items === undefined || items === null) continue;
    if (!Array.isArray(items)) throw new InvalidObjectError(`${where.path.join('.')}.${list}: expected a list`);
    items.forEach((item, index) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new InvalidObjectError(`${where.path.join('.')}.${list}[${index}]: expected an object`);
      const c = item as Record<string, unknown>;
      // Workload templates may leave the image to config management; the pod will carry one.
      if (c['image'] === undefined || c['image'] === null || c['image'] === '') return;
      if (typeof c['image'] !== 'string') throw new InvalidObjectError(`${where.path.join('.')}.${list}[${index}].image: expected a string`);
      out.push({
        list,
        name: typeof c['name'] === 'string' ? c['name'] : `${list}[${index}]`,
        image: c['image'],
        pointer: `/${[...where.path, list, String(index), 'image'].map(escapePointer).join('/')}`,
      });
    });
  }
  return out;
}

interface OwnerReference {
  kind?: unknown;
  name?: unknown;
  controller?: unknown;
}

/**
 * The workload a restart is recognised by: a Pod or ReplicaSet made by a controller is known by
 * that controller (a Deployment's pods by the Deployment, through the ReplicaSet's
 * `pod-template-hash` suffix), a Job made by a CronJob, and its pods (through the Job's
 * `-<minutes>` suffix), by the CronJob; anything else by itself.
 * Pods created with `generateName` and no controller are known by the name prefix.
 */
export function workloadOf(kind: string, object: Record<string, unknown>, requestName: string | undefined): { kind: string; name: string } {
  const meta = (object['metadata'] ?? {}) as Record<string, unknown>;
  const name = (typeof meta['name'] === 'string' && meta['name']) || requestName || (typeof meta['generateName'] === 'string' ? meta['generateName'] : '');
  const owners = Array.isArray(meta['ownerReferences']) ? (meta['ownerReferences'] as OwnerReference[]) : [];
  const owner = owners.find((o) => o && o.controller === true && typeof o.kind === 'string' && typeof o.name === 'string');
  if (!owner) return { kind, name };
  const ownerKind = owner.kind as string;
  const ownerName = owner.name as string;
  const labels = (meta['labels'] ?? {}) as Record<string, unknown>;
  const hash = labels['pod-template-hash'];
  if (kind === 'Pod' && ownerKind === 'ReplicaSet' && typeof hash === 'string' && ownerName.endsWith(`-${hash}`)) {
    return { kind: 'Deployment', name: ownerName.slice(0, -(hash.length + 1)) };
  }
  // The CronJob controller names each run's Job `<cronjob>-<scheduled time in minutes>`: its pods
  // are that CronJob's, or every run would be a new deployment.
  const scheduled = /^(.+)-(\d{8,10})$/.exec(ownerName);
  if (kind === 'Pod' && ownerKind === 'Job' && scheduled) return { kind: 'CronJob', name: scheduled[1]! };
  if ((kind === 'ReplicaSet' && ownerKind === 'Deployment') || (kind === 'Job' && ownerKind === 'CronJob') || kind === 'Pod') return { kind: ownerKind, name: ownerName };
  return { kind, name };
}
