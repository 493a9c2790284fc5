/** Stored policies through /api/v1/projects/{project}/policies, enforced with the signature module's facts. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyPolicy, pem, pushCosignSignature, startTestRegistry, type TestRegistry } from '../signatures/registry-helpers.ts';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: prod-policy, project: prod }
rules:
  - { name: signed, kind: signature-required, points: [pull] }
  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push] }
`;

describe('policy API and stored policies', () => {
  let t: TestRegistry;
  before(async () => {
    t = await startTestRegistry();
  });
  after(() => t.close());

  const putPolicy = (project: string, text: string) => t.request('PUT', `/api/v1/projects/${project}/policies`, { body: text, headers: { 'content-type': 'application/yaml' } });

  it('rejects a bad document with every issue naming its field', async () => {
    const res = await putPolicy('prod', POLICY.replace('kind: forbidden-tags', 'kind: forbidden-tag').replace('points: [pull]', 'points: [pull], mode: never'));
    assert.equal(res.status, 400);
    const messages = (res.body as { errors: Array<{ message: string }> }).errors.map((e) => e.message).join(' | ');
    assert.match(messages, /rules\[0\]\.mode/);
    assert.match(messages, /rules\[1\]\.kind/);
    assert.equal((await putPolicy('prod', POLICY.replace('project: prod', 'project: other'))).status, 400);
  });

  it('stores versions and enforces the current one: unsigned pull denied, signed allowed', async () => {
    assert.equal((await t.putPolicy('prod', keyPolicy({ release: pem(key.publicKey) }))).status, 201);
    const first = await putPolicy('prod', POLICY);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal((first.body as { version: number }).version, 1);
    const image = await t.pushImage('prod/app', '1.0');
    const denied = await t.request('GET', '/v2/prod/app/manifests/1.0', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(denied.status, 403);
    assert.match(JSON.stringify(denied.body), /prod-policy v1: rule signed: signature verdict is unsigned/);
    await pushCosignSignature(t, 'prod/app', image.digest, key.privateKey);
    const allowed = await t.request('GET', '/v2/prod/app/manifests/1.0', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    await assert.rejects(t.pushImage('prod/app', 'latest'), /403/);
    const explained = await t.request('GET', '/api/v1/policy/explain?repository=prod/app&reference=1.0&point=push');
    assert.equal(explained.status, 200, JSON.stringify(explained.body));
    assert.equal(explained.body.allowed, true);
    assert.deepEqual(explained.body.rules.map((r: { rule: string; outcome: string }) => `${r.rule}:${r.outcome}`), ['signed:skipped', 'no-latest:pass']);
    const pull = await t.request('GET', `/api/v1/policy/explain?repository=prod/app&reference=${image.digest}&point=pull`);
    assert.equal(pull.body.rules[0].outcome, 'pass');
    assert.equal((await t.request('GET', '/api/v1/policy/explain?repository=prod/app&reference=nope')).status, 404);
    assert.equal((await t.request('GET', '/api/v1/policy/explain?repository=prod/app&reference=1.0&point=mars')).status, 400);

    assert.equal((await putPolicy('prod', POLICY.replace(/  - \{ name: no-latest.*\n/, ''))).status, 201);
    await t.pushImage('prod/app', 'latest');
    const got = await t.request('GET', '/api/v1/projects/prod/policies');
    assert.equal(got.status, 200);
    const body = got.body as { current: { version: number; document: string }; versions: Array<{ version: number }> };
    assert.equal(body.current.version, 2);
    assert.doesNotMatch(body.current.document, /no-latest/);
    assert.deepEqual(body.versions.map((v) => v.version), [2, 1]);

    assert.equal((await t.request('DELETE', '/api/v1/projects/prod/policies')).status, 204);
    assert.equal((await t.request('GET', '/api/v1/projects/prod/policies')).body.current, null);
    assert.equal((await t.request('DELETE', '/api/v1/projects/prod/policies')).status, 404);
    const decisions = t.events.filter((e) => e.type === 'policy.decision');
    assert.ok(decisions.some((d) => d['outcome'] === 'denied' && d['point'] === 'pull'));
  });
});
