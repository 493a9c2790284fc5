/**
 * Promotion through POST /api/v1/promotions on an in-process registry (real stores: filesystem +
 * SQLite): what is copied (index and children, referrers, cosign tags), the promotion attestation
 * and the `promotions` fact, refusal by the destination's policy and a failure midway (nothing
 * written), records and events, bad requests.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pae } from '../../src/registry/signatures/intoto.ts';
import { cosignSignatureManifest, cosignTag, dsseSign } from '../../src/registry/signatures/signing.ts';
import type { ManifestBatch } from '../../src/registry/storage/ports.ts';
import { keyPolicy, OCI_MANIFEST, pem, pushCosignSignature, sha256, startTestRegistry, type TestRegistry } from '../signatures/registry-helpers.ts';

const release = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const PROD_POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: prod-gate, project: prod }
rules:
  - { name: signed, kind: signature-required, points: [promotion] }
  - { name: from-staging, kind: cel, expression: 'request.source.startsWith("staging/")', points: [promotion] }
  - { name: promoted-only, kind: promoted, from: [staging], points: [pull] }
`;

describe('promotion', () => {
  let t: TestRegistry;
  before(async () => {
    t = await startTestRegistry();
    assert.equal((await t.request('PUT', '/api/v1/projects/prod/policies', { body: PROD_POLICY, headers: { 'content-type': 'application/yaml' } })).status, 201);
    assert.equal((await t.putPolicy('prod', keyPolicy({ release: pem(release.publicKey) }))).status, 201);
  });
  after(() => t.close());

  const promote = (body: object) => t.request('POST', '/api/v1/promotions', { body });
  const manifestAt = (repo: string, ref: string) => t.request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json` } });

  it('copies a signed index with its children, referrers and cosign tags, and attaches a signed promotion attestation', async () => {
    const amd = await t.pushImage('staging/app', 'amd64');
    const arm = await t.pushImage('staging/app', 'arm64');
    const index = await t.pushIndex('staging/app', '1.0', [
      { digest: amd.digest, size: amd.manifest.length },
      { digest: arm.digest, size: arm.manifest.length },
    ]);
    await pushCosignSignature(t, 'staging/app', index, release.privateKey);
    const referrerSig = await pushCosignSignature(t, 'staging/app', index, release.privateKey, { referrer: true });
    // an SBOM-like referrer on a child
    const sbom = Buffer.from('{"bomFormat":"CycloneDX"}');
    await t.pushBlob('staging/app', sbom);
    await t.pushBlob('staging/app', Buffer.from('{}'));
    const sbomManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.cyclonedx+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 }, layers: [{ mediaType: 'application/vnd.cyclonedx+json', digest: sha256(sbom), size: sbom.length }], subject: { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.manifest.length } }));
    const sbomDigest = await t.putManifest('staging/app', sha256(sbomManifest), sbomManifest);

    const res = await promote({ source: 'staging/app:1.0', destination: 'prod/app' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.digest, index);
    assert.deepEqual(res.body.destination, { repository: 'prod/app', tag: '1.0' }, 'the source tag by default');
    assert.equal(res.body.policy.name, 'prod-gate');
    assert.ok(res.body.copied.tags.includes(cosignTag(index, 'sig')));

    const pulled = await manifestAt('prod/app', '1.0');
    assert.equal(pulled.status, 200, `promoted, so the promoted-only pull rule passes: ${JSON.stringify(pulled.body)}`);
    assert.equal(sha256(pulled.raw), index);
    for (const child of [amd.digest, arm.digest]) assert.equal((await manifestAt('prod/app', child)).status, 200);
    const layer = JSON.parse(amd.manifest.toString()).layers[0].digest as string;
    const blob = await t.request('GET', `/v2/prod/app/blobs/${layer}`);
    assert.equal(blob.status, 200);
    assert.equal(sha256(blob.raw), layer);

    const referrers = (await t.request('GET', `/v2/prod/app/referrers/${index}`)).body.manifests as Array<{ digest: string; artifactType: string }>;
    assert.ok(referrers.some((r) => r.digest === referrerSig.manifestDigest), 'the signature referrer came along');
    const att = referrers.find((r) => r.digest === res.body.attestation);
    assert.equal(att?.artifactType, 'application/vnd.dev.cosign.artifact.att.v1+json');
    const childReferrers = (await t.request('GET', `/v2/prod/app/referrers/${amd.digest}`)).body.manifests as Array<{ digest: string; artifactType: string }>;
    assert.ok(childReferrers.some((r) => r.digest === sbomDigest), "the child's SBOM came along");
    assert.ok(childReferrers.some((r) => r.artifactType === 'application/vnd.dev.cosign.artifact.att.v1+json'), 'children carry the promotion attestation too');
    assert.equal((await manifestAt('prod/app', cosignTag(index, 'sig'))).status, 200, 'cosign .sig tag copied');

    // the attestation: DSSE over an in-toto v1 statement, signed by the registry key
    const attManifest = (await manifestAt('prod/app', res.body.attestation)).body as { layers: Array<{ digest: string; annotations: Record<string, string> }> };
    assert.equal(attManifest.layers[0]!.annotations['predicateType'], 'https://portcullis.dev/promotion/v1');
    const envelope = JSON.parse((await t.request('GET', `/v2/prod/app/blobs/${attManifest.layers[0]!.digest}`)).raw.toString()) as { payloadType: string; payload: string; signatures: Array<{ sig: string }> };
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
    assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
    assert.equal(statement.subject[0].digest.sha256, index.slice(7));
    assert.equal(statement.predicate.source.repository, 'staging/app');
    assert.equal(statement.predicate.destination.repository, 'prod/app');
    assert.equal(statement.predicate.policy.hash, res.body.policy.hash);
    assert.equal(statement.predicate.decision, 'allowed');
    const publicKey = (await t.request('GET', '/api/v1/promotions/public-key')).raw.toString();
    const { createPublicKey, verify } = await import('node:crypto');
    assert.equal(verify(null, pae(envelope.payloadType, Buffer.from(envelope.payload, 'base64')), createPublicKey(publicKey), Buffer.from(envelope.signatures[0]!.sig, 'base64')), true);
    // cosign tag scheme: the .att tag carries the promotion layer
    const attTag = (await manifestAt('prod/app', cosignTag(index, 'att'))).body as { layers: Array<{ digest: string }> };
    assert.ok(attTag.layers.some((l) => l.digest === attManifest.layers[0]!.digest));

    // with the registry's promotion key in prod's trust policy, the signature module verifies the
    // attestation as any cosign attestation (DSSE, Ed25519 key)
    assert.equal((await t.putPolicy('prod', keyPolicy({ release: pem(release.publicKey), registry: publicKey }))).status, 200);
    const verdict = await t.signatures('prod/app', index);
    assert.equal(verdict.status, 200, JSON.stringify(verdict.body));
    const promotionAttestations = (verdict.body.attestations as Array<{ predicateType?: string; ok: boolean; reason: string }>).filter((a) => a.predicateType === 'https://portcullis.dev/promotion/v1');
    assert.ok(promotionAttestations.length >= 1 && promotionAttestations.every((a) => a.ok), JSON.stringify(verdict.body.attestations));
    assert.equal((await t.putPolicy('prod', keyPolicy({ release: pem(release.publicKey) }))).status, 200);

    const list = await t.request('GET', '/api/v1/promotions?project=prod');
    assert.equal(list.status, 200);
    assert.equal(list.body.promotions[0].id, res.body.id);
    assert.equal(list.body.promotions[0].decision, 'allowed');
    assert.equal(list.body.promotions[0].policy.version, 1);
    await new Promise((r) => setImmediate(r));
    assert.ok(t.events.some((e) => e.type === 'promotion.completed' && e['id'] === res.body.id));
    assert.ok(t.events.some((e) => e.type === 'policy.decision' && e['point'] === 'promotion'));
  });

  it('is refused by the destination policy with the failing rules, writing nothing', async () => {
    const image = await t.pushImage('staging/unsigned', '2.0');
    const before = t.events.length;
    const res = await promote({ source: `staging/unsigned@${image.digest}`, destination: 'prod/unsigned', tag: '2.0' });
    assert.equal(res.status, 403);
    assert.equal(res.body.errors[0].code, 'DENIED');
    assert.match(res.body.errors[0].message, /denied by policy prod-gate v1: rule signed: signature verdict is unsigned/);
    assert.deepEqual(res.body.errors[0].detail.rules.map((r: { rule: string }) => r.rule), ['signed']);
    assert.equal((await manifestAt('prod/unsigned', '2.0')).status, 404);
    assert.equal((await manifestAt('prod/unsigned', image.digest)).status, 404);
    assert.equal(await t.registry.stores.meta.repositoryExists('prod/unsigned'), false, 'not even the repository');
    const denied = await t.request('GET', '/api/v1/promotions?repository=prod/unsigned&decision=denied');
    assert.equal(denied.body.promotions.length, 1);
    assert.match(denied.body.promotions[0].denials[0], /rule signed/);
    await new Promise((r) => setImmediate(r));
    assert.ok(t.events.slice(before).some((e) => e.type === 'promotion.denied'));
    assert.ok(!t.events.slice(before).some((e) => e.type === 'manifest.pushed' && e['repository'] === 'prod/unsigned'));
    // a CEL rule on the request's source
    const other = await t.pushImage('dev/app', '1');
    await pushCosignSignature(t, 'dev/app', other.digest, release.privateKey);
    const fromDev = await promote({ source: 'dev/app:1', destination: 'prod/app' });
    assert.equal(fromDev.status, 403);
    assert.match(fromDev.body.errors[0].message, /rule from-staging/);
  });

  it('leaves no tag, manifest or link at the destination when it fails midway', async () => {
    const image = await t.pushImage('staging/mid', '3.0');
    await pushCosignSignature(t, 'staging/mid', image.digest, release.privateKey);
    const meta = t.registry.stores.meta;
    const real = meta.putManifests.bind(meta);
    // the last write of the transaction references a manifest that does not exist
    const broken = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(randomBytes(8)), size: 1 }] }));
    meta.putManifests = (batch: ManifestBatch) => real({ ...batch, manifests: [...batch.manifests, { repository: batch.repository, digest: sha256(broken), mediaType: 'application/vnd.oci.image.index.v1+json', artifactType: undefined, content: broken, subject: undefined, annotations: undefined, blobs: [], children: [JSON.parse(broken.toString()).manifests[0].digest], tag: 'broken' }] });
    try {
      const res = await promote({ source: 'staging/mid:3.0', destination: 'prod/mid' });
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(res.body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
    } finally {
      delete (meta as { putManifests?: unknown }).putManifests;
    }
    assert.equal(await meta.repositoryExists('prod/mid'), false);
    assert.equal(await meta.resolveTag('prod/mid', '3.0'), undefined);
    assert.equal(await meta.getManifest('prod/mid', image.digest), undefined);
    assert.deepEqual(await meta.listReferrers('prod/mid', image.digest), []);
    // and it works once the fault is gone
    const again = await promote({ source: 'staging/mid:3.0', destination: 'prod/mid' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  });

  it('the promoted rule: an image pushed straight to prod, or with a forged attestation, is not promoted', async () => {
    const direct = await t.pushImage('prod/direct', '1.0');
    const denied = await manifestAt('prod/direct', '1.0');
    assert.equal(denied.status, 403);
    assert.match(JSON.stringify(denied.body), /rule promoted-only: no promotion into project prod attested by this registry/);
    // forge: an attestation with the right shape, signed by another key
    const forger = generateKeyPairSync('ed25519');
    const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'prod/direct', digest: { sha256: direct.digest.slice(7) } }], predicateType: 'https://portcullis.dev/promotion/v1', predicate: { id: 'x', source: { repository: 'staging/app', reference: '1', digest: direct.digest }, destination: { repository: 'prod/direct', project: 'prod', tag: null }, policy: null, decision: 'allowed', approver: { kind: 'user', name: 'mallory' }, promotedAt: new Date().toISOString(), registry: 'x' } }));
    const { sign } = await import('node:crypto');
    const envelope = Buffer.from(JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: statement.toString('base64'), signatures: [{ keyid: '', sig: sign(null, pae('application/vnd.in-toto+json', statement), forger.privateKey).toString('base64') }] }));
    await t.pushBlob('prod/direct', envelope);
    await t.pushBlob('prod/direct', Buffer.from('{}'));
    const forged = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.dev.cosign.artifact.att.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 }, layers: [{ mediaType: 'application/vnd.dsse.envelope.v1+json', digest: sha256(envelope), size: envelope.length }], subject: { mediaType: OCI_MANIFEST, digest: direct.digest, size: direct.manifest.length }, annotations: { 'dev.portcullis.promotion.id': 'x' } }));
    await t.putManifest('prod/direct', sha256(forged), forged);
    assert.equal((await manifestAt('prod/direct', '1.0')).status, 403, 'a forged attestation does not count');
    const explained = await t.request('GET', '/api/v1/policy/explain?repository=prod/direct&reference=1.0&point=pull');
    assert.equal(explained.body.rules.find((r: { rule: string }) => r.rule === 'promoted-only').outcome, 'fail');
  });

  it('without a destination policy: allowed (recorded without a policy); the cosign .att tag keeps the source attestations', async () => {
    const image = await t.pushImage('staging/att', '4.0');
    const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'staging/att', digest: { sha256: image.digest.slice(7) } }], predicateType: 'https://slsa.dev/provenance/v1', predicate: {} }));
    const { envelope } = dsseSign(release.privateKey, 'application/vnd.in-toto+json', statement);
    await t.pushBlob('staging/att', envelope);
    const layer = { mediaType: 'application/vnd.dsse.envelope.v1+json', digest: sha256(envelope), size: envelope.length, annotations: { 'dev.cosignproject.cosign/signature': '', predicateType: 'https://slsa.dev/provenance/v1' } };
    const att = cosignSignatureManifest([layer as never]);
    await t.pushBlob('staging/att', att.config);
    await t.putManifest('staging/att', cosignTag(image.digest, 'att'), att.manifest);
    const res = await promote({ source: 'staging/att:4.0', destination: 'qa/att', tag: 'candidate' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.policy, null);
    assert.deepEqual(res.body.destination, { repository: 'qa/att', tag: 'candidate' });
    const tagged = (await manifestAt('qa/att', cosignTag(image.digest, 'att'))).body as { layers: Array<{ annotations: Record<string, string> }> };
    assert.deepEqual(tagged.layers.map((l) => l.annotations['predicateType']), ['https://slsa.dev/provenance/v1', 'https://portcullis.dev/promotion/v1']);
    const again = await promote({ source: 'staging/att:4.0', destination: 'qa/att', tag: 'candidate' });
    assert.equal(again.status, 201);
    const twice = (await manifestAt('qa/att', cosignTag(image.digest, 'att'))).body as { layers: unknown[] };
    assert.equal(twice.layers.length, 3, 'a second promotion appends its own layer, as cosign appends');
    const records = await t.request('GET', '/api/v1/promotions?repository=qa/att');
    assert.deepEqual(records.body.promotions.map((p: { policy: unknown; decision: string }) => [p.policy, p.decision]), [[null, 'allowed'], [null, 'allowed']]);
  });

  it('immutable destination tags: a promotion cannot move them', async () => {
    const policy = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: rel, project: rel }\nrules:\n  - { name: frozen, kind: immutable-tags, tags: ["v*"] }\n';
    assert.equal((await t.request('PUT', '/api/v1/projects/rel/policies', { body: policy, headers: { 'content-type': 'application/yaml' } })).status, 201);
    const a = await t.pushImage('staging/rel', 'a');
    const b = await t.pushImage('staging/rel', 'b');
    assert.equal((await promote({ source: 'staging/rel:a', destination: 'rel/app:v1' })).status, 201);
    assert.equal((await promote({ source: `staging/rel@${a.digest}`, destination: 'rel/app:v1' })).status, 201, 'the same digest again is fine');
    const moved = await promote({ source: 'staging/rel:b', destination: 'rel/app:v1' });
    assert.equal(moved.status, 403);
    assert.match(moved.body.errors[0].message, new RegExp(`rule frozen: tag v1 matches immutable pattern v\\* and already points at ${a.digest}`));
    assert.equal(await t.registry.stores.meta.resolveTag('rel/app', 'v1'), a.digest);
    assert.equal(await t.registry.stores.meta.getManifest('rel/app', b.digest), undefined);
  });

  it('answers bad requests with clear errors', async () => {
    const cases: Array<[object, number, RegExp]> = [
      [{ destination: 'prod/app' }, 400, /give source/],
      [{ source: 'staging/app', destination: 'prod/app' }, 400, /name a tag or a digest/],
      [{ source: 'staging/app:1.0', destination: 'staging/app' }, 400, /same repository/],
      [{ source: 'Staging/App:1.0', destination: 'prod/app' }, 400, /invalid repository name/],
      [{ source: 'staging/app@sha256:abc', destination: 'prod/app' }, 400, /sha256:<64 hex>/],
      [{ source: 'staging/app:1.0', destination: 'prod/app@sha256:' + 'a'.repeat(64) }, 400, /not a digest/],
      [{ source: 'staging/app:1.0', destination: 'prod/app:x', tag: 'y' }, 400, /names tag x and tag is y/],
      [{ source: 'staging/app:1.0', destination: 'prod/app', extra: 1 }, 400, /unknown field/],
      [{ source: 'staging/app:nope', destination: 'prod/app' }, 404, /not in repository staging\/app/],
    ];
    for (const [body, status, message] of cases) {
      const res = await promote(body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.errors[0].message, message);
    }
    assert.equal((await t.request('GET', '/api/v1/promotions')).status, 400);
    assert.equal((await t.request('GET', '/api/v1/promotions?project=prod&limit=0')).status, 400);
    assert.equal((await t.request('GET', '/api/v1/promotions?project=prod&cursor=zzz')).status, 400);
  });

  it('pages promotion records with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { promotions: Array<{ id: string }>; next: string | null } } = await t.request('GET', `/api/v1/promotions?project=prod&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...res.body.promotions.map((p) => p.id));
      cursor = res.body.next;
    } while (cursor);
    const all = await t.request('GET', '/api/v1/promotions?project=prod&limit=100');
    assert.deepEqual(seen, all.body.promotions.map((p: { id: string }) => p.id));
    assert.ok(seen.length >= 4);
  });
});
