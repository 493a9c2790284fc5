/** Image configuration checks: who the container runs as, and secrets in env, labels, command and history (never their values). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkImageConfig } from '../../src/registry/scanner/config-checks.ts';

test('no user, root, and a named user', () => {
  assert.deepEqual(checkImageConfig({ config: {} }).map((f) => f.rule), ['no-user']);
  assert.deepEqual(checkImageConfig({ config: { User: '0:0' } }).map((f) => f.rule), ['root-user']);
  assert.deepEqual(checkImageConfig({ config: { User: 'root' } }).map((f) => f.rule), ['root-user']);
  assert.deepEqual(checkImageConfig({ config: { User: '1000:1000' } }), []);
  assert.deepEqual(checkImageConfig({}).map((f) => f.rule), ['no-user'], 'no config section at all');
});

test('secrets in the configuration are found by location and fingerprint, never by value', () => {
  const token = `ghp_${'A1b2C3d4E5'.repeat(3)}abcdef`;
  const password = 'hunter2-but-longer';
  const findings = checkImageConfig(
    {
      config: { User: 'app', Env: ['PATH=/usr/bin', `GITHUB_TOKEN=${token}`, `DB_PASSWORD=${password}`, 'API_KEY=${API_KEY}'], Labels: { 'org.example.deploy-token': token } },
      history: [{ created_by: `/bin/sh -c export NPM_TOKEN=${token} && npm ci` }],
    },
    'a-test-fingerprint-key',
  );
  const rules = findings.map((f) => `${f.rule} ${f.location}`);
  assert.ok(rules.includes('secret-in-env env:GITHUB_TOKEN'), rules.join('\n'));
  assert.ok(rules.includes('secret-in-env env:DB_PASSWORD'), rules.join('\n'));
  assert.ok(rules.some((r) => r.startsWith('secret-in-label label:org.example.deploy-token')), rules.join('\n'));
  assert.ok(rules.some((r) => r.startsWith('secret-in-history history[0]')), rules.join('\n'));
  assert.ok(!rules.some((r) => r.includes('API_KEY')), 'a ${VAR} placeholder is no secret');
  const text = JSON.stringify(findings);
  assert.ok(!text.includes(token) && !text.includes(password), 'values never reported');
  for (const f of findings.filter((x) => x.rule.startsWith('secret'))) assert.match(f.fingerprint!, /^[0-9a-f]{32}$/);
  // The same secret under another key gives another fingerprint (unlinkable across installations).
  const other = checkImageConfig({ config: { User: 'app', Env: [`GITHUB_TOKEN=${token}`] } }, 'another-key-entirely');
  assert.notEqual(other[0]!.fingerprint, findings.find((f) => f.location === 'env:GITHUB_TOKEN')!.fingerprint);
});
