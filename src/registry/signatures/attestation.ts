/**
 * Attestation requirements: an in-toto statement of a given predicate type, signed by a trusted
 * signer, whose SLSA provenance names the expected builder and source. Also verification of DSSE
 * envelopes signed with a key (e.g. a VSA) and of the old slsa-github-generator envelopes that carry
 * their Fulcio certificate inline (which need a Rekor entry to be trusted).
 */
import type { X509Certificate } from 'node:crypto';
import {
  builderIdMatches,
  normaliseRepository,
  pae,
  parseStatement,
  provenanceFacts,
  verifyDsseWithKeys,
  type DsseEnvelope,
  type InTotoStatement,
  type ProvenanceFacts,
} from './intoto.ts';
import { describeKey, verifyWithKey, type PublicKeyInfo } from './keys.ts';
import { describeIdentity, identityMatches, type KeylessIdentity, type SignerDescription } from './sigstore.ts';
import { errorMessage } from './util.ts';
import { buildChain, fulcioIdentity, parseCertificates } from './x509.ts';

export interface AttestationRequirement {
  /** e.g. `https://slsa.dev/provenance/v1`, or a cosign `--type` name (`slsaprovenance` accepts v0.2 and v1). */
  predicateType: string;
  /** Provenance builder id: exact, or without `@ref` to accept any ref. */
  builderId?: string;
  /** Source repository, `github.com/org/repo` (scheme, `git+` and `@ref` ignored). */
  sourceRepository?: string;
  /** Source ref (`refs/tags/v1.2.3`, `refs/heads/main`); a bare tag name means `refs/tags/<name>`. */
  sourceRef?: string;
  /** Who may sign the attestation: keyless identities and/or key names. */
  signerIdentities?: KeylessIdentity[];
  signerKeys?: string[];
}

export interface RequirementCheck {
  ok: boolean;
  reasons: string[];
  facts?: ProvenanceFacts;
}

/** cosign's `--type` short names and the predicate types they stand for. */
export const PREDICATE_ALIASES: Record<string, string[]> = {
  slsaprovenance: ['https://slsa.dev/provenance/v0.2', 'https://slsa.dev/provenance/v1'],
  slsaprovenance02: ['https://slsa.dev/provenance/v0.2'],
  slsaprovenance1: ['https://slsa.dev/provenance/v1'],
  cyclonedx: ['https://cyclonedx.org/bom'],
  spdx: ['https://spdx.dev/Document'],
  spdxjson: ['https://spdx.dev/Document'],
  vuln: ['https://cosign.sigstore.dev/attestation/vuln/v1'],
  openvex: ['https://openvex.dev/ns', 'https://openvex.dev/ns/v0.2.0'],
  custom: ['https://cosign.sigstore.dev/attestation/v1'],
};

export function predicateTypeMatches(wanted: string, actual: string): boolean {
  const alias = PREDICATE_ALIASES[wanted];
  return alias ? alias.includes(actual) : wanted === actual;
}

/** Check a verified statement and its signer against one requirement. */
export function checkRequirement(st: InTotoStatement, signer: SignerDescription | undefined, req: AttestationRequirement): RequirementCheck {
  const reasons: string[] = [];
  if (!predicateTypeMatches(req.predicateType, st.predicateType)) {
    return { ok: false, reasons: [`predicate type ${st.predicateType} is not ${req.predicateType}`] };
  }
  const facts = provenanceFacts(st);
  if (req.signerIdentities || req.signerKeys) {
    const byId =
      signer?.kind === 'certificate' &&
      (req.signerIdentities ?? []).some((id) => identityMatches(id, signer.subjectAlternativeName, signer.issuer));
    const byKey = signer?.kind === 'key' && (req.signerKeys ?? []).some((k) => k === signer.keyName || k === signer.keyId);
    if (!byId && !byKey) {
      const who = signer?.kind === 'certificate' ? `${signer.subjectAlternativeName} (${signer.issuer})` : signer?.kind === 'key' ? `key ${signer.keyName ?? signer.keyId}` : 'unknown signer';
      const wanted = [...(req.signerIdentities ?? []).map(describeIdentity), ...(req.signerKeys ?? []).map((k) => `key ${k}`)].join('; ');
      reasons.push(`attestation signed by ${who}, not by a trusted signer (${wanted})`);
    }
  }
  if (req.builderId !== undefined && !builderIdMatches(req.builderId, facts?.builderId)) {
    reasons.push(`builder ${facts?.builderId ?? '(none)'} is not ${req.builderId}`);
  }
  if (req.sourceRepository !== undefined && normaliseRepository(req.sourceRepository) !== facts?.sourceRepository) {
    reasons.push(`source ${facts?.sourceRepository ?? '(none)'} is not ${normaliseRepository(req.sourceRepository)}`);
  }
  if (req.sourceRef !== undefined) {
    const want = req.sourceRef.startsWith('refs/') ? req.sourceRef : `refs/tags/${req.sourceRef}`;
    if (facts?.sourceRef !== want) reasons.push(`source ref ${facts?.sourceRef ?? '(none)'} is not ${want}`);
  }
  const out: RequirementCheck = { ok: reasons.length === 0, reasons };
  if (facts) out.facts = facts;
  return out;
}

export type DsseVerification =
  | { ok: true; statement: InTotoStatement; signer: SignerDescription; reason: string }
  | { ok: false; reason: string; signer?: SignerDescription };

/** A DSSE envelope signed with a trusted key (optionally bound to a key id), carrying an in-toto statement. */
export function verifyKeySignedDsse(env: DsseEnvelope, keys: PublicKeyInfo[], keyId?: string): DsseVerification {
  const r = verifyDsseWithKeys(env, keys, keyId === undefined ? {} : { keyId });
  if (!r.ok) return r;
  const signer: SignerDescription = { kind: 'key', keyId: r.key.id };
  if (r.key.name) signer.keyName = r.key.name;
  try {
    return { ok: true, statement: parseStatement(env.payload), signer, reason: `DSSE signature by ${r.key.name ?? r.key.id.slice(0, 16)} (key id ${r.keyid})` };
  } catch (err) {
    return { ok: false, reason: errorMessage(err), signer };
  }
}

/**
 * Old slsa-github-generator envelopes: the Fulcio certificate rides in the signature. Without the
 * matching Rekor entry nothing proves the signature was made while the short-lived certificate was
 * valid, so by default this fails; `assumeTime` (tests, audits) checks the chain at a chosen time.
 */
export function verifyCertSignedDsse(
  env: DsseEnvelope,
  fulcioRoots: X509Certificate[],
  fulcioIntermediates: X509Certificate[],
  opts: { assumeTime?: Date } = {},
): DsseVerification {
  const s = env.signatures[0];
  if (env.signatures.length !== 1 || !s) return { ok: false, reason: 'expected exactly one DSSE signature' };
  if (!s.cert) return { ok: false, reason: 'DSSE signature carries no certificate' };
  let leaf: X509Certificate | undefined;
  try {
    leaf = parseCertificates(s.cert, 'DSSE certificate')[0];
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  if (!leaf) return { ok: false, reason: 'DSSE certificate is empty' };
  const id = fulcioIdentity(leaf);
  const san = id.subjectAlternativeName;
  const signer: SignerDescription = { kind: 'certificate', ...id };
  let key: PublicKeyInfo;
  try {
    key = describeKey(leaf.publicKey);
  } catch (err) {
    return { ok: false, reason: errorMessage(err), signer };
  }
  if (!verifyWithKey(key, pae(env.payloadType, env.payload), s.sig)) {
    return { ok: false, reason: 'DSSE signature does not verify with its certificate', signer };
  }
  if (!opts.assumeTime) {
    return { ok: false, reason: 'no transparency log entry proves when the short-lived certificate signed (Rekor lookup needed)', signer };
  }
  const chain = buildChain(leaf, fulcioIntermediates, fulcioRoots, { at: opts.assumeTime });
  if (!chain.ok) return { ok: false, reason: chain.reason, signer };
  try {
    return { ok: true, statement: parseStatement(env.payload), signer, reason: `DSSE signature by ${san} (chain checked at ${opts.assumeTime.toISOString()})` };
  } catch (err) {
    return { ok: false, reason: errorMessage(err), signer };
  }
}
