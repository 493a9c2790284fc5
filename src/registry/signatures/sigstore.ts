/**
 * Sigstore bundles (v0.1, v0.2, v0.3 and the `bundle.v0.3+json` media type) and keyless identities,
 * verified offline against a trusted root loaded from a file. The cryptography (certificate chain to
 * Fulcio, SCTs, Rekor inclusion proofs / checkpoints / SETs, RFC 3161 timestamps, signature) is done
 * by `@sigstore/verify`; this module adds input limits, trust-root sanity checks, identity matching
 * with exact or regex subject and issuer, artifact / in-toto subject matching, and explanations.
 */
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial, type SignedEntity, type TrustMaterial } from '@sigstore/verify';
import { p256, p384 } from '@noble/curves/nist.js';
import { constants, createHash, publicDecrypt, type KeyObject, type X509Certificate } from 'node:crypto';
import { parseStatement, subjectMatchesDigest, type InTotoStatement } from './intoto.ts';
import { describeKey, type PublicKeyInfo } from './keys.ts';
import { describeCert, isSelfSigned, parseCertificate } from './x509.ts';
import {
  DEFAULT_LIMITS,
  SignatureFormatError,
  decodeBase64,
  errorMessage,
  isObject,
  parseJsonObject,
  sha256Hex,
  type SignatureLimits,
} from './util.ts';

export const SIGSTORE_BUNDLE_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.bundle+json;version=0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
] as const;

export function isSigstoreBundleMediaType(mt: unknown): boolean {
  return typeof mt === 'string' && (SIGSTORE_BUNDLE_MEDIA_TYPES as readonly string[]).includes(mt);
}

/** A keyless identity: the certificate's SAN and OIDC issuer, each exact or a regular expression. */
export interface KeylessIdentity {
  subject?: string;
  subjectRegExp?: string;
  issuer?: string;
  issuerRegExp?: string;
}

/** A trusted public key, optionally limited to a validity window checked against the verified timestamp. */
export interface TrustedKey {
  info: PublicKeyInfo;
  validFor?: { start?: Date; end?: Date };
}

export interface SigstoreTrustRoot {
  root: TrustedRoot;
  /** Where it came from, for explanations. */
  source: string;
}

const TRUSTED_ROOT_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  'application/vnd.dev.sigstore.trustedroot.v0.2+json',
];

/**
 * Load a `trusted_root.json` (the TUF-distributed Sigstore trust root). Offline: no TUF refresh.
 * Rejects a root whose validity intervals lack their start (an open start would trust a key forever back).
 */
export function loadSigstoreTrustedRoot(input: Uint8Array | string | Record<string, unknown>, source = 'trusted_root.json'): SigstoreTrustRoot {
  const json = isObject(input) ? input : parseJsonObject(input, DEFAULT_LIMITS.envelopeBytes, source);
  const mt = json['mediaType'];
  if (typeof mt !== 'string' || !TRUSTED_ROOT_MEDIA_TYPES.includes(mt)) {
    throw new SignatureFormatError('BAD_TRUST_ROOT', `${source}: unsupported trusted root media type ${String(mt)}`);
  }
  for (const section of ['tlogs', 'ctlogs', 'certificateAuthorities', 'timestampAuthorities']) {
    const list = json[section];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new SignatureFormatError('BAD_TRUST_ROOT', `${source}: ${section} is not a list`);
    list.forEach((entry: unknown, i: number) => {
      if (!isObject(entry)) throw new SignatureFormatError('BAD_TRUST_ROOT', `${source}: ${section}[${i}] is not an object`);
      const holder = section === 'tlogs' || section === 'ctlogs' ? entry['publicKey'] : entry;
      const validFor = isObject(holder) ? holder['validFor'] : undefined;
      if (validFor !== undefined && !(isObject(validFor) && typeof validFor['start'] === 'string')) {
        throw new SignatureFormatError('BAD_TRUST_ROOT', `${source}: ${section}[${i}] validFor has no start`);
      }
    });
  }
  try {
    return { root: TrustedRoot.fromJSON(json), source };
  } catch (err) {
    throw new SignatureFormatError('BAD_TRUST_ROOT', `${source}: ${errorMessage(err)}`);
  }
}

const KEY_DETAILS: Record<string, string> = {
  'ecdsa-p256': 'PKIX_ECDSA_P256_SHA_256',
  'ecdsa-p384': 'PKIX_ECDSA_P384_SHA_384',
  'ecdsa-p521': 'PKIX_ECDSA_P521_SHA_512',
  ed25519: 'PKIX_ED25519',
  rsa: 'PKIX_RSA_PKCS1V15_2048_SHA256',
};

/**
 * A trust root from loose material, for cosign's pre-bundle configuration (`--certificate-chain`
 * Fulcio roots, `--rekor-public-key`): CA chains (leaf-most first, root last) and Rekor keys.
 */
export function trustRootFromMaterial(material: {
  certificateAuthorities?: X509Certificate[][];
  rekorKeys?: PublicKeyInfo[];
  ctlogKeys?: PublicKeyInfo[];
  timestampAuthorities?: X509Certificate[][];
  /** Reuse the CT logs of another trust root (e.g. public-good) to check the certificates' SCTs. */
  ctlogsFrom?: SigstoreTrustRoot;
  source?: string;
}): SigstoreTrustRoot {
  const start = '1970-01-01T00:00:00Z';
  const log = (k: PublicKeyInfo) => {
    const der = k.key.export({ type: 'spki', format: 'der' });
    return {
      baseUrl: 'offline',
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: der.toString('base64'), keyDetails: KEY_DETAILS[k.kind], validFor: { start } },
      logId: { keyId: createHash('sha256').update(der).digest('base64') },
    };
  };
  const ca = (chain: X509Certificate[]) => ({
    subject: {},
    uri: 'offline',
    certChain: { certificates: chain.map((c) => ({ rawBytes: c.raw.toString('base64') })) },
    validFor: { start },
  });
  const json = {
    mediaType: TRUSTED_ROOT_MEDIA_TYPES[0],
    tlogs: (material.rekorKeys ?? []).map(log),
    ctlogs: (material.ctlogKeys ?? []).map(log),
    certificateAuthorities: (material.certificateAuthorities ?? []).map(ca),
    timestampAuthorities: (material.timestampAuthorities ?? []).map(ca),
  };
  const root = TrustedRoot.fromJSON(json);
  if (material.ctlogsFrom) root.ctlogs.push(...material.ctlogsFrom.root.ctlogs);
  return { root, source: material.source ?? 'configured keys and roots' };
}

export type SignerDescription =
  | { kind: 'certificate'; subjectAlternativeName?: string; issuer?: string; certificateSha256?: string }
  | { kind: 'key'; keyId: string; keyName?: string };

export interface VerifiedTimestamp {
  kind: 'transparency-log' | 'timestamp-authority';
  time: string;
}

export type SigstoreResult =
  | {
      ok: true;
      mediaType: string;
      content: 'messageSignature' | 'dsseEnvelope';
      signer: SignerDescription;
      timestamps: VerifiedTimestamp[];
      statement?: InTotoStatement;
      /** The raw payload type and bytes of a DSSE envelope. */
      dsse?: { payloadType: string; payload: Buffer };
    }
  | { ok: false; code: string; reason: string; mediaType?: string; signer?: SignerDescription };

export interface SigstoreVerifyOptions {
  trust: SigstoreTrustRoot;
  /** The signed artifact's bytes (message signatures), or its digest. */
  artifact?: Uint8Array;
  artifactDigest?: { algorithm: 'sha256' | 'sha384' | 'sha512'; hex: string };
  /** Accepted keyless identities: any one must match. Required for certificate bundles unless `anyIdentity`. */
  identities?: KeylessIdentity[];
  /** Accept any certificate identity that chains to the trust root (explicitly chosen, for tests / audits). */
  anyIdentity?: boolean;
  /** Trusted keys for public-key bundles. */
  keys?: TrustedKey[];
  /** Minimum counts; defaults 1 tlog entry, 1 SCT, 1 verified timestamp. */
  thresholds?: { tlog?: number; ctlog?: number; timestamp?: number };
  limits?: SignatureLimits;
}

/** Parse a bundle from bytes or an object, enforcing the media type allowlist and the size limit. */
export function parseSigstoreBundle(input: Uint8Array | string | Record<string, unknown>, limits = DEFAULT_LIMITS): Bundle {
  const json = isObject(input) ? input : parseJsonObject(input, limits.envelopeBytes, 'sigstore bundle');
  if (!isSigstoreBundleMediaType(json['mediaType'])) {
    throw new SignatureFormatError('UNSUPPORTED_BUNDLE', `unsupported sigstore bundle media type ${String(json['mediaType'])}`);
  }
  checkBase64Fields(json);
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (err) {
    throw new SignatureFormatError('BAD_BUNDLE', `invalid sigstore bundle: ${errorMessage(err)}`);
  }
  const vm = bundle.verificationMaterial;
  if (vm.content.$case === 'x509CertificateChain') {
    const certs = vm.content.x509CertificateChain.certificates;
    if (certs.length > limits.chainLength) throw new SignatureFormatError('TOO_LARGE', 'certificate chain too long');
    for (const c of certs) parseCertificate(c.rawBytes, 'bundle certificate');
  }
  return bundle;
}

/** protobuf's JSON mapping decodes base64 leniently; every base64 field must be well-formed. */
function checkBase64Fields(json: Record<string, unknown>): void {
  const b64 = (v: unknown, what: string) => {
    if (v !== undefined) decodeBase64(v, what);
  };
  const vm = json['verificationMaterial'];
  if (isObject(vm)) {
    if (isObject(vm['certificate'])) b64(vm['certificate']['rawBytes'], 'verificationMaterial.certificate');
    const chain = isObject(vm['x509CertificateChain']) ? vm['x509CertificateChain']['certificates'] : undefined;
    if (Array.isArray(chain)) for (const c of chain) if (isObject(c)) b64(c['rawBytes'], 'x509CertificateChain certificate');
    const entries = vm['tlogEntries'];
    if (Array.isArray(entries)) {
      for (const e of entries) {
        if (!isObject(e)) continue;
        b64(e['canonicalizedBody'], 'tlog canonicalizedBody');
        if (isObject(e['logId'])) b64(e['logId']['keyId'], 'tlog logId');
        if (isObject(e['inclusionPromise'])) b64(e['inclusionPromise']['signedEntryTimestamp'], 'signedEntryTimestamp');
        const p = e['inclusionProof'];
        if (isObject(p)) {
          b64(p['rootHash'], 'inclusionProof.rootHash');
          if (Array.isArray(p['hashes'])) for (const h of p['hashes']) b64(h, 'inclusionProof hash');
        }
      }
    }
    const tvd = vm['timestampVerificationData'];
    const ts = isObject(tvd) ? tvd['rfc3161Timestamps'] : undefined;
    if (Array.isArray(ts)) for (const t of ts) if (isObject(t)) b64(t['signedTimestamp'], 'rfc3161 timestamp');
  }
  const ms = json['messageSignature'];
  if (isObject(ms)) {
    decodeBase64(ms['signature'], 'messageSignature.signature');
    if (isObject(ms['messageDigest'])) decodeBase64(ms['messageDigest']['digest'], 'messageSignature.messageDigest');
  }
  const env = json['dsseEnvelope'];
  if (isObject(env)) {
    decodeBase64(env['payload'], 'dsseEnvelope.payload');
    if (Array.isArray(env['signatures'])) {
      for (const s of env['signatures']) if (isObject(s)) decodeBase64(s['sig'], 'dsseEnvelope.signatures[].sig');
    }
  }
}

function matches(value: string | undefined, exact: string | undefined, regexp: string | undefined): boolean {
  if (exact === undefined && regexp === undefined) return true;
  if (value === undefined) return false;
  if (exact !== undefined && value !== exact) return false;
  if (regexp !== undefined && !new RegExp(regexp).test(value)) return false;
  return true;
}

export function identityMatches(id: KeylessIdentity, san: string | undefined, issuer: string | undefined): boolean {
  return matches(san, id.subject, id.subjectRegExp) && matches(issuer, id.issuer, id.issuerRegExp);
}

export function describeIdentity(id: KeylessIdentity): string {
  const s = id.subject ?? (id.subjectRegExp ? `/${id.subjectRegExp}/` : '*');
  const i = id.issuer ?? (id.issuerRegExp ? `/${id.issuerRegExp}/` : '*');
  return `${s} from ${i}`;
}

/** Verify one sigstore bundle. Never throws: every failure comes back with a code and a reason. */
export function verifySigstoreBundle(input: Uint8Array | string | Record<string, unknown> | Bundle, opts: SigstoreVerifyOptions): SigstoreResult {
  let bundle: Bundle;
  try {
    bundle = isParsedBundle(input) ? input : parseSigstoreBundle(input as Uint8Array | string | Record<string, unknown>, opts.limits);
  } catch (err) {
    return fail(err);
  }
  if (bundle.content.$case === 'messageSignature' && !opts.artifact && opts.artifactDigest) {
    const digest = Buffer.from(opts.artifactDigest.hex, 'hex');
    return verifyParsedBundle(bundle, opts, () => digestOnlyEntity(bundle, digest));
  }
  return verifyParsedBundle(bundle, opts, (artifact) => toSignedEntity(bundle, artifact));
}

/**
 * A message-signature entity known only by the artifact's digest (a registry knows the digest of what
 * it stores). The signature is checked over the digest itself (prehashed ECDSA via @noble/curves,
 * RSA PKCS#1 v1.5 by DigestInfo); everything else (chain, SCTs, tlog, timestamps) is unchanged.
 */
export function digestOnlyEntity(bundle: Bundle, digest: Buffer): SignedEntity {
  if (bundle.content.$case !== 'messageSignature') throw new SignatureFormatError('BAD_BUNDLE', 'not a message signature');
  const ms = bundle.content.messageSignature;
  const signature = Buffer.from(ms.signature);
  const messageDigest = Buffer.from(ms.messageDigest?.digest ?? []);
  const entity = toSignedEntity(bundle, Buffer.alloc(0));
  const sameDigest = (d: Buffer) => d.equals(digest) && messageDigest.equals(digest);
  entity.signature = {
    signature,
    compareSignature: (s: Buffer) => s.equals(signature),
    compareDigest: sameDigest,
    compareSignedDigest: sameDigest,
    verifySignature: (key: KeyObject) => messageDigest.equals(digest) && verifyPrehashed(key, digest, signature),
  };
  return entity;
}

const DIGEST_INFO_PREFIX: Record<number, Buffer> = {
  32: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  48: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  64: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export function verifyPrehashed(key: KeyObject, digest: Buffer, signature: Buffer): boolean {
  try {
    if (key.asymmetricKeyType === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const impl = curve === 'prime256v1' ? p256 : curve === 'secp384r1' ? p384 : undefined;
      if (!impl) return false;
      const jwk = key.export({ format: 'jwk' });
      const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
      return impl.verify(signature, digest, point, { prehash: false, format: 'der', lowS: false });
    }
    if (key.asymmetricKeyType === 'rsa') {
      const prefix = DIGEST_INFO_PREFIX[digest.length];
      if (!prefix) return false;
      const decrypted = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
      return decrypted.equals(Buffer.concat([prefix, digest]));
    }
  } catch {
    return false;
  }
  return false;
}

function isParsedBundle(input: unknown): input is Bundle {
  return isObject(input) && isObject(input['content']) && typeof (input['content'] as Record<string, unknown>)['$case'] === 'string';
}

export function verifyParsedBundle(
  bundle: Bundle,
  opts: SigstoreVerifyOptions,
  entityOf: (artifact?: Buffer) => SignedEntity,
): SigstoreResult {
  const mediaType = bundle.mediaType;
  const content = bundle.content.$case;
  const vm = bundle.verificationMaterial.content;
  try {
    if (content === 'messageSignature' && !opts.artifact && !opts.artifactDigest) {
      throw new SignatureFormatError('NO_ARTIFACT', 'a message signature needs the artifact bytes to verify');
    }
    if (content === 'dsseEnvelope' && bundle.content.dsseEnvelope.signatures.length !== 1) {
      throw new SignatureFormatError('DSSE_SIGNATURE_COUNT', 'DSSE envelope must carry exactly one signature');
    }
    checkChainAgainstRoot(bundle, opts.trust);
    for (const e of bundle.verificationMaterial.tlogEntries) checkProofConsistency(e);
    const entity = entityOf(opts.artifact ? Buffer.from(opts.artifact) : undefined);
    const thresholds = {
      tlogThreshold: opts.thresholds?.tlog ?? 1,
      ctlogThreshold: opts.thresholds?.ctlog ?? 1,
      timestampThreshold: opts.thresholds?.timestamp ?? 1,
    };
    let signer: SignerDescription;
    if (vm.$case === 'publicKey') {
      const keys = opts.keys ?? [];
      if (keys.length === 0) throw new SignatureFormatError('NO_KEY', 'bundle is signed with a key, and no trusted key is configured');
      let lastErr: unknown;
      let verifiedKey: TrustedKey | undefined;
      for (const k of keys) {
        const material = acceptCheckpointSigners(materialFor(opts.trust, k), bundle);
        try {
          new Verifier(material, thresholds).verify(entity);
          verifiedKey = k;
          break;
        } catch (err) {
          lastErr = err;
        }
      }
      if (!verifiedKey) throw lastErr;
      signer = { kind: 'key', keyId: verifiedKey.info.id };
      if (verifiedKey.info.name) signer.keyName = verifiedKey.info.name;
    } else {
      const material = acceptCheckpointSigners(materialFor(opts.trust), bundle);
      const s = new Verifier(material, thresholds).verify(entity);
      const leaf = entity.key.$case === 'certificate' ? entity.key.certificate : undefined;
      const otherName = leaf?.extSubjectAltName?.otherName('1.3.6.1.4.1.57264.1.7');
      const san = s.identity?.subjectAlternativeName ?? otherName;
      const issuer = s.identity?.extensions?.issuer;
      signer = { kind: 'certificate' };
      if (san !== undefined) signer.subjectAlternativeName = san;
      if (issuer !== undefined) signer.issuer = issuer;
      if (leaf) signer.certificateSha256 = sha256Hex(leaf.root.toDER());
      if (!opts.anyIdentity) {
        const ids = opts.identities ?? [];
        if (ids.length === 0) {
          return { ok: false, code: 'NO_IDENTITY_POLICY', reason: 'no trusted keyless identity is configured', mediaType, signer };
        }
        if (!ids.some((id) => identityMatches(id, san, issuer))) {
          return {
            ok: false,
            code: 'IDENTITY_MISMATCH',
            reason: `certificate identity ${san ?? '(none)'} from ${issuer ?? '(no issuer)'} matches none of: ${ids.map(describeIdentity).join('; ')}`,
            mediaType,
            signer,
          };
        }
      }
    }
    const result: Extract<SigstoreResult, { ok: true }> = {
      ok: true,
      mediaType,
      content,
      signer,
      timestamps: timestampsOf(entity),
    };
    if (content === 'dsseEnvelope') {
      const env = bundle.content.dsseEnvelope;
      result.dsse = { payloadType: env.payloadType, payload: Buffer.from(env.payload) };
      if (env.payloadType === 'application/vnd.in-toto+json') {
        result.statement = parseStatement(env.payload, opts.limits);
        const want = opts.artifactDigest ?? (opts.artifact ? { algorithm: 'sha256' as const, hex: sha256Hex(opts.artifact) } : undefined);
        if (want && !subjectMatchesDigest(result.statement, want.algorithm, want.hex)) {
          return { ok: false, code: 'SUBJECT_MISMATCH', reason: `in-toto statement has no subject with ${want.algorithm}:${want.hex}`, mediaType, signer };
        }
      } else if (opts.artifact || opts.artifactDigest) {
        return { ok: false, code: 'SUBJECT_MISMATCH', reason: `DSSE payload type ${env.payloadType} does not name a subject`, mediaType, signer };
      }
    } else if (opts.artifactDigest) {
      const md = bundle.content.messageSignature.messageDigest;
      if (md && Buffer.from(md.digest).toString('hex') !== opts.artifactDigest.hex) {
        return { ok: false, code: 'SUBJECT_MISMATCH', reason: 'message digest does not match the artifact', mediaType, signer };
      }
    }
    return result;
  } catch (err) {
    const r = fail(err);
    if (!r.ok) r.mediaType = mediaType;
    return r;
  }
}

/**
 * @sigstore/verify recomputes the Merkle root against the checkpoint and ignores the proof's own
 * `rootHash` and `treeSize`: these copies must still agree. (The top-level `logIndex` is the global index
 * and differs from the proof's per-shard index; it is covered by the SET when there is one.)
 */
function checkProofConsistency(e: Bundle['verificationMaterial']['tlogEntries'][number]): void {
  const p = e.inclusionProof;
  if (!p) return;
  if (!p.checkpoint) throw new SignatureFormatError('BAD_BUNDLE', 'transparency log inclusion proof has no checkpoint');
  const lines = p.checkpoint.envelope.split('\n');
  const size = lines[1];
  const root = lines[2];
  const bad = (what: string) => new SignatureFormatError('TLOG_INCLUSION_PROOF_ERROR', `inclusion proof ${what} disagrees with the checkpoint`);
  if (size !== undefined && /^\d+$/.test(size) && size !== p.treeSize) throw bad('tree size');
  if (root !== undefined && Buffer.from(root, 'base64').toString('base64') === root && !Buffer.from(root, 'base64').equals(Buffer.from(p.rootHash))) throw bad('root hash');
}

/**
 * Only the leaf of a bundle's `x509CertificateChain` is used; the rest must already be in the trusted
 * root. A bundle that carries other CA certificates (e.g. its own root) is rejected, not ignored.
 */
function checkChainAgainstRoot(bundle: Bundle, trust: SigstoreTrustRoot): void {
  const vm = bundle.verificationMaterial.content;
  if (vm.$case !== 'x509CertificateChain') return;
  const trusted = new Set<string>();
  for (const ca of trust.root.certificateAuthorities) {
    for (const c of ca.certChain?.certificates ?? []) trusted.add(Buffer.from(c.rawBytes).toString('base64'));
  }
  for (const c of vm.x509CertificateChain.certificates.slice(1)) {
    if (!trusted.has(Buffer.from(c.rawBytes).toString('base64'))) {
      const cert = parseCertificate(c.rawBytes, 'bundle certificate');
      throw new SignatureFormatError(
        isSelfSigned(cert) ? 'ROOT_IN_CHAIN' : 'UNTRUSTED_CHAIN',
        `bundle certificate chain carries "${describeCert(cert)}", which is not in the trusted root (${trust.source})`,
      );
    }
  }
}

/** Trust material is costly to build (every CA, log and TSA of the root is parsed): built once per root and key. */
const materials = new WeakMap<TrustedRoot, Map<string, TrustMaterial>>();

function materialFor(trust: SigstoreTrustRoot, key?: TrustedKey): TrustMaterial {
  let perRoot = materials.get(trust.root);
  if (!perRoot) {
    perRoot = new Map();
    materials.set(trust.root, perRoot);
  }
  const id = key ? `${key.info.id}|${key.validFor?.start?.getTime() ?? ''}|${key.validFor?.end?.getTime() ?? ''}` : '';
  let m = perRoot.get(id);
  if (!m) {
    m = key
      ? toTrustMaterial(trust.root, () => ({
          publicKey: key.info.key,
          validFor: (d: Date) => (!key.validFor?.start || key.validFor.start <= d) && (!key.validFor?.end || d <= key.validFor.end),
        }))
      : toTrustMaterial(trust.root);
    perRoot.set(id, m);
  }
  return m;
}

/**
 * @sigstore/verify takes a checkpoint signature only when the signer's name is part of the log's
 * base URL; sigstore-go, like the C2SP signed-note format, finds the key by its hint and verifies
 * the signature, the name being the operator's label (a scaffolding Rekor at
 * http://rekor.rekor-system.svc:8080 signs as "rekor-00001-deployment-…"). The names of signatures
 * whose hint is a trusted log's are added to that log's match so that both verdicts agree; the
 * signature is still verified with that log's key, and an unknown hint still matches nothing.
 */
function acceptCheckpointSigners(material: TrustMaterial, bundle: Bundle): TrustMaterial {
  const names = new Map<TrustMaterial['tlogs'][number], string[]>();
  for (const entry of bundle.verificationMaterial.tlogEntries) {
    const envelope = entry.inclusionProof?.checkpoint?.envelope ?? '';
    for (const [, name, signature] of envelope.matchAll(/\u2014 (\S+) (\S+)\n/g)) {
      const hint = Buffer.from(signature!, 'base64').subarray(0, 4);
      for (const log of material.tlogs) {
        if (hint.length === 4 && log.logID.subarray(0, 4).equals(hint) && !log.baseURL.includes(name!)) names.set(log, [...(names.get(log) ?? []), name!]);
      }
    }
  }
  if (names.size === 0) return material;
  return { ...material, tlogs: material.tlogs.map((log) => (names.has(log) ? { ...log, baseURL: [log.baseURL, ...names.get(log)!].join(' ') } : log)) };
}

function timestampsOf(entity: SignedEntity): VerifiedTimestamp[] {
  return entity.timestamps.map((t) =>
    t.$case === 'transparency-log'
      ? { kind: 'transparency-log' as const, time: new Date(Number(t.tlogEntry.integratedTime) * 1000).toISOString() }
      : { kind: 'timestamp-authority' as const, time: t.timestamp.signingTime.toISOString() },
  );
}

export function fail(err: unknown): Extract<SigstoreResult, { ok: false }> {
  const code = isObject(err) && typeof (err as { code?: unknown }).code === 'string' ? String((err as { code: string }).code) : 'VERIFICATION_ERROR';
  return { ok: false, code, reason: errorMessage(err) };
}

export function keyFromInfo(info: PublicKeyInfo): TrustedKey {
  return { info };
}

export function trustedKey(key: KeyObject, name?: string): TrustedKey {
  return { info: describeKey(key, name) };
}
