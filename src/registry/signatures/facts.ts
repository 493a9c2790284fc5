/**
 * What the policy engine (push, pull, promotion, admission rules) consumes from signature
 * verification: who signed an image, who attested what about it, and the provenance facts of its
 * verified SLSA attestations, all under the project's trust policy. Only *verified* signatures and
 * attestations appear in `signedBy` / `attestedBy` / `provenance`; `missing` says what the trust
 * policy wanted and did not get.
 */
import type { ProvenanceFacts } from './intoto.ts';
import type { SignatureStatus } from './service.ts';

export type SignerFact =
  | { kind: 'key'; keyId: string; keyName?: string }
  | { kind: 'certificate'; subject?: string; issuer?: string; certificateSha256?: string }
  | { kind: 'notation'; subject: string; trustStore?: string };

export interface SignedByFact {
  /** The signature artifact (manifest digest). */
  artifact: string;
  method: string;
  signer: SignerFact;
}

export interface AttestedByFact {
  artifact: string;
  predicateType: string;
  signer: SignerFact | undefined;
}

export interface SignatureFacts {
  repository: string;
  digest: string;
  verdict: 'verified' | 'unsigned' | 'failed';
  policyVersion: number;
  /** The digest of a verified index listing this manifest, when the verdict comes from it. */
  coveredBy?: string;
  signedBy: SignedByFact[];
  attestedBy: AttestedByFact[];
  provenance: ProvenanceFacts[];
  missing: string[];
}

/** The port the policy engine calls; the signature service implements it. */
export interface SignatureFactsProvider {
  facts(repository: string, digest: string): Promise<SignatureFacts>;
}

function signerFact(s: unknown): SignerFact | undefined {
  if (!s || typeof s !== 'object') return undefined;
  const v = s as Record<string, unknown>;
  if (v['kind'] === 'key') return { kind: 'key', keyId: String(v['keyId']), ...(typeof v['keyName'] === 'string' ? { keyName: v['keyName'] } : {}) };
  if (v['kind'] === 'notation') return { kind: 'notation', subject: String(v['subject']), ...(typeof v['trustStore'] === 'string' ? { trustStore: v['trustStore'] } : {}) };
  if (v['kind'] === 'certificate') {
    const out: SignerFact = { kind: 'certificate' };
    if (typeof v['subjectAlternativeName'] === 'string') out.subject = v['subjectAlternativeName'];
    if (typeof v['issuer'] === 'string') out.issuer = v['issuer'];
    if (typeof v['certificateSha256'] === 'string') out.certificateSha256 = v['certificateSha256'];
    return out;
  }
  return undefined;
}

/** Facts from a verification status (only what verified). */
export function factsOf(status: SignatureStatus, coveredBy?: SignatureStatus): SignatureFacts {
  const source = coveredBy ?? status;
  const signedBy: SignedByFact[] = [];
  for (const s of source.signatures) {
    const signer = signerFact(s.signer);
    if (s.ok && signer) signedBy.push({ artifact: s.artifact, method: s.method ?? s.kind, signer });
  }
  const attestedBy: AttestedByFact[] = [];
  const provenance: ProvenanceFacts[] = [];
  for (const a of source.attestations) {
    if (!a.ok) continue;
    attestedBy.push({ artifact: a.artifact, predicateType: a.predicateType ?? 'unknown', signer: signerFact(a.signer) });
    if (a.facts && a.facts.predicateType.startsWith('https://slsa.dev/provenance/')) provenance.push(a.facts);
  }
  return {
    repository: status.repository,
    digest: status.digest,
    verdict: source.verdict,
    policyVersion: source.policyVersion,
    ...(coveredBy ? { coveredBy: coveredBy.digest } : {}),
    signedBy,
    attestedBy,
    provenance,
    missing: source.missing,
  };
}
