/**
 * Malformed input never crashes the core: byte-level mutations of real envelopes, bundles, payloads
 * and timestamp tokens either parse, fail with a SignatureFormatError, or (for verifiers that never
 * throw) come back as a failed result. Deterministic: a fixed seed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDsseEnvelope } from '../../src/registry/signatures/intoto.ts';
import { COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, parseNotationEnvelope, parseNotationTrustPolicy, verifyNotationBytes } from '../../src/registry/signatures/notation.ts';
import { recognize } from '../../src/registry/signatures/recognize.ts';
import { parseSimpleSigning } from '../../src/registry/signatures/simplesigning.ts';
import { loadSigstoreTrustedRoot, verifySigstoreBundle } from '../../src/registry/signatures/sigstore.ts';
import { verifyTimestampToken } from '../../src/registry/signatures/timestamp.ts';
import { SignatureFormatError } from '../../src/registry/signatures/util.ts';
import { MemoryBlobs, read, requireFixtures } from './fixtures.ts';

const present = requireFixtures();

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

function* mutations(bytes: Buffer, n: number, seed: number): Generator<Buffer> {
  const r = rng(seed);
  for (let i = 0; i < n; i++) {
    const b = Buffer.from(bytes);
    const kind = r();
    const pos = Math.floor(r() * b.length);
    if (kind < 0.5) b[pos] = Math.floor(r() * 256);
    else if (kind < 0.75) {
      yield b.subarray(0, pos);
      continue;
    } else b[pos] = (b[pos] as number) ^ (1 << Math.floor(r() * 8));
    yield b;
  }
}

function onlyFormatErrors(fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SignatureFormatError, `${what}: unexpected ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  }
}

describe('robustness against mutated inputs', { skip: !present && 'fixtures missing' }, () => {
  test('Notation JWS and COSE envelopes', () => {
    const jws = read('notation-jws/notation-go/ca_valid_sig_env.json');
    const cose = read('notation-cose/notation-go/timestamp/coseWithTimestamp.sig');
    const policy = parseNotationTrustPolicy({ version: '1.0', trustPolicies: [{ name: 'p', registryScopes: ['*'], signatureVerification: { level: 'strict' }, trustStores: ['ca:x'], trustedIdentities: ['*'] }] });
    let i = 0;
    for (const m of mutations(jws, 300, 1)) {
      onlyFormatErrors(() => parseNotationEnvelope(JWS_MEDIA_TYPE, m), `jws #${i++}`);
      assert.notEqual(verifyNotationBytes(JWS_MEDIA_TYPE, m, { policy, trustStores: {}, repository: 'r/x' }).verdict, 'valid');
    }
    for (const m of mutations(cose, 300, 2)) onlyFormatErrors(() => parseNotationEnvelope(COSE_MEDIA_TYPE, m), `cose #${i++}`);
  });

  test('sigstore bundles never throw from verification', () => {
    const trust = loadSigstoreTrustedRoot(read('cosign-keyless/trusted_root.production.json'));
    const bundle = read('cosign-keyless/conformance/happy-path-v0.3/bundle.sigstore.json');
    const artifact = read('cosign-keyless/conformance/a.txt');
    const json = bundle.toString('latin1');
    for (const m of mutations(bundle, 400, 3)) {
      const r = verifySigstoreBundle(m, { trust, artifact, identities: [{ subjectRegExp: '.*' }] });
      if (!r.ok) continue;
      // only bytes nothing depends on may change: JSON whitespace, or the informational global logIndex
      const pos = m.findIndex((x, k) => x !== bundle[k]);
      if (pos < 0 && m.length === bundle.length) continue; // the random byte equalled the original
      const around = json.slice(Math.max(0, pos - 40), pos + 5);
      assert.ok(/\s/.test(json[pos] ?? '') || /"logIndex": "\d*$/.test(json.slice(Math.max(0, pos - 40), pos)), `mutation at ${pos} still verifies: ${JSON.stringify(around)}`);
    }
  });

  test('DSSE envelopes, simple-signing payloads, timestamp tokens, manifests', async () => {
    for (const m of mutations(read('dsse-intoto/slsa-verifier/vsa/gce/v1/gke-gce-pre.bcid-vsa.jsonl'), 200, 4)) onlyFormatErrors(() => parseDsseEnvelope(m), 'dsse');
    for (const m of mutations(read('cosign-key/containers-image/dir-img-cosign-valid/signature-1.payload.json'), 200, 5)) onlyFormatErrors(() => parseSimpleSigning(m), 'payload');
    const env = parseNotationEnvelope(JWS_MEDIA_TYPE, read('notation-jws/notation-go/timestamp/jwsWithTimestamp.sig'));
    for (const m of mutations(env.timestampToken as Buffer, 200, 6)) onlyFormatErrors(() => verifyTimestampToken(m, env.signature, []), 'timestamp');
    const manifest = read('oci-manifests/cosign-slsa-container/blobs/sha256/21454caf3a160dfbe6359f0501aa8401c6c0f2c7a8b71380ea21f8c4b48b64fe');
    const blobs = new MemoryBlobs();
    for (const m of mutations(manifest, 200, 7)) {
      try {
        await recognize(m, { fetchBlob: blobs.fetchBlob });
      } catch (err) {
        assert.ok(err instanceof SignatureFormatError, `manifest: ${(err as Error).message}`);
      }
    }
  });
});
