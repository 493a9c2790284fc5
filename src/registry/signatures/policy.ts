/**
 * Per-project trust policy (zod) and `verifyImage`: every signature and attestation artifact found for
 * an image digest, verified against the policy, with one structured, explainable, JSON-serialisable
 * verdict, keyed for caching by digest and policy hash (the hash changes whenever keys, roots,
 * identities or requirements change).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { checkRequirement, type AttestationRequirement } from './attestation.ts';
import { verifyCosignAttestationLayer, verifyCosignSignatureLayer, type CosignVerifyContext } from './cosign.ts';
import { provenanceFacts, subjectMatchesOciDigest, type ProvenanceFacts } from './intoto.ts';
import { loadPublicKey } from './keys.ts';
import { parseNotationTrustPolicy, verifyNotation, type NotationTrustPolicy, type NotationTrustStores } from './notation.ts';
import type { RecognizedArtifact } from './recognize.ts';
import {
  digestOnlyEntity,
  loadSigstoreTrustedRoot,
  verifyParsedBundle,
  type KeylessIdentity,
  type SignerDescription,
  type SigstoreTrustRoot,
  type TrustedKey,
} from './sigstore.ts';
import { toSignedEntity } from '@sigstore/verify';
import { parseCrls, type Crl } from './revocation.ts';
import { errorMessage } from './util.ts';
import { parseCertificates } from './x509.ts';
import type { X509Certificate } from 'node:crypto';

const IdentitySchema = z
  .object({
    subject: z.string().min(1).optional(),
    subjectRegExp: z.string().min(1).optional(),
    issuer: z.string().min(1).optional(),
    issuerRegExp: z.string().min(1).optional(),
  })
  .strict()
  .refine((i) => i.subject !== undefined || i.subjectRegExp !== undefined, { message: 'an identity needs subject or subjectRegExp' })
  .refine((i) => [i.subjectRegExp, i.issuerRegExp].every((r) => r === undefined || isRegExp(r)), { message: 'invalid regular expression' });

function isRegExp(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

const PemSchema = z.string().min(1).max(64 * 1024);

export const TrustPolicySchema = z
  .object({
    /** Bumped by the API on every change; part of the cache key. */
    version: z.number().int().nonnegative(),
    /** Require at least one valid signature (Harbor-style content trust). */
    requireSignature: z.boolean().default(true),
    keys: z
      .array(z.object({ name: z.string().min(1), publicKey: PemSchema, validFrom: z.string().datetime().optional(), validUntil: z.string().datetime().optional() }).strict())
      .default([]),
    /** Key-based signatures must also be in Rekor (needs `rekorPublicKeys` or `keyless.trustedRoot`). */
    requireTransparencyLog: z.boolean().default(false),
    rekorPublicKeys: z.array(PemSchema).default([]),
    keyless: z
      .object({
        /** The content of a Sigstore `trusted_root.json` (offline; never refreshed over the network). */
        trustedRoot: z.record(z.string(), z.unknown()),
        identities: z.array(IdentitySchema).min(1),
      })
      .strict()
      .optional(),
    /** Private PKI for cosign `--certificate` signatures without Rekor. */
    certificates: z
      .object({ roots: z.array(PemSchema).min(1), intermediates: z.array(PemSchema).default([]), crls: z.array(PemSchema).default([]), identities: z.array(IdentitySchema).min(1) })
      .strict()
      .optional(),
    notation: z
      .object({
        /** A Notary Project trust policy document (`trustpolicy.json`). */
        trustPolicy: z.unknown(),
        trustStores: z
          .object({
            ca: z.record(z.string(), z.array(PemSchema)).default({}),
            signingAuthority: z.record(z.string(), z.array(PemSchema)).default({}),
            tsa: z.record(z.string(), z.array(PemSchema)).default({}),
          })
          .strict(),
        /**
         * The fully qualified repository (`registry/name`) used to select a statement by registry scope.
         * Optional: the registry passes the repository being verified (`VerifyImageOptions.notationRepository`).
         */
        repository: z.string().min(1).optional(),
        /** CRLs (PEM) for revocation checks; without them revocation is logged as not checked. */
        crls: z.array(PemSchema).default([]),
      })
      .strict()
      .optional(),
    requiredAttestations: z
      .array(
        z
          .object({
            predicateType: z.string().min(1),
            builderId: z.string().min(1).optional(),
            sourceRepository: z.string().min(1).optional(),
            sourceRef: z.string().min(1).optional(),
            signerIdentities: z.array(IdentitySchema).optional(),
            signerKeys: z.array(z.string().min(1)).optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

export type TrustPolicyInput = z.input<typeof TrustPolicySchema>;
export type TrustPolicy = z.output<typeof TrustPolicySchema>;

export interface CompiledPolicy {
  policy: TrustPolicy;
  /** sha256 of the canonical policy JSON: changes with any key, root, identity or requirement. */
  hash: string;
  cosign: CosignVerifyContext;
  keyless?: { trust: SigstoreTrustRoot; identities: KeylessIdentity[] };
  keys: TrustedKey[];
  notation?: { policy: NotationTrustPolicy; stores: NotationTrustStores; repository: string; crls: Crl[] };
  requirements: AttestationRequirement[];
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Validate and compile a policy once (parse keys, certificates, trust roots); throws a readable error. */
export function compilePolicy(input: unknown): CompiledPolicy {
  const parsed = TrustPolicySchema.safeParse(input);
  if (!parsed.success) throw new Error(`invalid trust policy: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const policy = parsed.data;
  const hash = createHash('sha256').update(canonical(policy)).digest('hex');
  const keys: TrustedKey[] = policy.keys.map((k) => {
    const t: TrustedKey = { info: loadPublicKey(k.publicKey, k.name) };
    if (k.validFrom || k.validUntil) {
      t.validFor = {};
      if (k.validFrom) t.validFor.start = new Date(k.validFrom);
      if (k.validUntil) t.validFor.end = new Date(k.validUntil);
    }
    return t;
  });
  const compiled: CompiledPolicy = { policy, hash, keys, cosign: { keys, requireTlogForKeys: policy.requireTransparencyLog }, requirements: policy.requiredAttestations };
  if (policy.keyless) {
    const trust = loadSigstoreTrustedRoot(policy.keyless.trustedRoot, 'policy keyless.trustedRoot');
    compiled.keyless = { trust, identities: policy.keyless.identities };
    compiled.cosign.sigstore = trust;
    compiled.cosign.identities = policy.keyless.identities;
  }
  if (policy.rekorPublicKeys.length > 0 && !compiled.cosign.sigstore) {
    throw new Error('invalid trust policy: rekorPublicKeys need keyless.trustedRoot in this version (the trusted root carries Rekor keys)');
  }
  if (policy.certificates) {
    compiled.cosign.pkiRoots = policy.certificates.roots.flatMap((p) => parseCertificates(p));
    compiled.cosign.pkiIntermediates = policy.certificates.intermediates.flatMap((p) => parseCertificates(p));
    compiled.cosign.pkiCrls = policy.certificates.crls.flatMap((p) => parseCrls(p));
    compiled.cosign.identities = [...(compiled.cosign.identities ?? []), ...policy.certificates.identities];
  }
  if (policy.notation) {
    const store = (m: Record<string, string[]>) => Object.fromEntries(Object.entries(m).map(([n, pems]) => [n, pems.flatMap((p) => parseCertificates(p))])) as Record<string, X509Certificate[]>;
    compiled.notation = {
      policy: parseNotationTrustPolicy(policy.notation.trustPolicy),
      stores: { ca: store(policy.notation.trustStores.ca), signingAuthority: store(policy.notation.trustStores.signingAuthority), tsa: store(policy.notation.trustStores.tsa) },
      repository: policy.notation.repository ?? '',
      crls: policy.notation.crls.flatMap((p) => parseCrls(p)),
    };
  }
  return compiled;
}

export interface SignatureVerdict {
  artifact: string;
  kind: RecognizedArtifact['kind'];
  layer?: number;
  ok: boolean;
  method?: string;
  signer?: SignerDescription | { kind: 'notation'; subject: string; trustStore?: string };
  reason: string;
}

export interface AttestationVerdict {
  artifact: string;
  kind: RecognizedArtifact['kind'];
  layer?: number;
  ok: boolean;
  predicateType?: string;
  signer?: SignerDescription;
  facts?: ProvenanceFacts;
  reason: string;
}

export interface RequirementVerdict {
  requirement: AttestationRequirement;
  ok: boolean;
  satisfiedBy?: string;
  reasons: string[];
}

export interface ImageVerification {
  digest: string;
  policyVersion: number;
  policyHash: string;
  /** Cache key: digest + policy hash. Recompute when either changes. */
  cacheKey: string;
  verifiedAt: string;
  verdict: 'verified' | 'unsigned' | 'failed';
  signatures: SignatureVerdict[];
  attestations: AttestationVerdict[];
  requirements: RequirementVerdict[];
  /** What is missing, for a DENIED message. Empty when verified. */
  missing: string[];
}

export interface VerifyImageOptions {
  now?: Date;
  /** The fully qualified repository (`registry/name`) the image is in, for Notation registry scopes; overrides `notation.repository`. */
  notationRepository?: string;
}

/** Verify everything found for `digest` under a compiled policy. Never throws for bad artifacts. */
export function verifyImage(digest: string, artifacts: RecognizedArtifact[], policy: CompiledPolicy, opts: VerifyImageOptions = {}): ImageVerification {
  const now = opts.now ?? new Date();
  const signatures: SignatureVerdict[] = [];
  const attestations: (AttestationVerdict & { statement?: import('./intoto.ts').InTotoStatement })[] = [];
  const ctx: CosignVerifyContext = { ...policy.cosign, now };
  for (const a of artifacts) {
    try {
      switch (a.kind) {
        case 'cosign-signature':
          for (const l of a.layers) {
            const r = verifyCosignSignatureLayer(l, digest, ctx);
            signatures.push(prune({ artifact: a.manifestDigest, kind: a.kind, layer: l.index, ok: r.ok, method: r.method, signer: r.signer, reason: r.reason }));
          }
          break;
        case 'cosign-attestation':
          for (const l of a.layers) {
            const r = verifyCosignAttestationLayer(l, digest, ctx);
            attestations.push(prune({ artifact: a.manifestDigest, kind: a.kind, layer: l.index, ok: r.ok, predicateType: l.statement?.predicateType, signer: r.signer, facts: r.statement && provenanceFacts(r.statement), reason: r.reason, statement: r.statement }));
          }
          break;
        case 'sigstore-bundle':
          verifyBundleArtifact(a, digest, policy, signatures, attestations);
          break;
        case 'notation-signature': {
          if (!policy.notation) {
            signatures.push({ artifact: a.manifestDigest, kind: a.kind, ok: false, reason: 'Notation signature, and the policy configures no Notation trust' });
            break;
          }
          if (!a.envelope) {
            signatures.push({ artifact: a.manifestDigest, kind: a.kind, ok: false, reason: `integrity: ${a.problem ?? 'envelope cannot be parsed'}` });
            break;
          }
          const r = verifyNotation(a.envelope, {
            policy: policy.notation.policy,
            trustStores: policy.notation.stores,
            repository: opts.notationRepository ?? policy.notation.repository,
            expectedDigest: digest,
            now,
            crls: policy.notation.crls,
            ...(a.thumbprints ? { manifestThumbprints: a.thumbprints } : {}),
          });
          const v: SignatureVerdict = { artifact: a.manifestDigest, kind: a.kind, ok: r.ok, method: `notation ${r.verdict}`, reason: r.reason };
          if (r.signer) v.signer = { kind: 'notation', subject: r.signer.subject, ...(r.signer.trustStore ? { trustStore: r.signer.trustStore } : {}) };
          signatures.push(v);
          break;
        }
        case 'not-a-signature':
          break;
      }
    } catch (err) {
      signatures.push({ artifact: a.manifestDigest, kind: a.kind, ok: false, reason: errorMessage(err) });
    }
  }
  const requirements: RequirementVerdict[] = policy.requirements.map((req) => {
    const reasons: string[] = [];
    for (const att of attestations) {
      if (!att.ok || !att.statement) continue;
      const c = checkRequirement(att.statement, att.signer, req);
      if (c.ok) return { requirement: req, ok: true, satisfiedBy: att.artifact, reasons: [] };
      reasons.push(...c.reasons.map((r) => `${att.artifact}: ${r}`));
    }
    if (reasons.length === 0) reasons.push(`no verified attestation of type ${req.predicateType}`);
    return { requirement: req, ok: false, reasons };
  });
  const anySignature = signatures.length > 0;
  const validSignature = signatures.some((s) => s.ok);
  const missing: string[] = [];
  if (policy.policy.requireSignature && !validSignature) {
    missing.push(anySignature ? `no valid signature (${signatures.map((s) => s.reason).join('; ')})` : 'no signature');
  }
  for (const r of requirements) if (!r.ok) missing.push(`attestation ${r.requirement.predicateType}: ${r.reasons.join('; ')}`);
  const verdict = missing.length === 0 ? 'verified' : policy.policy.requireSignature && !anySignature && artifacts.every((a) => a.kind === 'not-a-signature') ? 'unsigned' : 'failed';
  return {
    digest,
    policyVersion: policy.policy.version,
    policyHash: policy.hash,
    cacheKey: `${digest}|${policy.hash}`,
    verifiedAt: now.toISOString(),
    verdict,
    signatures,
    attestations: attestations.map(({ statement: _s, ...rest }) => rest),
    requirements,
    missing,
  };
}

/** cosign v3 image signatures: an in-toto statement of this type naming the image, in a DSSE bundle. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

function verifyBundleArtifact(
  a: Extract<RecognizedArtifact, { kind: 'sigstore-bundle' }>,
  digest: string,
  policy: CompiledPolicy,
  signatures: SignatureVerdict[],
  attestations: (AttestationVerdict & { statement?: import('./intoto.ts').InTotoStatement })[],
): void {
  const dsse = a.bundle?.content.$case === 'dsseEnvelope';
  const isAttestation = dsse && a.statement?.predicateType !== COSIGN_SIGN_PREDICATE;
  const push = (ok: boolean, reason: string, signer?: SignerDescription) => {
    if (isAttestation) {
      attestations.push(prune({ artifact: a.manifestDigest, kind: a.kind, ok, predicateType: a.statement?.predicateType, signer, facts: ok && a.statement ? provenanceFacts(a.statement) : undefined, reason, statement: ok ? a.statement : undefined }));
    } else signatures.push(prune({ artifact: a.manifestDigest, kind: a.kind, ok, method: dsse ? 'sigstore bundle (cosign v3 signature)' : 'sigstore bundle (message signature over the manifest digest)', signer, reason }));
  };
  if (!a.bundle) return push(false, a.problem ?? 'bundle cannot be parsed');
  if (!policy.keyless && policy.keys.length === 0) return push(false, 'sigstore bundle, and the policy configures no keys or keyless trust');
  const trust = policy.keyless?.trust;
  if (!trust) return push(false, 'sigstore bundles need keyless.trustedRoot (for the transparency log keys)');
  const bundle = a.bundle;
  const opts = { trust, identities: policy.keyless?.identities ?? [], keys: policy.keys };
  let r;
  if (dsse) {
    if (!a.statement || !subjectMatchesOciDigest(a.statement, digest)) return push(false, `in-toto subject does not name ${digest}`);
    r = verifyParsedBundle(bundle, opts, (art) => toSignedEntity(bundle, art));
  } else {
    // the signed message is the image manifest; the registry knows its digest
    const [alg, hex] = digest.split(':');
    if (alg !== 'sha256' || !hex) return push(false, `message-signature bundles are checked over sha256 digests, not ${digest}`);
    const d = Buffer.from(hex, 'hex');
    r = verifyParsedBundle(bundle, { ...opts, artifactDigest: { algorithm: 'sha256', hex } }, () => digestOnlyEntity(bundle, d));
  }
  if (!r.ok) return push(false, r.reason, r.signer);
  const who = r.signer.kind === 'certificate' ? `${r.signer.subjectAlternativeName} (${r.signer.issuer})` : (r.signer.keyName ?? r.signer.keyId.slice(0, 16));
  push(true, `bundle signed by ${who}`, r.signer);
}

function prune<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
