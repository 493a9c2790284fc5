/**
 * X.509 helpers on Node's X509Certificate: parsing, path building to trusted roots, validity
 * checks at a given time, and distinguished-name matching (Notary Project trusted identities).
 */
import { X509Certificate as SigstoreCertificate } from '@sigstore/core';
import { X509Certificate } from 'node:crypto';
import { SignatureFormatError, pemBlocks, sha256Hex } from './util.ts';

export function parseCertificate(input: string | Uint8Array, what = 'certificate'): X509Certificate {
  try {
    return new X509Certificate(typeof input === 'string' ? input : Buffer.from(input));
  } catch (err) {
    throw new SignatureFormatError('BAD_CERTIFICATE', `${what}: ${(err as Error).message}`);
  }
}

/** Every certificate in a PEM text (or a single DER). */
export function parseCertificates(input: string | Uint8Array, what = 'certificates'): X509Certificate[] {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  if (text.includes('-----BEGIN')) {
    return pemBlocks(text, 'CERTIFICATE').map((b, i) => parseCertificate(b.der, `${what}[${i}]`));
  }
  return [parseCertificate(typeof input === 'string' ? Buffer.from(input, 'latin1') : input, what)];
}

export function fingerprint256(cert: X509Certificate): string {
  return sha256Hex(cert.raw);
}

export function sameCert(a: X509Certificate, b: X509Certificate): boolean {
  return a.raw.equals(b.raw);
}

/** Self-issued and self-signed (a self-signed leaf without keyCertSign counts too). */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && safeVerify(cert, cert);
}

function safeVerify(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && safeVerify(cert, issuer);
}

export function validAt(cert: X509Certificate, at: Date): boolean {
  const t = at.getTime();
  return new Date(cert.validFrom).getTime() <= t && t <= new Date(cert.validTo).getTime();
}

export function describeCert(cert: X509Certificate): string {
  return oneLineDn(cert.subject) || cert.subjectAltName || fingerprint256(cert).slice(0, 16);
}

export function oneLineDn(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

export interface ChainOptions {
  /** Check every certificate's validity at this time; omit to skip validity checks (caller checks them). */
  at?: Date;
  maxLength?: number;
}

export type ChainResult =
  | { ok: true; chain: X509Certificate[]; anchor: X509Certificate }
  | { ok: false; reason: string };

/**
 * Build a path from `leaf` through `intermediates` (untrusted, CA only) to one of `roots` (trust anchors).
 * A root may be the leaf itself (a pinned, self-signed signing certificate).
 */
export function buildChain(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  roots: X509Certificate[],
  opts: ChainOptions = {},
): ChainResult {
  const max = opts.maxLength ?? 10;
  const chain: X509Certificate[] = [leaf];
  if (roots.length === 0) return { ok: false, reason: 'no trusted roots are configured' };
  for (let current = leaf; chain.length <= max; ) {
    const pinned = roots.find((r) => sameCert(r, current));
    if (pinned) return finish(chain, pinned, opts);
    const root = roots.find((r) => r.ca && issuedBy(current, r));
    if (root) {
      chain.push(root);
      return finish(chain, root, opts);
    }
    const next = intermediates.find((c) => c.ca && !chain.some((x) => sameCert(x, c)) && issuedBy(current, c));
    if (!next) {
      return {
        ok: false,
        reason: `certificate chain of "${describeCert(leaf)}" does not lead to a trusted root (stopped at "${describeCert(current)}")`,
      };
    }
    chain.push(next);
    current = next;
  }
  return { ok: false, reason: `certificate chain longer than ${max}` };
}

function finish(chain: X509Certificate[], anchor: X509Certificate, opts: ChainOptions): ChainResult {
  if (opts.at) {
    for (const c of chain) {
      if (!validAt(c, opts.at)) {
        return {
          ok: false,
          reason: `certificate "${describeCert(c)}" is not valid at ${opts.at.toISOString()} (valid ${iso(c.validFrom)} to ${iso(c.validTo)})`,
        };
      }
    }
  }
  return { ok: true, chain, anchor };
}

export function iso(date: string): string {
  return new Date(date).toISOString();
}

/**
 * Check that `certs` (leaf first) is an ordered chain: each certificate issued by the next, the last
 * self-signed, every non-leaf a CA. Notary Project envelopes carry the complete chain this way.
 */
export function verifyOrderedChain(certs: X509Certificate[]): string | undefined {
  if (certs.length === 0) return 'certificate chain is empty';
  for (let i = 0; i < certs.length - 1; i++) {
    const c = certs[i] as X509Certificate;
    const issuer = certs[i + 1] as X509Certificate;
    if (!issuer.ca) return `certificate "${describeCert(issuer)}" is not a CA but issues "${describeCert(c)}"`;
    if (!issuedBy(c, issuer)) return `certificate "${describeCert(c)}" is not issued by "${describeCert(issuer)}"`;
  }
  const last = certs[certs.length - 1] as X509Certificate;
  if (!isSelfSigned(last)) return `certificate chain does not end in a self-signed root ("${describeCert(last)}")`;
  return undefined;
}

/** Attributes of a distinguished name, as Node prints it (`C=US\nST=WA\n...`) or as an RFC 4514-ish string. */
export function parseDn(dn: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const parts: string[] = [];
  if (dn.includes('\n')) parts.push(...dn.split('\n'));
  else {
    let cur = '';
    for (let i = 0; i < dn.length; i++) {
      const ch = dn[i] as string;
      if (ch === '\\' && i + 1 < dn.length) {
        cur += dn[i + 1];
        i++;
      } else if (ch === ',' || ch === ';' || ch === '+') {
        parts.push(cur);
        cur = '';
      } else cur += ch;
    }
    parts.push(cur);
  }
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim().toUpperCase();
    const value = part.slice(eq + 1).trim();
    const list = out.get(key) ?? [];
    list.push(value);
    out.set(key, list);
  }
  return out;
}

/** Does every attribute of `wanted` (a DN string) appear with the same value in the certificate subject? */
export function subjectMatches(certSubject: string, wanted: string): boolean {
  const have = parseDn(certSubject);
  const want = parseDn(wanted);
  if (want.size === 0) return false;
  for (const [k, values] of want) {
    const got = have.get(k) ?? [];
    for (const v of values) if (!got.includes(v)) return false;
  }
  return true;
}

/** The identity Fulcio puts in a certificate: the SAN (email, URI or otherName) and the OIDC issuer extension. */
export function fulcioIdentity(cert: X509Certificate): { subjectAlternativeName?: string; issuer?: string } {
  const out: { subjectAlternativeName?: string; issuer?: string } = {};
  try {
    const c = SigstoreCertificate.parse(cert.raw as Buffer<ArrayBuffer>);
    // Fulcio's "username" identities are an otherName SAN (OID 1.3.6.1.4.1.57264.1.7)
    const san = c.subjectAltName ?? c.extSubjectAltName?.otherName('1.3.6.1.4.1.57264.1.7');
    if (san) out.subjectAlternativeName = san;
    const v2 = c.extension('1.3.6.1.4.1.57264.1.8');
    const v1 = c.extension('1.3.6.1.4.1.57264.1.1');
    const issuer = v2 ? v2.valueObj.subs?.[0]?.value.toString('ascii') : v1?.value.toString('ascii');
    if (issuer) out.issuer = issuer;
  } catch {
    /* not parseable by the sigstore reader: no Fulcio identity */
  }
  return out;
}
