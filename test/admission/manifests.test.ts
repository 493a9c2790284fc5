/** `portcullis admission manifests`: the webhook configurations a cluster needs, as YAML documents. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const bin = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const CA = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';

function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
    execFile(process.execPath, [bin, ...args], { cwd, env, encoding: 'utf8' }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
  });
}

describe('portcullis admission manifests', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-manifests-'));
    await writeFile(join(dir, 'ca.pem'), CA);
    await writeFile(join(dir, 'config.yaml'), 'server: { listen: "127.0.0.1:8443" }\nadmission: { failurePolicy: Ignore, timeoutSeconds: 3, namespaces: { include: [prod, staging], exclude: [kube-system, monitoring] } }\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('prints Service, mutating and validating webhooks for an in-cluster registry', async () => {
    const r = await cli(['admission', 'manifests', '--service', 'portcullis', '--namespace', 'registry', '--ca-bundle', 'ca.pem', '--config', 'config.yaml'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /subjectAltName=DNS:portcullis\.registry\.svc/);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind), ['Service', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    assert.equal(docs[0].spec.ports[0].targetPort, 8443);
    for (const [doc, path] of [[docs[1], '/admission/mutate'], [docs[2], '/admission/validate']] as const) {
      const w = doc.webhooks[0];
      assert.deepEqual(w.admissionReviewVersions, ['v1']);
      assert.equal(w.sideEffects, 'NoneOnDryRun');
      assert.equal(w.failurePolicy, 'Ignore');
      assert.equal(w.timeoutSeconds, 3);
      assert.equal(w.matchPolicy, 'Equivalent');
      assert.deepEqual(w.clientConfig.service, { namespace: 'registry', name: 'portcullis', path, port: 443 });
      assert.equal(Buffer.from(w.clientConfig.caBundle, 'base64').toString(), CA);
      assert.deepEqual(w.namespaceSelector.matchExpressions, [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'monitoring', 'registry'] },
        { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['prod', 'staging'] },
      ]);
      const resources = w.rules.flatMap((rule: { apiGroups: string[]; resources: string[]; operations: string[] }) => rule.resources.map((res) => `${rule.apiGroups[0]}/${res}:${rule.operations.join(',')}`));
      assert.deepEqual(resources.sort(), ['/pods/ephemeralcontainers:CREATE,UPDATE', '/pods:CREATE,UPDATE', '/replicationcontrollers:CREATE,UPDATE', 'apps/daemonsets:CREATE,UPDATE', 'apps/deployments:CREATE,UPDATE', 'apps/replicasets:CREATE,UPDATE', 'apps/statefulsets:CREATE,UPDATE', 'batch/cronjobs:CREATE,UPDATE', 'batch/jobs:CREATE,UPDATE']);
    }
    assert.equal(docs[1].webhooks[0].reinvocationPolicy, 'IfNeeded');
  });

  it('points at an external URL, with defaults from an empty configuration', async () => {
    const r = await cli(['admission', 'manifests', '--url', 'https://registry.example.com:8443/'], dir);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind), ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    assert.equal(docs[1].webhooks[0].clientConfig.url, 'https://registry.example.com:8443/admission/validate');
    assert.equal(docs[1].webhooks[0].failurePolicy, 'Fail');
    assert.equal(docs[1].webhooks[0].timeoutSeconds, 5);
    assert.match(r.stdout, /caBundle is not set/);
  });

  it('refuses bad arguments with a clear message', async () => {
    for (const [args, message] of [
      [['admission', 'manifests'], /give --url .* or --service/],
      [['admission', 'manifests', '--url', 'http://x'], /over https/],
      [['admission', 'manifests', '--url', 'https://x/admission'], /without a path/],
      [['admission', 'manifests', '--service', 's', '--url', 'https://x'], /not both/],
      [['admission', 'manifests', '--service', 's', '--ca-bundle', 'config.yaml'], /not a PEM certificate/],
      [['admission', 'nothing'], /Usage/],
    ] as const) {
      const r = await cli([...args], dir);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, message);
    }
  });
});
