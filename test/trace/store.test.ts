/**
 * The trace index on SQLite and PostgreSQL (trace/store.ts): base relations whichever of base and
 * image arrives first, index facts for children, deletion, commit prefixes, findings by alias, and
 * the batched deployment reader over the admission table.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqlDeploymentStore } from '../../src/registry/admission/store.ts';
import { PostgresDriver } from '../../src/registry/storage/postgres/postgres-driver.ts';
import type { SqlDriver } from '../../src/registry/storage/sql/driver.ts';
import { SqlMetadataStore } from '../../src/registry/storage/sql/sql-metadata-store.ts';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';
import { chainIds, type SourceFact } from '../../src/registry/trace/facts.ts';
import { deploymentSourceOf } from '../../src/registry/trace/sources.ts';
import { TraceStore } from '../../src/registry/trace/store.ts';
import { createTestDatabase, postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const MEDIA = 'application/vnd.oci.image.manifest.v1+json';

function image(repository: string, name: string, diffs: string[], extra: { sources?: SourceFact[]; children?: string[] } = {}) {
  const chains = chainIds(diffs);
  return {
    image: { repository, digest: sha(name), mediaType: MEDIA, configDigest: sha(`config ${name}`), layers: chains.length, topChain: chains.at(-1), created: undefined, pushedAt: 1 },
    prefixChains: chains.slice(0, -1),
    sources: extra.sources ?? [],
    annotatedBase: undefined,
    children: extra.children ?? [],
  };
}

const annotation = (commit: string): SourceFact => ({ how: 'annotation', ref: '', sourceRepository: 'github.com/acme/app', sourceUri: 'https://github.com/acme/app', commit, builder: undefined, buildType: undefined, created: undefined, verified: false });

function suite(name: string, open: () => Promise<{ driver: SqlDriver; cleanup: () => Promise<void> }>): void {
  describe(`trace store (${name})`, () => {
    test('a base relation is found whichever arrives first, and goes with a deletion', async () => {
      const { driver, cleanup } = await open();
      try {
        const store = new TraceStore(driver);
        const [l1, l2, l3] = [sha('l1'), sha('l2'), sha('l3')];
        await store.recordImage(image('team/app', 'app', [l1, l2, l3]), 1);
        await store.recordImage(image('lib/base', 'base', [l1, l2]), 1);
        await store.recordImage(image('lib/os', 'os', [l1]), 1);
        await store.recordImage(image('lib/other', 'other', [l2]), 1);
        const bases = (await store.bases(sha('app'))).map((b) => [b.baseRepository, b.baseDigest, b.baseLayers]);
        assert.deepEqual(bases, [['lib/base', sha('base'), 2], ['lib/os', sha('os'), 1]], 'longest prefix first; a layer elsewhere in the stack is no base');
        assert.deepEqual((await store.derived(sha('os'), 10)).map((d) => d.repository).sort(), ['lib/base', 'team/app']);
        await store.forget('lib/base', sha('base'));
        assert.deepEqual((await store.bases(sha('app'))).map((b) => b.baseRepository), ['lib/os']);
        // the same image pushed again (a re-push) changes nothing
        await store.recordImage(image('team/app', 'app', [l1, l2, l3]), 2);
        assert.equal((await store.bases(sha('app'))).length, 1);
      } finally {
        await cleanup();
      }
    });

    test('commits by full id and by abbreviation; an index passes its annotations to its children', async () => {
      const { driver, cleanup } = await open();
      try {
        const store = new TraceStore(driver);
        const c1 = 'abc1230000000000000000000000000000000000';
        const c2 = 'abc1240000000000000000000000000000000000';
        await store.recordImage(image('team/app', 'amd64', [sha('x')]), 1);
        await store.recordImage(image('team/app', 'arm64', [sha('y')]), 1);
        await store.recordImage(image('team/app', 'index', [], { sources: [annotation(c1)], children: [sha('amd64'), sha('arm64')] }), 1);
        await store.recordImage(image('team/lib', 'lib', [sha('z')], { sources: [annotation(c2)] }), 1);
        const full = await store.sourcesByCommit(c1, { limit: 10 });
        assert.deepEqual(full.map((s) => [s.digest, s.how]).sort(), [[sha('amd64'), 'index'], [sha('arm64'), 'index'], [sha('index'), 'annotation']].sort());
        assert.deepEqual(new Set((await store.sourcesByCommit('abc12', { limit: 10 })).map((s) => s.commit)), new Set([c1, c2]), 'git-style abbreviation');
        assert.deepEqual((await store.sourcesByCommit('abc123', { limit: 10, verifiedOnly: true })).length, 0);
        assert.deepEqual((await store.parentsOf([sha('amd64')])).map((p) => p.parent), [sha('index')]);
        await store.forget('team/app', sha('index'));
        assert.deepEqual(await store.sourcesByCommit(c1, { limit: 10 }), [], 'children lose what only the index said');
      } finally {
        await cleanup();
      }
    });

    test('findings by any alias; replaced per digest; gone with the last repository holding it', async () => {
      const { driver, cleanup } = await open();
      try {
        const store = new TraceStore(driver);
        await store.recordImage(image('a/x', 'img', [sha('1')]), 1);
        await store.recordImage(image('b/x', 'img', [sha('1')]), 1);
        const rows = Array.from({ length: 250 }, (_, i) => ({ vulnerability: `CVE-2026-${1000 + i}`, package: 'openssl', installedVersion: '3.0.0', severity: 'high', fixAvailable: true, findingId: `GHSA-${i}` }));
        await store.setFindings(sha('img'), [...rows, { vulnerability: 'GHSA-ABCD-EFGH-IJKL', package: 'zlib', installedVersion: '1.2', severity: 'critical', fixAvailable: false, findingId: 'GHSA-abcd-efgh-ijkl' }]);
        assert.equal((await store.findings(sha('img'))).length, 251);
        assert.deepEqual((await store.findingsByVulnerability('ghsa-abcd-efgh-ijkl', 10)).map((f) => f.package), ['zlib']);
        await store.setFindings(sha('img'), rows.slice(0, 1));
        assert.equal((await store.findings(sha('img'))).length, 1);
        await store.forget('a/x', sha('img'));
        assert.equal((await store.findings(sha('img'))).length, 1, 'b/x still holds the digest');
        await store.forget('b/x', sha('img'));
        assert.equal((await store.findings(sha('img'))).length, 0);
      } finally {
        await cleanup();
      }
    });

    test('deployments of many digests in one pass, newest first, bounded', async () => {
      const { driver, cleanup } = await open();
      try {
        const deployments = new SqlDeploymentStore(driver);
        for (let i = 0; i < 900; i++) {
          await deployments.record([{ cluster: 'c', namespace: 'ns', workloadKind: 'Deployment', workloadName: `w${i}`, container: 'app', digest: sha(`d${i}`), repository: 'team/app', image: `r/team/app@${sha(`d${i}`)}` }], new Date(1_000_000 + i));
        }
        const reader = deploymentSourceOf(deployments);
        const all = await reader.byDigests(Array.from({ length: 900 }, (_, i) => sha(`d${i}`)), 10_000);
        assert.equal(all.length, 900);
        const some = await reader.byDigests([sha('d1'), sha('d5'), sha('d3'), sha('nope')], 2);
        assert.deepEqual(some.map((d) => d.workloadName), ['w5', 'w3']);
      } finally {
        await cleanup();
      }
    });
  });
}

suite('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-trace-store-'));
  const driver = new SqliteDriver(join(dir, 'metadata.sqlite'));
  await new SqlMetadataStore(driver).migrate();
  return { driver, cleanup: async () => (await driver.close(), await rm(dir, { recursive: true, force: true })) };
});

const unavailable = await postgresUnavailable();
if (unavailable && postgresRequired) {
  test('PostgreSQL is reachable (required when CI=true)', () => {
    throw new Error(unavailable);
  });
} else if (unavailable) {
  test('trace store (postgres)', { skip: unavailable }, () => undefined);
} else {
  suite('postgres', async () => {
    const db = await createTestDatabase();
    const driver = new PostgresDriver({ connectionString: db.url, max: 4 });
    await new SqlMetadataStore(driver).migrate();
    return { driver, cleanup: async () => (await driver.close(), await db.drop()) };
  });
}
