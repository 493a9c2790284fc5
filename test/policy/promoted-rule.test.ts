/** Decision table for the `promoted` rule kind, the `promotions` CEL fact and the promotion request facts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, PolicyError } from '../../src/registry/policy/document.ts';
import { CompiledPolicy } from '../../src/registry/policy/evaluate.ts';
import { completeInput, type PolicyInput } from '../../src/registry/policy/input.ts';

const digest = `sha256:${'a'.repeat(64)}`;
const policy = (rules: string) => new CompiledPolicy(parsePolicy(`apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: p, project: prod }\nrules:\n${rules}`));
const promotion = (sourceProject: string, destinationProject: string): PolicyInput['promotions'][number] => ({
  id: 'x',
  sourceRepository: `${sourceProject}/app`,
  sourceProject,
  destinationRepository: `${destinationProject}/app`,
  destinationProject,
  policyVersion: 3,
  policyHash: 'sha256:b',
  approver: 'alice',
  promotedAt: '2026-11-27T00:00:00Z',
  keyId: 'ed25519:k',
});
const input = (promotions: PolicyInput['promotions'], request: Partial<PolicyInput['request']> = {}) => completeInput({ image: { digest, repository: 'prod/app' }, request: { point: 'admission', ...request }, promotions });

test('promoted: passes only for a promotion into the image project, from an allowed project', () => {
  const cases: Array<[string, PolicyInput['promotions'], boolean, RegExp?]> = [
    ['  - { name: r, kind: promoted }', [], false, /no promotion into project prod attested by this registry/],
    ['  - { name: r, kind: promoted }', [promotion('staging', 'prod')], true],
    ['  - { name: r, kind: promoted }', [promotion('staging', 'qa')], false, /promotions into qa only/],
    ['  - { name: r, kind: promoted, from: [staging] }', [promotion('staging', 'prod')], true],
    ['  - { name: r, kind: promoted, from: ["stag*"] }', [promotion('staging', 'prod')], true],
    ['  - { name: r, kind: promoted, from: [staging] }', [promotion('dev', 'prod')], false, /promoted into prod only from dev, not from staging/],
    ['  - { name: r, kind: promoted, from: [staging] }', [promotion('dev', 'prod'), promotion('staging', 'prod')], true],
    ['  - { name: r, kind: promoted, mode: warn }', [], true],
  ];
  for (const [rules, promotions, allowed, message] of cases) {
    const d = policy(rules).evaluate(input(promotions));
    assert.equal(d.allowed, allowed, `${rules} ${JSON.stringify(promotions)}`);
    if (message) assert.match([...d.denials, ...d.warnings].join(), message);
  }
  assert.equal(policy('  - { name: r, kind: promoted, mode: warn }').evaluate(input([])).warnings.length, 1);
});

test('CEL sees promotions and the request source and destination', () => {
  const p = policy(`  - { name: c, kind: cel, expression: 'promotions.exists(x, x.destinationProject == "prod" && x.approver != request.who.name)' }\n  - { name: s, kind: cel, expression: 'request.point != "promotion" || request.source.startsWith("staging/")', points: [promotion] }`);
  assert.equal(p.evaluate(input([promotion('staging', 'prod')], { who: { kind: 'user', name: 'bob' } })).allowed, true);
  assert.equal(p.evaluate(input([promotion('staging', 'prod')], { who: { kind: 'user', name: 'alice' } })).allowed, false, 'four eyes: the approver cannot deploy');
  assert.equal(p.evaluate(input([])).allowed, false);
  assert.equal(p.evaluate(input([promotion('staging', 'prod')], { point: 'promotion', source: 'dev/app', who: { kind: 'user', name: 'bob' } })).allowed, false);
  assert.equal(p.evaluate(input([promotion('staging', 'prod')], { point: 'promotion', source: 'staging/app', who: { kind: 'user', name: 'bob' } })).allowed, true);
  assert.deepEqual(completeInput({ image: { digest, repository: 'prod/app' } }).request.source, '', 'neutral outside promotion');
});

test('a promoted rule with a bad pattern or unknown field is refused on load', () => {
  assert.throws(() => policy('  - { name: r, kind: promoted, from: staging }'), (e: unknown) => e instanceof PolicyError && /rules\[0\]\.from/.test(e.message));
  assert.throws(() => policy('  - { name: r, kind: promoted, to: [prod] }'), (e: unknown) => e instanceof PolicyError && /rules\[0\]/.test(e.message));
});
