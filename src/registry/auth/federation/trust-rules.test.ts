import assert from 'node:assert/strict';
import { test } from 'node:test';
import { claimValue, matchesClaimPattern, ruleMismatch, subjectPatternProblem } from './trust-rules.ts';

test('claim patterns: * stays within a segment (: and / end one), ** crosses, ? is one character, the rest is literal', () => {
  assert.ok(matchesClaimPattern('repo:org/app:ref:refs/heads/*', 'repo:org/app:ref:refs/heads/main'));
  assert.ok(!matchesClaimPattern('repo:org/app:ref:refs/heads/*', 'repo:org/app:ref:refs/heads/feature/x'));
  assert.ok(matchesClaimPattern('repo:org/app:**', 'repo:org/app:ref:refs/heads/feature/x'));
  assert.ok(!matchesClaimPattern('repo:org/*', 'repo:org/app:ref:refs/heads/main'), '* does not reach past the next :');
  assert.ok(!matchesClaimPattern('repo:org/app', 'repo:org/app2'), 'anchored');
  assert.ok(!matchesClaimPattern('repo:org.app', 'repo:orgXapp'), '. is literal');
  assert.ok(matchesClaimPattern('v?', 'v1'));
  assert.ok(!matchesClaimPattern('v?', 'v/'));
  assert.ok(matchesClaimPattern('system:serviceaccount:build:*', 'system:serviceaccount:build:pusher'));
  assert.ok(!matchesClaimPattern('system:serviceaccount:build:*', 'system:serviceaccount:build-x:pusher'));
});

test('subject patterns must pin something literal', () => {
  for (const broad of ['**', '*', '*:*', '**/**', 'a*', '']) assert.ok(subjectPatternProblem(broad), broad);
  for (const fine of ['repo:org/app:*', 'system:serviceaccount:ci:*', 'ci-app']) assert.equal(subjectPatternProblem(fine), undefined, fine);
});

test('claim values: top-level names first, then paths into objects; lists match by any element', () => {
  const claims = { 'kubernetes.io': { namespace: 'build', serviceaccount: { name: 'pusher' } }, 'a/b': 'flat', groups: ['x', 'y'], n: 3 };
  assert.equal(claimValue(claims, 'kubernetes.io/namespace'), 'build');
  assert.equal(claimValue(claims, 'kubernetes.io/serviceaccount/name'), 'pusher');
  assert.equal(claimValue(claims, 'a/b'), 'flat');
  assert.equal(claimValue(claims, 'kubernetes.io/missing/x'), undefined);
  assert.equal(claimValue(claims, 'constructor'), undefined, 'no prototype lookups');
  const rule = { issuer: 'https://i', audience: 'reg', subject: 'sa', claims: { groups: ['y'], n: ['3'], 'kubernetes.io/namespace': ['build', 'ci'] } };
  const token = { ...claims, iss: 'https://i', aud: ['other', 'reg'], sub: 'sa' };
  assert.equal(ruleMismatch(rule, token), undefined);
  assert.equal(ruleMismatch(rule, { ...token, aud: 'other' }), 'audience');
  assert.equal(ruleMismatch(rule, { ...token, iss: 'https://j' }), 'issuer');
  assert.equal(ruleMismatch(rule, { ...token, sub: 'sa2' }), 'subject');
  assert.equal(ruleMismatch(rule, { ...token, groups: ['x'] }), 'claim groups');
  assert.equal(ruleMismatch(rule, { ...token, 'kubernetes.io': { namespace: 'prod' } }), 'claim kubernetes.io/namespace');
  assert.equal(ruleMismatch(rule, { ...token, n: { nested: 3 } }), 'claim n', 'objects never match a pattern');
});
