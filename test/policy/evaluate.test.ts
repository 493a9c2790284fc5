import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicy, PolicyError } from '../../src/registry/policy/document.ts';
import { CompiledPolicy } from '../../src/registry/policy/evaluate.ts';
import { completeInput, type PolicyInput } from '../../src/registry/policy/input.ts';

const NOW = '2026-11-27T00:00:00.000Z';
const DIGEST = `sha256:${'a'.repeat(64)}`;

function policy(rules: string): CompiledPolicy {
  return new CompiledPolicy(parsePolicy(`apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: p, project: team }\nrules:\n${rules}`));
}

function input(over: Parameters<typeof completeInput>[0] extends infer T ? Partial<Omit<T & object, 'image'>> & { image?: Partial<PolicyInput['image']> } : never = {}): PolicyInput {
  return completeInput({ ...over, image: { digest: DIGEST, repository: 'team/app', ...over.image }, now: NOW } as Parameters<typeof completeInput>[0]);
}

function outcome(p: CompiledPolicy, i: PolicyInput): string {
  const d = p.evaluate(i);
  return d.rules.map((r) => `${r.rule}:${r.outcome}`).join(',') + (d.allowed ? ' allowed' : ' denied');
}

describe('policy documents', () => {
  it('names the bad field', () => {
    const bad = (rules: string) => {
      try {
        policy(rules);
      } catch (error) {
        assert.ok(error instanceof PolicyError, String(error));
        return error.issues.join(' | ');
      }
      assert.fail('accepted');
    };
    assert.match(bad('  - { name: a, kind: forbidden-tags, tags: [latest], mode: block }'), /rules\[0\]\.mode/);
    assert.match(bad('  - { name: a, kind: forbidden-tags, tags: [latest], colour: red }'), /rules\[0\]: .*colour/);
    assert.match(bad('  - { name: a, kind: nope }'), /rules\[0\]\.kind/);
    assert.match(bad('  - { name: a, kind: max-severity }'), /rules\[0\]\.severity: set severity, cvss or both/);
    assert.match(bad('  - { name: a, kind: forbidden-tags, tags: [x] }\n  - { name: a, kind: forbidden-tags, tags: [y] }'), /rules\[1\]\.name: duplicate/);
    assert.match(bad('  - { name: a, kind: cel, expression: "image.size +" }'), /rules\[0\]\.expression: Unexpected token/);
    assert.match(bad('  - { name: a, kind: cel, expression: "1 + \\"x\\" == 2" }'), /rules\[0\]\.expression: no such overload/);
    assert.match(bad('  - { name: a, kind: cel, expression: "unknown == 1" }'), /rules\[0\]\.expression: Unknown variable/);
    assert.match(bad('  - { name: a, kind: cel, expression: "\\"str\\"" }'), /rules\[0\]\.expression: must be a bool/);
    assert.throws(() => parsePolicy('a: [1'), /not valid YAML/);
    assert.throws(() => parsePolicy('apiVersion: v2\nkind: Policy\nmetadata: { name: p }\nrules: []'), /apiVersion/);
  });

  it('defaults: enforce, every point, global project, version 1', () => {
    const d = parsePolicy('apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: p }\nrules: [{ name: a, kind: forbidden-tags, tags: [latest] }]');
    assert.equal(d.metadata.project, 'global');
    assert.equal(d.metadata.version, 1);
    assert.equal(d.rules[0]!.mode, 'enforce');
  });
});

describe('rule kinds', () => {
  it('forbidden tags (globs) per mode', () => {
    for (const [mode, allowed, warnings] of [['enforce', false, 0], ['warn', true, 1], ['audit', true, 0]] as const) {
      const p = policy(`  - { name: no-latest, kind: forbidden-tags, tags: [latest, "dev-*"], mode: ${mode} }`);
      const d = p.evaluate(input({ image: { tags: ['dev-42'] } }));
      assert.equal(d.allowed, allowed, mode);
      assert.equal(d.warnings.length, warnings);
      assert.deepEqual(d.rules[0]!.facts, ['tag dev-42 matches forbidden pattern dev-*']);
      assert.equal(p.evaluate(input({ image: { tags: ['1.0'] } })).allowed, true);
    }
    const d = policy('  - { name: no-latest, kind: forbidden-tags, tags: [latest] }').evaluate(input({ image: { tags: ['latest'] } }));
    assert.deepEqual(d.denials, ['rule no-latest: tag latest matches forbidden pattern latest']);
  });

  it('immutable tags: new tag and re-push allowed, move and delete denied', () => {
    const p = policy('  - { name: releases, kind: immutable-tags, tags: ["v*"] }');
    const other = `sha256:${'b'.repeat(64)}`;
    assert.equal(p.evaluate(input({ image: { tags: ['v1'] } })).allowed, true);
    assert.equal(p.evaluate(input({ image: { tags: ['v1'] }, request: { previousTagTarget: DIGEST } })).allowed, true);
    const moved = p.evaluate(input({ image: { tags: ['v1'] }, request: { previousTagTarget: other } }));
    assert.equal(moved.allowed, false);
    assert.match(moved.denials[0]!, /tag v1 matches immutable pattern v\* and already points at sha256:b/);
    assert.equal(p.evaluate(input({ image: { tags: ['main'] }, request: { previousTagTarget: other } })).allowed, true);
    assert.equal(p.evaluate(input({ image: { tags: ['v2'] }, request: { action: 'delete' } })).allowed, false);
  });

  it('required labels and annotations', () => {
    const p = policy('  - { name: owner, kind: required-labels, labels: [org.opencontainers.image.source], annotations: [team] }');
    const d = p.evaluate(input({ image: { labels: {}, annotations: { team: 'x' } } }));
    assert.deepEqual(d.rules[0]!.facts, ['label org.opencontainers.image.source is missing']);
    assert.equal(p.evaluate(input({ image: { labels: { 'org.opencontainers.image.source': 'https://x' }, annotations: { team: 'x' } } })).allowed, true);
  });

  it('signature required, with attestation types', () => {
    const p = policy('  - { name: signed, kind: signature-required, attestations: ["https://slsa.dev/provenance/v1"] }');
    assert.equal(p.evaluate(input({ signatures: { verdict: 'unsigned', missing: ['a signature by key ci'] } })).rules[0]!.facts[0], 'signature verdict is unsigned (missing: a signature by key ci)');
    assert.equal(p.evaluate(input({ signatures: { verdict: 'verified' } })).allowed, false);
    assert.equal(p.evaluate(input({ signatures: { verdict: 'verified', attestations: ['https://slsa.dev/provenance/v1'] } })).allowed, true);
  });

  it('maximum severity, CVSS and fixable-only', () => {
    const findings = [
      { id: 'CVE-1', severity: 'critical', score: 9.8, fixAvailable: false, package: { name: 'openssl', version: '1' } },
      { id: 'CVE-2', severity: 'medium', score: 6.5, fixAvailable: true, package: { name: 'zlib', version: '2' } },
    ];
    const scan = { status: 'complete', findings };
    assert.equal(outcome(policy('  - { name: s, kind: max-severity, severity: high }'), input({ scan })), 's:fail denied');
    assert.equal(outcome(policy('  - { name: s, kind: max-severity, severity: high, fixableOnly: true }'), input({ scan })), 's:pass allowed');
    assert.equal(outcome(policy('  - { name: s, kind: max-severity, cvss: 6.0, fixableOnly: true }'), input({ scan })), 's:fail denied');
    assert.equal(outcome(policy('  - { name: s, kind: max-severity, severity: critical }'), input({ scan })), 's:pass allowed');
    assert.equal(outcome(policy('  - { name: s, kind: max-severity, severity: critical }'), input()), 's:fail denied');
    assert.match(policy('  - { name: s, kind: max-severity, severity: high }').evaluate(input({ scan })).denials[0]!, /CVE-1 in openssl 1 is critical/);
  });

  it('scan required and not older than N days', () => {
    const p = policy('  - { name: scanned, kind: scan-required, maxAgeDays: 7 }');
    assert.equal(outcome(p, input()), 'scanned:fail denied');
    assert.equal(outcome(p, input({ scan: { status: 'complete', scannedAt: '2026-11-25T00:00:00Z' } })), 'scanned:pass allowed');
    assert.match(p.evaluate(input({ scan: { status: 'complete', scannedAt: '2026-11-01T00:00:00Z' } })).denials[0]!, /26\.0 days old/);
  });

  it('maximum image age', () => {
    const p = policy('  - { name: fresh, kind: max-image-age, days: 90 }');
    assert.equal(outcome(p, input({ image: { created: '2026-10-01T00:00:00Z' } })), 'fresh:pass allowed');
    assert.equal(outcome(p, input({ image: { created: '2025-01-01T00:00:00Z' } })), 'fresh:fail denied');
    assert.equal(outcome(p, input()), 'fresh:fail denied');
  });

  it('licence deny list over SPDX expressions', () => {
    const p = policy('  - { name: lic, kind: licence-deny, licences: ["AGPL-*", "SSPL-1.0"] }');
    assert.equal(outcome(p, input({ scan: { licences: ['MIT', 'Apache-2.0 OR MIT'] } })), 'lic:pass allowed');
    assert.deepEqual(p.evaluate(input({ scan: { licences: ['(MIT AND agpl-3.0-only)'] } })).rules[0]!.facts, ['licence agpl-3.0-only is denied (AGPL-*)']);
  });

  it('CEL over the input document', () => {
    const p = policy([
      '  - { name: small, kind: cel, expression: "image.size < 1000" }',
      '  - { name: team, kind: cel, expression: "request.who.name == \\"ci\\" || request.point != \\"push\\"" }',
      '  - { name: arch, kind: cel, expression: "image.platform.architecture in [\\"amd64\\", \\"arm64\\"]", mode: warn }',
      '  - { name: fresh, kind: cel, expression: "image.created == \\"\\" || now - timestamp(image.created) < duration(\\"720h\\")", mode: audit }',
      '  - { name: crit, kind: cel, expression: "scan.findings.all(f, f.severity != \\"critical\\")" }',
    ].join('\n'));
    const d = p.evaluate(input({ image: { size: 10, platform: { os: 'linux', architecture: 's390x', variant: '' }, created: '2026-01-01T00:00:00Z' }, request: { who: { kind: 'robot', name: 'ci' } } }));
    assert.deepEqual(d.rules.map((r) => `${r.rule}:${r.outcome}`), ['small:pass', 'team:pass', 'arch:fail', 'fresh:fail', 'crit:pass']);
    assert.equal(d.allowed, true);
    assert.equal(d.warnings.length, 1);
    assert.equal(p.evaluate(input({ image: { size: 5000 } })).allowed, false);
  });

  it('a CEL runtime error fails the rule (deny on error)', () => {
    const p = policy('  - { name: broken, kind: cel, expression: "image.labels[\\"missing\\"] == \\"x\\"" }');
    const d = p.evaluate(input());
    assert.equal(d.allowed, false);
    assert.equal(d.rules[0]!.outcome, 'error');
    assert.match(d.denials[0]!, /evaluation error/);
  });

  it('rules apply only at their enforcement points', () => {
    const p = policy('  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push] }');
    assert.equal(p.appliesAt('pull'), false);
    const d = p.evaluate(input({ image: { tags: ['latest'] }, request: { point: 'pull' } }));
    assert.equal(d.allowed, true);
    assert.equal(d.rules[0]!.outcome, 'skipped');
    assert.match(d.policy.hash, /^sha256:[0-9a-f]{64}$/);
  });
});

describe('scan facts from a scanner report', () => {
  it('takes counts, findings (exemptions already removed) and licences', async () => {
    const { scanFacts } = await import('../../src/registry/policy/enforcer.ts');
    const counts = { critical: 1, high: 0, medium: 0, low: 0, none: 0, unknown: 0 };
    const report = {
      status: 'complete',
      scannedAt: NOW,
      summary: { total: 1, bySeverity: counts, fixable: 1, fixableBySeverity: counts, malicious: 0 },
      findings: [{ id: 'CVE-9', severity: 'critical', score: 9.1, fixAvailable: true, package: { name: 'openssl', version: '3' } }],
      licences: ['GPL-3.0-only'],
    } as unknown as Parameters<typeof scanFacts>[0];
    const p = policy('  - { name: lic, kind: licence-deny, licences: ["GPL-*"] }\n  - { name: sev, kind: max-severity, severity: high }');
    const d = p.evaluate(input({ scan: scanFacts(report) }));
    assert.deepEqual(d.rules.map((r) => r.outcome), ['fail', 'fail']);
    assert.equal(d.denials.length, 2);
  });
});
