/**
 * The promotion attestation: an in-toto Statement v1 whose predicate records a promotion (source,
 * destination, policy version and hash, decision, approver, time), in a DSSE envelope signed with
 * the registry's promotion key (Ed25519, created at first start like the audit checkpoint key).
 * It is attached to the destination digest as an OCI 1.1 referrer with cosign's attestation
 * artifact type and in cosign's `.att` tag, so `cosign verify-attestation --key promotion.pub
 * --type https://portcullis.dev/promotion/v1` and trust policies that list the registry key
 * accept it; the policy engine reads it as the `promotions` fact, verified against this
 * registry's key(s) only.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { keyIdOf, loadOrCreateSigningKey } from '../../audit/keys.ts';
import type { PromotionFact } from '../input.ts';
import { DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, pae, parseDsseEnvelope, parseStatement, subjectMatchesOciDigest } from '../../signatures/intoto.ts';

export type { PromotionFact };

export const PROMOTION_PREDICATE_TYPE = 'https://portcullis.dev/promotion/v1';
/** cosign's artifact type for attestations pushed as OCI 1.1 referrers. */
export const COSIGN_ATTESTATION_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.att.v1+json';
/** Manifest annotation naming the promotion (lets the facts reader skip other attestations unread). */
export const PROMOTION_ID_ANNOTATION = 'dev.portcullis.promotion.id';
const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const COSIGN_PREDICATE_ANNOTATION = 'predicateType';

export interface PromotionPredicate {
  id: string;
  source: { repository: string; reference: string; digest: string };
  destination: { repository: string; project: string; tag: string | null };
  policy: { name: string; project: string; version: number; hash: string } | null;
  decision: 'allowed';
  approver: { kind: string; name: string };
  promotedAt: string;
  /** The registry that signed (its `auth.service`/host name). */
  registry: string;
}

export interface RegistryKey {
  keyId: string;
  publicKey: KeyObject;
  publicKeyPem: string;
  sign(data: Buffer): Buffer;
}

/** The registry's promotion key: `keyFile` (created 0600 with its `.pub.pem` when absent). */
export async function loadRegistryKey(keyFile: string): Promise<RegistryKey> {
  const signer = await loadOrCreateSigningKey(keyFile);
  const publicKey = createPublicKey(await readFile(signer.publicKeyFile));
  if (keyIdOf(publicKey) !== signer.keyId) throw new Error(`${signer.publicKeyFile} is not the public half of ${keyFile}`);
  return { keyId: signer.keyId, publicKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), sign: (data) => signer.sign(data) };
}

/** Extra public keys trusted for promotion attestations (a previous key, other replicas' keys). */
export async function loadTrustedPromotionKeys(files: readonly string[]): Promise<KeyObject[]> {
  const keys: KeyObject[] = [];
  for (const file of files) keys.push(createPublicKey(await readFile(file, 'utf8')));
  return keys;
}

/**
 * The DSSE envelope (JSON bytes) over the in-toto statement for `predicate`; its subjects are the
 * promoted digest and, for an index, every child (a child pulled by digest is promoted too).
 */
export function signPromotion(key: RegistryKey, predicate: PromotionPredicate, children: readonly string[] = []): Buffer {
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [predicate.source.digest, ...children].map((d) => ({ name: predicate.destination.repository, digest: { sha256: d.slice('sha256:'.length) } })),
    predicateType: PROMOTION_PREDICATE_TYPE,
    predicate,
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const sig = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload));
  return Buffer.from(JSON.stringify({ payloadType: IN_TOTO_PAYLOAD_TYPE, payload: payload.toString('base64'), signatures: [{ keyid: key.keyId, sig: sig.toString('base64') }] }));
}

/** The layer descriptor of an envelope, annotated as cosign annotates attestation layers. */
export function promotionLayer(envelope: Buffer, digest: string): { mediaType: string; digest: string; size: number; annotations: Record<string, string> } {
  return { mediaType: DSSE_MEDIA_TYPE, digest, size: envelope.length, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: '', [COSIGN_PREDICATE_ANNOTATION]: PROMOTION_PREDICATE_TYPE } };
}

/**
 * The promotion fact in an envelope, if it is signed by one of `keys`, is a promotion statement
 * and names `digest` as its subject; undefined otherwise (a forged or foreign attestation counts
 * as absent, never as an error).
 */
export function verifyPromotion(envelope: Uint8Array, digest: string, keys: readonly KeyObject[]): PromotionFact | undefined {
  let env;
  try {
    env = parseDsseEnvelope(envelope);
  } catch {
    return undefined;
  }
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) return undefined;
  const data = pae(env.payloadType, env.payload);
  let keyId: string | undefined;
  for (const s of env.signatures) {
    const key = keys.find((k) => safeVerify(k, data, s.sig));
    if (key) {
      keyId = keyIdOf(key);
      break;
    }
  }
  if (!keyId) return undefined;
  let st;
  try {
    st = parseStatement(env.payload);
  } catch {
    return undefined;
  }
  if (st.predicateType !== PROMOTION_PREDICATE_TYPE || !subjectMatchesOciDigest(st, digest)) return undefined;
  const p = st.predicate as Partial<PromotionPredicate>;
  if (typeof p.id !== 'string' || !p.source || !p.destination || p.decision !== 'allowed') return undefined;
  return {
    id: p.id,
    sourceRepository: String(p.source.repository ?? ''),
    sourceProject: String(p.source.repository ?? '').split('/', 1)[0]!,
    destinationRepository: String(p.destination.repository ?? ''),
    destinationProject: String(p.destination.project ?? ''),
    policyVersion: Number(p.policy?.version ?? 0),
    policyHash: String(p.policy?.hash ?? ''),
    approver: String(p.approver?.name || p.approver?.kind || ''),
    promotedAt: String(p.promotedAt ?? ''),
    keyId,
  };
}

function safeVerify(key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    return verify(key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256', data, key, sig);
  } catch {
    return false;
  }
}
