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
    assert.match(bad('  - { name: a, kind: provenance-required, builders: ["https://ci example/*"] }'), /rules\[0\]\.builders\[0\]: not a valid pattern/);
    assert.match(bad('  - { name: a, kind: provenance-required, builder: [x] }'), /rules\[0\]: .*builder/);
    assert.match(bad('  - { name: a, kind: sbom-required, formats: [swid] }'), /rules\[0\]\.formats\[0\]/);
    assert.match(bad('  - { name: a, kind: sbom-required, origins: [] }'), /rules\[0\]\.origins/);
    assert.match(bad('  - { name: a, kind: allowed-base-images }'), /rules\[0\]\.images: name at least one base image or layer prefix/);
    assert.match(bad('  - { name: a, kind: allowed-base-images, images: [alpine] }'), /rules\[0\]\.images\[0\]: not an image reference in this registry/);
    assert.match(bad('  - { name: a, kind: allowed-base-images, images: ["Base@sha256:00"] }'), /rules\[0\]\.images\[0\]/);
    assert.match(bad('  - { name: a, kind: allowed-base-images, layerPrefixes: [["sha256:abc"]] }'), /rules\[0\]\.layerPrefixes\[0\]\[0\]: not a sha256 layer digest/);
    assert.match(bad('  - { name: a, kind: allowed-base-images, layerPrefixes: [[]] }'), /rules\[0\]\.layerPrefixes\[0\]/);
    assert.match(bad('  - { name: a, kind: cel, expression: "provenance.exists(p, p.builder == 1) && sboms == 2" }'), /rules\[0\]\.expression/);
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

  const V1 = 'https://slsa.dev/provenance/v1';
  const GHA = 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0';
  const prov = (builder: string, sourceRepository: string, predicateType = V1) => ({ predicateType, builder, sourceRepository, commit: 'c0ffee', buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1' });

  it('provenance required: builders and sources (globs, each optional), per mode', () => {
    const rule = 'kind: provenance-required, builders: ["https://github.com/slsa-framework/*"], sources: ["github.com/acme/*"]';
    const good = [prov(GHA, 'github.com/acme/app')];
    for (const [mode, allowed, warnings] of [['enforce', false, 0], ['warn', true, 1], ['audit', true, 0]] as const) {
      const p = policy(`  - { name: slsa, ${rule}, mode: ${mode} }`);
      const d = p.evaluate(input({ provenance: [prov('https://ci.example/builder', 'github.com/evil/app')] }));
      assert.equal(d.allowed, allowed, mode);
      assert.equal(d.warnings.length, warnings, mode);
      assert.deepEqual(d.rules[0]!.facts, [`provenance (${V1}): builder https://ci.example/builder is not one of https://github.com/slsa-framework/* and source repository github.com/evil/app is not one of github.com/acme/*`]);
      assert.equal(p.evaluate(input({ provenance: good })).allowed, true, mode);
    }
    const p = policy(`  - { name: slsa, ${rule} }`);
    assert.deepEqual(p.evaluate(input()).denials, ['rule slsa: no verified SLSA provenance attestation']);
    assert.equal(outcome(p, input({ provenance: [prov(GHA, 'github.com/other/app')] })), 'slsa:fail denied');
    assert.equal(outcome(p, input({ provenance: [prov(GHA, 'github.com/acme/app', 'https://slsa.dev/provenance/v0.2')] })), 'slsa:pass allowed');
    assert.equal(outcome(p, input({ provenance: [prov(GHA, 'github.com/acme/app', 'https://slsa.dev/provenance/v0.1')] })), 'slsa:fail denied');
    // one matching attestation among several is enough; a builder and a source from different attestations are not
    assert.equal(outcome(p, input({ provenance: [prov('x', 'y'), ...good] })), 'slsa:pass allowed');
    assert.equal(outcome(p, input({ provenance: [prov(GHA, 'github.com/evil/app'), prov('https://ci.example/b', 'github.com/acme/app')] })), 'slsa:fail denied');
    // lists absent: any verified SLSA provenance
    assert.equal(outcome(policy('  - { name: any, kind: provenance-required }'), input({ provenance: [prov('', '')] })), 'any:pass allowed');
    assert.equal(outcome(policy('  - { name: src, kind: provenance-required, sources: ["github.com/acme/*"] }'), input({ provenance: [prov('anything', 'github.com/acme/x')] })), 'src:pass allowed');
    // CEL sees the same facts
    const cel = policy('  - { name: c, kind: cel, expression: \'provenance.exists(p, p.sourceRepository.startsWith("github.com/acme/") && p.commit != "")\' }');
    assert.equal(outcome(cel, input({ provenance: good })), 'c:pass allowed');
    assert.equal(outcome(cel, input()), 'c:fail denied');
  });

  it('SBOM required: formats and origins, per mode', () => {
    const attested = { format: 'cyclonedx', origin: 'attested', verified: true } as const;
    const attached = { format: 'spdx', origin: 'attached', verified: false } as const;
    for (const [mode, allowed, warnings] of [['enforce', false, 0], ['warn', true, 1], ['audit', true, 0]] as const) {
      const p = policy(`  - { name: sbom, kind: sbom-required, mode: ${mode} }`);
      const d = p.evaluate(input());
      assert.equal(d.allowed, allowed, mode);
      assert.equal(d.warnings.length, warnings, mode);
      assert.deepEqual(d.rules[0]!.facts, ['no cyclonedx or spdx SBOM attested or attached (the image has none)']);
      assert.equal(p.evaluate(input({ sboms: [attached] })).allowed, true, mode);
      assert.equal(p.evaluate(input({ sboms: [attested] })).allowed, true, mode);
    }
    const p = policy('  - { name: sbom, kind: sbom-required, formats: [cyclonedx], origins: [attested] }');
    assert.equal(outcome(p, input({ sboms: [attested] })), 'sbom:pass allowed');
    assert.deepEqual(p.evaluate(input({ sboms: [attached, { format: 'cyclonedx', origin: 'attached', verified: false }] })).rules[0]!.facts, ['no cyclonedx SBOM attested (the image has: spdx attached, cyclonedx attached)']);
    assert.equal(outcome(p, input({ sboms: [{ ...attested, verified: false }] })), 'sbom:fail denied');
    assert.equal(outcome(p, input({ sboms: [{ ...attested, format: 'spdx' }] })), 'sbom:fail denied');
    assert.equal(outcome(policy('  - { name: s, kind: sbom-required, origins: [attached] }'), input({ sboms: [attached] })), 's:pass allowed');
    assert.equal(outcome(policy('  - { name: s, kind: sbom-required, origins: [attached] }'), input({ sboms: [attested] })), 's:fail denied');
    assert.equal(outcome(policy('  - { name: c, kind: cel, expression: \'sboms.exists(s, s.format == "spdx")\' }'), input({ sboms: [attached] })), 'c:pass allowed');
  });

  it('allowed base images: by layer prefix and by resolved image reference, per mode', () => {
    const L = (c: string) => `sha256:${c.repeat(64)}`;
    const base = [L('1'), L('2')];
    const rule = `kind: allowed-base-images, layerPrefixes: [["${L('1')}", "${L('2')}"]], images: ["base/alpine:3", "base/distroless@${L('d')}"]`;
    for (const [mode, allowed, warnings] of [['enforce', false, 0], ['warn', true, 1], ['audit', true, 0]] as const) {
      const p = policy(`  - { name: base, ${rule}, mode: ${mode} }`);
      assert.deepEqual(p.baseImageRefs, ['base/alpine:3', `base/distroless@${L('d')}`]);
      assert.equal(p.evaluate(input({ image: { layers: [...base, L('3')] } })).allowed, true, mode);
      assert.equal(p.evaluate(input({ image: { layers: base } })).allowed, true, 'the base itself');
      const d = p.evaluate(input({ image: { layers: [L('1'), L('3')] } }));
      assert.equal(d.allowed, allowed, mode);
      assert.equal(d.warnings.length, warnings, mode);
      assert.deepEqual(d.rules[0]!.facts, [
        `layers (2, first ${L('1')}) do not start with an allowed base image: base/alpine:3, base/distroless@${L('d')}, layers ${L('1')} (+1)`,
        'base image base/alpine:3 is not resolved',
        `base image base/distroless@${L('d')} is not resolved`,
      ]);
    }
    const p = policy(`  - { name: base, ${rule} }`);
    assert.deepEqual(p.evaluate(input()).rules[0]!.facts, ['the image has no layers (an artifact, or an index without platform images here): its base image cannot be checked']);
    // an index: every platform image must be on an allowed base
    assert.equal(outcome(p, input({ image: { platformLayers: [[...base, L('3')], [...base, L('4')]] } })), 'base:pass allowed');
    assert.deepEqual(p.evaluate(input({ image: { platformLayers: [[...base, L('3')], [L('5')]] } })).rules[0]!.facts[0], `platform image layers (1, first ${L('5')}) do not start with an allowed base image: base/alpine:3, base/distroless@${L('d')}, layers ${L('1')} (+1)`);
    assert.equal(outcome(p, input({ image: { layers: [L('2'), L('1')] } })), 'base:fail denied', 'order matters');
    assert.equal(outcome(p, input({ image: { layers: [L('1')] } })), 'base:fail denied', 'shorter than the base');
    // resolved references (the enforcer fills these): an index allows any of its platforms
    p.baseImages = new Map<string, string[][] | string>([['base/alpine:3', [[L('a')], [L('b'), L('c')]]], [`base/distroless@${L('d')}`, 'is not in this registry']]);
    assert.equal(outcome(p, input({ image: { layers: [L('b'), L('c'), L('9')] } })), 'base:pass allowed');
    assert.equal(outcome(p, input({ image: { layers: [L('a')] } })), 'base:pass allowed');
    assert.deepEqual(p.evaluate(input({ image: { layers: [L('b'), L('9')] } })).rules[0]!.facts.slice(1), [`base image base/distroless@${L('d')} is not in this registry`]);
    assert.equal(outcome(policy('  - { name: c, kind: cel, expression: "image.layers.size() <= 2" }'), input({ image: { layers: base } })), 'c:pass allowed');
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
