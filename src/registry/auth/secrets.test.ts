import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSecret, looksLikeSecret, parseSecret, secretMatches } from './secrets.ts';
import { hashPassword, passwordProblem, verifyPassword } from './passwords.ts';

test('generated secrets: prefixed, parseable, only the hash is kept, checked in constant time', () => {
  const robot = generateSecret('robot');
  assert.match(robot.secret, /^pcr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  assert.ok(!robot.hash.includes(robot.secret.slice(22)));
  const parsed = parseSecret(robot.secret)!;
  assert.equal(parsed.kind, 'robot');
  assert.equal(parsed.id, robot.id);
  assert.equal(secretMatches(parsed.random, robot.hash), true);
  assert.equal(secretMatches(parsed.random.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), robot.hash), false);
  assert.equal(secretMatches(parsed.random, 'abcd'), false, 'a malformed stored hash never matches');
  assert.equal(parseSecret(generateSecret('token').secret)?.kind, 'token');
  assert.equal(parseSecret(generateSecret('refresh').secret)?.kind, 'refresh');
  for (const bad of ['', 'pcr_', 'pcx_0123456789abcdef_' + 'a'.repeat(43), 'pcr_0123456789abcdeg_' + 'a'.repeat(43), robot.secret + 'x']) assert.equal(parseSecret(bad), undefined, bad);
  assert.ok(looksLikeSecret(robot.secret));
});

test('argon2id password hashes in PHC format; verification with the stored parameters', async () => {
  const hash = await hashPassword('correct horse battery staple', { memoryKiB: 1024, passes: 1, parallelism: 1 });
  assert.match(hash, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  assert.equal(await verifyPassword('correct horse battery staple', hash), true);
  assert.equal(await verifyPassword('correct horse battery stapl', hash), false);
  assert.equal(await verifyPassword('x', 'not-a-hash'), false);
  assert.notEqual(await hashPassword('same', { memoryKiB: 1024, passes: 1, parallelism: 1 }), await hashPassword('same', { memoryKiB: 1024, passes: 1, parallelism: 1 }), 'salted');
  const defaults = await hashPassword('another password');
  assert.match(defaults, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
});

test('password policy: length, not the user name, not common, not token-shaped', () => {
  const policy = { minLength: 12 };
  assert.equal(passwordProblem('a-long-enough-pass', 'alice', policy), undefined);
  assert.match(passwordProblem('short', 'alice', policy)!, /at least 12/);
  assert.match(passwordProblem('xx-Alice-1234567', 'alice', policy)!, /user name/);
  assert.match(passwordProblem('password1234', 'bob', policy)!, /common/);
  assert.match(passwordProblem('aaaaaaaaaaaaaaaa', 'bob', policy)!, /common/);
  assert.match(passwordProblem(generateSecret('token').secret, 'bob', policy)!, /token/);
  assert.match(passwordProblem('x'.repeat(1025), 'bob', policy)!, /at most/);
});
