import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScopeError, formatScope, parseScopes } from './scope.ts';

test('parses scopes (several params, space-separated lists), merging actions per resource', () => {
  assert.deepEqual(parseScopes(['repository:team/app:pull,push', 'repository:team/app:delete repository:other/x:pull', 'registry:catalog:*']), [
    { type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] },
    { type: 'repository', name: 'other/x', actions: ['pull'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  assert.deepEqual(parseScopes(['repository(plugin):team/app:pull']), [{ type: 'repository', name: 'team/app', actions: ['pull'] }], 'resource classes are ignored');
  assert.deepEqual(parseScopes(['']), []);
  assert.deepEqual(parseScopes(['repository:team/app:']), [{ type: 'repository', name: 'team/app', actions: [] }]);
  assert.deepEqual(parseScopes(['unknown:host:5000/x:pull']), [{ type: 'unknown', name: 'host:5000/x', actions: ['pull'] }], 'the name may contain a port');
  assert.equal(formatScope({ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }), 'repository:a/b:pull,push');
});

test('refuses scopes that break the grammar', () => {
  const bad = ['repository', 'repository:team/app', ':team/app:pull', 'repository::pull', 'Repository:team/app:pull', 'repository:Team/App:pull', 'repository:team/app:PULL', 'repository:team/app:pull;rm', 'repository:../x:pull', 'repo sitory:x:pull', 'x'.repeat(1025)];
  for (const scope of bad) assert.throws(() => parseScopes([scope]), ScopeError, scope);
  assert.throws(() => parseScopes([Array.from({ length: 65 }, (_, i) => `repository:p/r${i}:pull`).join(' ')]), ScopeError);
});
