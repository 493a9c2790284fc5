/**
 * Verification of cosign tag-scheme signatures (`.sig`, simple-signing) and attestations (`.att`,
 * DSSE) from their layer annotations: key-based (optionally with a Rekor SET), keyless (Fulcio
 * certificate + chain + Rekor SET, through @sigstore/verify), and private PKI (certificate chain to
 * configured roots, no transparency log).
 */
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import type { X509Certificate } from 'node:crypto';
import { pae, subjectMatchesOciDigest, type InTotoStatement } from './intoto.ts';
import { describeKey, verifyWithKey } from './keys.ts';
import { checkRevocation, type Crl } from './revocation.ts';
import type { CosignAttestationLayer, CosignLayerMaterial, CosignSignatureLayer, RekorBundleAnnotation } from './recognize.ts';
import {
  describeIdentity,
  parseSigstoreBundle,
  verifyParsedBundle,
  type KeylessIdentity,
  type SignerDescription,
  type SigstoreTrustRoot,
  type TrustedKey,
  type VerifiedTimestamp,
} from './sigstore.ts';
import { toSignedEntity } from '@sigstore/verify';
import { SignatureFormatError, errorMessage, sha256Hex } from './util.ts';
import { buildChain, describeCert, isSelfSigned, parseCertificates } from './x509.ts';

export interface CosignVerifyContext {
  /** Trusted public keys (key-based signing). */
  keys?: TrustedKey[];
  /** Require a Rekor entry (SET) for key-based signatures too, like cosign without --insecure-ignore-tlog. */
  requireTlogForKeys?: boolean;
  /** Fulcio / Rekor / CT trust (keyless), from a trusted_root.json or from loose keys. */
  sigstore?: SigstoreTrustRoot;
  /** Accepted keyless or PKI identities (SAN exact/regex, issuer exact/regex). */
  identities?: KeylessIdentity[];
  /** Minimum SCTs for Fulcio certificates; 0 when the trust root has no CT log keys. */
  ctlogThreshold?: number;
  /** Private PKI roots and intermediates for `cosign sign --certificate` without Rekor. */
  pkiRoots?: X509Certificate[];
  pkiIntermediates?: X509Certificate[];
  /** CRLs for the private PKI: a revoked signing certificate, or one with no current CRL, fails. */
  pkiCrls?: Crl[];
  now?: Date;
}

export interface CosignCheck {
  ok: boolean;
  layer: number;
  method?: 'key' | 'key+tlog' | 'keyless' | 'pki';
  signer?: SignerDescription;
  timestamps?: VerifiedTimestamp[];
  /** What the signed payload says is signed. */
  target?: string;
  reason: string;
  statement?: InTotoStatement;
}

/** Verify one `.sig` layer for the image `expectedDigest`. */
export function verifyCosignSignatureLayer(layer: CosignSignatureLayer, expectedDigest: string, ctx: CosignVerifyContext): CosignCheck {
  const base = { layer: layer.index };
  if (layer.problem || !layer.payload) return { ...base, ok: false, reason: layer.problem ?? 'no payload' };
  const target = layer.payload.manifestDigest;
  if (target !== expectedDigest) {
    return { ...base, ok: false, target, reason: `payload signs ${target}, not ${expectedDigest} (signature belongs to another image)` };
  }
  if (!layer.signature || layer.signature.length === 0) return { ...base, ok: false, target, reason: 'layer has no signature annotation' };
  const r = verifyMaterial(layer, layer.payload.raw, 'message', ctx);
  return { ...base, target, ...r };
}

/** Verify one `.att` layer: the DSSE envelope's signature, and that its in-toto subject names `expectedDigest`. */
export function verifyCosignAttestationLayer(layer: CosignAttestationLayer, expectedDigest: string, ctx: CosignVerifyContext): CosignCheck {
  const base = { layer: layer.index };
  if (layer.problem || !layer.envelope || !layer.statement) return { ...base, ok: false, reason: layer.problem ?? 'no envelope' };
  if (!subjectMatchesOciDigest(layer.statement, expectedDigest)) {
    return { ...base, ok: false, reason: `in-toto subject does not name ${expectedDigest}` };
  }
  const env = layer.envelope;
  if (env.signatures.length !== 1) return { ...base, ok: false, reason: 'cosign attestations carry exactly one DSSE signature' };
  const material: CosignLayerMaterial = { ...layer, signature: (env.signatures[0] as { sig: Buffer }).sig };
  const r = verifyMaterial(material, Buffer.from(JSON.stringify({
    payloadType: env.payloadType,
    payload: env.payload.toString('base64'),
    signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig.toString('base64') })),
  })), 'dsse', ctx, layer);
  return { ...base, target: expectedDigest, statement: layer.statement, ...r };
}

type Outcome = Omit<CosignCheck, 'layer' | 'target'>;

function verifyMaterial(
  m: CosignLayerMaterial,
  signed: Buffer,
  mode: 'message' | 'dsse',
  ctx: CosignVerifyContext,
  att?: CosignAttestationLayer,
): Outcome {
  const sig = m.signature as Buffer;
  const signedBytes = mode === 'message' ? signed : pae(att!.envelope!.payloadType, att!.envelope!.payload);
  try {
    if (m.certificatePem) {
      if (m.rekorBundle && ctx.sigstore) return keyless(m, signed, mode, ctx, att);
      if (ctx.pkiRoots && ctx.pkiRoots.length > 0) return pki(m, signedBytes, ctx);
      return { ok: false, reason: 'certificate-based signature without a Rekor entry, and no private PKI roots are configured' };
    }
    const keys = ctx.keys ?? [];
    if (keys.length === 0) return { ok: false, reason: 'signed with a key, and no trusted key is configured' };
    if (m.rekorBundle && ctx.sigstore) {
      const r = viaBundle(m, signed, mode, ctx, att);
      if (!r.ok) return r;
      return { ...r, method: 'key+tlog' };
    }
    if (ctx.requireTlogForKeys) return { ok: false, reason: 'policy requires a transparency log entry, and the signature has none' };
    for (const k of keys) {
      if (verifyWithKey(k.info, signedBytes, sig)) {
        const signer: SignerDescription = { kind: 'key', keyId: k.info.id };
        if (k.info.name) signer.keyName = k.info.name;
        return { ok: true, method: 'key', signer, reason: `signature verifies with key ${k.info.name ?? k.info.id.slice(0, 16)}` };
      }
    }
    return { ok: false, reason: 'signature does not verify with any trusted key' };
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
}

function keyless(m: CosignLayerMaterial, signed: Buffer, mode: 'message' | 'dsse', ctx: CosignVerifyContext, att?: CosignAttestationLayer): Outcome {
  const r = viaBundle(m, signed, mode, ctx, att);
  return r.ok ? { ...r, method: 'keyless' } : r;
}

/** Re-express the annotations as a v0.1 sigstore bundle and verify it with @sigstore/verify. */
function viaBundle(m: CosignLayerMaterial, signed: Buffer, mode: 'message' | 'dsse', ctx: CosignVerifyContext, att?: CosignAttestationLayer): Outcome {
  const trust = ctx.sigstore as SigstoreTrustRoot;
  const entry = tlogEntry(m.rekorBundle as RekorBundleAnnotation);
  const leafAndChain = m.certificatePem ? parseCertificates(m.certificatePem, 'certificate annotation') : [];
  const chain = m.chainPem ? parseCertificates(m.chainPem, 'chain annotation') : [];
  const leaf = leafAndChain[0];
  const verificationMaterial: Record<string, unknown> = { tlogEntries: [entry] };
  if (leaf) verificationMaterial['x509CertificateChain'] = { certificates: [{ rawBytes: leaf.raw.toString('base64') }] };
  else verificationMaterial['publicKey'] = { hint: '' };
  const json: Record<string, unknown> = {
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial,
  };
  if (mode === 'message') {
    json['messageSignature'] = {
      messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(sha256Hex(signed), 'hex').toString('base64') },
      signature: (m.signature as Buffer).toString('base64'),
    };
  } else {
    json['dsseEnvelope'] = JSON.parse(signed.toString('utf8'));
  }
  const bundle = parseSigstoreBundle(json);
  const extended: SigstoreTrustRoot = leaf ? withIntermediates(trust, chain) : trust;
  const result = verifyParsedBundle(
    bundle,
    {
      trust: extended,
      identities: ctx.identities ?? [],
      keys: ctx.keys ?? [],
      ...(mode === 'message' ? { artifact: signed } : {}),
      thresholds: { ctlog: ctx.ctlogThreshold ?? 1 },
    },
    (artifact) => toSignedEntity(bundle, artifact),
  );
  if (!result.ok) return { ok: false, reason: result.reason, ...(result.signer ? { signer: result.signer } : {}) };
  const who = result.signer.kind === 'certificate' ? `${result.signer.subjectAlternativeName} (${result.signer.issuer})` : (result.signer.keyName ?? result.signer.keyId.slice(0, 16));
  return { ok: true, signer: result.signer, timestamps: result.timestamps, reason: `signature by ${who}, logged in Rekor at ${result.timestamps[0]?.time ?? '?'}` };
}

function tlogEntry(b: RekorBundleAnnotation): Record<string, unknown> {
  const body = JSON.parse(Buffer.from(b.body, 'base64').toString('utf8')) as { kind?: string; apiVersion?: string };
  if (!body.kind || !body.apiVersion) throw new SignatureFormatError('BAD_ANNOTATION', 'Rekor entry body has no kind/apiVersion');
  return {
    logIndex: String(b.logIndex),
    logId: { keyId: Buffer.from(b.logID, 'hex').toString('base64') },
    kindVersion: { kind: body.kind, version: body.apiVersion },
    integratedTime: String(b.integratedTime),
    inclusionPromise: { signedEntryTimestamp: b.signedEntryTimestamp },
    canonicalizedBody: b.body,
  };
}

/**
 * cosign's chain annotation carries Fulcio intermediates. They are untrusted input: an intermediate is
 * added to the trust material only when it chains to a CA root already in the trusted root.
 */
function withIntermediates(trust: SigstoreTrustRoot, chain: X509Certificate[]): SigstoreTrustRoot {
  const intermediates = chain.filter((c) => c.ca && !isSelfSigned(c));
  if (intermediates.length === 0) return trust;
  const roots = trust.root.certificateAuthorities.flatMap((ca) =>
    (ca.certChain?.certificates ?? []).map((c) => parseCertificates(Buffer.from(c.rawBytes))[0] as X509Certificate),
  );
  const extra: TrustedRoot['certificateAuthorities'] = [];
  for (const i of intermediates) {
    const path = buildChain(i, intermediates, roots.filter((r) => isSelfSigned(r)));
    if (!path.ok) continue;
    const ca = trust.root.certificateAuthorities.find((a) =>
      (a.certChain?.certificates ?? []).some((c) => Buffer.from(c.rawBytes).equals(path.anchor.raw)),
    );
    extra.push({
      subject: { organization: '', commonName: describeCert(i) },
      uri: 'cosign chain annotation',
      certChain: { certificates: path.chain.map((c) => ({ rawBytes: c.raw })) },
      validFor: ca?.validFor ?? { start: new Date(0) },
    } as TrustedRoot['certificateAuthorities'][number]);
  }
  return { ...trust, root: { ...trust.root, certificateAuthorities: [...trust.root.certificateAuthorities, ...extra] } };
}

/** Private PKI: the leaf chains (via the chain annotation and configured intermediates) to a configured root now. */
function pki(m: CosignLayerMaterial, signedBytes: Buffer, ctx: CosignVerifyContext): Outcome {
  const leaf = parseCertificates(m.certificatePem as string, 'certificate annotation')[0];
  if (!leaf) return { ok: false, reason: 'certificate annotation holds no certificate' };
  const intermediates = [...(m.chainPem ? parseCertificates(m.chainPem, 'chain annotation') : []), ...(ctx.pkiIntermediates ?? [])];
  const path = buildChain(leaf, intermediates, ctx.pkiRoots ?? [], { at: ctx.now ?? new Date() });
  if (!path.ok) return { ok: false, reason: path.reason };
  if (ctx.pkiCrls && ctx.pkiCrls.length > 0) {
    const rev = checkRevocation(path.chain, ctx.pkiCrls, ctx.now ?? new Date());
    if (rev.status !== 'good') return { ok: false, reason: rev.status === 'revoked' ? rev.message : `revocation status cannot be determined: ${rev.message}` };
  }
  const sans = subjectAltNames(leaf);
  const signer: SignerDescription = { kind: 'certificate', certificateSha256: sha256Hex(leaf.raw) };
  if (sans[0]) signer.subjectAlternativeName = sans.join(', ');
  const ids = ctx.identities ?? [];
  if (ids.length === 0) return { ok: false, signer, reason: 'no trusted certificate identity is configured' };
  const matched = ids.some((id) => sans.some((s) => (id.subject === undefined || id.subject === s) && (id.subjectRegExp === undefined || new RegExp(id.subjectRegExp).test(s))));
  if (!matched) return { ok: false, signer, reason: `certificate identities ${sans.join(', ')} match none of: ${ids.map(describeIdentity).join('; ')}` };
  if (!verifyWithKey(describeKey(leaf.publicKey), signedBytes, m.signature as Buffer)) {
    return { ok: false, signer, reason: 'signature does not verify with the certificate key' };
  }
  return { ok: true, method: 'pki', signer, reason: `signature by ${sans.join(', ')} (chain to "${describeCert(path.anchor)}")` };
}

/** The SAN values of a certificate without their type prefixes (email:, DNS:, URI:). */
export function subjectAltNames(cert: X509Certificate): string[] {
  const raw = cert.subjectAltName;
  if (!raw) return [];
  return raw.split(/,\s*/).map((s) => s.replace(/^(email|DNS|URI|IP Address):/, '')).filter(Boolean);
}
