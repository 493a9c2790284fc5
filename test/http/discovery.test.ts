/**
 * OCI Distribution Spec v1.1, "Workflow Categories › Content Discovery": Listing Tags
 * (end-8a, end-8b) and Listing Referrers (end-12a, end-12b); plus the catalog
 * (`/v2/_catalog`, Docker Registry HTTP API V2, appendix apdx-1) with the same pagination.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  MT,
  deviation,
  emptyJson,
  expectError,
  expectStatus,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  randomBytesOf,
  sha256,
  startTarget,
  uniqueRepo,
  type Client,
  type Descriptor,
  type Image,
  type Response,
  type Target,
} from '../support/http-target.ts';

let target: Target;
let client: Client;

before(async () => {
  target = await startTarget();
  client = target.client;
});

after(async () => {
  await target?.stop();
});

/** Parses an RFC 5988/8288 Link header with rel="next" into a request path on this registry. */
function nextLink(res: Response): string | undefined {
  const link = res.header('link');
  if (link === undefined) return undefined;
  const match = /^\s*<([^>]+)>\s*;\s*rel="?next"?\s*$/.exec(link);
  assert.ok(match, `Link header must be <url>; rel="next" (RFC 5988), got ${JSON.stringify(link)}`);
  return client.pathOf(match[1]!, res.path);
}

const unsortedTags = deviation('distribution', 'distribution 2.8 lists tags in storage order and ignores n and last (added in distribution 3)');
const noReferrersApi = deviation('distribution', 'distribution 2.8 has no referrers API (404 page not found)');

describe('Content Discovery › Listing Tags (end-8a, end-8b)', () => {
  const repo = uniqueRepo('tags');
  const tags = ['latest', 'gamma', '1.0', 'alpha', 'epsilon', 'beta', '2.0', 'delta'];
  const sorted = [...tags].sort();

  before(async () => {
    const image = await pushImage(client, repo, { seed: 'tags' });
    for (const tag of tags) expectStatus(await putManifest(client, repo, tag, image.manifest), 201);
  });

  test('spec §Listing Tags: GET tags/list answers 200 {"name","tags"} with every tag in lexical order', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list`);
    expectStatus(res, 200);
    assert.match(res.header('content-type') ?? '', /^application\/json\b/);
    const body = res.json();
    assert.equal(body.name, repo);
    assert.deepEqual(body.tags, sorted);
    assert.equal(res.header('link'), undefined, 'no Link when the whole list fits');
  });

  test('spec §Listing Tags: ?n=3 answers exactly the first 3 tags and a Link rel="next"; following Link walks the whole list once', { todo: unsortedTags }, async () => {
    const first = await client.get(`/v2/${repo}/tags/list?n=3`);
    expectStatus(first, 200);
    assert.deepEqual(first.json().tags, sorted.slice(0, 3), 'the response MUST include <int> results when more tags exist');
    const seen: string[] = [...first.json().tags];
    let next = nextLink(first);
    assert.ok(next, `a Link header is expected when more tags are available: ${first.describe()}`);
    for (let page = 0; next && page < 10; page++) {
      const res = await client.get(next);
      expectStatus(res, 200);
      const pageTags: string[] = res.json().tags ?? [];
      assert.ok(pageTags.length <= 3, `page larger than n: ${res.describe()}`);
      seen.push(...pageTags);
      next = nextLink(res);
    }
    assert.deepEqual(seen, sorted, 'pages must be contiguous, ordered and without duplicates');
  });

  test('spec §Listing Tags: ?n=3&last=beta answers the 3 tags after "beta" (non-inclusive)', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list?n=3&last=beta`);
    expectStatus(res, 200);
    const i = sorted.indexOf('beta');
    assert.deepEqual(res.json().tags, sorted.slice(i + 1, i + 4));
  });

  test('spec §Listing Tags: "When using the last query parameter, the n parameter is OPTIONAL" (?last=gamma)', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list?last=gamma`);
    expectStatus(res, 200);
    assert.deepEqual(res.json().tags, sorted.slice(sorted.indexOf('gamma') + 1));
  });

  test('spec §Listing Tags: ?last=<the last tag> answers an empty list', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list?last=${sorted.at(-1)}`);
    expectStatus(res, 200);
    assert.deepEqual(res.json().tags ?? [], []);
    assert.equal(res.header('link'), undefined);
  });

  test(
    'spec §Listing Tags: "When n is zero, this endpoint MUST return an empty list, and MUST NOT include a Link header"',
    { todo: deviation('distribution', 'distribution 2.8 treats n=0 as "no limit" and answers every tag') },
    async () => {
      const res = await client.get(`/v2/${repo}/tags/list?n=0`);
      expectStatus(res, 200);
      const body = res.json();
      assert.equal(body.name, repo);
      assert.deepEqual(body.tags, []);
      assert.equal(res.header('link'), undefined);
    },
  );

  test('spec §Listing Tags: n larger than the number of tags answers all of them without a Link', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list?n=100`);
    expectStatus(res, 200);
    assert.deepEqual(res.json().tags, sorted);
    assert.equal(res.header('link'), undefined);
  });

  test('spec §Listing Tags: n equal to the number of tags answers all of them; a Link, if any, leads to an empty page', { todo: unsortedTags }, async () => {
    const res = await client.get(`/v2/${repo}/tags/list?n=${sorted.length}`);
    expectStatus(res, 200);
    assert.deepEqual(res.json().tags, sorted);
    const next = nextLink(res);
    if (next) {
      const rest = await client.get(next);
      expectStatus(rest, 200);
      assert.deepEqual(rest.json().tags ?? [], []);
    }
  });

  test('spec §Listing Tags: tags that differ in case are listed in lexical (case-insensitive or ASCII) order', { todo: unsortedTags }, async () => {
    const mixed = uniqueRepo('tags-case');
    const image = await pushImage(client, mixed, { seed: 'tags-case' });
    const names = ['b', 'C', 'a', 'B', 'Zeta', 'alpha'];
    for (const tag of names) expectStatus(await putManifest(client, mixed, tag, image.manifest), 201);
    const res = await client.get(`/v2/${mixed}/tags/list`);
    expectStatus(res, 200);
    const listed: string[] = res.json().tags;
    assert.deepEqual([...listed].sort(), [...names].sort(), 'every tag listed once');
    const ascii = [...names].sort();
    const caseInsensitive = listed.every((tag, i) => i === 0 || listed[i - 1]!.toLowerCase() <= tag.toLowerCase());
    assert.ok(caseInsensitive || JSON.stringify(listed) === JSON.stringify(ascii), `not in lexical order: ${JSON.stringify(listed)}`);
  });

  test('spec §Listing Tags: a repository without tags (manifests pushed by digest only) answers 200 with an empty list', async () => {
    const untagged = uniqueRepo('tags-none');
    await pushImage(client, untagged, { seed: 'untagged' });
    const res = await client.get(`/v2/${untagged}/tags/list`);
    expectStatus(res, [200, 404]);
    if (res.status === 200) assert.deepEqual(res.json().tags ?? [], []);
    else expectError(res, 404, 'NAME_UNKNOWN');
  });

  test('spec end-8a: tags/list of an unknown repository answers 404 NAME_UNKNOWN', async () => {
    expectError(await client.get(`/v2/${uniqueRepo('nowhere')}/tags/list`), 404, 'NAME_UNKNOWN');
  });

  test('spec end-8a: tags/list of an invalid repository name answers 400 NAME_INVALID', {
    todo: deviation('distribution', 'its router answers a plain-text 404 page for names outside the grammar'),
  }, async () => {
    expectError(await client.get('/v2/UPPER/case/tags/list'), 400, 'NAME_INVALID');
  });

  test('Portcullis: a non-numeric or negative n on tags/list and _catalog answers 400 with a spec error code', {
    todo: deviation('distribution', 'distribution answers its own PAGINATION_NUMBER_INVALID code'),
  }, async () => {
    const repo = uniqueRepo('bad-n');
    await pushImage(client, repo, { tag: 'one', seed: 'bad-n' });
    for (const n of ['abc', '-1', '1.5', '0x10']) {
      expectError(await client.get(`/v2/${repo}/tags/list?n=${encodeURIComponent(n)}`), 400, 'UNSUPPORTED');
      expectError(await client.get(`/v2/_catalog?n=${encodeURIComponent(n)}`), 400, 'UNSUPPORTED');
    }
  });
});

describe('Content Discovery › catalog (/v2/_catalog, apdx-1)', () => {
  const prefix = `catalog${process.pid}`;
  const repos = ['d', 'a', 'c/sub', 'b', 'e'].map((r) => `${prefix}/${r}`);
  const sorted = [...repos].sort();

  before(async () => {
    for (const repo of repos) await pushImage(client, repo, { tag: 'latest', seed: repo });
  });

  test('apdx-1 §Catalog: GET /v2/_catalog answers 200 {"repositories":[...]} in lexical order including every repository', async () => {
    const res = await client.get('/v2/_catalog');
    expectStatus(res, 200);
    const listed: string[] = res.json().repositories;
    assert.ok(Array.isArray(listed));
    assert.equal(new Set(listed).size, listed.length, 'no repository twice');
    // Other tests of this file add repositories too; the order is checked on ours, whose
    // lexical order is the same whether '/' is compared as a character or as a separator.
    assert.deepEqual(listed.filter((r) => r.startsWith(`${prefix}/`)), sorted, 'repositories must be in lexical order');
  });

  test('apdx-1 §Catalog pagination: ?n=2 answers 2 entries and a Link rel="next"; following it walks every repository once', async () => {
    const first = await client.get('/v2/_catalog?n=2');
    expectStatus(first, 200);
    assert.equal(first.json().repositories.length, 2);
    const seen: string[] = [...first.json().repositories];
    let next = nextLink(first);
    assert.ok(next, `Link expected: ${first.describe()}`);
    for (let page = 0; next && page < 100; page++) {
      const res = await client.get(next);
      expectStatus(res, 200);
      const entries: string[] = res.json().repositories ?? [];
      assert.ok(entries.length <= 2);
      seen.push(...entries);
      next = nextLink(res);
    }
    assert.equal(new Set(seen).size, seen.length, `no repository twice: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen.filter((r) => r.startsWith(`${prefix}/`)), sorted, 'pages in order');
    const all = await client.get('/v2/_catalog');
    expectStatus(all, 200);
    assert.deepEqual([...seen].sort(), [...all.json().repositories].sort(), 'the pages together list exactly the whole catalog');
  });

  test('apdx-1 §Catalog pagination: ?n=2&last=<repo> answers the 2 repositories after it', async () => {
    const res = await client.get(`/v2/_catalog?n=2&last=${encodeURIComponent(sorted[1]!)}`);
    expectStatus(res, 200);
    assert.deepEqual(res.json().repositories, sorted.slice(2, 4));
  });
});

describe('Content Discovery › Listing Referrers (end-12a, end-12b)', () => {
  const repo = uniqueRepo('referrers');
  const otherRepo = uniqueRepo('referrers-other');
  let subject: Image;
  const expected = new Map<string, Descriptor>();
  const sbomType = 'application/vnd.example.sbom.v1';
  const sigConfigType = 'application/vnd.example.signature.config.v1+json';
  const indexType = 'application/vnd.example.bundle.v1';

  before(async () => {
    subject = await pushImage(client, repo, { tag: 'subject', seed: 'referrers-subject' });
    await pushBlob(client, repo, emptyJson);

    // A: artifactType set, empty config, annotations.
    const sbom = randomBytesOf(200, 'sbom');
    await pushBlob(client, repo, sbom);
    const a = imageManifest(emptyJson, [sbom], {
      artifactType: sbomType,
      configMediaType: MT.empty,
      subject: subject.descriptor,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T14:42:55Z', 'org.example.sbom.format': 'json' },
    });
    expectStatus(await putManifest(client, repo, sha256(a), a), 201);
    expected.set(sha256(a), {
      mediaType: MT.manifest,
      digest: sha256(a),
      size: a.length,
      artifactType: sbomType,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T14:42:55Z', 'org.example.sbom.format': 'json' },
    });

    // B: no artifactType: the descriptor's artifactType is the config mediaType.
    const sigConfig = Buffer.from('{"signer":"test"}');
    await pushBlob(client, repo, sigConfig);
    const b = imageManifest(sigConfig, [], { configMediaType: sigConfigType, subject: subject.descriptor, annotations: { 'org.example.signature.fingerprint': 'abcd' } });
    expectStatus(await putManifest(client, repo, sha256(b), b), 201);
    expected.set(sha256(b), { mediaType: MT.manifest, digest: sha256(b), size: b.length, artifactType: sigConfigType, annotations: { 'org.example.signature.fingerprint': 'abcd' } });

    // C: an index with artifactType.
    const child = await pushImage(client, repo, { seed: 'referrers-child' });
    const c = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.index, artifactType: indexType, manifests: [child.descriptor], subject: subject.descriptor, annotations: { 'org.example.kind': 'bundle' } }),
    );
    expectStatus(await putManifest(client, repo, sha256(c), c, MT.index), 201);
    expected.set(sha256(c), { mediaType: MT.index, digest: sha256(c), size: c.length, artifactType: indexType, annotations: { 'org.example.kind': 'bundle' } });

    // D: an index without artifactType: the descriptor has no artifactType.
    const d = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [], subject: subject.descriptor, annotations: { 'org.example.kind': 'plain-index' } }));
    expectStatus(await putManifest(client, repo, sha256(d), d, MT.index), 201);
    expected.set(sha256(d), { mediaType: MT.index, digest: sha256(d), size: d.length, annotations: { 'org.example.kind': 'plain-index' } });

    // Not referrers of the subject in `repo`: same subject digest in another repository, and
    // another subject in the same repository.
    await pushBlob(client, otherRepo, emptyJson);
    const foreign = imageManifest(emptyJson, [], { artifactType: sbomType, configMediaType: MT.empty, subject: subject.descriptor });
    expectStatus(await putManifest(client, otherRepo, sha256(foreign), foreign), 201);
    const unrelated = imageManifest(emptyJson, [], { artifactType: sbomType, configMediaType: MT.empty, subject: { mediaType: MT.manifest, digest: sha256('elsewhere'), size: 9 } });
    expectStatus(await putManifest(client, repo, sha256(unrelated), unrelated), 201);
  });

  function expectIndex(res: Response): Descriptor[] {
    expectStatus(res, 200);
    // The exact header value (no parameters) is checked by its own test below.
    assert.equal(res.header('content-type')?.split(';')[0]?.trim(), MT.index, 'Content-Type MUST be application/vnd.oci.image.index.v1+json');
    const body = res.json();
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, MT.index);
    assert.ok(Array.isArray(body.manifests), `manifests must be a list: ${res.describe()}`);
    return body.manifests;
  }

  function normalise(d: Descriptor): Descriptor {
    const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    if (d.artifactType !== undefined) out.artifactType = d.artifactType;
    if (d.annotations !== undefined) out.annotations = d.annotations;
    return out;
  }

  test('spec §Listing Referrers: answers 200, an image index of every referrer with mediaType, digest, size, artifactType and annotations', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/${subject.digest}`);
    const listed = expectIndex(res);
    const byDigest = new Map(listed.map((d) => [d.digest, normalise(d)]));
    assert.equal(listed.length, expected.size, `exactly the ${expected.size} referrers in this repository: ${res.describe()}`);
    for (const [digest, want] of expected) assert.deepEqual(byDigest.get(digest), want, `descriptor of ${digest}`);
    assert.equal(res.header('oci-filters-applied'), undefined, 'no filter requested, none reported');
  });

  test('spec §Listing Referrers: "The Content-Type header MUST be set to application/vnd.oci.image.index.v1+json" (exactly, no parameters)', { todo: noReferrersApi }, async () => {
    for (const path of [`/v2/${repo}/referrers/${subject.digest}`, `/v2/${repo}/referrers/${sha256('nothing refers to this')}`]) {
      const res = await client.get(path);
      expectStatus(res, 200);
      assert.equal(res.header('content-type'), MT.index);
    }
  });

  test('spec §Listing Referrers: "If the artifactType is empty or missing in the image manifest, the value of artifactType MUST be set to the config descriptor mediaType"', { todo: noReferrersApi }, async () => {
    const listed = expectIndex(await client.get(`/v2/${repo}/referrers/${subject.digest}`));
    assert.ok(listed.some((d) => d.mediaType === MT.manifest && d.artifactType === sigConfigType));
  });

  test('spec §Listing Referrers: "If the artifactType is empty or missing in an index, the artifactType MUST be omitted"', { todo: noReferrersApi }, async () => {
    const listed = expectIndex(await client.get(`/v2/${repo}/referrers/${subject.digest}`));
    const plain = listed.find((d) => d.annotations?.['org.example.kind'] === 'plain-index');
    assert.ok(plain, 'the plain index is listed');
    assert.ok(!('artifactType' in plain), `artifactType must be omitted: ${JSON.stringify(plain)}`);
  });

  test('spec §Listing Referrers: ?artifactType= filters the list and the response carries OCI-Filters-Applied: artifactType', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent(sbomType)}`);
    const listed = expectIndex(res);
    assert.equal(res.header('oci-filters-applied'), 'artifactType');
    assert.deepEqual(listed.map(normalise), [...expected.values()].filter((d) => d.artifactType === sbomType));
  });

  test('spec §Listing Referrers: a filter matching nothing answers 200 with an empty manifests list (and OCI-Filters-Applied)', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent('application/vnd.example.none')}`);
    assert.deepEqual(expectIndex(res), []);
    assert.equal(res.header('oci-filters-applied'), 'artifactType');
  });

  test('spec §Listing Referrers: a digest without referrers answers 200 with an empty image index (never 404)', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/${sha256('no referrers for this one')}`);
    assert.deepEqual(expectIndex(res), []);
  });

  test('spec §Listing Referrers: the subject manifest itself need not have referrers to answer 200 (child image)', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/${sha256(subject.config)}`);
    assert.deepEqual(expectIndex(res), []);
  });

  test('spec §Listing Referrers: "a <digest> with an invalid syntax" answers 400 Bad Request', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${repo}/referrers/sha256:not-a-digest`);
    expectStatus(res, 400);
    if ((res.header('content-type') ?? '').startsWith('application/json')) expectError(res, 400, ['DIGEST_INVALID', 'MANIFEST_INVALID', 'NAME_INVALID']);
  });

  test('spec §Listing Referrers: referrers are scoped to the repository (same subject digest in another repository lists only its own)', { todo: noReferrersApi }, async () => {
    const listed = expectIndex(await client.get(`/v2/${otherRepo}/referrers/${subject.digest}`));
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.artifactType, sbomType);
  });

  test('spec §Listing Referrers: an unknown repository answers 200 with an empty index or 404 NAME_UNKNOWN', { todo: noReferrersApi }, async () => {
    const res = await client.get(`/v2/${uniqueRepo('nowhere')}/referrers/${subject.digest}`);
    if (res.status === 200) assert.deepEqual(expectIndex(res), []);
    else expectError(res, 404, 'NAME_UNKNOWN');
  });

  test('spec §Push: a referrer pushed before its subject is listed, before and after the subject is pushed', { todo: noReferrersApi }, async () => {
    const r = uniqueRepo('referrers-early');
    const config = Buffer.from('{"os":"linux","architecture":"amd64","late":true}');
    await pushBlob(client, r, config);
    await pushBlob(client, r, emptyJson);
    const lateSubject = imageManifest(config, []);
    const lateDescriptor = { mediaType: MT.manifest, digest: sha256(lateSubject), size: lateSubject.length };
    const early = imageManifest(emptyJson, [], { artifactType: sbomType, configMediaType: MT.empty, subject: lateDescriptor, annotations: { early: 'yes' } });
    const put = await putManifest(client, r, sha256(early), early);
    expectStatus(put, 201);
    assert.equal(put.header('oci-subject'), lateDescriptor.digest);
    const before = expectIndex(await client.get(`/v2/${r}/referrers/${lateDescriptor.digest}`));
    assert.deepEqual(before.map(normalise), [{ mediaType: MT.manifest, digest: sha256(early), size: early.length, artifactType: sbomType, annotations: { early: 'yes' } }]);
    expectStatus(await putManifest(client, r, 'subject', lateSubject), 201);
    const afterPush = expectIndex(await client.get(`/v2/${r}/referrers/${lateDescriptor.digest}`));
    assert.deepEqual(afterPush.map((d) => d.digest), [sha256(early)]);
  });

  test('spec §Deleting Manifests: a deleted referrer disappears from the referrers list', { todo: noReferrersApi }, async () => {
    const r = uniqueRepo('referrers-delete');
    const base = await pushImage(client, r, { tag: 'base', seed: 'referrers-delete' });
    await pushBlob(client, r, emptyJson);
    const keep = imageManifest(emptyJson, [], { artifactType: 'application/vnd.example.keep', configMediaType: MT.empty, subject: base.descriptor });
    const drop = imageManifest(emptyJson, [], { artifactType: 'application/vnd.example.drop', configMediaType: MT.empty, subject: base.descriptor });
    expectStatus(await putManifest(client, r, sha256(keep), keep), 201);
    expectStatus(await putManifest(client, r, sha256(drop), drop), 201);
    assert.equal(expectIndex(await client.get(`/v2/${r}/referrers/${base.digest}`)).length, 2);
    expectStatus(await client.delete(`/v2/${r}/manifests/${sha256(drop)}`), 202);
    const listed = expectIndex(await client.get(`/v2/${r}/referrers/${base.digest}`));
    assert.deepEqual(listed.map((d) => d.digest), [sha256(keep)]);
  });
});
