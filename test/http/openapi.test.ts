/**
 * The management API's OpenAPI document (/api/v1/openapi.json) against the routes a registry with
 * every module enabled really registers: every /api/v1 route is documented and every documented
 * operation is a route (matched by the same router Fastify uses), the document is well formed, and
 * the answers of the capability modules' routes match the schemas it publishes. A registry with
 * the modules disabled documents none of their routes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import FindMyWay from 'find-my-way';
import { buildRegistry, type Registry } from '../../src/registry/app/build-app.ts';
import { validateConfig } from '../../src/registry/config/load.ts';
import { MAX_NAME_COMPONENTS } from '../../src/registry/signatures/http.ts';
import { buildImage, randomFile } from '../acceptance/helpers/oci.ts';
import { newKey, startTraceRegistry, type Res, type TraceHarness } from '../trace/support.ts';

type Operation = { operationId: string; summary: string; tags: string[]; parameters?: Array<{ name: string; in: string; required: boolean; schema: object }>; requestBody?: { content: Record<string, { schema: object }> }; responses: Record<string, { description: string; content?: Record<string, { schema: object }> }> };
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

const operations = (doc: Document) => Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));

/**
 * Compares the document with the routes registered under /api/v1 (both ways). Documented paths are
 * turned into URLs (a `{repository}` with 1 to MAX_NAME_COMPONENTS components: the signature
 * routes register one pattern per length) and looked up in a find-my-way router holding the
 * registered routes, so a wildcard route counts only when a documented URL reaches it.
 */
function compare(doc: Document, registered: ReadonlyArray<{ method: string; url: string }>): { undocumented: string[]; unserved: string[]; misnamed: string[] } {
  const routes = registered.filter((r) => r.url.startsWith('/api/v1/'));
  const router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, maxParamLength: 1024 });
  routes.forEach((r, index) => router.on(r.method as 'GET', r.url, () => undefined, { index }));
  const reached = new Set<number>();
  const unserved: string[] = [];
  const misnamed: string[] = [];
  for (const { path, method } of operations(doc)) {
    const repositories = path.includes('{repository}') ? Array.from({ length: MAX_NAME_COMPONENTS }, (_, n) => Array.from({ length: n + 1 }, (_, i) => `r${i}`).join('/')) : [''];
    let served = false;
    for (const repository of repositories) {
      const url = path.replace('{repository}', repository).replace(/\{\w+\}/g, 'x1');
      const found = router.find(method as 'GET', url) as { store: { index: number } } | null;
      if (!found) continue;
      served = true;
      reached.add(found.store.index);
      const pattern = routes[found.store.index]!.url;
      // path parameters named as the route names them (routes with a repository name are matched by URL)
      if (!path.includes('{repository}') && pattern.replace(/:(\w+)/g, '{$1}') !== path) misnamed.push(`${method} ${path} is served by ${pattern}`);
    }
    if (!served) unserved.push(`${method} ${path}`);
  }
  const undocumented = routes.filter((_, i) => !reached.has(i)).map((r) => `${r.method} ${r.url}`);
  return { undocumented, unserved, misnamed };
}

/** Structure: ids unique, path parameters declared (and only those), every operation answers something and its errors in the error format. */
function checkStructure(doc: Document): void {
  assert.equal(doc.openapi, '3.1.0');
  const ids = new Set<string>();
  for (const { path, method, op } of operations(doc)) {
    const where = `${method} ${path}`;
    assert.ok(path.startsWith('/api/v1/'), where);
    assert.ok(op.summary && op.tags?.length === 1 && op.operationId, `${where}: summary, tag, operationId`);
    assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`);
    ids.add(op.operationId);
    const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
    assert.deepEqual(declared.map((p) => p.name).sort(), [...inPath].sort(), `${where}: path parameters`);
    assert.ok(declared.every((p) => p.required === true), `${where}: path parameters are required`);
    for (const p of op.parameters ?? []) assert.ok(['path', 'query', 'header'].includes(p.in) && p.schema && typeof p.schema === 'object', `${where}: parameter ${p.name}`);
    const names = (op.parameters ?? []).map((p) => `${p.in}:${p.name}`);
    assert.equal(new Set(names).size, names.length, `${where}: duplicate parameters`);
    const statuses = Object.keys(op.responses);
    assert.ok(statuses.some((s) => /^2\d\d$/.test(s)), `${where}: a success answer`);
    for (const status of statuses) {
      const response = op.responses[status]!;
      assert.ok(response.description, `${where} ${status}: description`);
      for (const media of Object.values(response.content ?? {})) assert.ok(media.schema && typeof media.schema === 'object', `${where} ${status}: schema`);
      if (Number(status) >= 400) assert.deepEqual(Object.keys(response.content ?? {}), ['application/json'], `${where} ${status}: error body`);
    }
    for (const media of Object.values(op.requestBody?.content ?? {})) assert.ok(media.schema && typeof media.schema === 'object', `${where}: body schema`);
  }
  // references resolve inside the document (OpenAPI resolves `#/...` against the document root)
  for (const ref of JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)) {
    const target = ref[1]!.startsWith('#/') ? ref[1]!.slice(2).split('/').reduce<any>((node, key) => node?.[key.replaceAll('~1', '/').replaceAll('~0', '~')], doc) : undefined;
    assert.ok(target !== undefined, `unresolvable $ref ${ref[1]}`);
  }
}

describe('OpenAPI document of a registry with every module enabled', () => {
  let h: TraceHarness;
  let doc: Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);

  before(async () => {
    h = await startTraceRegistry({ kind: 'sqlite' }, [
      { path: ['audit', 'enabled'], value: true },
      { path: ['audit', 'api', 'enabled'], value: true },
      { path: ['metrics', 'enabled'], value: true },
      { path: ['auth', 'oidc', 'providers'], value: [{ name: 'corp', issuer: 'http://127.0.0.1:9/realms/corp', clientId: 'portcullis' }] },
    ]);
    const res = await h.request('GET', '/api/v1/openapi.json', { auth: null });
    assert.equal(res.status, 200);
    doc = res.body;
  });
  after(async () => {
    await h?.close();
  });

  test('every registered /api/v1 route is documented, and every documented operation is served', () => {
    const modules = ['/api/v1/vulndb', '/api/v1/exemptions', '/api/v1/vex', '/api/v1/projects/{project}/trust-policy', '/api/v1/projects/{project}/policies', '/api/v1/policy/simulate', '/api/v1/policy/explain', '/api/v1/promotions', '/api/v1/audit', '/api/v1/alerts', '/api/v1/trace/{digest}', '/api/v1/projects/{project}/webhooks', '/api/v1/projects/{project}/trust-rules', '/api/v1/oidc/providers', '/api/v1/projects/{project}/networks', '/api/v1/users'];
    for (const path of modules) assert.ok(doc.paths[path], `${path} in the document`);
    const { undocumented, unserved, misnamed } = compare(doc, h.registry.routes);
    assert.deepEqual(undocumented, [], 'registered but not in the OpenAPI document');
    assert.deepEqual(unserved, [], 'in the OpenAPI document but not served');
    assert.deepEqual(misnamed, [], 'parameter names differ from the route');
    // the check sees a missing description: drop the scanner's and its routes are reported
    const withoutScanner = { ...doc, paths: Object.fromEntries(Object.entries(doc.paths).filter(([p]) => !p.includes('/scans/') && p !== '/api/v1/vulndb')) };
    assert.deepEqual(compare(withoutScanner, h.registry.routes).undocumented.sort(), ['GET /api/v1/repositories/*', 'GET /api/v1/vulndb', 'POST /api/v1/repositories/*']);
    // routes outside /api/v1 (admission, /v2/, token endpoint) are not in it
    assert.ok(h.registry.routes.some((r) => r.url === '/admission/validate'));
    assert.ok(Object.keys(doc.paths).every((p) => p.startsWith('/api/v1/')));
  });

  test('the document is well formed: unique operationIds, declared path parameters, answers and errors described', () => {
    checkStructure(doc);
    assert.ok(operations(doc).length >= 80, `${operations(doc).length} operations`);
    const sbom = doc.paths['/api/v1/repositories/{repository}/scans/{reference}/sbom']!.get!;
    assert.deepEqual(Object.keys(sbom.responses['200']!.content!).sort(), ['application/spdx+json', 'application/vnd.cyclonedx+json']);
    assert.ok(sbom.parameters!.some((p) => p.in === 'query' && p.name === 'format'));
    const put = doc.paths['/api/v1/projects/{project}/trust-policy']!.put!;
    assert.ok(put.responses['201'] && put.responses['200'] && put.parameters!.some((p) => p.in === 'header' && p.name === 'If-Match'));
    assert.ok(doc.paths['/api/v1/exemptions']!.post!.requestBody!.content['application/json']!.schema);
    assert.ok(doc.paths['/api/v1/projects/{project}/policies']!.put!.requestBody!.content['application/yaml']);
  });

  /** Checks an answer against the document: status documented, body valid against its schema. */
  function conforms(method: string, path: string, res: Res): void {
    const op = doc.paths[path]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${path} documented`);
    const response = op.responses[String(res.status)];
    assert.ok(response, `${method} ${path}: status ${res.status} documented (${String(JSON.stringify(res.body ?? null)).slice(0, 300)})`);
    if (!response.content) return;
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!;
    const media = response.content[type];
    assert.ok(media, `${method} ${path}: ${type} documented for ${res.status}`);
    const validate = ajv.compile(media.schema);
    assert.ok(validate(res.body), `${method} ${path} ${res.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body).slice(0, 600)}`);
  }

  test("the capability modules' answers match their documented schemas", async () => {
    const call = async (method: string, path: string, url: string, options: Parameters<TraceHarness['request']>[2] = {}, expected?: number) => {
      const res = await h.request(method, `/api/v1${url}`, options);
      if (expected !== undefined) assert.equal(res.status, expected, `${method} ${url}: ${String(JSON.stringify(res.body ?? null)).slice(0, 300)}`);
      conforms(method, `/api/v1${path}`, res);
      return res;
    };
    assert.equal((await call('POST', '/projects', '/projects', { body: { name: 'docs' } })).status, 201);
    const image = buildImage({ layers: [[randomFile('etc/os-release', 64), randomFile('app/bin', 256)]], labels: { 'org.opencontainers.image.source': 'https://github.com/acme/docs' } });
    const digest = await h.push('docs/app', 'v1', image);
    await h.settle();

    // scanner
    await call('GET', '/vulndb', '/vulndb', {}, 200);
    await call('GET', '/scanner', '/scanner', {}, 200);
    const scans = '/repositories/{repository}/scans/{reference}';
    let status: Res | undefined;
    for (let i = 0; i < 200; i++) {
      status = await call('GET', `${scans}/status`, `/repositories/docs/app/scans/${digest}/status`);
      if (status.body.status === 'complete' || status.body.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status!.body.status, 'complete', JSON.stringify(status!.body));
    await call('GET', scans, `/repositories/docs/app/scans/v1`, {}, 200);
    const sarif = await call('GET', `${scans}/sarif`, `/repositories/docs/app/scans/${digest}/sarif`);
    assert.equal(sarif.body.version, '2.1.0');
    await call('GET', `${scans}/sbom`, `/repositories/docs/app/scans/${digest}/sbom?format=spdx`, {}, 200);
    await call('GET', `${scans}/sbom`, `/repositories/docs/app/scans/${digest}/sbom`, {}, 200);
    assert.equal((await call('POST', scans, `/repositories/docs/app/scans/${digest}`)).status, 202);
    await call('GET', scans, '/repositories/docs/app/scans/missing', {}, 404); // in the error format
    const exemption = await call('POST', '/exemptions', '/exemptions', { body: { vulnerability: 'CVE-2024-3094', scope: 'repository', repository: 'docs/app', owner: 'security', reason: 'not reachable', expiresAt: new Date(Date.now() + 86_400_000).toISOString() } });
    assert.equal(exemption.status, 201);
    await call('GET', '/exemptions', '/exemptions?project=docs', {}, 200);
    await call('GET', '/exemptions/{id}', `/exemptions/${exemption.body.id}`, {}, 200);
    await call('DELETE', '/exemptions/{id}', `/exemptions/${exemption.body.id}`, {}, 200);
    assert.equal((await call('DELETE', '/exemptions/{id}', `/exemptions/${exemption.body.id}`)).status, 409);
    await call('POST', '/exemptions', '/exemptions', { body: { scope: 'project' } }, 400);
    const vex = await call('POST', '/vex', '/vex?project=docs', {
      body: { '@context': 'https://openvex.dev/ns/v0.2.0', '@id': 'https://example.test/vex/1', author: 'security', timestamp: new Date().toISOString(), statements: [{ vulnerability: { name: 'CVE-2024-3094' }, status: 'not_affected', justification: 'vulnerable_code_not_present' }] },
    });
    assert.equal(vex.status, 201);
    await call('GET', '/vex', '/vex?project=docs', {}, 200);
    assert.equal((await call('DELETE', '/vex/{id}', `/vex/${vex.body.id}`)).status, 204);

    // signatures
    const key = newKey();
    assert.equal((await call('PUT', '/projects/{project}/trust-policy', '/projects/docs/trust-policy', { body: { policy: { keys: [{ name: 'ci', publicKey: key.publicPem }] } } })).status, 201);
    const read = await call('GET', '/projects/{project}/trust-policy', '/projects/docs/trust-policy');
    assert.equal((await call('PUT', '/projects/{project}/trust-policy', '/projects/docs/trust-policy', { headers: { 'if-match': String(read.headers['etag']) }, body: { requireSignatureToPull: false, policy: { keys: [{ name: 'ci', publicKey: key.publicPem }] } } })).status, 200);
    assert.equal((await call('PUT', '/projects/{project}/trust-policy', '/projects/docs/trust-policy', { headers: { 'if-match': '"1"' }, body: { policy: {} } })).status, 409);
    await call('GET', '/repositories/{repository}/manifests/{reference}/signatures', `/repositories/docs/app/manifests/${digest}/signatures`, {}, 200);
    assert.equal((await call('DELETE', '/projects/{project}/trust-policy', '/projects/docs/trust-policy')).status, 204);

    // policy, simulation, promotion
    const policy = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata:\n  name: docs\n  project: docs\nrules:\n  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push] }\n';
    assert.equal((await call('PUT', '/projects/{project}/policies', '/projects/docs/policies', { body: policy, headers: { 'content-type': 'application/yaml' } })).status, 201);
    await call('PUT', '/projects/{project}/policies', '/projects/docs/policies', { body: 'rules: 3', headers: { 'content-type': 'application/yaml' } }, 400); // POLICY_INVALID
    await call('GET', '/projects/{project}/policies', '/projects/docs/policies', {}, 200);
    await call('GET', '/policy/explain', `/policy/explain?repository=docs/app&reference=${digest}&point=pull`, {}, 200);
    await call('POST', '/policy/simulate', '/policy/simulate?project=docs&point=push&point=pull', { body: policy, headers: { 'content-type': 'application/yaml' } }, 200);
    assert.equal((await call('POST', '/projects', '/projects', { body: { name: 'docs-prod' } })).status, 201);
    assert.equal((await call('POST', '/promotions', '/promotions', { body: { source: `docs/app@${digest}`, destination: 'docs-prod/app', tag: 'v1' } })).status, 201);
    await call('GET', '/promotions', '/promotions?project=docs-prod', {}, 200);
    await call('GET', '/promotions/public-key', '/promotions/public-key', {}, 200);
    assert.equal((await call('DELETE', '/projects/{project}/policies', '/projects/docs/policies')).status, 204);

    // audit, alerts, traceability
    await call('GET', '/audit', '/audit?limit=20', {}, 200);
    await call('GET', '/alerts', '/alerts', {}, 200);
    await h.settle();
    await call('GET', '/trace/{digest}', `/trace/${digest}`, {}, 200);
    await call('GET', '/trace/images', '/trace/images?source=github.com/acme/docs', {}, 200);
    await call('GET', '/trace/deployments', `/trace/deployments?digest=${digest}`, {}, 200);
    await call('GET', '/trace/images', '/trace/images?limit=3', {}, 400); // no criterion
    await call('GET', '/deployments', `/deployments?digest=${digest}`, {}, 200);
  });
});

describe('OpenAPI document of a registry with the capability modules disabled', () => {
  let registry: Registry;
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-openapi-'));
    const off = { enabled: false };
    registry = await buildRegistry(
      validateConfig({ storage: { dataDir }, gc: { intervalSeconds: 0 }, log: { level: 'silent' }, auth: { mode: 'token' }, scanner: off, signatures: off, policy: off, trace: off, anomaly: off, webhooks: off, audit: { api: { enabled: false } } }),
      { adminPassword: 'Adm1n-openapi-disabled-0123' },
    );
  });
  after(async () => {
    await registry?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test("their routes are neither served nor documented; the core's are", async () => {
    const res = await registry.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    const doc = JSON.parse(res.body) as Document;
    checkStructure(doc);
    for (const path of Object.keys(doc.paths)) assert.ok(!/\/(vulndb|scanner|scans|exemptions|vex|trust-policy|signatures|policies|policy|promotions|audit|alerts|trace|webhooks)(\/|$)/.test(path), path);
    assert.ok(doc.paths['/api/v1/users'] && doc.paths['/api/v1/projects/{project}/trust-rules']);
    assert.deepEqual(compare(doc, registry.routes), { undocumented: [], unserved: [], misnamed: [] });
  });
});
