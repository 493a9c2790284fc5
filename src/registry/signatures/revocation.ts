/**
 * Revocation from certificate revocation lists that the trust policy provides (the verifier is
 * offline: it never downloads CRLs or asks OCSP responders). A CRL counts only if its signature
 * verifies with the issuing CA's key and it is current at the verification time.
 */
import { ASN1Obj, X509Certificate as SigstoreCertificate } from '@sigstore/core';
import { constants, verify as nodeVerify, type X509Certificate } from 'node:crypto';
import { SignatureFormatError, errorMessage, pemBlocks } from './util.ts';
import { describeCert } from './x509.ts';

export interface Crl {
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Revoked serial numbers (upper-case hex, no leading zeros) and their revocation times. */
  revoked: Map<string, Date>;
  tbs: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
}

const ALGS: Record<string, { hash: string; kind: 'rsa' | 'pss' | 'ecdsa' }> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', kind: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', kind: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', kind: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', kind: 'ecdsa' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', kind: 'ecdsa' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', kind: 'ecdsa' },
};

function normSerial(hex: string): string {
  return hex.toUpperCase().replace(/^(00)+(?=.)/, '');
}

function isTime(o: ASN1Obj | undefined): boolean {
  return !!o && (o.tag.isUTCTime() || o.tag.isGeneralizedTime());
}

/** Parse CRLs from PEM (`X509 CRL` blocks) or a single DER. */
export function parseCrls(input: string | Uint8Array): Crl[] {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const ders = text.includes('-----BEGIN') ? pemBlocks(text, 'X509 CRL').map((b) => b.der) : [Buffer.from(input as Uint8Array)];
  return ders.map(parseCrl);
}

export function parseCrl(der: Buffer): Crl {
  try {
    const root = ASN1Obj.parseBuffer(der as Buffer<ArrayBuffer>);
    const tbs = root.subs[0];
    const alg = root.subs[1]?.subs[0]?.toOID();
    const sig = root.subs[2];
    if (!tbs || !alg || !sig) throw new Error('not a CertificateList');
    let i = tbs.subs[0]?.tag.isInteger() ? 1 : 0; // optional version
    i += 2; // signature algorithm, issuer
    const thisUpdate = (tbs.subs[i++] as ASN1Obj).toDate();
    let nextUpdate: Date | undefined;
    if (isTime(tbs.subs[i])) nextUpdate = (tbs.subs[i++] as ASN1Obj).toDate();
    const revoked = new Map<string, Date>();
    const list = tbs.subs[i];
    if (list && list.tag.isUniversal() && list.tag.number === 0x10) {
      for (const entry of list.subs) {
        const serial = entry.subs[0];
        const when = entry.subs[1];
        if (serial && when) revoked.set(normSerial(Buffer.from(serial.value).toString('hex')), when.toDate());
      }
    }
    const bits = Buffer.from(sig.value);
    const crl: Crl = { thisUpdate, revoked, tbs: tbs.toDER(), signatureAlgorithm: alg, signature: bits.subarray(1) };
    if (nextUpdate) crl.nextUpdate = nextUpdate;
    return crl;
  } catch (err) {
    throw new SignatureFormatError('BAD_CRL', `cannot parse CRL: ${errorMessage(err)}`);
  }
}

function signedBy(crl: Crl, issuer: X509Certificate): boolean {
  const a = ALGS[crl.signatureAlgorithm];
  if (!a) return false;
  try {
    return a.kind === 'ecdsa'
      ? nodeVerify(a.hash, crl.tbs, issuer.publicKey, crl.signature)
      : nodeVerify(a.hash, crl.tbs, { key: issuer.publicKey, padding: constants.RSA_PKCS1_PADDING }, crl.signature);
  } catch {
    return false;
  }
}

/** Whether a certificate names a CRL distribution point or an OCSP responder (i.e. can be revoked). */
export function hasRevocationInfo(cert: X509Certificate): boolean {
  if (cert.infoAccess?.includes('OCSP')) return true;
  try {
    return !!SigstoreCertificate.parse(cert.raw as Buffer<ArrayBuffer>).extension('2.5.29.31');
  } catch {
    return false;
  }
}

export type RevocationStatus = { status: 'good' | 'revoked' | 'unknown'; message: string };

/**
 * Check each certificate of `chain` (leaf first) against the CRLs its issuer signed. `unknown` when a
 * certificate that can be revoked has no current CRL among those provided.
 */
export function checkRevocation(chain: X509Certificate[], crls: Crl[], at: Date): RevocationStatus {
  const unknown: string[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const cert = chain[i] as X509Certificate;
    const issuer = chain[i + 1] as X509Certificate;
    const mine = crls.filter((c) => signedBy(c, issuer));
    const current = mine.filter((c) => c.thisUpdate <= at && (!c.nextUpdate || at <= c.nextUpdate));
    const serial = normSerial(cert.serialNumber);
    for (const c of mine) {
      const when = c.revoked.get(serial);
      if (when && when <= at) return { status: 'revoked', message: `certificate "${describeCert(cert)}" was revoked on ${when.toISOString()}` };
    }
    if (current.length === 0 && (mine.length > 0 || hasRevocationInfo(cert))) {
      unknown.push(`no current CRL from "${describeCert(issuer)}" for "${describeCert(cert)}"`);
    }
  }
  if (unknown.length) return { status: 'unknown', message: unknown.join('; ') };
  return { status: 'good', message: crls.length ? 'no certificate in the chain is revoked' : 'no CRLs configured; certificates carry no revocation information' };
}
