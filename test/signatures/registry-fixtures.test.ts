/**
 * The real tools' artifacts pushed through the registry the way the tools push them, verified by the
 * registry under a project trust policy set through the API, and read back from
 * `GET /api/v1/repositories/{name}/manifests/{digest}/signatures`: every case must give its
 * expected verdict from cases.json.
 *
 * - Notation (`oci-manifests/notation/*`): the image (blobs, then the manifest), then each signature
 *   manifest by digest with its `subject` (as `notation sign` does against a registry with the
 *   Referrers API).
 * - cosign attestation (`oci-manifests/cosign-slsa-container`): the `.att` manifest with its DSSE
 *   layer under `sha256-<index>.att` (the image's big layers are not in the fixture, so the image
 *   itself is absent: verification needs only its digest).
 * - cosign signatures (`cosign-key/containers-image/*`): the `.sig` manifest cosign pushed, rebuilt
 *   from containers/image's copy of its layers (payload + annotations), under `sha256-<image>.sig`.
 * - cosign v3 bundle referrer (`cosign-keyless/cosign/oci-attestation.sigstore.json`).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNotationEnvelope } from '../../src/registry/signatures/notation.ts';
import { cosignTag, referrerManifest } from '../../src/registry/signatures/signing.ts';
import { isSelfSigned, parseCertificates } from '../../src/registry/signatures/x509.ts';
import { MemoryBlobs, OciLayout, SIG_DIR, containersImageLayers, cosignSigManifest, fx, read, readJson, readText, requireFixtures, trustedRootWithFulcio } from './fixtures.ts';
import { OCI_MANIFEST, sha256, startTestRegistry, type TestRegistry } from './registry-helpers.ts';

interface Case {
  id: string;
  kind: string;
  files: Record<string, string>;
  subject: Record<string, any> | null;
  verify_with: Record<string, any> | null;
  signatures?: Record<string, any>[];
  expected: { verdict: string; reason: string };
}

const present = requireFixtures();
const cases: Case[] = present ? (JSON.parse(fs.readFileSync(path.join(SIG_DIR, 'cases.json'), 'utf8')) as { cases: Case[] }).cases : [];

/** Where the registry must differ from the upstream verdict, and why (as in cases.test.ts). */
const NOT_REPRODUCED: Record<string, { actual: string; why: string }> = {
  'notation-e2e/e2e-with-timestamped-signature': {
    actual: 'failed',
    why: 'the RFC 3161 token is from a TSA whose root is not among the fixtures, and at wall-clock time the signature (3h20m expiry) has expired',
  },
};

/** Cases the registry cannot be configured for through a trust policy document, and why (none at present). */
const NOT_CONFIGURABLE: Record<string, string> = {};

const SLSA_GENERATOR = { subjectRegExp: '^https://github\\.com/slsa-framework/slsa-github-generator/\\.github/workflows/', issuer: 'https://token.actions.githubusercontent.com' };

const expectedVerdict = (c: Case) => NOT_REPRODUCED[c.id]?.actual ?? ({ valid: 'verified', invalid: 'failed', unsigned: 'unsigned' } as Record<string, string>)[c.expected.verdict];

function isImageManifest(bytes: Buffer): { config: { digest: string }; layers: { digest: string }[]; subject?: { digest: string } } | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as Record<string, any>;
    if (m['schemaVersion'] === 2 && Array.isArray(m['layers']) && m['config']) return m as never;
  } catch {
    // a layer or an envelope
  }
  return undefined;
}

/** Pushes an OCI layout's image manifests the way a client copies them: blobs, then subjects before their referrers. */
async function pushLayout(t: TestRegistry, repository: string, layout: OciLayout): Promise<string[]> {
  const manifests = [...layout.blobs.blobs.entries()].flatMap(([digest, bytes]) => {
    const m = isImageManifest(bytes);
    return m ? [{ digest, bytes, m }] : [];
  });
  manifests.sort((a, b) => Number(!!a.m.subject) - Number(!!b.m.subject));
  const pushed: string[] = [];
  for (const { digest, bytes, m } of manifests) {
    const blobs = [m.config.digest, ...m.layers.map((l) => l.digest)];
    if (!blobs.every((d) => layout.blobs.blobs.has(d))) continue;
    for (const d of blobs) await t.pushBlob(repository, layout.blob(d));
    await t.putManifest(repository, digest, bytes);
    pushed.push(digest);
  }
  return pushed;
}

async function pushMemoryBlobs(t: TestRegistry, repository: string, blobs: MemoryBlobs, except: string): Promise<void> {
  for (const [d, b] of blobs.blobs) if (d !== except) await t.pushBlob(repository, b);
}

let projectCounter = 0;

describe('real-tool artifacts pushed through the registry', { skip: !present && 'signature fixtures missing' }, () => {
  let t: TestRegistry;
  const ran = new Set<string>();
  before(async () => {
    t = await startTestRegistry();
  });
  after(() => t.close());

  async function check(c: Case, repository: string, digest: string, policy: object): Promise<any> {
    const project = repository.split('/')[0]!;
    const put = await t.putPolicy(project, policy);
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const res = await t.signatures(repository, digest);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const want = expectedVerdict(c);
    assert.equal(res.body.verdict, want, `${c.id}: expected ${want} (${c.expected.reason}); got ${res.body.verdict}: ${JSON.stringify(res.body.missing)} ${JSON.stringify(res.body.signatures)}`);
    ran.add(c.id);
    return res.body;
  }

  const notationCases = cases.filter((c) => c.files['oci_layout']?.startsWith('oci-manifests/notation/'));
  for (const c of notationCases) {
    test(`notation: ${c.id} -> ${c.expected.verdict}`, async () => {
      const layout = new OciLayout(c.files['oci_layout']!);
      const repository = `nx${++projectCounter}/e2e`;
      await pushLayout(t, repository, layout);
      const subject: string = c.subject?.['subject_manifest_digests']?.[0] ?? layout.tagged('v1');
      const vw = c.verify_with ?? {};
      const ca: string[] = [];
      if (vw['trust_store ca:e2e']) ca.push(readText(vw['trust_store ca:e2e']));
      const timestamped = c.id.includes('timestamped');
      if (timestamped) {
        // the e2e run generated its signing certificate and put it in ca:e2e: pin it (as cases.test.ts does)
        for (const s of c.signatures ?? []) ca.push(parseNotationEnvelope(s['envelope_media_type'], read(s['envelope'])).certificateChain[0]!.toString());
      }
      const tsa = timestamped
        ? fs.readdirSync(fx('notation-trust/notation-e2e/timestamp')).flatMap((f) => {
            try {
              return parseCertificates(read(`notation-trust/notation-e2e/timestamp/${f}`)).filter(isSelfSigned).map((x) => x.toString());
            } catch {
              return [];
            }
          })
        : [];
      const body = await check(c, repository, subject, {
        notation: {
          trustPolicy: readJson(vw['trust_policy'] ?? 'notation-trust/notation-e2e/trustpolicies/trustpolicy.json'),
          trustStores: { ca: { e2e: ca }, tsa: { e2e: tsa } },
        },
      });
      assert.equal(body.manifestPresent, true);
      assert.deepEqual(
        body.artifacts.map((a: { digest: string; source: string }) => `${a.source} ${a.digest}`).sort(),
        (c.signatures ?? []).map((s) => `referrer ${s['manifest_digest']}`).sort(),
        'every signature manifest was found as a referrer',
      );
      if (body.verdict === 'verified') assert.ok(body.signatures.every((s: { signer: { kind: string } }) => s.signer.kind === 'notation'));
      else if (body.verdict === 'failed') assert.ok(body.signatures.every((s: { reason: string }) => s.reason.length > 0));
    });
  }

  const slsa = cases.filter((c) => c.id.startsWith('slsa-verifier/gha_generic_container/'));
  for (const c of slsa) {
    test(`cosign .att: ${c.id} -> ${c.expected.verdict}`, async () => {
      const layout = new OciLayout(c.files['oci_layout']!);
      const repository = `slsa${++projectCounter}/example-package`;
      const image: string = c.subject?.['image_index_digest'];
      const att = read(c.files['cosign_att_manifest']!);
      const m = isImageManifest(att)!;
      for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) await t.pushBlob(repository, layout.blob(d));
      await t.putManifest(repository, cosignTag(image, 'att'), att);
      const vw = c.verify_with ?? {};
      const policy = {
        requireSignature: false,
        keyless: { trustedRoot: readJson(vw['trusted_root']), identities: [SLSA_GENERATOR] },
        requiredAttestations: [{ predicateType: 'slsaprovenance', builderId: vw['builder_id'], sourceRepository: vw['source_uri'], signerIdentities: [SLSA_GENERATOR] }],
      };
      const body = await check(c, repository, image, policy);
      assert.equal(body.manifestPresent, false, 'the image itself is not in the fixture');
      assert.equal(body.attestations[0].ok, true);
      assert.equal(body.attestations[0].facts.sourceRepository, vw['source_uri']);
      assert.equal(body.requirements[0].ok, true);
      const facts = await t.registry.signatures!.facts(repository, image);
      assert.equal(facts.provenance[0]?.builderId?.startsWith(vw['builder_id']), true, JSON.stringify(facts.provenance));
      assert.equal(facts.attestedBy[0]?.signer?.kind, 'certificate');
      // the upstream negative: another source repository
      const wrong = await t.putPolicy(repository.split('/')[0]!, { ...policy, requiredAttestations: [{ predicateType: 'slsaprovenance', sourceRepository: `${vw['source_uri']}A` }] });
      assert.equal(wrong.status, 200);
      const res = await t.signatures(repository, image);
      assert.equal(res.body.verdict, 'failed');
      assert.match(res.body.missing.join(' '), /attestation slsaprovenance: .*source/);
    });
  }

  const containersImage = cases.filter((c) => c.id.startsWith('containers-image/'));
  for (const c of containersImage) {
    const reason = NOT_CONFIGURABLE[c.id];
    test(`cosign .sig: ${c.id} -> ${c.expected.verdict}`, { skip: reason }, async () => {
      const vw = c.verify_with ?? {};
      const blobs = new MemoryBlobs();
      const layers = containersImageLayers(c);
      const manifest = cosignSigManifest(blobs, layers);
      const image: string = c.files['image_manifest'] ? sha256(read(c.files['image_manifest'])) : c.subject?.['payload_docker_manifest_digest'];
      const repository = `ci${++projectCounter}/signed`;
      await pushMemoryBlobs(t, repository, blobs, sha256(manifest));
      await t.putManifest(repository, cosignTag(image, 'sig'), manifest);
      const policy: Record<string, unknown> = {};
      if (vw['public_key']) policy['keys'] = [{ name: path.basename(vw['public_key']), publicKey: readText(vw['public_key']) }];
      if (vw['fulcio_ca']) {
        policy['keyless'] = { trustedRoot: trustedRootWithFulcio(readText(vw['fulcio_ca'])), identities: [{ subject: vw['subject_email'], issuer: vw['oidc_issuer'] }] };
      }
      if (vw['ca_roots']) {
        policy['certificates'] = {
          roots: [readText(vw['ca_roots'])],
          intermediates: [readText(vw['ca_intermediates'])],
          identities: [{ subject: vw['subject_email'] }, { subject: vw['subject_hostname'] }],
        };
      }
      const body = await check(c, repository, image, policy);
      assert.equal(body.signatures.length, layers.length, 'one verdict per signature layer');
      if (body.verdict === 'failed') assert.ok(body.signatures.every((s: { ok: boolean; reason: string }) => !s.ok && s.reason.length > 0));
    });
  }

  const bundle = cases.find((c) => c.id === 'cosign/oci-attestation.sigstore.json');
  test('cosign v3 bundle referrer: cosign/oci-attestation.sigstore.json -> valid', { skip: !bundle }, async () => {
    const c = bundle!;
    const vw = c.verify_with ?? {};
    const repository = `bundle${++projectCounter}/repo`;
    const subject = `sha256:${c.subject?.['in_toto_subjects'][0].digest.sha256}`;
    const bytes = read(c.files['bundle']!);
    const { manifest, config } = referrerManifest(
      'application/vnd.dev.sigstore.bundle.v0.3+json',
      [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: sha256(bytes), size: bytes.length }],
      { mediaType: OCI_MANIFEST, digest: subject, size: 1 },
      { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://cosign.sigstore.dev/attestation/v1' },
    );
    await t.pushBlob(repository, bytes);
    await t.pushBlob(repository, config);
    const referrer = await t.putManifest(repository, sha256(manifest), manifest);
    const identities = [{ subjectRegExp: vw['certificate_identity_regexp'], issuerRegExp: vw['certificate_oidc_issuer_regexp'] }];
    const body = await check(c, repository, subject, {
      requireSignature: false,
      keyless: { trustedRoot: readJson(vw['trusted_root']), identities },
      requiredAttestations: [{ predicateType: 'https://cosign.sigstore.dev/attestation/v1', signerIdentities: identities }],
    });
    assert.deepEqual(body.artifacts, [{ digest: referrer, source: 'referrer', kind: 'sigstore-bundle' }]);
    // the same referrer re-pushed with another subject does not count for that image
    const moved = Buffer.from(manifest.toString().replace(subject, sha256('another image')));
    await t.putManifest(repository, sha256(moved), moved);
    const other = await t.signatures(repository, sha256('another image'));
    assert.equal(other.body.verdict, 'failed');
    assert.match(other.body.attestations[0].reason, /in-toto subject does not name/);
  });

  test('every case of these groups ran (or is listed with its reason)', () => {
    const groups = [...notationCases, ...slsa, ...containersImage, ...(bundle ? [bundle] : [])];
    assert.ok(groups.length >= 20, `only ${groups.length} cases found`);
    const missing = groups.filter((c) => !ran.has(c.id) && !NOT_CONFIGURABLE[c.id]).map((c) => c.id);
    assert.deepEqual(missing, []);
  });
});
