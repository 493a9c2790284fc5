/**
 * `portcullis admission manifests`: the ValidatingWebhookConfiguration, the
 * MutatingWebhookConfiguration and (for an in-cluster registry) the Service, as YAML, with the
 * certificate steps as comments. The webhooks match CREATE and UPDATE of pods (and their
 * ephemeral containers) and of every workload kind with a pod template, skip excluded
 * namespaces by label (`kubernetes.io/metadata.name`), and declare `sideEffects: NoneOnDryRun`
 * (deployment records are written only when the request is not a dry run).
 */
import { stringify } from 'yaml';
import { WORKLOAD_RESOURCES } from './review.ts';

export interface ManifestOptions {
  /** In-cluster Service name (with `namespace`); exclusive with `url`. */
  service?: string | undefined;
  namespace: string;
  /** External base URL, e.g. https://registry.example.com (no path, query or fragment). */
  url?: string | undefined;
  /** PEM CA bundle that signed the registry's (or admission listener's) certificate. */
  caBundlePem?: string | undefined;
  /** Port the registry pod serves the webhooks on (Service targetPort). */
  targetPort: number;
  name: string;
  failurePolicy: 'Fail' | 'Ignore';
  timeoutSeconds: number;
  namespaces: { include: string[]; exclude: string[] };
}

export function webhookManifests(o: ManifestOptions): string {
  if (!o.url && !o.service) throw new Error('give --url (a registry outside the cluster) or --service (a Service in --namespace)');
  if (o.url && !/^https:\/\/[^/?#\s]+$/.test(o.url.replace(/\/$/, ''))) throw new Error(`--url ${o.url}: the API server calls webhooks over https; give https://HOST[:PORT] without a path`);
  const caBundle = o.caBundlePem ? Buffer.from(o.caBundlePem).toString('base64') : undefined;
  const clientConfig = (path: string) => ({
    ...(o.url ? { url: `${o.url.replace(/\/$/, '')}${path}` } : { service: { namespace: o.namespace, name: o.service, path, port: 443 } }),
    ...(caBundle ? { caBundle } : {}),
  });
  // The registry's own namespace is never evaluated: its pods must start even when it is down.
  const exclude = [...new Set([...o.namespaces.exclude, ...(o.service ? [o.namespace] : [])])];
  const matchExpressions = [
    ...(exclude.length ? [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: exclude }] : []),
    ...(o.namespaces.include.length ? [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: o.namespaces.include }] : []),
  ];
  const rules = WORKLOAD_RESOURCES.map((r) => ({ apiGroups: [r.group], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: r.resources, scope: 'Namespaced' }));
  const webhook = (path: string, name: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    clientConfig: clientConfig(path),
    rules,
    matchPolicy: 'Equivalent',
    namespaceSelector: { matchExpressions },
    failurePolicy: o.failurePolicy,
    sideEffects: 'NoneOnDryRun',
    timeoutSeconds: o.timeoutSeconds,
  });
  const docs: unknown[] = [];
  if (o.service) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: o.service, namespace: o.namespace, labels: { 'app.kubernetes.io/name': 'portcullis' } },
      spec: { selector: { 'app.kubernetes.io/name': 'portcullis' }, ports: [{ name: 'https-admission', port: 443, targetPort: o.targetPort, protocol: 'TCP' }] },
    });
  }
  docs.push({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: `${o.name}-pin-digests`, labels: { 'app.kubernetes.io/name': 'portcullis' } },
    webhooks: [{ ...webhook('/admission/mutate', 'pin-digests.portcullis.dev'), reinvocationPolicy: 'IfNeeded' }],
  });
  docs.push({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: `${o.name}-policy`, labels: { 'app.kubernetes.io/name': 'portcullis' } },
    webhooks: [webhook('/admission/validate', 'policy.portcullis.dev')],
  });
  const host = o.service ? `${o.service}.${o.namespace}.svc` : new URL(o.url!).hostname;
  const header = [
    '# Portcullis admission webhooks (docs/policy.md#admission).',
    '#',
    '# Certificates: the API server calls the webhooks over HTTPS and checks the serving certificate',
    `# against caBundle. The certificate must name ${host} in its subjectAltName, e.g.:`,
    '#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \\',
    `#     -keyout admission.key -out admission.crt -subj "/CN=${host}" -addext "subjectAltName=DNS:${host}"`,
    '# then set server.tls (or admission.listen + admission.tls) to admission.crt/admission.key and',
    '# pass --ca-bundle admission.crt (or the CA that signed it) to this command.',
    ...(caBundle ? [] : ['# caBundle is not set: give --ca-bundle FILE, or the API server must trust the certificate already.']),
    '#',
    '# Caller authentication: give the API server the bearer token in admission.auth.tokenFile through',
    '# its --admission-control-config-file (AdmissionConfiguration -> WebhookAdmissionConfiguration',
    `# kubeConfigFile with a user "${host}" and token), or a client certificate from`,
    '# admission.tls.clientCaFile (mTLS on admission.listen).',
    '',
  ].join('\n');
  return header + docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}
