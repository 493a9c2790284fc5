import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const BIN = join(import.meta.dirname, '../../bin/portcullis.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('portcullis policy', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-policy-cli-'));
    await writeFile(join(dir, 'p.yaml'), [
      'apiVersion: portcullis.dev/v1',
      'kind: Policy',
      'metadata: { name: prod, project: prod, version: 2 }',
      'rules:',
      '  - { name: signed, kind: signature-required, points: [pull, admission] }',
      '  - { name: no-critical, kind: max-severity, severity: high, mode: warn }',
      '  - { name: no-latest, kind: forbidden-tags, tags: [latest], points: [push] }',
    ].join('\n'));
    await writeFile(join(dir, 'bad.yaml'), 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: x }\nrules:\n  - { name: a, kind: cel, expression: "\\"a\\" + 1 == \\"b\\"" }\n');
    await writeFile(join(dir, 'input.yaml'), [
      'image: { digest: "sha256:' + 'a'.repeat(64) + '", repository: prod/app, tags: [latest] }',
      'scan: { status: complete, findings: [{ id: CVE-1, severity: critical, fixAvailable: true, package: { name: openssl, version: "3" } }] }',
      'signatures: { verdict: verified }',
      'request: { point: admission }',
    ].join('\n'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('test prints the decision and exits by verdict', async () => {
    const ok = await run(['policy', 'test', join(dir, 'p.yaml'), '--input', join(dir, 'input.yaml')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ALLOWED prod\/app@sha256:a+ at admission by policy prod v2 \(prod\)/);
    assert.match(ok.stdout, /fail +warn +no-critical \(max-severity\): CVE-1 in openssl 3 is critical/);
    assert.match(ok.stdout, /skipped +enforce +no-latest/);
    const denied = await run(['policy', 'test', join(dir, 'p.yaml'), '--input', join(dir, 'input.yaml'), '--point', 'push', '--json']);
    assert.equal(denied.code, 1);
    const decision = JSON.parse(denied.stdout) as { allowed: boolean; denials: string[] };
    assert.equal(decision.allowed, false);
    assert.deepEqual(decision.denials, ['rule no-latest: tag latest matches forbidden pattern latest']);
  });

  it('check names the bad field; bad input exits 2', async () => {
    const bad = await run(['policy', 'check', join(dir, 'bad.yaml')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /rules\[0\]\.expression: no such overload/);
    assert.equal((await run(['policy', 'check', join(dir, 'p.yaml')])).code, 0);
    const noInput = await run(['policy', 'test', join(dir, 'p.yaml'), '--input', join(dir, 'p.yaml')]);
    assert.equal(noInput.code, 2);
    assert.match(noInput.stderr, /needs image\.digest/);
  });
});
