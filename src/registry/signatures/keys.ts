/**
 * Public keys in PEM and key-based signature verification: ECDSA P-256/P-384/P-521, Ed25519,
 * RSA PKCS#1 v1.5 and PSS. Node's crypto does the maths.
 */
import { constants, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { SignatureFormatError, pemBlocks, sha256Hex } from './util.ts';

export type KeyKind = 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'ed25519' | 'rsa';
export type HashName = 'sha256' | 'sha384' | 'sha512';
export type RsaPadding = 'pkcs1' | 'pss';

export interface PublicKeyInfo {
  key: KeyObject;
  kind: KeyKind;
  /** sha256 of the SubjectPublicKeyInfo DER, hex: a stable id for explanations and caching. */
  id: string;
  /** Human name from configuration, if any. */
  name?: string;
}

const CURVES: Record<string, KeyKind> = {
  prime256v1: 'ecdsa-p256',
  'P-256': 'ecdsa-p256',
  secp384r1: 'ecdsa-p384',
  'P-384': 'ecdsa-p384',
  secp521r1: 'ecdsa-p521',
  'P-521': 'ecdsa-p521',
};

export function describeKey(key: KeyObject, name?: string): PublicKeyInfo {
  const type = key.asymmetricKeyType;
  let kind: KeyKind;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    const k = CURVES[curve];
    if (!k) throw new SignatureFormatError('UNSUPPORTED_KEY', `unsupported EC curve ${curve}`);
    kind = k;
  } else if (type === 'ed25519') {
    kind = 'ed25519';
  } else if (type === 'rsa' || type === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new SignatureFormatError('WEAK_KEY', `RSA key of ${bits} bits is too small`);
    kind = 'rsa';
  } else {
    throw new SignatureFormatError('UNSUPPORTED_KEY', `unsupported key type ${type}`);
  }
  const spki = key.export({ type: 'spki', format: 'der' });
  const info: PublicKeyInfo = { key, kind, id: sha256Hex(spki) };
  if (name !== undefined) info.name = name;
  return info;
}

/** A PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY`, or the key of a `CERTIFICATE`). */
export function loadPublicKey(pem: string | Uint8Array, name?: string): PublicKeyInfo {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  const blocks = pemBlocks(text);
  const block = blocks[0];
  if (!block) throw new SignatureFormatError('BAD_KEY', 'no PEM block found');
  let key: KeyObject;
  try {
    if (block.label === 'PUBLIC KEY') key = createPublicKey({ key: block.der, format: 'der', type: 'spki' });
    else if (block.label === 'RSA PUBLIC KEY') key = createPublicKey({ key: block.der, format: 'der', type: 'pkcs1' });
    else if (block.label === 'CERTIFICATE') key = createPublicKey(text);
    else throw new SignatureFormatError('BAD_KEY', `unsupported PEM block ${block.label}`);
  } catch (err) {
    if (err instanceof SignatureFormatError) throw err;
    throw new SignatureFormatError('BAD_KEY', `cannot parse public key: ${(err as Error).message}`);
  }
  return describeKey(key, name);
}

export function defaultHash(kind: KeyKind): HashName {
  if (kind === 'ecdsa-p384') return 'sha384';
  if (kind === 'ecdsa-p521') return 'sha512';
  return 'sha256';
}

export interface VerifyOptions {
  /** Digest for ECDSA/RSA; defaults to the curve's (P-256: SHA-256, P-384: SHA-384) or SHA-256 for RSA. */
  hash?: HashName;
  /** RSA padding; when absent both PKCS#1 v1.5 and PSS are tried. */
  rsaPadding?: RsaPadding;
  /** ECDSA signature encoding: DER (cosign, X.509) or IEEE P1363 r||s (JWS, COSE). */
  ecdsaEncoding?: 'der' | 'ieee-p1363';
}

/** Verify `signature` over `data`. Returns the scheme that verified, or undefined. Never throws on a bad signature. */
export function verifyWithKey(
  info: PublicKeyInfo,
  data: Uint8Array,
  signature: Uint8Array,
  opts: VerifyOptions = {},
): string | undefined {
  try {
    if (info.kind === 'ed25519') {
      return nodeVerify(null, data, info.key, signature) ? 'ed25519' : undefined;
    }
    const hash = opts.hash ?? defaultHash(info.kind);
    if (info.kind === 'rsa') {
      const paddings: RsaPadding[] = opts.rsaPadding ? [opts.rsaPadding] : ['pkcs1', 'pss'];
      for (const p of paddings) {
        const ok = nodeVerify(
          hash,
          data,
          p === 'pss'
            ? { key: info.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
            : { key: info.key, padding: constants.RSA_PKCS1_PADDING },
          signature,
        );
        if (ok) return `rsa-${p}-${hash}`;
      }
      return undefined;
    }
    const ok = nodeVerify(hash, data, { key: info.key, dsaEncoding: opts.ecdsaEncoding ?? 'der' }, signature);
    return ok ? `${info.kind}-${hash}` : undefined;
  } catch {
    return undefined;
  }
}
