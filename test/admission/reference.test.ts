/** Image references in every form Kubernetes accepts, normalised like the Docker/containerd grammar. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImageReference, pinReference } from '../../src/registry/admission/reference.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  const cases: Array<[string, string, string, string | undefined, string | undefined]> = [
    ['nginx', 'docker.io', 'library/nginx', undefined, undefined],
    ['nginx:1.27', 'docker.io', 'library/nginx', '1.27', undefined],
    [`nginx@${D}`, 'docker.io', 'library/nginx', undefined, D],
    [`nginx:1.27@${D}`, 'docker.io', 'library/nginx', '1.27', D],
    ['bitnami/redis:7', 'docker.io', 'bitnami/redis', '7', undefined],
    ['docker.io/nginx', 'docker.io', 'library/nginx', undefined, undefined],
    ['index.docker.io/library/nginx:1', 'docker.io', 'library/nginx', '1', undefined],
    ['registry.example.com/team/app:v1', 'registry.example.com', 'team/app', 'v1', undefined],
    [`registry.example.com:5000/team/sub/app:v1@${D}`, 'registry.example.com:5000', 'team/sub/app', 'v1', D],
    [`localhost:5000/team/app@${D}`, 'localhost:5000', 'team/app', undefined, D],
    ['localhost/team/app', 'localhost', 'team/app', undefined, undefined],
    ['127.0.0.1:5000/team/app:v1', '127.0.0.1:5000', 'team/app', 'v1', undefined],
    ['[::1]:5000/team/app:v1', '[::1]:5000', 'team/app', 'v1', undefined],
    ['Registry.Example.COM/team/app', 'registry.example.com', 'team/app', undefined, undefined],
  ];
  for (const [input, registry, repository, tag, digest] of cases) {
    it(`parses ${input}`, () => {
      const ref = parseImageReference(input);
      assert.deepEqual({ registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: ref.digest }, { registry, repository, tag, digest });
    });
  }

  it('refuses malformed references with the reason', () => {
    assert.throws(() => parseImageReference(''), /empty/);
    assert.throws(() => parseImageReference('Team/App:v1'), /not a valid repository name/);
    assert.throws(() => parseImageReference('nginx:bad tag'), /white space/);
    assert.throws(() => parseImageReference('nginx:-x'), /-x is not a valid tag/);
    assert.throws(() => parseImageReference('nginx@sha256:abc'), /is not a digest/);
    assert.throws(() => parseImageReference('host:99999999/app'), /not a valid registry host/);
    assert.throws(() => parseImageReference(`${'a/'.repeat(600)}b`), /too long/);
  });

  it('pins a reference as written, keeping the tag for readers', () => {
    assert.equal(pinReference('nginx', D), `nginx@${D}`);
    assert.equal(pinReference('host:5000/team/app:v1', D), `host:5000/team/app:v1@${D}`);
    assert.equal(pinReference(`host/app:v1@sha256:${'b'.repeat(64)}`, D), `host/app:v1@${D}`);
  });
});
