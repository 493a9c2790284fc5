import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchesPattern, patternProblem, patternProject } from './repository-pattern.ts';

test('globs: * within a component, ** across components, /** also matches the prefix itself', () => {
  const cases: Array<[string, string, boolean]> = [
    ['team-a/app', 'team-a/app', true],
    ['team-a/app', 'team-a/app/api', false],
    ['team-a/*', 'team-a/app', true],
    ['team-a/*', 'team-a/app/api', false],
    ['team-a/*', 'team-a', false],
    ['team-a/**', 'team-a', true],
    ['team-a/**', 'team-a/app', true],
    ['team-a/**', 'team-a/app/api/v2', true],
    ['team-a/**', 'team-ab/app', false],
    ['team-a/**/api', 'team-a/api', true],
    ['team-a/**/api', 'team-a/x/y/api', true],
    ['team-a/**/api', 'team-a/x/apix', false],
    ['team-a/app-*', 'team-a/app-web', true],
    ['team-a/app-*', 'team-a/app', false],
    ['team-a/ap?', 'team-a/api', true],
    ['team-a/ap?', 'team-a/ap/', false],
    ['team-a/a.b', 'team-a/axb', false],
    ['team-a', 'team-a', true],
    ['team-a', 'team-a/x', false],
  ];
  for (const [pattern, name, expected] of cases) assert.equal(matchesPattern(pattern, name), expected, `${pattern} ~ ${name}`);
});

test('patterns must start with a literal project; bad patterns match nothing', () => {
  for (const bad of ['', '*', '**', '*/app', 'Team/app', 'team/a**', 'team/***', 'team//app', '/team', 'team/app/', 'a'.repeat(256)]) {
    assert.ok(patternProblem(bad), `${JSON.stringify(bad)} should be refused`);
    assert.equal(matchesPattern(bad, 'team/app'), false);
  }
  for (const good of ['team', 'team/app', 'team/**', 'team/*/api', 'my.team_x/app-?']) assert.equal(patternProblem(good), undefined, good);
  assert.equal(patternProject('team-a/app/**'), 'team-a');
  assert.equal(patternProject('team-a'), 'team-a');
});
