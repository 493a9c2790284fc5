/**
 * RFC 3161 timestamp tokens (a CMS SignedData over a TSTInfo), as Notary Project signatures carry them
 * in `io.cncf.notary.timestampSignature`. Parsed with @sigstore/core's ASN.1 reader; signature and
 * chain checks with Node's crypto. The token's time is trusted only if its signer chains to a
 * configured TSA root and carries the timeStamping extended key usage.
 */
import { ASN1Obj } from '@sigstore/core';
import { X509Certificate, constants, createHash, verify as nodeVerify } from 'node:crypto';
import { buildChain, describeCert } from './x509.ts';
import { SignatureFormatError, errorMessage } from './util.ts';

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_TSTINFO = '1.2.840.113549.1.9.16.1.4';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_TIMESTAMPING_EKU = '1.3.6.1.5.5.7.3.8';

const HASHES: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

const SIG_ALGS: Record<string, { kind: 'rsa' | 'pss' | 'ecdsa'; hash?: string }> = {
  '1.2.840.113549.1.1.1': { kind: 'rsa' },
  '1.2.840.113549.1.1.11': { kind: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { kind: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { kind: 'rsa', hash: 'sha512' },
  '1.2.840.113549.1.1.10': { kind: 'pss' },
  '1.2.840.10045.4.3.2': { kind: 'ecdsa', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { kind: 'ecdsa', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { kind: 'ecdsa', hash: 'sha512' },
};

export interface VerifiedTimestampToken {
  genTime: Date;
  /** Accuracy in milliseconds (0 when the token states none). */
  accuracyMs: number;
  lower: Date;
  upper: Date;
  tsaCertificate: X509Certificate;
  tsaChain: X509Certificate[];
}

function child(obj: ASN1Obj | undefined, i: number, what: string): ASN1Obj {
  const c = obj?.subs[i];
  if (!c) throw new SignatureFormatError('BAD_TIMESTAMP', `timestamp token: missing ${what}`);
  return c;
}

/** Inner DER of an OCTET STRING: the reader may or may not have parsed it already. */
function octetContent(o: ASN1Obj): ASN1Obj {
  return o.subs[0] ?? ASN1Obj.parseBuffer(Buffer.from(o.value));
}

interface ParsedToken {
  certificates: X509Certificate[];
  tstInfoDer: Buffer;
  genTime: Date;
  accuracyMs: number;
  imprintHash: string;
  imprint: Buffer;
  signerDigest: string;
  signedAttrs: ASN1Obj | undefined;
  sigAlg: string;
  signature: Buffer;
  sidIssuer?: Buffer;
  sidSerial?: Buffer;
  sidSki?: Buffer;
}

function parseToken(der: Uint8Array): ParsedToken {
  try {
    return parseTokenUnchecked(der);
  } catch (err) {
    if (err instanceof SignatureFormatError) throw err;
    throw new SignatureFormatError('BAD_TIMESTAMP', `malformed timestamp token: ${errorMessage(err)}`);
  }
}

function parseTokenUnchecked(der: Uint8Array): ParsedToken {
  let root: ASN1Obj;
  try {
    root = ASN1Obj.parseBuffer(Buffer.from(der) as Buffer<ArrayBuffer>);
  } catch (err) {
    throw new SignatureFormatError('BAD_TIMESTAMP', `timestamp token is not DER: ${errorMessage(err)}`);
  }
  if (child(root, 0, 'content type').toOID() !== OID_SIGNED_DATA) {
    throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp token is not a CMS SignedData');
  }
  const sd = child(child(root, 1, 'content'), 0, 'SignedData');
  const encap = child(sd, 2, 'encapsulated content');
  if (child(encap, 0, 'eContentType').toOID() !== OID_TSTINFO) {
    throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp token does not encapsulate a TSTInfo');
  }
  const tst = octetContent(child(child(encap, 1, 'eContent'), 0, 'eContent octets'));
  const tstInfoDer = tst.toDER();
  const imprintObj = child(tst, 2, 'messageImprint');
  const imprintHash = HASHES[child(child(imprintObj, 0, 'hash algorithm'), 0, 'oid').toOID()];
  if (!imprintHash) throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp message imprint uses an unsupported hash');
  const imprint = Buffer.from(child(imprintObj, 1, 'hashed message').value);
  const genTime = child(tst, 4, 'genTime').toDate();
  let accuracyMs = 0;
  const acc = tst.subs[5];
  if (acc && acc.tag.isUniversal() && acc.tag.number === 0x10) {
    for (const a of acc.subs) {
      const n = a.tag.isContextSpecific() ? Number(BigInt('0x' + (Buffer.from(a.value).toString('hex') || '0'))) : Number(a.toInteger());
      if (a.tag.isContextSpecific(0)) accuracyMs += n;
      else if (a.tag.isContextSpecific(1)) accuracyMs += n / 1000;
      else accuracyMs += n * 1000;
    }
  }
  const certificates: X509Certificate[] = [];
  let signerInfos: ASN1Obj | undefined;
  for (const part of sd.subs.slice(3)) {
    if (part.tag.isContextSpecific(0)) {
      for (const c of part.subs) {
        try {
          certificates.push(new X509Certificate(c.toDER()));
        } catch {
          /* not a plain certificate (attribute certificates etc.): ignored */
        }
      }
    } else if (part.tag.isUniversal() && part.tag.number === 0x11) signerInfos = part;
  }
  if (!signerInfos || signerInfos.subs.length !== 1) {
    throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp token must have exactly one signer');
  }
  const si = signerInfos.subs[0] as ASN1Obj;
  const sid = child(si, 1, 'signer id');
  const signerDigest = HASHES[child(child(si, 2, 'digest algorithm'), 0, 'oid').toOID()];
  if (!signerDigest) throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp signer uses an unsupported digest');
  let idx = 3;
  let signedAttrs: ASN1Obj | undefined;
  if (si.subs[idx]?.tag.isContextSpecific(0)) {
    signedAttrs = si.subs[idx];
    idx++;
  }
  const sigAlg = child(child(si, idx, 'signature algorithm'), 0, 'oid').toOID();
  const signature = Buffer.from(child(si, idx + 1, 'signature').value);
  const out: ParsedToken = { certificates, tstInfoDer, genTime, accuracyMs, imprintHash, imprint, signerDigest, signedAttrs, sigAlg, signature };
  if (sid.tag.isContextSpecific(0)) out.sidSki = Buffer.from(sid.value);
  else {
    out.sidIssuer = child(sid, 0, 'issuer').toDER();
    out.sidSerial = Buffer.from(child(sid, 1, 'serial').value);
  }
  return out;
}

/** What a token says, unverified (for inspection and explanations). */
export function inspectTimestampToken(token: Uint8Array): { genTime: Date; accuracyMs: number; certificates: X509Certificate[] } {
  const t = parseToken(token);
  return { genTime: t.genTime, accuracyMs: t.accuracyMs, certificates: t.certificates };
}

function serialHex(b: Buffer): string {
  return b.toString('hex').replace(/^(00)+/, '').toUpperCase();
}

function findSigner(t: ParsedToken): X509Certificate | undefined {
  return t.certificates.find((c) => {
    if (t.sidSerial) return serialHex(t.sidSerial) === c.serialNumber.toUpperCase().replace(/^(00)+/, '');
    return false;
  });
}

/**
 * Verify a timestamp token over `data` (the bytes that were timestamped: for Notary Project, the
 * signature value) against trusted TSA roots. Throws with a clear message on any failure.
 */
export function verifyTimestampToken(token: Uint8Array, data: Uint8Array, tsaRoots: X509Certificate[]): VerifiedTimestampToken {
  try {
    return verifyTokenUnchecked(token, data, tsaRoots);
  } catch (err) {
    if (err instanceof SignatureFormatError) throw err;
    throw new SignatureFormatError('BAD_TIMESTAMP', `malformed timestamp token: ${errorMessage(err)}`);
  }
}

function verifyTokenUnchecked(token: Uint8Array, data: Uint8Array, tsaRoots: X509Certificate[]): VerifiedTimestampToken {
  const t = parseToken(token);
  const expected = createHash(t.imprintHash).update(data).digest();
  if (!expected.equals(t.imprint)) throw new SignatureFormatError('TIMESTAMP_MISMATCH', 'timestamp message imprint does not match the signature');
  if (!t.signedAttrs) throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp token has no signed attributes');
  let md: Buffer | undefined;
  let ct: string | undefined;
  for (const attr of t.signedAttrs.subs) {
    const oid = attr.subs[0]?.toOID();
    const val = attr.subs[1]?.subs[0];
    if (!val) continue;
    if (oid === OID_MESSAGE_DIGEST) md = Buffer.from(val.value);
    if (oid === OID_CONTENT_TYPE) ct = val.toOID();
  }
  if (ct !== OID_TSTINFO) throw new SignatureFormatError('BAD_TIMESTAMP', 'timestamp signed content type is not TSTInfo');
  if (!md || !createHash(t.signerDigest).update(t.tstInfoDer).digest().equals(md)) {
    throw new SignatureFormatError('TIMESTAMP_MISMATCH', 'timestamp signed attributes do not match the TSTInfo');
  }
  const signer = findSigner(t);
  if (!signer) throw new SignatureFormatError('TIMESTAMP_UNTRUSTED', 'timestamp token does not carry its signing certificate');
  const attrs = t.signedAttrs.toDER();
  attrs[0] = 0x31;
  const alg = SIG_ALGS[t.sigAlg];
  if (!alg) throw new SignatureFormatError('BAD_TIMESTAMP', `timestamp signature algorithm ${t.sigAlg} is not supported`);
  const hash = alg.hash ?? t.signerDigest;
  let ok = false;
  try {
    if (alg.kind === 'ecdsa') ok = nodeVerify(hash, attrs, signer.publicKey, t.signature);
    else if (alg.kind === 'pss') {
      ok = nodeVerify(hash, attrs, { key: signer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, t.signature);
    } else ok = nodeVerify(hash, attrs, { key: signer.publicKey, padding: constants.RSA_PKCS1_PADDING }, t.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new SignatureFormatError('TIMESTAMP_SIGNATURE', 'timestamp token signature does not verify');
  if (!(signer.keyUsage ?? []).includes(OID_TIMESTAMPING_EKU)) {
    throw new SignatureFormatError('TIMESTAMP_UNTRUSTED', `timestamp signer "${describeCert(signer)}" lacks the timeStamping extended key usage`);
  }
  const chain = buildChain(
    signer,
    t.certificates.filter((c) => c !== signer),
    tsaRoots,
    { at: t.genTime },
  );
  if (!chain.ok) throw new SignatureFormatError('TIMESTAMP_UNTRUSTED', `timestamp authority is not trusted: ${chain.reason}`);
  return {
    genTime: t.genTime,
    accuracyMs: t.accuracyMs,
    lower: new Date(t.genTime.getTime() - t.accuracyMs),
    upper: new Date(t.genTime.getTime() + t.accuracyMs),
    tsaCertificate: signer,
    tsaChain: chain.chain,
  };
}
