/**
 * Building blocks for `portcullis key generate / sign / attest`: cosign-compatible encrypted private
 * keys (scrypt + NaCl secretbox, `ENCRYPTED SIGSTORE PRIVATE KEY`), cosign simple-signing signatures
 * and `.sig` layers, DSSE signing, and Notary Project JWS envelopes.
 */
import { secretbox } from '@noble/ciphers/salsa.js';
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scryptSync,
  sign as nodeSign,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';
import { pae, DSSE_MEDIA_TYPE } from './intoto.ts';
import { describeKey, defaultHash } from './keys.ts';
import { JWS_MEDIA_TYPE, NOTATION_PAYLOAD_TYPE, type TargetArtifact } from './notation.ts';
import { COSIGN_ANNOTATIONS } from './recognize.ts';
import { SIMPLESIGNING_MEDIA_TYPE, buildSimpleSigningPayload } from './simplesigning.ts';
import { SignatureFormatError, decodeBase64, digestOf, errorMessage, isObject, pemBlocks, toPem } from './util.ts';

export const ENCRYPTED_SIGSTORE_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const ENCRYPTED_COSIGN_LABEL = 'ENCRYPTED COSIGN PRIVATE KEY';

/** scrypt parameters cosign uses when it writes a key. */
const SCRYPT = { N: 32768, r: 8, p: 1 };

export interface ImportedKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Decrypt a cosign / sigstore encrypted private key with its password. The plaintext must be PKCS#8. */
export function importCosignPrivateKey(pem: string | Uint8Array, password: string): ImportedKey {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  const block = pemBlocks(text).find((b) => b.label === ENCRYPTED_SIGSTORE_LABEL || b.label === ENCRYPTED_COSIGN_LABEL);
  if (!block) throw new SignatureFormatError('BAD_KEY', `no ${ENCRYPTED_SIGSTORE_LABEL} or ${ENCRYPTED_COSIGN_LABEL} block`);
  let json: Record<string, unknown>;
  try {
    const v = JSON.parse(block.der.toString('utf8')) as unknown;
    if (!isObject(v)) throw new Error('not an object');
    json = v;
  } catch (err) {
    throw new SignatureFormatError('BAD_KEY', `encrypted key body is not JSON: ${errorMessage(err)}`);
  }
  const kdf = json['kdf'];
  const cipher = json['cipher'];
  if (!isObject(kdf) || kdf['name'] !== 'scrypt' || !isObject(kdf['params'])) throw new SignatureFormatError('BAD_KEY', 'unsupported key derivation (want scrypt)');
  if (!isObject(cipher) || cipher['name'] !== 'nacl/secretbox') throw new SignatureFormatError('BAD_KEY', 'unsupported cipher (want nacl/secretbox)');
  const { N, r, p } = kdf['params'] as Record<string, unknown>;
  if (typeof N !== 'number' || typeof r !== 'number' || typeof p !== 'number' || N > 1 << 20 || r > 32 || p > 16 || N < 2 || (N & (N - 1)) !== 0) {
    throw new SignatureFormatError('BAD_KEY', 'scrypt parameters out of range');
  }
  const salt = decodeBase64(kdf['salt'], 'scrypt salt');
  const nonce = decodeBase64(cipher['nonce'], 'secretbox nonce');
  const ciphertext = decodeBase64(json['ciphertext'], 'ciphertext');
  if (nonce.length !== 24) throw new SignatureFormatError('BAD_KEY', 'secretbox nonce must be 24 bytes');
  const key = scryptSync(Buffer.from(password, 'utf8'), salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  let plain: Uint8Array;
  try {
    plain = secretbox(key, nonce).open(ciphertext);
  } catch {
    throw new SignatureFormatError('BAD_PASSWORD', 'decryption failed: wrong password or corrupted key');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(plain), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new SignatureFormatError('BAD_KEY', `decrypted key is not a PKCS#8 private key (e.g. a SEC1 EC key): ${errorMessage(err)}`);
  }
  const publicKey = createPublicKey(privateKey);
  describeKey(publicKey);
  return { privateKey, publicKey };
}

/** Encrypt a private key the way cosign does (random salt and nonce), as `ENCRYPTED SIGSTORE PRIVATE KEY` PEM. */
export function encryptCosignPrivateKey(privateKey: KeyObject, password: string, label = ENCRYPTED_SIGSTORE_LABEL): string {
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = scryptSync(Buffer.from(password, 'utf8'), salt, 32, { ...SCRYPT, maxmem: 256 * SCRYPT.N * SCRYPT.r + 1024 * 1024 });
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  const ciphertext = secretbox(key, nonce).seal(der);
  const body = JSON.stringify({
    kdf: { name: 'scrypt', params: SCRYPT, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  });
  return toPem(Buffer.from(body, 'utf8'), label);
}

/** A cosign-compatible key pair (ECDSA P-256): `cosign.key` (encrypted) and `cosign.pub`. */
export function generateCosignKeyPair(password: string): { privateKeyPem: string; publicKeyPem: string; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey,
    privateKeyPem: encryptCosignPrivateKey(privateKey, password),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Sign bytes as cosign does: ECDSA (DER) with the curve's hash, Ed25519, or RSA PKCS#1 v1.5 SHA-256. */
export function signBytes(privateKey: KeyObject, data: Uint8Array): Buffer {
  const info = describeKey(createPublicKey(privateKey));
  if (info.kind === 'ed25519') return nodeSign(null, data, privateKey);
  if (info.kind === 'rsa') return nodeSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  return nodeSign(defaultHash(info.kind), data, { key: privateKey, dsaEncoding: 'der' });
}

export interface CosignSignatureLayerBlob {
  payload: Buffer;
  signature: string;
  descriptor: { mediaType: string; digest: string; size: number; annotations: Record<string, string> };
}

/** A `.sig` layer: the simple-signing payload for `digest` and its signature annotation. */
export function cosignSign(privateKey: KeyObject, dockerReference: string, digest: string, annotations?: Record<string, string>): CosignSignatureLayerBlob {
  const payload = buildSimpleSigningPayload(dockerReference, digest, annotations);
  const signature = signBytes(privateKey, payload).toString('base64');
  return {
    payload,
    signature,
    descriptor: {
      mediaType: SIMPLESIGNING_MEDIA_TYPE,
      digest: digestOf(payload),
      size: payload.length,
      annotations: { [COSIGN_ANNOTATIONS.signature]: signature },
    },
  };
}

/** The `.sig` manifest (and its config blob) for a set of signature layers, as cosign writes it. */
export function cosignSignatureManifest(layers: CosignSignatureLayerBlob['descriptor'][]): { manifest: Buffer; config: Buffer } {
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: digestOf(config) },
      layers,
    }),
  );
  return { manifest, config };
}

/** The empty JSON config (`{}`) OCI 1.1 artifacts use. */
export const EMPTY_CONFIG = Buffer.from('{}');

/**
 * An OCI 1.1 referrer: an image manifest with the empty config, `artifactType`, the given layers, and
 * `subject` (what cosign `--registry-referrers-mode oci-1-1` and v3 bundles, and Notation, push).
 */
export function referrerManifest(
  artifactType: string,
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[],
  subject: { mediaType: string; digest: string; size: number },
  annotations?: Record<string, string>,
): { manifest: Buffer; config: Buffer } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(EMPTY_CONFIG), size: EMPTY_CONFIG.length },
      layers,
      subject,
      ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
    }),
  );
  return { manifest, config: EMPTY_CONFIG };
}

/** The cosign tag for a signature or attestation of `digest`. */
export function cosignTag(digest: string, suffix: 'sig' | 'att' | 'sbom'): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex) throw new SignatureFormatError('BAD_DIGEST', `not a digest: ${digest}`);
  return `${alg}-${hex}.${suffix}`;
}

/** A DSSE envelope over `payload` signed with `privateKey` (in-toto statements for `attest`). */
export function dsseSign(privateKey: KeyObject, payloadType: string, payload: Uint8Array, keyid = ''): { envelope: Buffer; mediaType: string } {
  const sig = signBytes(privateKey, pae(payloadType, payload));
  const envelope = Buffer.from(JSON.stringify({ payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [{ keyid, sig: sig.toString('base64') }] }));
  return { envelope, mediaType: DSSE_MEDIA_TYPE };
}

export interface JwsSignRequest {
  target: TargetArtifact;
  /** Leaf first. */
  certificateChain: X509Certificate[];
  signingTime: Date;
  expiry?: Date;
  signingScheme?: 'notary.x509' | 'notary.x509.signingAuthority';
  /** Extra signed attributes, optionally critical. */
  extendedAttributes?: { key: string; value: unknown; critical?: boolean }[];
  signingAgent?: string;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The JWS protected header a Notary Project signer writes for a request (keys sorted, as Go's encoder does). */
export function notationProtectedHeader(alg: string, req: Omit<JwsSignRequest, 'target' | 'certificateChain'>): Record<string, unknown> {
  const scheme = req.signingScheme ?? 'notary.x509';
  const h: Record<string, unknown> = { alg, cty: NOTATION_PAYLOAD_TYPE, 'io.cncf.notary.signingScheme': scheme };
  const crit = ['io.cncf.notary.signingScheme'];
  if (scheme === 'notary.x509') h['io.cncf.notary.signingTime'] = rfc3339(req.signingTime);
  else {
    h['io.cncf.notary.authenticSigningTime'] = rfc3339(req.signingTime);
    crit.push('io.cncf.notary.authenticSigningTime');
  }
  for (const a of req.extendedAttributes ?? []) {
    h[a.key] = a.value;
    if (a.critical) crit.push(a.key);
  }
  if (req.expiry) {
    h['io.cncf.notary.expiry'] = rfc3339(req.expiry);
    crit.push('io.cncf.notary.expiry');
  }
  h['crit'] = crit;
  return Object.fromEntries(Object.keys(h).sort().map((k) => [k, h[k]]));
}

/** Sign a Notary Project JWS envelope (JSON serialisation) with an RSA (PS256/384/512) or EC (ES256/384/512) key. */
export function signNotationJws(privateKey: KeyObject, req: JwsSignRequest): { envelope: Buffer; mediaType: string; signingInput: Buffer } {
  const leaf = req.certificateChain[0];
  if (!leaf) throw new SignatureFormatError('BAD_REQUEST', 'a certificate chain is required');
  const pub = createPublicKey(privateKey);
  const alg = jwsAlgFor(pub);
  const protectedB64 = Buffer.from(JSON.stringify(notationProtectedHeader(alg, req)), 'utf8').toString('base64url');
  const t = req.target;
  const target: Record<string, unknown> = { mediaType: t.mediaType, digest: t.digest, size: t.size };
  if (t.annotations && Object.keys(t.annotations).length > 0) target['annotations'] = t.annotations;
  const payloadB64 = Buffer.from(JSON.stringify({ targetArtifact: target }), 'utf8').toString('base64url');
  const signingInput = Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii');
  const hash = `sha${alg.slice(2)}`;
  const sig = alg.startsWith('PS')
    ? nodeSign(hash, signingInput, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
    : nodeSign(hash, signingInput, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const header: Record<string, unknown> = { x5c: req.certificateChain.map((c) => c.raw.toString('base64')) };
  header['io.cncf.notary.signingAgent'] = req.signingAgent ?? 'portcullis';
  const envelope = Buffer.from(JSON.stringify({ payload: payloadB64, protected: protectedB64, header, signature: sig.toString('base64url') }));
  return { envelope, mediaType: JWS_MEDIA_TYPE, signingInput };
}

function jwsAlgFor(pub: KeyObject): string {
  if (pub.asymmetricKeyType === 'rsa') {
    const bits = pub.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits === 2048) return 'PS256';
    if (bits === 3072) return 'PS384';
    if (bits === 4096) return 'PS512';
  }
  if (pub.asymmetricKeyType === 'ec') {
    const c = pub.asymmetricKeyDetails?.namedCurve;
    if (c === 'prime256v1') return 'ES256';
    if (c === 'secp384r1') return 'ES384';
    if (c === 'secp521r1') return 'ES512';
  }
  throw new SignatureFormatError('UNSUPPORTED_KEY', 'Notary Project signing needs RSA 2048/3072/4096 or EC P-256/P-384/P-521');
}
