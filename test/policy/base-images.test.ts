/** Resolving `allowed-base-images` references (tag or digest, image or index) with the enforcer's short cache; SBOM facts from attestations and builder SBOMs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/registry/policy/document.ts';
import { BASE_IMAGE_TTL_MS, PolicyEnforcer, sbomFacts } from '../../src/registry/policy/enforcer.ts';
import { CompiledPolicy } from '../../src/registry/policy/evaluate.ts';
import { completeInput } from '../../src/registry/policy/input.ts';

const L = (c: string) => `sha256:${c.repeat(64)}`;
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

/** A metadata store holding manifests by digest and tags, counting lookups. */
function fakeMeta() {
  const manifests = new Map<string, { mediaType: string; content: Buffer }>();
  const tags = new Map<string, string>();
  const calls = { resolveTag: 0 };
  return {
    calls,
    tags,
    image(digest: string, layers: string[]) {
      manifests.set(digest, { mediaType: IMAGE, content: Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: L('c'), size: 2 }, layers: layers.map((d) => ({ digest: d, size: 1 })) })) });
    },
    index(digest: string, children: string[]) {
      manifests.set(digest, { mediaType: INDEX, content: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: children.map((d) => ({ mediaType: IMAGE, digest: d, size: 1 })) })) });
    },
    meta: {
      async resolveTag(repository: string, tag: string) {
        calls.resolveTag++;
        return tags.get(`${repository}:${tag}`);
      },
      async getManifest(repository: string, digest: string) {
        const m = manifests.get(digest);
        return m ? { repository, digest, mediaType: m.mediaType, artifactType: undefined, size: m.content.length, content: m.content, subject: undefined, annotations: undefined, createdAt: new Date(0) } : undefined;
      },
    },
  };
}

const input = (layers: string[]) => completeInput({ image: { digest: L('0'), repository: 'team/app', layers }, request: { point: 'pull' } });

function setup() {
  const f = fakeMeta();
  const enforcer = new PolicyEnforcer({ source: { policyFor: async () => undefined }, meta: f.meta as never, blobs: {} as never, events: {} as never });
  const policy = new CompiledPolicy(parsePolicy(`apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: p }\nrules:\n  - { name: base, kind: allowed-base-images, images: ["base/alpine:3", "base/multi@${L('e')}"] }`));
  return { f, enforcer, policy };
}

describe('allowed base images: resolution', () => {
  it('resolves tags and digests, an index to each platform, and keeps the result for the TTL', async () => {
    const { f, enforcer, policy } = setup();
    f.image(L('a'), [L('1'), L('2')]);
    f.tags.set('base/alpine:3', L('a'));
    f.image(L('b'), [L('3')]);
    f.image(L('d'), [L('4'), L('5')]);
    f.index(L('e'), [L('b'), L('d'), L('f')]);
    const t0 = 1_000_000;
    await Promise.all([enforcer.resolveBaseImages(policy, t0), enforcer.resolveBaseImages(policy, t0)]);
    assert.equal(f.calls.resolveTag, 1, 'concurrent resolutions share one');
    assert.deepEqual(policy.baseImages.get('base/alpine:3'), [[L('1'), L('2')]]);
    assert.deepEqual(policy.baseImages.get(`base/multi@${L('e')}`), [[L('3')], [L('4'), L('5')]], 'index children missing here are left out');

    // the tag moves: seen only once the TTL has passed
    f.image(L('9'), [L('7')]);
    f.tags.set('base/alpine:3', L('9'));
    await enforcer.resolveBaseImages(policy, t0 + BASE_IMAGE_TTL_MS - 1);
    assert.deepEqual(policy.baseImages.get('base/alpine:3'), [[L('1'), L('2')]]);
    await enforcer.resolveBaseImages(policy, t0 + BASE_IMAGE_TTL_MS);
    assert.deepEqual(policy.baseImages.get('base/alpine:3'), [[L('7')]]);
    assert.equal(f.calls.resolveTag, 2);
  });

  it('a reference that does not resolve says why, and is retried within seconds', async () => {
    const { f, enforcer, policy } = setup();
    await enforcer.resolveBaseImages(policy, 1_000_000);
    assert.equal(policy.baseImages.get('base/alpine:3'), 'is not in this registry');
    const facts = policy.evaluate(input([L('1')])).rules[0]!.facts;
    assert.deepEqual(facts.slice(1), ['base image base/alpine:3 is not in this registry', `base image base/multi@${L('e')} is not in this registry`]);
    f.image(L('a'), [L('1')]);
    f.tags.set('base/alpine:3', L('a'));
    await enforcer.resolveBaseImages(policy, 1_000_000 + 2_000);
    assert.deepEqual(policy.baseImages.get('base/alpine:3'), [[L('1')]]);
    assert.equal(policy.evaluate(input([L('1'), L('8')])).allowed, true);
  });
});

describe('SBOM facts', () => {
  it('attested CycloneDX/SPDX predicates (versioned too) and attached builder SBOMs; other predicates ignored', () => {
    assert.deepEqual(sbomFacts(
      [{ predicateType: 'https://cyclonedx.org/bom/v1.5' }, { predicateType: 'https://spdx.dev/Document' }, { predicateType: 'https://slsa.dev/provenance/v1' }, { predicateType: 'https://cyclonedx.org/bomb' }],
      [{ format: 'spdx' }],
    ), [
      { format: 'cyclonedx', origin: 'attested', verified: true },
      { format: 'spdx', origin: 'attested', verified: true },
      { format: 'spdx', origin: 'attached', verified: false },
    ]);
  });
});
