/**
 * Public API of the signature core (no HTTP, no storage): recognise signature artifacts, verify them
 * under a per-project trust policy, and produce cosign / Notation compatible signatures.
 */
export { recognize, COSIGN_ANNOTATIONS, type FetchBlob, type RecognizedArtifact, type RecognizeOptions } from './recognize.ts';
export {
  compilePolicy,
  verifyImage,
  TrustPolicySchema,
  type CompiledPolicy,
  type ImageVerification,
  type TrustPolicy,
  type TrustPolicyInput,
} from './policy.ts';
export { loadSigstoreTrustedRoot, trustRootFromMaterial, verifySigstoreBundle, type KeylessIdentity, type SigstoreTrustRoot } from './sigstore.ts';
export { verifyCosignSignatureLayer, verifyCosignAttestationLayer, type CosignVerifyContext } from './cosign.ts';
export { parseNotationEnvelope, parseNotationTrustPolicy, verifyNotation, verifyNotationBytes, type NotationTrustPolicy, type NotationTrustStores } from './notation.ts';
export { checkRevocation, parseCrls, type Crl } from './revocation.ts';
export { checkRequirement, verifyKeySignedDsse, type AttestationRequirement } from './attestation.ts';
export { provenanceFacts, type InTotoStatement, type ProvenanceFacts } from './intoto.ts';
export { loadPublicKey, verifyWithKey, type PublicKeyInfo } from './keys.ts';
export {
  cosignSign,
  cosignSignatureManifest,
  cosignTag,
  dsseSign,
  encryptCosignPrivateKey,
  generateCosignKeyPair,
  importCosignPrivateKey,
  signNotationJws,
} from './signing.ts';
export { VerificationCache } from './cache.ts';
export { DEFAULT_LIMITS, SignatureFormatError, type SignatureLimits } from './util.ts';

// --- the registry capability (storage, HTTP, enforcement) ---
export { SignatureService, signatureSettings, TrustPolicyDocumentSchema, type PullDecision, type SignatureStatus, type SignatureServiceOptions } from './service.ts';
export { MemorySignatureStore, SqlSignatureStore, type SignatureStore, type TrustPolicyRecord } from './store.ts';
export { registerSignatureRoutes, signatureAuthorizer, type SignatureAuthorizer } from './http.ts';
export { signaturePullGate } from './gate.ts';
export { factsOf, type SignatureFacts, type SignatureFactsProvider } from './facts.ts';
export { collectArtifacts, isSignatureArtifactManifest } from './collect.ts';
