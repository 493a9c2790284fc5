/** Provenance facts from annotations, labels, SLSA provenance and layer stacks (trace/facts.ts). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { baseFromAnnotations, chainIds, commitOf, configFacts, sourceFromAnnotations, sourceFromProvenance } from '../../src/registry/trace/facts.ts';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

test('ChainIDs follow the OCI image spec: chain(1) = diff(1), chain(n) = sha256(chain(n-1) + " " + diff(n))', () => {
  const [a, b, c] = [sha('a'), sha('b'), sha('c')];
  const ab = sha(`${a} ${b}`);
  assert.deepEqual(chainIds([a, b, c]), [a, ab, sha(`${ab} ${c}`)]);
  assert.deepEqual(chainIds([]), []);
  // the same layers in another order are another stack
  assert.notEqual(chainIds([b, a])[1], ab);
});

test('source annotations: URL normalised, commit lower-cased when it looks like one, free text bounded', () => {
  const s = sourceFromAnnotations({ 'org.opencontainers.image.source': 'git+https://github.com/Acme/App.git', 'org.opencontainers.image.revision': 'ABCDEF0123456789ABCDEF0123456789ABCDEF01', 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' }, 'annotation');
  assert.deepEqual(
    { repo: s?.sourceRepository, commit: s?.commit, verified: s?.verified, created: s?.created },
    { repo: 'github.com/Acme/App', commit: 'abcdef0123456789abcdef0123456789abcdef01', verified: false, created: '2026-01-01T00:00:00Z' },
  );
  assert.equal(sourceFromAnnotations({ 'org.opencontainers.image.revision': 'v1.2.3' }, 'label')?.commit, 'v1.2.3', 'a tag name is kept as written');
  assert.equal(sourceFromAnnotations({ 'org.opencontainers.image.title': 'x' }, 'annotation'), undefined);
  assert.equal(sourceFromAnnotations({ 'org.opencontainers.image.source': 42, 'org.opencontainers.image.revision': ['x'] } as never, 'label'), undefined, 'labels that are not strings are ignored');
  assert.equal(sourceFromAnnotations({ 'org.opencontainers.image.source': `https://e.com/${'x'.repeat(100_000)}` }, 'annotation')!.sourceUri!.length, 2048);
  assert.equal(sourceFromAnnotations(undefined, 'annotation'), undefined);
});

test('base annotations: a malformed digest is dropped, the name kept', () => {
  assert.deepEqual(baseFromAnnotations({ 'org.opencontainers.image.base.digest': 'sha256:xyz', 'org.opencontainers.image.base.name': 'docker.io/library/debian:12' }), { digest: undefined, name: 'docker.io/library/debian:12' });
  assert.deepEqual(baseFromAnnotations({ 'org.opencontainers.image.base.digest': sha('base') }), { digest: sha('base'), name: undefined });
  assert.equal(baseFromAnnotations({}), undefined);
});

test('commit of SLSA provenance: git commit digest, sha1, or a full-length ref; never a branch', () => {
  const commit = '0123456789abcdef0123456789abcdef01234567';
  assert.equal(commitOf({ predicateType: 'https://slsa.dev/provenance/v1', sourceDigest: { gitCommit: commit.toUpperCase() } }), commit);
  assert.equal(commitOf({ predicateType: 'https://slsa.dev/provenance/v0.2', sourceDigest: { sha1: commit } }), commit);
  assert.equal(commitOf({ predicateType: 'https://slsa.dev/provenance/v0.2', sourceRef: commit }), commit);
  assert.equal(commitOf({ predicateType: 'https://slsa.dev/provenance/v0.2', sourceRef: 'refs/heads/main' }), undefined);
  assert.equal(commitOf({ predicateType: 'https://slsa.dev/provenance/v0.2', sourceRef: 'deadbeef' }), undefined, 'a short ref could be a branch name');
  const fact = sourceFromProvenance({ predicateType: 'https://slsa.dev/provenance/v1', builderId: 'https://builder', buildType: 'https://type', sourceRepository: 'github.com/acme/app', sourceDigest: { gitCommit: commit } }, sha('att'));
  assert.deepEqual([fact.how, fact.verified, fact.builder, fact.commit, fact.ref], ['provenance', true, 'https://builder', commit, `${sha('att')} https://slsa.dev/provenance/v1`]);
});

test('image configuration: diff IDs, labels, created; anything else is not a configuration', () => {
  const config = Buffer.from(JSON.stringify({ created: '2026-01-01T00:00:00Z', config: { Labels: { a: 'b' } }, rootfs: { type: 'layers', diff_ids: [sha('l1'), sha('l2')] } }));
  assert.deepEqual(configFacts(config), { diffIds: [sha('l1'), sha('l2')], labels: { a: 'b' }, created: '2026-01-01T00:00:00Z' });
  assert.equal(configFacts(Buffer.from('not json')), undefined);
  assert.equal(configFacts(Buffer.from('"a string"')), undefined);
  assert.equal(configFacts(Buffer.from(JSON.stringify({ rootfs: { diff_ids: ['sha256:short', sha('x')] } }))), undefined, 'a bad diff ID makes the stack unusable');
  assert.deepEqual(configFacts(Buffer.from('{}')), { diffIds: [], labels: undefined, created: undefined });
});
