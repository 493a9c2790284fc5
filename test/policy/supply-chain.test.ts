/**
 * The supply-chain rule kinds through the registry's gates: allowed base images at push (layers
 * of a base image in this registry, resolved by tag), SLSA provenance and SBOM attestations at
 * pull (cosign attestations signed with a key of the project's trust policy; only verified ones count).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { cosignSignatureManifest, cosignTag, dsseSign } from '../../src/registry/signatures/signing.ts';
import { keyPolicy, OCI_MANIFEST, pem, sha256, startTestRegistry, type TestRegistry } from '../signatures/registry-helpers.ts';

const POLICY = `
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: supply-chain, project: sc }
rules:
  - { name: base, kind: allowed-base-images, images: ["base/alpine:3"], points: [push] }
  - { name: slsa, kind: provenance-required, builders: ["https://github.com/slsa-framework/*"], sources: ["github.com/acme/*"], points: [pull] }
  - { name: sbom, kind: sbom-required, formats: [cyclonedx], origins: [attested], points: [pull] }
  - { name: layers, kind: cel, expression: 'image.layers.size() >= 1 && provenance.all(p, p.commit != "")', points: [pull], mode: warn }
`;

const ci = generateKeyPairSync('ed25519');
const rogue = generateKeyPairSync('ed25519');
const GHA = 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0';

describe('supply-chain rules through the gates', () => {
  let t: TestRegistry;
  before(async () => {
    t = await startTestRegistry();
    assert.equal((await t.request('PUT', '/api/v1/projects/sc/policies', { body: POLICY, headers: { 'content-type': 'application/yaml' } })).status, 201);
    assert.equal((await t.putPolicy('sc', keyPolicy({ ci: pem(ci.publicKey) }))).status, 201);
  });
  after(() => t.close());

  let baseLayers: Array<{ digest: string; size: number }>;
  before(async () => {
    // the base lives in a project without a policy
    const base = await t.pushImage('base/alpine', '3');
    baseLayers = (JSON.parse(base.manifest.toString()) as { layers: Array<{ digest: string; size: number }> }).layers.map((l) => ({ digest: l.digest, size: l.size }));
  });

  /** An image whose layers are `layers` (pushed as blobs) plus one of its own. */
  async function imageOn(repository: string, layers: Array<{ digest: string; size: number }>): Promise<Buffer> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(8).toString('hex') }));
    const own = randomBytes(64);
    await t.pushBlob(repository, config);
    await t.pushBlob(repository, own);
    for (const l of layers) assert.equal((await t.request('POST', `/v2/${repository}/blobs/uploads/?mount=${l.digest}&from=base/alpine`)).status, 201, 'base layers mounted');
    return Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [...layers, { digest: sha256(own), size: own.length }].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    }));
  }

  const put = (repo: string, ref: string, body: Buffer) => t.request('PUT', `/v2/${repo}/manifests/${ref}`, { body, headers: { 'content-type': OCI_MANIFEST } });
  const pull = (repo: string, ref: string) => t.request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });

  /** Pushes cosign attestations (DSSE over in-toto statements) as the `.att` tag of `digest`. */
  async function attest(repository: string, digest: string, statements: Array<{ predicateType: string; predicate: object; key?: typeof ci }>): Promise<void> {
    const layers = [];
    for (const s of statements) {
      const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: repository, digest: { sha256: digest.slice(7) } }], predicateType: s.predicateType, predicate: s.predicate }));
      const { envelope } = dsseSign((s.key ?? ci).privateKey, 'application/vnd.in-toto+json', statement);
      await t.pushBlob(repository, envelope);
      layers.push({ mediaType: 'application/vnd.dsse.envelope.v1+json', digest: sha256(envelope), size: envelope.length, annotations: { 'dev.cosignproject.cosign/signature': '', predicateType: s.predicateType } });
    }
    const att = cosignSignatureManifest(layers as never);
    await t.pushBlob(repository, att.config);
    await t.putManifest(repository, cosignTag(digest, 'att'), att.manifest);
  }

  const provenance = (builder: string, repository: string) => ({
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: { buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1', externalParameters: {}, resolvedDependencies: [{ uri: `git+https://${repository}@refs/heads/main`, digest: { gitCommit: 'a'.repeat(40) } }] },
      runDetails: { builder: { id: builder } },
    },
  });
  const cyclonedx = { predicateType: 'https://cyclonedx.org/bom', predicate: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [] } };

  it('push: only images built on an allowed base image (resolved by tag) are accepted', async () => {
    const derived = await imageOn('sc/app', baseLayers);
    assert.equal((await put('sc/app', '1.0', derived)).status, 201);
    const foreign = await imageOn('sc/app', []);
    const denied = await put('sc/app', '2.0', foreign);
    assert.equal(denied.status, 403);
    const error = (denied.body as { errors: Array<{ code: string; message: string }> }).errors[0]!;
    assert.equal(error.code, 'DENIED');
    assert.match(error.message, /supply-chain v1: rule base: layers \(1, first sha256:[0-9a-f]{64}\) do not start with an allowed base image: base\/alpine:3$/);
    // an index is checked through its platform images
    await t.pushIndex('sc/app', 'multi', [{ digest: sha256(derived), size: derived.length }]);
    await new Promise((r) => setTimeout(r, 20));
    const decision = t.events.find((e) => e.type === 'policy.decision' && e['outcome'] === 'denied' && e['tag'] === '2.0') as { rules: Array<{ rule: string; facts: string[] }> } | undefined;
    assert.ok(decision);
    assert.deepEqual(decision.rules.map((r) => r.rule), ['base']);
  });

  it('pull: denied without verified provenance and SBOM, naming the facts; allowed once attested by the trusted key', async () => {
    const manifest = await imageOn('sc/svc', baseLayers);
    const digest = await t.putManifest('sc/svc', '1.0', manifest);

    const none = await pull('sc/svc', '1.0');
    assert.equal(none.status, 403);
    const message = (none.body as { errors: Array<{ message: string }> }).errors[0]!.message;
    assert.match(message, /rule slsa: no verified SLSA provenance attestation/);
    assert.match(message, /rule sbom: no cyclonedx SBOM attested \(the image has none\)/);

    // signed by a key the trust policy does not know: not verified, does not count
    await attest('sc/svc', digest, [{ ...provenance(GHA, 'github.com/acme/svc'), key: rogue }, { ...cyclonedx, key: rogue }]);
    assert.match(JSON.stringify((await pull('sc/svc', '1.0')).body), /rule slsa: no verified SLSA provenance attestation/);

    // verified, but from another builder and source repository
    await attest('sc/svc', digest, [provenance('https://ci.example/builder', 'github.com/evil/svc'), cyclonedx]);
    const wrong = await pull('sc/svc', '1.0');
    assert.equal(wrong.status, 403);
    const wrongMessage = (wrong.body as { errors: Array<{ message: string }> }).errors[0]!.message;
    assert.match(wrongMessage, /rule slsa: provenance \(https:\/\/slsa\.dev\/provenance\/v1\): builder https:\/\/ci\.example\/builder is not one of https:\/\/github\.com\/slsa-framework\/\* and source repository github\.com\/evil\/svc is not one of github\.com\/acme\/\*/);
    assert.doesNotMatch(wrongMessage, /rule sbom/);

    await attest('sc/svc', digest, [provenance(GHA, 'github.com/acme/svc'), cyclonedx]);
    const ok = await pull('sc/svc', '1.0');
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.headers['warning'], undefined, 'the CEL rule over provenance and layers passes');
    const explained = await t.request('GET', `/api/v1/policy/explain?repository=sc/svc&reference=1.0&point=pull`);
    assert.equal(explained.status, 200);
    assert.deepEqual((explained.body as { rules: Array<{ rule: string; outcome: string }> }).rules.map((r) => `${r.rule}:${r.outcome}`), ['base:skipped', 'slsa:pass', 'sbom:pass', 'layers:pass']);
  });
});
