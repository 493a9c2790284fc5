import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError } from './errors.ts';
import { assertRepositoryName, isRepositoryName, isTag, maxNameLength, projectOf } from './reference.ts';

// Distribution spec: <name> MUST match
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*

describe('repository names', () => {
  test('valid names: lowercase alphanumeric components joined by ".", "_", "__" or any run of "-", separated by "/"', () => {
    for (const name of [
      'a',
      '0',
      'alpine',
      'library/alpine',
      'team-a/app',
      'team--a/app',
      'a---b',
      'a_b',
      'a__b',
      'a.b',
      'my.registry-mirror/some_team__x/app.v2',
      'a/b/c/d/e/f/g',
      '9/8/7',
    ]) {
      assert.equal(isRepositoryName(name), true, name);
      assert.doesNotThrow(() => assertRepositoryName(name), name);
    }
  });

  test('separators must sit between alphanumerics: no leading, trailing or doubled separators, no "___", no ".."', () => {
    for (const name of ['-a', 'a-', '_a', 'a_', '.a', 'a.', 'a___b', 'a..b', 'a.-b', 'a-.b', 'a_-b', 'a._b', 'a/-b', 'a-/b']) {
      assert.equal(isRepositoryName(name), false, name);
    }
  });

  test('upper case, other characters and empty names are refused', () => {
    for (const name of ['', 'Alpine', 'library/Alpine', 'a b', 'a:b', 'a@b', 'a+b', 'a~b', 'a\\b', 'ä', 'a\u0000', 'a\n', '\na', 'a\tb']) {
      assert.equal(isRepositoryName(name), false, JSON.stringify(name));
    }
  });

  test('path traversal and path tricks fail the grammar', () => {
    for (const name of [
      '..',
      '.',
      '../etc',
      'a/../b',
      'a/./b',
      'a/..',
      '/a',
      'a/',
      '//a',
      'a//b',
      '%2e%2e',
      '%2e%2e/etc',
      'a/%2e%2e/b',
      'a%2fb',
      'a/%2F/b',
      '..%2f..%2fetc',
      '.../a',
      'a/.../b',
      '~/a',
      'c:/a',
      'a\\..\\b',
    ]) {
      assert.equal(isRepositoryName(name), false, name);
    }
  });

  test(`the length limit is ${maxNameLength} characters for the whole name, slashes included`, () => {
    assert.equal(maxNameLength, 255);
    const single = 'a'.repeat(255);
    assert.equal(isRepositoryName(single), true);
    assert.equal(isRepositoryName(`${single}a`), false);
    // 128 + '/' + 126 = 255: the separator counts.
    const nested = `${'b'.repeat(128)}/${'c'.repeat(126)}`;
    assert.equal(nested.length, 255);
    assert.equal(isRepositoryName(nested), true);
    assert.equal(isRepositoryName(`${nested}c`), false);
    const manyComponents = Array.from({ length: 128 }, () => 'a').join('/');
    assert.equal(manyComponents.length, 255);
    assert.equal(isRepositoryName(manyComponents), true);
    assert.equal(isRepositoryName(`${manyComponents}/a`), false);
  });

  test('an overlong name is refused quickly and without quoting all of it', () => {
    const name = `${'a-'.repeat(50_000)}!`;
    assert.equal(isRepositoryName(name), false);
    assert.throws(
      () => assertRepositoryName(name),
      (error: unknown) => {
        assert.ok(error instanceof RegistryError);
        assert.ok(error.message.length < 400, 'message is bounded');
        return true;
      },
    );
  });

  test('assertRepositoryName throws NAME_INVALID (400) with the name and the rule in the detail', () => {
    assert.throws(
      () => assertRepositoryName('../etc/passwd'),
      (error: unknown) => {
        assert.ok(error instanceof RegistryError);
        assert.equal(error.code, 'NAME_INVALID');
        assert.equal(error.status, 400);
        const detail = error.detail as { name: string; rule: string };
        assert.equal(detail.name, '../etc/passwd');
        assert.match(detail.rule, /255/);
        assert.deepEqual(error.toJSON().errors[0]?.code, 'NAME_INVALID');
        return true;
      },
    );
  });
});

describe('tags', () => {
  test('valid tags: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}', () => {
    for (const tag of ['latest', 'v1.2.3', 'V1', '_', '_internal', '1', '1.0-rc.1', 'a__b--c..d', 'UPPER', 'x'.repeat(128)]) {
      assert.equal(isTag(tag), true, tag);
    }
  });

  test('at most 128 characters', () => {
    assert.equal(isTag('x'.repeat(128)), true);
    assert.equal(isTag('x'.repeat(129)), false);
  });

  test('may not start with "." or "-", and may not be empty or contain other characters', () => {
    for (const tag of ['', '.hidden', '-x', '..', '.', 'a/b', 'a:b', 'sha256:abc', 'a b', 'a+b', 'a@b', 'ä', 'latest\n', '%2e%2e', 'a\u0000']) {
      assert.equal(isTag(tag), false, JSON.stringify(tag));
    }
  });
});

describe('projectOf', () => {
  test('is the first path component of the repository', () => {
    assert.equal(projectOf('team-a/app'), 'team-a');
    assert.equal(projectOf('team-a/sub/app'), 'team-a');
    assert.equal(projectOf('library/alpine'), 'library');
  });

  test('a single-component repository is its own project', () => {
    assert.equal(projectOf('alpine'), 'alpine');
  });
});
