/**
 * The MetadataStore contract. Every backend runs this suite from its own test file:
 *
 * ```ts
 * runMetadataStoreContract('sqlite', async (clock) => { ...; return { store, cleanup, openAnother } });
 * ```
 *
 * `makeStore` receives the test's clock and must return a store over a fresh, EMPTY and
 * UN-MIGRATED database whose notion of "now" is `clock.now()` (the suite calls `migrate()`
 * itself). `openAnother`, when given, opens a second, independent store (its own connection)
 * over the same database, used to prove that migrations are safe from several processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ManifestWrite, ManifestWriteResult, MetadataStore, UploadSession } from '../ports.ts';

export interface TestClock {
  now(): number;
  /** Moves the clock forward by `ms`. */
  advance(ms: number): void;
}

export interface MetadataStoreHarness {
  store: MetadataStore;
  /** Closes `store` and removes the database. */
  cleanup(): Promise<void>;
  /** A second store over the same database (same clock); the suite closes it. */
  openAnother?(): Promise<MetadataStore>;
}

export type MakeMetadataStore = (clock: TestClock) => Promise<MetadataStoreHarness>;

const START = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function makeClock(): TestClock {
  let t = START;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

export function runMetadataStoreContract(name: string, makeStore: MakeMetadataStore): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let clock: TestClock;
    let harness: MetadataStoreHarness;
    let store: MetadataStore;

    beforeEach(async () => {
      clock = makeClock();
      harness = await makeStore(clock);
      store = harness.store;
      await store.migrate();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    const nowDate = () => new Date(clock.now());

    /** Records a blob and links it into `repository`. */
    async function pushBlob(repository: string, label: string, size = 100, graceMs = HOUR): Promise<string> {
      const digest = sha256(`blob:${label}`);
      assert.equal(await store.recordBlob(digest, size, graceMs), true);
      await store.linkBlob(repository, digest);
      return digest;
    }

    function manifest(repository: string, label: string, extra: Partial<ManifestWrite> = {}): ManifestWrite {
      const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: extra.mediaType ?? MANIFEST, label }));
      return {
        repository,
        digest: sha256(content),
        mediaType: MANIFEST,
        artifactType: undefined,
        content,
        subject: undefined,
        annotations: undefined,
        blobs: [],
        children: [],
        tag: undefined,
        ...extra,
      };
    }

    async function putOk(write: ManifestWrite): Promise<Extract<ManifestWriteResult, { ok: true }>> {
      const result = await store.putManifest(write);
      assert.equal(result.ok, true, `putManifest failed: ${JSON.stringify(result)}`);
      return result as Extract<ManifestWriteResult, { ok: true }>;
    }

    async function candidates(): Promise<string[]> {
      return (await store.gcCandidates(nowDate(), 1000)).map((c) => c.digest);
    }

    // ------------------------------------------------------------------ migrations

    describe('migrate', () => {
      it('is a no-op when called again, keeping the data', async () => {
        const blob = await pushBlob('repo', 'x');
        await store.migrate();
        await store.migrate();
        assert.deepEqual(await store.linkedBlob('repo', blob), { size: 100, referenced: false });
      });

      it('is safe from two stores over one database at once', async (t) => {
        // A fresh database: drop the one migrated by beforeEach and start again.
        await harness.cleanup();
        harness = await makeStore(clock);
        store = harness.store;
        const openAnother = harness.openAnother?.bind(harness);
        if (!openAnother) {
          t.skip('backend cannot open a second store');
          return;
        }
        const others = [await openAnother(), await openAnother()];
        try {
          await Promise.all([store.migrate(), ...others.map((o) => o.migrate()), store.migrate()]);
          await pushBlob('repo', 'x');
          for (const other of others) assert.deepEqual(await other.linkedBlob('repo', sha256('blob:x')), { size: 100, referenced: false });
        } finally {
          for (const other of others) await other.close();
        }
      });
    });

    // ------------------------------------------------------------------ repositories

    describe('repositories', () => {
      it('exists only once something is linked into it', async () => {
        assert.equal(await store.repositoryExists('library/alpine'), false);
        await pushBlob('library/alpine', 'a');
        assert.equal(await store.repositoryExists('library/alpine'), true);
        assert.equal(await store.repositoryExists('library'), false);
        assert.equal(await store.repositoryExists('library/alpine/x'), false);
      });

      it('lists nothing in an empty registry', async () => {
        assert.deepEqual(await store.listRepositories(10), { items: [], more: false });
      });

      it('lists in lexical byte order and paginates with n and last', async () => {
        const names = ['b', 'a/b/c', 'ab', 'a-b', 'a/b', 'a0', 'a', 'a.b', 'a_b', 'z9/x'];
        for (const [i, repo] of names.entries()) await pushBlob(repo, `blob${i}`);
        const sorted = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual(sorted, ['a', 'a-b', 'a.b', 'a/b', 'a/b/c', 'a0', 'a_b', 'ab', 'b', 'z9/x']);

        assert.deepEqual(await store.listRepositories(100), { items: sorted, more: false });
        assert.deepEqual(await store.listRepositories(sorted.length), { items: sorted, more: false });
        assert.deepEqual(await store.listRepositories(sorted.length - 1), { items: sorted.slice(0, -1), more: true });

        const seen: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = await store.listRepositories(3, last);
          assert.ok(page.items.length <= 3);
          seen.push(...page.items);
          if (!page.more) break;
          last = page.items.at(-1);
        }
        assert.deepEqual(seen, sorted);

        assert.deepEqual(await store.listRepositories(2, 'a'), { items: ['a-b', 'a.b'], more: true });
        assert.deepEqual(await store.listRepositories(2, 'a/b'), { items: ['a/b/c', 'a0'], more: true });
        // `last` need not be an existing name.
        assert.deepEqual(await store.listRepositories(2, 'a/a'), { items: ['a/b', 'a/b/c'], more: true });
        assert.deepEqual(await store.listRepositories(5, 'b'), { items: ['z9/x'], more: false });
        assert.deepEqual(await store.listRepositories(5, 'z9/x'), { items: [], more: false });
        assert.deepEqual(await store.listRepositories(5, 'zz'), { items: [], more: false });
      });
    });

    // ------------------------------------------------------------------ blobs

    describe('blobs', () => {
      it('records, links and reports the size only in the linked repository', async () => {
        const digest = sha256('layer');
        assert.equal(await store.recordBlob(digest, 1234, HOUR), true);
        assert.equal(await store.linkedBlob('a', digest), undefined, 'recorded but not linked');
        await store.linkBlob('a', digest);
        assert.deepEqual(await store.linkedBlob('a', digest), { size: 1234, referenced: false });
        assert.equal(await store.linkedBlob('b', digest), undefined, 'a blob linked in a is not visible in b');
        assert.equal(await store.repositoryExists('b'), false);
        assert.equal(await store.linkedBlob('a', sha256('other')), undefined);
      });

      it('linkBlob and recordBlob are idempotent', async () => {
        const digest = sha256('layer');
        assert.equal(await store.recordBlob(digest, 10, HOUR), true);
        assert.equal(await store.recordBlob(digest, 10, HOUR), true);
        await store.linkBlob('a', digest);
        await store.linkBlob('a', digest);
        assert.deepEqual(await store.linkedBlob('a', digest), { size: 10, referenced: false });
        assert.deepEqual(await store.listRepositories(10), { items: ['a'], more: false });
      });

      it('linkedBlob reports whether any manifest references the blob', async () => {
        const digest = await pushBlob('a', 'layer', 5);
        await store.linkBlob('b', digest);
        assert.deepEqual(await store.linkedBlob('a', digest), { size: 5, referenced: false });
        const m = manifest('b', 'm', { blobs: [digest] });
        await putOk(m);
        assert.deepEqual(await store.linkedBlob('a', digest), { size: 5, referenced: true });
        assert.deepEqual(await store.linkedBlob('b', digest), { size: 5, referenced: true });
        await store.deleteManifest('b', m.digest);
        assert.deepEqual(await store.linkedBlob('a', digest), { size: 5, referenced: false });
      });

      it('mountBlob from a repository holding the blob links it and protects it', async () => {
        const digest = await pushBlob('src', 'layer', 42, 10);
        clock.advance(20);
        assert.deepEqual(await candidates(), [digest]);
        assert.equal(await store.mountBlob('dst', digest, 'src', HOUR), true);
        assert.deepEqual(await store.linkedBlob('dst', digest), { size: 42, referenced: false });
        assert.deepEqual(await store.linkedBlob('src', digest), { size: 42, referenced: false });
        assert.equal(await store.repositoryExists('dst'), true);
        assert.deepEqual(await candidates(), [], 'a mount protects the blob again');
        // Mounting again is idempotent.
        assert.equal(await store.mountBlob('dst', digest, 'src', HOUR), true);
      });

      it('mountBlob fails when `from` does not hold the blob, creating nothing', async () => {
        const digest = await pushBlob('src', 'layer');
        await pushBlob('other', 'something');
        assert.equal(await store.mountBlob('dst', digest, 'other', HOUR), false);
        assert.equal(await store.mountBlob('dst', digest, 'nowhere', HOUR), false);
        assert.equal(await store.mountBlob('dst', sha256('unknown'), 'src', HOUR), false);
        assert.equal(await store.linkedBlob('dst', digest), undefined);
        assert.equal(await store.repositoryExists('dst'), false);
      });

      it('mountBlob without `from` never reaches into other repositories', async () => {
        const digest = await pushBlob('src', 'layer', 42, 10);
        assert.equal(await store.mountBlob('dst', digest, undefined, HOUR), false);
        assert.equal(await store.linkedBlob('dst', digest), undefined);
        assert.equal(await store.repositoryExists('dst'), false);
        // The blob already in the repository itself: mounting succeeds (and protects it).
        clock.advance(20);
        assert.equal(await store.mountBlob('src', digest, undefined, HOUR), true);
        assert.deepEqual(await candidates(), []);
      });

      it('unlinkBlob reports unknown, referenced and deleted', async () => {
        assert.equal(await store.unlinkBlob('nowhere', sha256('x')), 'unknown');
        const layer = await pushBlob('a', 'layer');
        const loose = await pushBlob('a', 'loose');
        await pushBlob('b', 'loose');
        assert.equal(await store.unlinkBlob('a', sha256('never')), 'unknown');
        await putOk(manifest('a', 'm', { blobs: [layer] }));
        assert.equal(await store.unlinkBlob('a', layer), 'referenced');
        assert.deepEqual(await store.linkedBlob('a', layer), { size: 100, referenced: true }, 'nothing changes when referenced');
        assert.equal(await store.unlinkBlob('a', loose), 'deleted');
        assert.equal(await store.linkedBlob('a', loose), undefined);
        assert.deepEqual(await store.linkedBlob('b', loose), { size: 100, referenced: false }, 'other repositories keep their link');
        assert.equal(await store.unlinkBlob('a', loose), 'unknown');
      });

      it('unlinking never cuts short the protection of a blob being uploaded elsewhere', async () => {
        const digest = await pushBlob('a', 'layer', 100, 10);
        clock.advance(20);
        // Another repository's upload of the same content records it, then commits and links it.
        assert.equal(await store.recordBlob(digest, 100, HOUR), true);
        assert.equal(await store.unlinkBlob('a', digest), 'deleted');
        assert.deepEqual(await candidates(), []);
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), false);
        await store.linkBlob('b', digest);
        assert.deepEqual(await store.linkedBlob('b', digest), { size: 100, referenced: false });
        clock.advance(HOUR);
        assert.deepEqual(await candidates(), [digest], 'collectable once the protection ran out');
      });
    });

    // ------------------------------------------------------------------ manifests

    describe('putManifest', () => {
      it('refuses missing blobs, listing them, and writes nothing', async () => {
        const present = await pushBlob('other', 'present');
        const missing1 = sha256('missing1');
        const missing2 = sha256('missing2');
        const write = manifest('new/repo', 'm', { blobs: [missing1, present, missing2, missing1], tag: 'latest' });
        const result = await store.putManifest(write);
        assert.equal(result.ok, false);
        assert.ok(!result.ok);
        assert.deepEqual([...result.missingBlobs].sort(), [missing1, missing2, present].sort(), 'a blob linked in another repository is missing here');
        assert.deepEqual(result.missingChildren, []);
        assert.equal(await store.getManifest('new/repo', write.digest), undefined);
        assert.equal(await store.resolveTag('new/repo', 'latest'), undefined);
        assert.equal(await store.repositoryExists('new/repo'), false, 'not even the repository is created');
        assert.deepEqual(await store.listRepositories(10), { items: ['other'], more: false });
      });

      it('refuses a partially missing set in an existing repository without touching reference counts', async () => {
        const present = await pushBlob('repo', 'present', 100, 10);
        const missing = sha256('missing');
        const result = await store.putManifest(manifest('repo', 'm', { blobs: [present, missing], tag: 'v1' }));
        assert.deepEqual(result, { ok: false, missingBlobs: [missing], missingChildren: [] });
        assert.deepEqual(await store.listTags('repo', 10), { items: [], more: false });
        clock.advance(20);
        assert.deepEqual(await candidates(), [present], 'the present blob gained no reference');
        assert.equal(await store.unlinkBlob('repo', present), 'deleted');
      });

      it('refuses missing child manifests', async () => {
        const layer = await pushBlob('repo', 'layer');
        const child = manifest('repo', 'child', { blobs: [layer] });
        await putOk(child);
        const absent = sha256('absent-child');
        const index = manifest('repo', 'index', { mediaType: INDEX, children: [child.digest, absent], tag: 'multi' });
        const result = await store.putManifest(index);
        assert.deepEqual(result, { ok: false, missingBlobs: [], missingChildren: [absent] });
        assert.equal(await store.getManifest('repo', index.digest), undefined);
        assert.equal(await store.resolveTag('repo', 'multi'), undefined);
        // A child in another repository does not count either.
        await pushBlob('elsewhere', 'layer');
        const foreign = manifest('elsewhere', 'foreign', { blobs: [layer] });
        await putOk(foreign);
        const result2 = await store.putManifest(manifest('repo', 'index2', { mediaType: INDEX, children: [foreign.digest] }));
        assert.deepEqual(result2, { ok: false, missingBlobs: [], missingChildren: [foreign.digest] });
        // Nothing was counted: the child is still deletable.
        assert.equal((await store.deleteManifest('repo', child.digest)).outcome, 'deleted');
      });

      it('stores the manifest and returns the exact bytes and metadata', async () => {
        const config = await pushBlob('repo', 'config');
        const layer = await pushBlob('repo', 'layer');
        // Not canonical JSON, with whitespace, CRLF, non-ASCII and bytes that are not UTF-8.
        const content = Buffer.concat([Buffer.from('{ "schemaVersion" : 2,\r\n\t"x": "é€😀" }  \n'), Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a])]);
        const write: ManifestWrite = {
          ...manifest('repo', 'm'),
          digest: sha256(content),
          content,
          artifactType: 'application/vnd.example+type',
          subject: sha256('subject'),
          annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z', 'x.y': 'ünïcode' },
          blobs: [config, layer],
          tag: 'latest',
        };
        const result = await putOk(write);
        assert.deepEqual(result, { ok: true, created: true, previousTagTarget: undefined });
        const record = await store.getManifest('repo', write.digest);
        assert.ok(record);
        assert.ok(Buffer.isBuffer(record.content));
        assert.ok(record.content.equals(content), 'exact bytes');
        assert.deepEqual(record, {
          repository: 'repo',
          digest: write.digest,
          mediaType: MANIFEST,
          artifactType: 'application/vnd.example+type',
          size: content.length,
          content: record.content,
          subject: write.subject,
          annotations: write.annotations,
          createdAt: new Date(START),
        });
        assert.equal(await store.resolveTag('repo', 'latest'), write.digest);
        assert.deepEqual(await store.getTaggedManifest('repo', 'latest'), record, 'by tag: the same record in one read');
      });

      it('returns undefined optional fields as undefined', async () => {
        const write = manifest('repo', 'plain');
        await putOk(write);
        const record = await store.getManifest('repo', write.digest);
        assert.ok(record);
        assert.equal(record.artifactType, undefined);
        assert.equal(record.subject, undefined);
        assert.equal(record.annotations, undefined);
      });

      it('is idempotent: a re-put returns created: false', async () => {
        const layer = await pushBlob('repo', 'layer', 100, 10);
        const write = manifest('repo', 'm', { blobs: [layer] });
        assert.deepEqual(await putOk(write), { ok: true, created: true, previousTagTarget: undefined });
        assert.deepEqual(await putOk(write), { ok: true, created: false, previousTagTarget: undefined });
        assert.deepEqual(await putOk({ ...write, tag: 'v1' }), { ok: true, created: false, previousTagTarget: undefined });
        assert.deepEqual(await putOk({ ...write, tag: 'v1' }), { ok: true, created: false, previousTagTarget: write.digest });
        assert.deepEqual(await store.tagsOf('repo', write.digest), ['v1']);
        // The reference was counted once: one delete releases it.
        assert.equal((await store.deleteManifest('repo', write.digest)).outcome, 'deleted');
        clock.advance(20);
        assert.deepEqual(await candidates(), [layer]);
      });

      it('counts a blob listed twice once', async () => {
        const layer = await pushBlob('repo', 'layer', 100, 10);
        const write = manifest('repo', 'm', { blobs: [layer, layer] });
        await putOk(write);
        assert.equal((await store.deleteManifest('repo', write.digest)).outcome, 'deleted');
        clock.advance(20);
        assert.deepEqual(await candidates(), [layer]);
      });

      it('moves a tag and returns its previous target', async () => {
        const m1 = manifest('repo', 'one', { tag: 'latest' });
        const m2 = manifest('repo', 'two', { tag: 'latest' });
        assert.equal((await putOk(m1)).previousTagTarget, undefined);
        assert.deepEqual(await putOk(m2), { ok: true, created: true, previousTagTarget: m1.digest });
        assert.equal(await store.resolveTag('repo', 'latest'), m2.digest);
        assert.equal((await store.getTaggedManifest('repo', 'latest'))?.digest, m2.digest, 'the tagged manifest follows the move');
        assert.equal(await store.getTaggedManifest('repo', 'nope'), undefined);
        assert.deepEqual(await store.tagsOf('repo', m1.digest), []);
        assert.deepEqual(await store.tagsOf('repo', m2.digest), ['latest']);
        assert.ok(await store.getManifest('repo', m1.digest), 'the old target stays');
        // Moving back to an existing manifest.
        assert.deepEqual(await putOk({ ...m1 }), { ok: true, created: false, previousTagTarget: m2.digest });
        assert.equal(await store.resolveTag('repo', 'latest'), m1.digest);
      });

      it('keeps manifests and tags per repository', async () => {
        const m = manifest('a', 'm', { tag: 'latest' });
        await putOk(m);
        assert.equal(await store.getManifest('b', m.digest), undefined);
        assert.equal(await store.resolveTag('b', 'latest'), undefined);
        assert.equal(await store.getTaggedManifest('b', 'latest'), undefined);
        await putOk({ ...m, repository: 'b', tag: 'other' });
        assert.deepEqual(await store.tagsOf('a', m.digest), ['latest']);
        assert.deepEqual(await store.tagsOf('b', m.digest), ['other']);
        assert.equal((await store.deleteManifest('a', m.digest)).outcome, 'deleted');
        assert.ok(await store.getManifest('b', m.digest));
        assert.equal(await store.resolveTag('b', 'other'), m.digest);
      });

      it('getManifest is undefined for an unknown repository or digest', async () => {
        assert.equal(await store.getManifest('nowhere', sha256('x')), undefined);
        await putOk(manifest('repo', 'm'));
        assert.equal(await store.getManifest('repo', sha256('x')), undefined);
      });
    });

    describe('putManifests (one transaction)', () => {
      it('links blobs from the source, writes children, index, referrer and tags at once', async () => {
        const layer = await pushBlob('staging/app', 'layer');
        const own = sha256('blob:own');
        assert.equal(await store.recordBlob(own, 10, HOUR), true, 'a recorded, unlinked blob (the registry wrote it)');
        const child = manifest('prod/app', 'child', { blobs: [layer] });
        const index = manifest('prod/app', 'index', { mediaType: INDEX, children: [child.digest], tag: 'v1' });
        const referrer = manifest('prod/app', 'sig', { blobs: [own], subject: index.digest });
        const result = await store.putManifests({ repository: 'prod/app', blobs: [{ digest: layer, from: 'staging/app' }, { digest: own, from: undefined }], manifests: [child, index, referrer], graceMs: HOUR });
        assert.equal(result.ok, true, JSON.stringify(result));
        assert.ok(result.ok);
        assert.deepEqual(result.results.map((r) => r.created), [true, true, true]);
        assert.equal(await store.resolveTag('prod/app', 'v1'), index.digest);
        assert.deepEqual((await store.listReferrers('prod/app', index.digest)).map((r) => r.digest), [referrer.digest]);
        assert.deepEqual(await store.linkedBlob('prod/app', layer), { size: 100, referenced: true });
        const again = await store.putManifests({ repository: 'prod/app', blobs: [{ digest: layer, from: 'staging/app' }], manifests: [child, index], graceMs: HOUR });
        assert.ok(again.ok);
        assert.deepEqual(again.results.map((r) => r.created), [false, false], 'a second copy writes nothing new');
      });

      it('writes nothing, not even the repository, when a later manifest fails', async () => {
        const layer = await pushBlob('staging/app', 'layer');
        const first = manifest('prod/app', 'first', { blobs: [layer], tag: 'v1' });
        const broken = manifest('prod/app', 'broken', { children: [sha256('absent')], mediaType: INDEX, tag: 'v2' });
        const result = await store.putManifests({ repository: 'prod/app', blobs: [{ digest: layer, from: 'staging/app' }], manifests: [first, broken], graceMs: HOUR });
        assert.deepEqual(result, { ok: false, missingBlobs: [], missingChildren: [sha256('absent')] });
        assert.equal(await store.repositoryExists('prod/app'), false);
        assert.equal(await store.getManifest('prod/app', first.digest), undefined);
        assert.equal(await store.resolveTag('prod/app', 'v1'), undefined);
        assert.equal(await store.linkedBlob('prod/app', layer), undefined);
        assert.deepEqual(await store.linkedBlob('staging/app', layer), { size: 100, referenced: false }, 'no reference was counted');
      });

      it('refuses a blob the source does not hold (or an unknown one), listing them', async () => {
        const elsewhere = await pushBlob('other/app', 'x');
        const unknown = sha256('blob:unknown');
        const result = await store.putManifests({ repository: 'prod/app', blobs: [{ digest: elsewhere, from: 'staging/app' }, { digest: unknown, from: undefined }], manifests: [manifest('prod/app', 'm', { blobs: [elsewhere] })], graceMs: HOUR });
        assert.equal(result.ok, false);
        assert.ok(!result.ok);
        assert.deepEqual([...result.missingBlobs].sort(), [elsewhere, unknown].sort());
        assert.equal(await store.repositoryExists('prod/app'), false);
      });
    });

    describe('listManifests', () => {
      it('pages non-referrer manifests by repository then digest, optionally for one project', async () => {
        const written: string[] = [];
        for (const repo of ['a/x', 'ab/y', 'a', 'b/z']) {
          for (const label of ['1', '2']) {
            const m = manifest(repo, `${repo}-${label}`);
            await putOk(m);
            written.push(`${repo}@${m.digest}`);
          }
        }
        const subject = manifest('a/x', 'a/x-1');
        await putOk(manifest('a/x', 'ref', { subject: subject.digest }));
        const seen: string[] = [];
        let after: { repository: string; digest: string } | undefined;
        for (;;) {
          const page = await store.listManifests(3, after);
          seen.push(...page.items.map((i) => `${i.repository}@${i.digest}`));
          if (!page.more) break;
          after = page.items.at(-1)!;
        }
        assert.deepEqual(seen, [...written].sort((p, q) => (p.split('@')[0]! < q.split('@')[0]! ? -1 : p.split('@')[0]! > q.split('@')[0]! ? 1 : p < q ? -1 : 1)), 'the referrer is left out');
        const project = await store.listManifests(100, undefined, 'a');
        assert.deepEqual([...new Set(project.items.map((i) => i.repository))], ['a', 'a/x'], 'ab/y is another project');
        assert.equal(project.items[0]!.mediaType, MANIFEST);
      });
    });

    describe('tags', () => {
      it('lists tags in byte order with n and last', async () => {
        const tags = ['latest', 'A', '1.0', '10', '1.0-rc', '_x', 'a', 'Z', 'v1.0.0', 'v1_0'];
        const m = manifest('repo', 'm');
        for (const tag of tags) await putOk({ ...m, tag });
        const sorted = [...tags].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual(sorted, ['1.0', '1.0-rc', '10', 'A', 'Z', '_x', 'a', 'latest', 'v1.0.0', 'v1_0']);
        assert.deepEqual(await store.listTags('repo', 100), { items: sorted, more: false });
        assert.deepEqual(await store.listTags('repo', 10), { items: sorted, more: false });
        assert.deepEqual(await store.listTags('repo', 4), { items: sorted.slice(0, 4), more: true });
        assert.deepEqual(await store.listTags('repo', 4, 'A'), { items: ['Z', '_x', 'a', 'latest'], more: true });
        assert.deepEqual(await store.listTags('repo', 4, 'latest'), { items: ['v1.0.0', 'v1_0'], more: false });
        assert.deepEqual(await store.listTags('repo', 4, 'v1_0'), { items: [], more: false });
        assert.deepEqual(await store.tagsOf('repo', m.digest), sorted);
      });

      it('lists no tags for an unknown repository or one without tags', async () => {
        assert.deepEqual(await store.listTags('nowhere', 10), { items: [], more: false });
        await putOk(manifest('repo', 'm'));
        assert.deepEqual(await store.listTags('repo', 10), { items: [], more: false });
        assert.deepEqual(await store.tagsOf('repo', sha256('x')), []);
      });

      it('does not mix tags of different repositories', async () => {
        await putOk(manifest('a', 'm', { tag: 'one' }));
        await putOk(manifest('ab', 'm', { tag: 'two' }));
        assert.deepEqual(await store.listTags('a', 10), { items: ['one'], more: false });
        assert.deepEqual(await store.listTags('ab', 10), { items: ['two'], more: false });
      });

      it('deleteTag removes the tag but keeps the manifest', async () => {
        const m = manifest('repo', 'm', { tag: 'v1' });
        await putOk(m);
        await putOk({ ...m, tag: 'v2' });
        assert.equal(await store.deleteTag('repo', 'v1'), true);
        assert.equal(await store.deleteTag('repo', 'v1'), false);
        assert.equal(await store.deleteTag('repo', 'never'), false);
        assert.equal(await store.deleteTag('nowhere', 'v2'), false);
        assert.equal(await store.resolveTag('repo', 'v1'), undefined);
        assert.equal(await store.resolveTag('repo', 'v2'), m.digest);
        assert.ok(await store.getManifest('repo', m.digest));
      });
    });

    describe('deleteManifest', () => {
      it('deletes the manifest with its tags', async () => {
        const m = manifest('repo', 'm', { tag: 'v2' });
        await putOk(m);
        await putOk({ ...m, tag: 'v1' });
        const other = manifest('repo', 'other', { tag: 'keep' });
        await putOk(other);
        assert.deepEqual(await store.deleteManifest('repo', m.digest), { outcome: 'deleted', tags: ['v1', 'v2'] });
        assert.equal(await store.getManifest('repo', m.digest), undefined);
        assert.equal(await store.resolveTag('repo', 'v1'), undefined);
        assert.deepEqual(await store.listTags('repo', 10), { items: ['keep'], more: false });
        assert.deepEqual(await store.deleteManifest('repo', m.digest), { outcome: 'unknown' });
        assert.deepEqual(await store.deleteManifest('nowhere', m.digest), { outcome: 'unknown' });
      });

      it("is 'referenced' while an index lists the manifest", async () => {
        const child = manifest('repo', 'child', { tag: 'child' });
        await putOk(child);
        const index = manifest('repo', 'index', { mediaType: INDEX, children: [child.digest, child.digest] });
        await putOk(index);
        const index2 = manifest('repo', 'index2', { mediaType: INDEX, children: [child.digest] });
        await putOk(index2);
        assert.deepEqual(await store.deleteManifest('repo', child.digest), { outcome: 'referenced' });
        assert.ok(await store.getManifest('repo', child.digest), 'nothing changes');
        assert.equal(await store.resolveTag('repo', 'child'), child.digest);
        assert.equal((await store.deleteManifest('repo', index.digest)).outcome, 'deleted');
        assert.deepEqual(await store.deleteManifest('repo', child.digest), { outcome: 'referenced' }, 'index2 still lists it');
        assert.equal((await store.deleteManifest('repo', index2.digest)).outcome, 'deleted');
        assert.deepEqual(await store.deleteManifest('repo', child.digest), { outcome: 'deleted', tags: ['child'] });
      });

      it('an index in another repository does not hold a manifest', async () => {
        const child = manifest('a', 'child');
        await putOk(child);
        await putOk({ ...child, repository: 'b' });
        await putOk(manifest('b', 'index', { mediaType: INDEX, children: [child.digest] }));
        assert.equal((await store.deleteManifest('a', child.digest)).outcome, 'deleted');
        assert.deepEqual(await store.deleteManifest('b', child.digest), { outcome: 'referenced' });
      });

      it('releases blob references so unreferenced blobs become gc candidates', async () => {
        const shared = await pushBlob('repo', 'shared', 100, 10);
        const own = await pushBlob('repo', 'own', 100, 10);
        await store.linkBlob('other', shared);
        const m1 = manifest('repo', 'm1', { blobs: [shared, own] });
        const m2 = manifest('repo', 'm2', { blobs: [shared] });
        const m3 = manifest('other', 'm3', { blobs: [shared] });
        await putOk(m1);
        await putOk(m2);
        await putOk(m3);
        clock.advance(20);
        assert.deepEqual(await candidates(), []);
        await store.deleteManifest('repo', m1.digest);
        assert.deepEqual(await candidates(), [own]);
        await store.deleteManifest('repo', m2.digest);
        assert.deepEqual(await candidates(), [own], 'a manifest of another repository still references it');
        await store.deleteManifest('other', m3.digest);
        assert.deepEqual((await candidates()).sort(), [own, shared].sort());
      });

      it('releasing the last reference never cuts short a fresh protection', async () => {
        const layer = await pushBlob('a', 'layer', 100, 10);
        const m = manifest('a', 'm', { blobs: [layer] });
        await putOk(m);
        clock.advance(20);
        // An upload of the same content in another repository is under way.
        assert.equal(await store.recordBlob(layer, 100, HOUR), true);
        await store.deleteManifest('a', m.digest);
        assert.deepEqual(await candidates(), []);
        assert.equal(await store.beginBlobDeletion(layer, nowDate()), false);
        clock.advance(HOUR);
        assert.deepEqual(await candidates(), [layer]);
      });

      it('a deleted index releases its children', async () => {
        const layer = await pushBlob('repo', 'layer', 100, 10);
        const child = manifest('repo', 'child', { blobs: [layer] });
        await putOk(child);
        const index = manifest('repo', 'index', { mediaType: INDEX, children: [child.digest], tag: 'multi' });
        await putOk(index);
        assert.deepEqual(await store.deleteManifest('repo', index.digest), { outcome: 'deleted', tags: ['multi'] });
        assert.deepEqual(await store.deleteManifest('repo', child.digest), { outcome: 'deleted', tags: [] });
        clock.advance(20);
        assert.deepEqual(await candidates(), [layer]);
      });

      it('a deleted manifest can be pushed again', async () => {
        const layer = await pushBlob('repo', 'layer', 100, 10);
        const m = manifest('repo', 'm', { blobs: [layer], tag: 'v1' });
        await putOk(m);
        await store.deleteManifest('repo', m.digest);
        assert.deepEqual(await putOk(m), { ok: true, created: true, previousTagTarget: undefined });
        clock.advance(20);
        assert.deepEqual(await candidates(), [], 'referenced again');
      });
    });

    describe('listReferrers', () => {
      it('lists manifests whose subject is the digest, filtered by artifactType', async () => {
        const subject = manifest('repo', 'subject', { tag: 'latest' });
        await putOk(subject);
        const sbom = manifest('repo', 'sbom', { artifactType: 'application/vnd.example.sbom', subject: subject.digest, annotations: { kind: 'sbom' } });
        clock.advance(1);
        const sig = manifest('repo', 'sig', { artifactType: 'application/vnd.example.sig', subject: subject.digest });
        const sbom2 = manifest('repo', 'sbom2', { artifactType: 'application/vnd.example.sbom', subject: subject.digest });
        const unrelated = manifest('repo', 'unrelated', { artifactType: 'application/vnd.example.sbom', subject: sha256('other') });
        const foreign = manifest('elsewhere', 'foreign', { artifactType: 'application/vnd.example.sbom', subject: subject.digest });
        for (const m of [sbom, sig, sbom2, unrelated, foreign]) {
          await putOk(m);
          clock.advance(1);
        }
        const all = await store.listReferrers('repo', subject.digest);
        assert.deepEqual(all.map((r) => r.digest).sort(), [sbom.digest, sig.digest, sbom2.digest].sort());
        const sbomRecord = all.find((r) => r.digest === sbom.digest);
        assert.deepEqual(sbomRecord, {
          digest: sbom.digest,
          mediaType: MANIFEST,
          artifactType: 'application/vnd.example.sbom',
          size: sbom.content.length,
          annotations: { kind: 'sbom' },
        });
        assert.equal(all.find((r) => r.digest === sig.digest)?.annotations, undefined);

        const filtered = await store.listReferrers('repo', subject.digest, 'application/vnd.example.sbom');
        assert.deepEqual(filtered.map((r) => r.digest).sort(), [sbom.digest, sbom2.digest].sort());
        assert.deepEqual(await store.listReferrers('repo', subject.digest, 'application/vnd.example.none'), []);
        assert.deepEqual(await store.listReferrers('repo', sha256('nothing')), []);
        assert.deepEqual(await store.listReferrers('nowhere', subject.digest), []);

        await store.deleteManifest('repo', sig.digest);
        assert.deepEqual((await store.listReferrers('repo', subject.digest)).map((r) => r.digest).sort(), [sbom.digest, sbom2.digest].sort());
      });

      it('lists referrers pushed before their subject', async () => {
        const subjectDigest = sha256('not yet pushed');
        const ref = manifest('repo', 'ref', { subject: subjectDigest, artifactType: 'application/vnd.example.sig' });
        await putOk(ref);
        assert.deepEqual((await store.listReferrers('repo', subjectDigest)).map((r) => r.digest), [ref.digest]);
      });
    });

    // ------------------------------------------------------------------ uploads

    describe('upload sessions', () => {
      function session(id: string, updatedAt: number, size = 0): UploadSession {
        return { id, repository: 'repo/x', size, startedAt: new Date(updatedAt - 1000), updatedAt: new Date(updatedAt) };
      }

      it('creates and gets a session', async () => {
        const s = session('u1', START, 5);
        await store.createUpload(s);
        assert.deepEqual(await store.getUpload('u1'), s);
        assert.equal(await store.getUpload('u2'), undefined);
      });

      it('advanceUpload records progress only from the expected size', async () => {
        await store.createUpload(session('u1', START - HOUR));
        clock.advance(5000);
        assert.equal(await store.advanceUpload('u1', 0, 100), true);
        const advanced = await store.getUpload('u1');
        assert.equal(advanced?.size, 100);
        assert.equal(advanced?.updatedAt.getTime(), clock.now(), 'updatedAt is the store clock');
        assert.equal(advanced?.startedAt.getTime(), START - HOUR - 1000);
        assert.equal(await store.advanceUpload('u1', 0, 200), false, 'stale expected size');
        assert.equal((await store.getUpload('u1'))?.size, 100);
        assert.equal(await store.advanceUpload('u1', 100, 250), true);
        assert.equal((await store.getUpload('u1'))?.size, 250);
        assert.equal(await store.advanceUpload('unknown', 0, 10), false);
      });

      it('only one of two racing advances from the same size wins', async () => {
        await store.createUpload(session('u1', START));
        const results = await Promise.all([store.advanceUpload('u1', 0, 10), store.advanceUpload('u1', 0, 20)]);
        assert.deepEqual(results.filter(Boolean).length, 1);
      });

      it('completeUpload links the blob and ends the session at once, only from the expected size', async () => {
        const digest = sha256('blob:completed');
        assert.equal(await store.recordBlob(digest, 7, 10), true);
        await store.createUpload(session('u1', START, 3));
        assert.equal(await store.completeUpload('u1', 'repo/x', digest, 0), false, 'stale expected size');
        assert.equal(await store.linkedBlob('repo/x', digest), undefined, 'nothing linked when refused');
        assert.equal((await store.getUpload('u1'))?.size, 3);
        assert.equal(await store.completeUpload('u1', 'repo/x', digest, 3), true);
        assert.deepEqual(await store.linkedBlob('repo/x', digest), { size: 7, referenced: false });
        assert.equal(await store.getUpload('u1'), undefined);
        assert.equal(await store.completeUpload('u1', 'repo/x', digest, 3), false, 'a session completes once');
      });

      it('deleteUpload removes the session and is idempotent', async () => {
        await store.createUpload(session('u1', START));
        await store.deleteUpload('u1');
        assert.equal(await store.getUpload('u1'), undefined);
        await store.deleteUpload('u1');
        await store.deleteUpload('never');
        assert.equal(await store.advanceUpload('u1', 0, 1), false);
      });

      it('expiredUploads lists sessions last updated before the cut-off, oldest first, up to limit', async () => {
        await store.createUpload(session('newest', START - 10));
        await store.createUpload(session('old', START - 3 * HOUR));
        await store.createUpload(session('older', START - 4 * HOUR));
        await store.createUpload(session('fresh', START + HOUR));
        await store.createUpload(session('oldest', START - 5 * HOUR));
        const cutoff = new Date(START - 10);
        assert.deepEqual((await store.expiredUploads(cutoff, 10)).map((s) => s.id), ['oldest', 'older', 'old']);
        assert.deepEqual((await store.expiredUploads(cutoff, 2)).map((s) => s.id), ['oldest', 'older']);
        const [first] = await store.expiredUploads(cutoff, 1);
        assert.deepEqual(first, session('oldest', START - 5 * HOUR));
        // Progress refreshes a session.
        assert.equal(await store.advanceUpload('oldest', 0, 1), true);
        assert.deepEqual((await store.expiredUploads(cutoff, 10)).map((s) => s.id), ['older', 'old']);
      });
    });

    // ------------------------------------------------------------------ garbage collection

    describe('garbage collection', () => {
      it('gcCandidates respects protection, reference counts, order and limit', async () => {
        const late = await pushBlob('repo', 'late', 1, 300);
        const early = await pushBlob('repo', 'early', 2, 100);
        const middle = await pushBlob('repo', 'middle', 3, 200);
        const used = await pushBlob('repo', 'used', 4, 50);
        await putOk(manifest('repo', 'm', { blobs: [used] }));
        assert.deepEqual(await candidates(), []);
        clock.advance(99);
        assert.deepEqual(await candidates(), []);
        clock.advance(1);
        assert.deepEqual(await store.gcCandidates(nowDate(), 10), [{ digest: early, size: 2 }], 'protection ends at recordBlob + graceMs');
        clock.advance(1000);
        assert.deepEqual(await candidates(), [early, middle, late], 'oldest first');
        assert.deepEqual((await store.gcCandidates(nowDate(), 2)).map((c) => c.digest), [early, middle]);
        // gcCandidates uses the `now` it is given.
        assert.deepEqual((await store.gcCandidates(new Date(START + 250), 10)).map((c) => c.digest), [early, middle]);
      });

      it('a repeated recordBlob extends protection but never shortens it', async () => {
        const digest = sha256('blob');
        assert.equal(await store.recordBlob(digest, 10, 1000), true);
        assert.equal(await store.recordBlob(digest, 10, 10), true);
        clock.advance(500);
        assert.deepEqual(await candidates(), []);
        assert.equal(await store.recordBlob(digest, 10, 1000), true);
        clock.advance(900);
        assert.deepEqual(await candidates(), []);
        clock.advance(100);
        assert.deepEqual(await candidates(), [digest]);
      });

      it('protectBlob pushes back collection', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        clock.advance(10);
        assert.deepEqual(await candidates(), [digest]);
        assert.equal(await store.protectBlob(digest, 100), true);
        assert.deepEqual(await candidates(), []);
        clock.advance(100);
        assert.deepEqual(await candidates(), [digest]);
        assert.equal(await store.protectBlob(sha256('unknown'), 100), false, 'unknown blob');
      });

      it('protectBlob never shortens a protection', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 1000);
        assert.equal(await store.protectBlob(digest, 10), true);
        clock.advance(999);
        assert.deepEqual(await candidates(), []);
        clock.advance(1);
        assert.deepEqual(await candidates(), [digest]);
      });

      it('protectBlob protects a referenced blob past the deletion of its manifest', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        const m = manifest('repo', 'm', { blobs: [digest] });
        await putOk(m);
        clock.advance(100);
        assert.equal(await store.protectBlob(digest, 1000), true);
        assert.equal((await store.deleteManifest('repo', m.digest)).outcome, 'deleted');
        assert.deepEqual(await candidates(), [], 'a client that just checked the blob may still reference it');
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), false);
        clock.advance(1000);
        assert.deepEqual(await candidates(), [digest]);
      });

      it('protectBlob answers false once the collector has marked the blob, and changes nothing', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        clock.advance(10);
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), true);
        assert.equal(await store.protectBlob(digest, HOUR), false);
        assert.deepEqual(await store.blobsBeingDeleted(10), [digest]);
        assert.equal(await store.linkedBlob('repo', digest), undefined);
      });

      it('beginBlobDeletion re-checks the candidate', async () => {
        const referenced = await pushBlob('repo', 'referenced', 10, 10);
        const rescued = await pushBlob('repo', 'rescued', 10, 10);
        const young = await pushBlob('repo', 'young', 10, HOUR);
        const doomed = await pushBlob('repo', 'doomed', 10, 10);
        clock.advance(10);
        assert.deepEqual((await candidates()).sort(), [referenced, rescued, doomed].sort());
        // Between listing and deletion: a manifest references one, a client sees another.
        await putOk(manifest('repo', 'm', { blobs: [referenced] }));
        await store.protectBlob(rescued, 1000);
        assert.equal(await store.beginBlobDeletion(referenced, nowDate()), false);
        assert.equal(await store.beginBlobDeletion(rescued, nowDate()), false);
        assert.equal(await store.beginBlobDeletion(young, nowDate()), false);
        assert.equal(await store.beginBlobDeletion(sha256('unknown'), nowDate()), false);
        assert.equal(await store.beginBlobDeletion(doomed, nowDate()), true);
        assert.equal(await store.beginBlobDeletion(doomed, nowDate()), false, 'already being deleted');
        assert.deepEqual(await store.blobsBeingDeleted(10), [doomed]);
        assert.deepEqual(await candidates(), [], 'a blob being deleted is no longer a candidate');
      });

      it('a re-recorded blob is rescued', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        clock.advance(10);
        assert.deepEqual(await candidates(), [digest]);
        assert.equal(await store.recordBlob(digest, 10, 1000), true);
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), false);
      });

      it('a blob being deleted can no longer be referenced, recorded, mounted or seen', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        clock.advance(10);
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), true);

        const write = manifest('repo', 'm', { blobs: [digest], tag: 'latest' });
        let result: ManifestWriteResult | undefined;
        try {
          result = await store.putManifest(write);
        } catch (error) {
          assert.equal((error as Error).name, 'ConcurrentDeletionError');
        }
        if (result) assert.deepEqual(result, { ok: false, missingBlobs: [digest], missingChildren: [] });
        assert.equal(await store.getManifest('repo', write.digest), undefined);
        assert.equal(await store.resolveTag('repo', 'latest'), undefined);

        assert.equal(await store.recordBlob(digest, 10, HOUR), false, 'recordBlob refuses while the collector deletes');
        assert.equal(await store.linkedBlob('repo', digest), undefined);
        assert.equal(await store.mountBlob('other', digest, 'repo', HOUR), false);
        assert.equal(await store.repositoryExists('other'), false);
        assert.deepEqual(await store.blobsBeingDeleted(10), [digest]);
      });

      it('finishBlobDeletion removes the blob and its links', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        await store.linkBlob('other', digest);
        const keep = await pushBlob('repo', 'keep', 10, 10);
        clock.advance(10);
        assert.equal(await store.beginBlobDeletion(digest, nowDate()), true);
        await store.finishBlobDeletion(digest);
        assert.deepEqual(await store.blobsBeingDeleted(10), []);
        assert.deepEqual(await candidates(), [keep]);
        assert.equal(await store.unlinkBlob('repo', digest), 'unknown', 'links are gone');
        assert.equal(await store.unlinkBlob('other', digest), 'unknown');
        assert.deepEqual(await store.linkedBlob('repo', keep), { size: 10, referenced: false });

        // The same content pushed again starts from scratch.
        assert.equal(await store.recordBlob(digest, 10, HOUR), true);
        assert.equal(await store.linkedBlob('repo', digest), undefined, 'old links do not come back');
        await store.linkBlob('repo', digest);
        assert.deepEqual(await store.linkedBlob('repo', digest), { size: 10, referenced: false });
        await putOk(manifest('repo', 'm', { blobs: [digest] }));
      });

      it('finishBlobDeletion leaves a live blob alone', async () => {
        const digest = await pushBlob('repo', 'blob', 10, 10);
        await store.finishBlobDeletion(digest);
        assert.deepEqual(await store.linkedBlob('repo', digest), { size: 10, referenced: false });
        await store.finishBlobDeletion(sha256('unknown'));
      });

      it('blobsBeingDeleted with markedBefore lists only marks set before it', async () => {
        const early = await pushBlob('repo', 'early', 1, 1);
        const late = await pushBlob('repo', 'late', 1, 1);
        clock.advance(1);
        assert.equal(await store.beginBlobDeletion(early, nowDate()), true);
        const between = clock.now() + 50;
        clock.advance(100);
        assert.equal(await store.beginBlobDeletion(late, nowDate()), true);
        assert.deepEqual(await store.blobsBeingDeleted(10, new Date(between)), [early]);
        assert.deepEqual(await store.blobsBeingDeleted(10, new Date(clock.now() - 100)), [], 'a mark set exactly then is not listed');
        assert.deepEqual((await store.blobsBeingDeleted(10, new Date(clock.now() + 1))).sort(), [early, late].sort());
        assert.deepEqual((await store.blobsBeingDeleted(10)).sort(), [early, late].sort(), 'no cut-off: every mark');
      });

      it('blobsBeingDeleted honours its limit', async () => {
        const digests = [];
        for (let i = 0; i < 3; i++) digests.push(await pushBlob('repo', `b${i}`, 1, 1));
        clock.advance(1);
        for (const digest of digests) assert.equal(await store.beginBlobDeletion(digest, nowDate()), true);
        assert.equal((await store.blobsBeingDeleted(2)).length, 2);
        assert.deepEqual((await store.blobsBeingDeleted(10)).sort(), [...digests].sort());
      });

      it('untaggedManifests keeps tagged manifests, index children and referrers of existing subjects', async () => {
        const tagged = manifest('repo', 'tagged', { tag: 'latest' });
        const untagged = manifest('repo', 'untagged');
        const child = manifest('repo', 'child');
        const orphanRef = manifest('repo', 'orphan-ref', { subject: sha256('gone'), artifactType: 'application/vnd.example.sig' });
        for (const m of [tagged, untagged, child, orphanRef]) await putOk(m);
        const index = manifest('repo', 'index', { mediaType: INDEX, children: [child.digest] });
        const ref = manifest('repo', 'ref', { subject: tagged.digest, artifactType: 'application/vnd.example.sig' });
        const foreignRef = manifest('other', 'foreign-ref', { subject: tagged.digest, artifactType: 'application/vnd.example.sig' });
        for (const m of [index, ref, foreignRef]) await putOk(m);
        clock.advance(HOUR);
        const recent = manifest('repo', 'recent');
        await putOk(recent);
        clock.advance(1);

        const list = async (limit = 100) => (await store.untaggedManifests(new Date(START + HOUR), limit)).map((u) => `${u.repository}@${u.digest}`).sort();
        assert.deepEqual(
          await list(),
          [`repo@${untagged.digest}`, `repo@${orphanRef.digest}`, `repo@${index.digest}`, `other@${foreignRef.digest}`].sort(),
          'not tagged, not the child, not the referrer of an existing subject, not the recent one',
        );
        assert.equal((await list(2)).length, 2);
        const all = await store.untaggedManifests(new Date(START + HOUR + 1), 100);
        assert.ok(all.some((u) => u.digest === recent.digest));
        assert.deepEqual(Object.keys(all[0]!).sort(), ['digest', 'repository']);

        // Deleting the index exposes the child; untagging the subject exposes it.
        await store.deleteManifest('repo', index.digest);
        await store.deleteTag('repo', 'latest');
        assert.deepEqual(await list(), [`repo@${untagged.digest}`, `repo@${orphanRef.digest}`, `repo@${child.digest}`, `repo@${tagged.digest}`, `other@${foreignRef.digest}`].sort());
        // Deleting the subject exposes its referrer.
        await store.deleteManifest('repo', tagged.digest);
        assert.ok((await list()).includes(`repo@${ref.digest}`));
      });

      it('untaggedManifests counts from the last push: pushing a manifest again restarts its period', async () => {
        const old = manifest('repo', 'old');
        const repushed = manifest('repo', 'repushed');
        await putOk(old);
        await putOk(repushed);
        clock.advance(HOUR);
        const again = await putOk(repushed);
        assert.equal(again.created, false);
        clock.advance(1);
        const list = async () => (await store.untaggedManifests(new Date(clock.now() - 1), 100)).map((u) => u.digest);
        assert.deepEqual(await list(), [old.digest]);
        assert.equal(await store.deleteUntaggedManifest('repo', repushed.digest, new Date(clock.now() - 1)), false);
        assert.ok(await store.getManifest('repo', repushed.digest));
        clock.advance(HOUR);
        assert.deepEqual(await list(), [old.digest, repushed.digest], 'oldest push first');
        const record = await store.getManifest('repo', repushed.digest);
        assert.equal(record?.createdAt.getTime(), START, 'createdAt stays the first push');
      });

      it('deleteUntaggedManifest re-checks every condition of untaggedManifests', async () => {
        const layer = await pushBlob('repo', 'layer', 10, 10);
        const plain = manifest('repo', 'plain', { blobs: [layer] });
        const tagged = manifest('repo', 'tagged');
        const child = manifest('repo', 'child');
        const young = manifest('repo', 'young');
        const referrer = manifest('repo', 'referrer', { subject: sha256('subject later'), artifactType: 'application/vnd.example.sig' });
        for (const m of [plain, tagged, child, referrer]) await putOk(m);
        await putOk(manifest('repo', 'index', { mediaType: INDEX, children: [child.digest], tag: 'index' }));
        clock.advance(HOUR);
        const cutoff = nowDate();
        await putOk(young);
        // Between the listing and the deletion: a tag, and the referrer's subject arrive.
        const listed = (await store.untaggedManifests(cutoff, 100)).map((u) => u.digest);
        assert.deepEqual(listed.sort(), [plain.digest, tagged.digest, referrer.digest].sort());
        await putOk({ ...tagged, tag: 'now-tagged' });
        const subject = { ...manifest('repo', 'x'), content: Buffer.from('subject later'), digest: sha256('subject later') };
        await putOk(subject);

        assert.equal(await store.deleteUntaggedManifest('repo', tagged.digest, cutoff), false, 'tagged (and pushed) since');
        assert.equal(await store.deleteUntaggedManifest('repo', referrer.digest, cutoff), false, 'its subject exists now');
        assert.equal(await store.deleteUntaggedManifest('repo', child.digest, cutoff), false, 'listed by an index');
        assert.equal(await store.deleteUntaggedManifest('repo', young.digest, cutoff), false, 'pushed after the cut-off');
        assert.equal(await store.deleteUntaggedManifest('repo', sha256('unknown'), cutoff), false);
        assert.equal(await store.deleteUntaggedManifest('nowhere', plain.digest, cutoff), false);
        for (const m of [tagged, referrer, child, young]) assert.ok(await store.getManifest('repo', m.digest), m.digest);
        assert.equal(await store.resolveTag('repo', 'now-tagged'), tagged.digest);

        assert.equal(await store.deleteUntaggedManifest('repo', plain.digest, cutoff), true);
        assert.equal(await store.getManifest('repo', plain.digest), undefined);
        assert.equal(await store.deleteUntaggedManifest('repo', plain.digest, cutoff), false, 'already gone');
        assert.deepEqual(await store.linkedBlob('repo', layer), { size: 10, referenced: false }, 'its references are released');
        assert.deepEqual(await candidates(), [layer]);
      });

      it('deleteUntaggedManifest racing with a push that tags the manifest never leaves a dangling tag', async () => {
        for (let round = 0; round < 10; round++) {
          const m = manifest('repo', `race${round}`);
          await putOk(m);
          clock.advance(HOUR);
          const cutoff = nowDate();
          const [deleted, put] = await Promise.all([store.deleteUntaggedManifest('repo', m.digest, cutoff), store.putManifest({ ...m, tag: `t${round}` })]);
          assert.equal(put.ok, true, JSON.stringify(put));
          // Either order is fine, as long as the tag points at a manifest that exists.
          assert.equal(await store.resolveTag('repo', `t${round}`), m.digest);
          assert.ok(await store.getManifest('repo', m.digest), `round ${round}: tag left dangling (deleted first: ${deleted})`);
        }
      });
    });

    // ------------------------------------------------------------------ concurrency

    describe('concurrency', () => {
      it('20 concurrent puts of one manifest and tag all succeed and count the references once', async () => {
        const layer = await pushBlob('repo', 'layer', 100, 10);
        const config = await pushBlob('repo', 'config', 100, 10);
        const write = manifest('repo', 'm', { blobs: [layer, config], tag: 'latest' });
        const results = await Promise.all(Array.from({ length: 20 }, () => store.putManifest(write)));
        for (const result of results) {
          assert.equal(result.ok, true, JSON.stringify(result));
          if (result.ok) assert.ok(result.previousTagTarget === undefined || result.previousTagTarget === write.digest);
        }
        assert.equal(results.filter((r) => r.ok && r.created).length, 1, 'exactly one put created the manifest');
        assert.equal(await store.resolveTag('repo', 'latest'), write.digest);
        clock.advance(20);
        assert.deepEqual(await candidates(), []);
        assert.deepEqual(await store.deleteManifest('repo', write.digest), { outcome: 'deleted', tags: ['latest'] });
        assert.deepEqual((await candidates()).sort(), [layer, config].sort(), 'reference counts back to zero');
      });

      it('concurrent puts of different manifests sharing blobs all succeed', async () => {
        const blobs: string[] = [];
        for (let i = 0; i < 6; i++) blobs.push(await pushBlob('repo', `layer${i}`, 10, 10));
        const writes = Array.from({ length: 20 }, (_, i) => {
          // Each manifest lists the shared blobs in a different order.
          const order = i % 2 ? [...blobs].reverse() : blobs;
          const rotated = [...order.slice(i % 6), ...order.slice(0, i % 6)];
          return manifest('repo', `m${i}`, { blobs: rotated, tag: `t${i % 3}` });
        });
        const results = await Promise.all(writes.map((w) => store.putManifest(w)));
        for (const result of results) assert.deepEqual(result.ok && result.created, true, JSON.stringify(result));
        clock.advance(20);
        assert.deepEqual(await candidates(), []);
        const deletions = await Promise.all(writes.map((w) => store.deleteManifest('repo', w.digest)));
        for (const d of deletions) assert.equal(d.outcome, 'deleted');
        assert.deepEqual((await candidates()).sort(), [...blobs].sort());
      });

      it('concurrent pushes, tag moves and deletes sharing blobs neither fail nor miscount', async () => {
        const blobs: string[] = [];
        for (let i = 0; i < 8; i++) blobs.push(await pushBlob('repo', `shared${i}`, 10, 10));
        const pick = (i: number) => {
          const chosen = blobs.filter((_, j) => (i + j) % 3 !== 0);
          return i % 2 ? chosen.reverse() : chosen;
        };
        const old = Array.from({ length: 10 }, (_, i) => manifest('repo', `old${i}`, { blobs: pick(i), tag: `t${i % 4}` }));
        for (const m of old) await putOk(m);
        const index0 = manifest('repo', 'index0', { mediaType: INDEX, children: [old[0]!.digest, old[1]!.digest] });
        await putOk(index0);
        const fresh = Array.from({ length: 10 }, (_, i) => manifest('repo', `new${i}`, { blobs: pick(i + 1), tag: `t${i % 4}` }));
        const index1 = manifest('repo', 'index1', { mediaType: INDEX, children: [old[1]!.digest, old[0]!.digest], tag: 'multi' });

        const outcomes = await Promise.all([
          ...old.slice(2).map((m) => store.deleteManifest('repo', m.digest).then((r) => r.outcome)),
          ...fresh.map((m) => store.putManifest(m).then((r) => (r.ok ? 'ok' : JSON.stringify(r)))),
          store.putManifest(index1).then((r) => (r.ok ? 'ok' : JSON.stringify(r))),
          store.deleteManifest('repo', index0.digest).then((r) => r.outcome),
        ]);
        for (const outcome of outcomes) assert.ok(outcome === 'deleted' || outcome === 'ok', outcome);

        const tags = await store.listTags('repo', 100);
        for (const tag of tags.items) {
          const target = await store.resolveTag('repo', tag);
          assert.ok(target && (await store.getManifest('repo', target)), `tag ${tag} points at an existing manifest`);
        }
        assert.deepEqual(await store.deleteManifest('repo', old[0]!.digest), { outcome: 'referenced' });
        assert.equal((await store.deleteManifest('repo', index1.digest)).outcome, 'deleted');
        for (const m of [old[0]!, old[1]!, ...fresh]) assert.equal((await store.deleteManifest('repo', m.digest)).outcome, 'deleted');
        assert.deepEqual(await store.listTags('repo', 100), { items: [], more: false });
        clock.advance(20);
        assert.deepEqual((await candidates()).sort(), [...blobs].sort(), 'every reference released exactly once');
      });

      it('concurrent recordBlob of one digest all succeed and record one blob', async () => {
        const digest = sha256('blob');
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.recordBlob(digest, 77, 10 + i)));
        assert.deepEqual(results, Array.from({ length: 20 }, () => true));
        clock.advance(28);
        assert.deepEqual(await candidates(), [], 'the longest grace wins');
        clock.advance(1);
        assert.deepEqual(await store.gcCandidates(nowDate(), 10), [{ digest, size: 77 }]);
      });

      it('concurrent links into a new repository create it once', async () => {
        const digests: string[] = [];
        for (let i = 0; i < 10; i++) {
          digests.push(sha256(`b${i}`));
          await store.recordBlob(digests[i]!, i, HOUR);
        }
        await Promise.all(digests.flatMap((d) => [store.linkBlob('new/repo', d), store.linkBlob('new/repo', d)]));
        assert.deepEqual(await store.listRepositories(10), { items: ['new/repo'], more: false });
        for (const [i, d] of digests.entries()) assert.deepEqual(await store.linkedBlob('new/repo', d), { size: i, referenced: false });
      });

      it('a racing collector and manifest push never leave a manifest referencing a deleted blob', async () => {
        for (let round = 0; round < 10; round++) {
          const digest = await pushBlob('repo', `race${round}`, 10, 10);
          clock.advance(10);
          const write = manifest('repo', `race-m${round}`, { blobs: [digest] });
          const [begun, put] = await Promise.all([
            store.beginBlobDeletion(digest, nowDate()),
            store.putManifest(write).catch((error: Error) => {
              assert.equal(error.name, 'ConcurrentDeletionError');
              return undefined;
            }),
          ]);
          const stored = await store.getManifest('repo', write.digest);
          if (begun) {
            assert.equal(stored, undefined, `round ${round}: collector won, so the manifest must not exist`);
            assert.ok(put === undefined || !put.ok);
          } else {
            assert.ok(stored, `round ${round}: collector lost, so the push won`);
            assert.ok(put?.ok);
          }
        }
      });
    });
  });
}
