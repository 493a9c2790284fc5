/**
 * DSSE envelopes (PAE), in-toto statements (v0.1 and v1) and the facts Portcullis extracts from
 * SLSA provenance v0.2 and v1: builder id, build type, source repository, ref and digest.
 */
import { verifyWithKey, type PublicKeyInfo } from './keys.ts';
import {
  DEFAULT_LIMITS,
  SignatureFormatError,
  decodeBase64,
  isObject,
  parseJsonObject,
  str,
  type SignatureLimits,
} from './util.ts';

export const DSSE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPES = ['https://in-toto.io/Statement/v0.1', 'https://in-toto.io/Statement/v1'];
export const SLSA_PROVENANCE_V02 = 'https://slsa.dev/provenance/v0.2';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';

export interface DsseSignature {
  keyid: string;
  sig: Buffer;
  /** Old slsa-github-generator envelopes carry the signing certificate (PEM) per signature. */
  cert?: string;
}

export interface DsseEnvelope {
  payloadType: string;
  payload: Buffer;
  signatures: DsseSignature[];
}

/** DSSE pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

export function parseDsseEnvelope(input: Uint8Array | string | Record<string, unknown>, limits = DEFAULT_LIMITS): DsseEnvelope {
  const json = isObject(input) ? input : parseJsonObject(input, limits.envelopeBytes, 'DSSE envelope');
  const payloadType = str(json['payloadType']);
  if (!payloadType) throw new SignatureFormatError('BAD_DSSE', 'DSSE envelope has no payloadType');
  const payload = decodeBase64(json['payload'], 'DSSE payload');
  const sigs = json['signatures'];
  if (!Array.isArray(sigs) || sigs.length === 0) throw new SignatureFormatError('BAD_DSSE', 'DSSE envelope has no signatures');
  if (sigs.length > 16) throw new SignatureFormatError('TOO_LARGE', 'DSSE envelope has too many signatures');
  const signatures = sigs.map((s: unknown, i: number): DsseSignature => {
    if (!isObject(s)) throw new SignatureFormatError('BAD_DSSE', `DSSE signature ${i} is not an object`);
    const out: DsseSignature = { keyid: str(s['keyid']) ?? '', sig: decodeBase64(s['sig'], `DSSE signature ${i}`) };
    const cert = str(s['cert']);
    if (cert) out.cert = cert;
    return out;
  });
  return { payloadType, payload, signatures };
}

/** Verify a DSSE envelope with trusted keys: the first signature that verifies with any key wins. */
export function verifyDsseWithKeys(
  env: DsseEnvelope,
  keys: PublicKeyInfo[],
  opts: { keyId?: string } = {},
): { ok: true; key: PublicKeyInfo; keyid: string } | { ok: false; reason: string } {
  const data = pae(env.payloadType, env.payload);
  for (const s of env.signatures) {
    if (opts.keyId !== undefined && s.keyid !== opts.keyId) continue;
    for (const k of keys) {
      // DSSE does not fix the ECDSA encoding: DER (cosign, sigstore) and raw r||s (some KMS signers) are both seen
      if (verifyWithKey(k, data, s.sig) || (k.kind.startsWith('ecdsa') && verifyWithKey(k, data, s.sig, { ecdsaEncoding: 'ieee-p1363' }))) {
        return { ok: true, key: k, keyid: s.keyid };
      }
    }
  }
  if (opts.keyId !== undefined && !env.signatures.some((s) => s.keyid === opts.keyId)) {
    return { ok: false, reason: `no DSSE signature with key id ${JSON.stringify(opts.keyId)}` };
  }
  return { ok: false, reason: 'no DSSE signature verifies with a trusted key' };
}

export interface InTotoSubject {
  name: string;
  digest: Record<string, string>;
}

export interface InTotoStatement {
  type: string;
  predicateType: string;
  subject: InTotoSubject[];
  predicate: Record<string, unknown>;
}

export function parseStatement(payload: Uint8Array, limits: SignatureLimits = DEFAULT_LIMITS): InTotoStatement {
  const json = parseJsonObject(payload, limits.envelopeBytes, 'in-toto statement');
  const type = str(json['_type']);
  if (!type || !STATEMENT_TYPES.includes(type)) throw new SignatureFormatError('BAD_STATEMENT', `unsupported in-toto statement type ${String(type)}`);
  const predicateType = str(json['predicateType']);
  if (!predicateType) throw new SignatureFormatError('BAD_STATEMENT', 'in-toto statement has no predicateType');
  const subjectRaw = json['subject'];
  if (!Array.isArray(subjectRaw) || subjectRaw.length === 0) throw new SignatureFormatError('BAD_STATEMENT', 'in-toto statement has no subject');
  const subject = subjectRaw.map((s: unknown): InTotoSubject => {
    if (!isObject(s) || !isObject(s['digest'])) throw new SignatureFormatError('BAD_STATEMENT', 'in-toto subject without digest');
    const digest: Record<string, string> = {};
    for (const [k, v] of Object.entries(s['digest'])) if (typeof v === 'string') digest[k.toLowerCase()] = v.toLowerCase();
    return { name: str(s['name']) ?? '', digest };
  });
  const predicate = isObject(json['predicate']) ? json['predicate'] : {};
  return { type, predicateType, subject, predicate };
}

export function subjectMatchesDigest(st: InTotoStatement, algorithm: string, hex: string): boolean {
  const h = hex.toLowerCase();
  return st.subject.some((s) => s.digest[algorithm.toLowerCase()] === h);
}

/** `sha256:<hex>` form of an OCI digest matched against the statement subjects. */
export function subjectMatchesOciDigest(st: InTotoStatement, digest: string): boolean {
  const i = digest.indexOf(':');
  return i > 0 && subjectMatchesDigest(st, digest.slice(0, i), digest.slice(i + 1));
}

/** Facts from SLSA provenance (v0.2 or v1), normalised for policy checks and display. */
export interface ProvenanceFacts {
  predicateType: string;
  builderId?: string;
  buildType?: string;
  /** Normalised `host/owner/repo` (no scheme, no ref, no `.git`). */
  sourceRepository?: string;
  sourceUri?: string;
  sourceRef?: string;
  sourceDigest?: Record<string, string>;
  invocationId?: string;
}

export function normaliseRepository(uri: string): string {
  let s = uri.trim();
  s = s.replace(/^git\+/, '').replace(/^[a-z]+:\/\//, '');
  const at = s.indexOf('@');
  if (at >= 0) s = s.slice(0, at);
  return s.replace(/\.git$/, '').replace(/\/+$/, '');
}

function refOf(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  const at = uri.lastIndexOf('@');
  return at >= 0 ? uri.slice(at + 1) : undefined;
}

function get(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const p of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

function digestMap(v: unknown): Record<string, string> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return Object.keys(out).length ? out : undefined;
}

export function provenanceFacts(st: InTotoStatement): ProvenanceFacts | undefined {
  const p = st.predicate;
  const facts: ProvenanceFacts = { predicateType: st.predicateType };
  const set = <K extends keyof ProvenanceFacts>(k: K, v: ProvenanceFacts[K] | undefined) => {
    if (v !== undefined) facts[k] = v;
  };
  if (st.predicateType === SLSA_PROVENANCE_V02) {
    set('builderId', str(get(p, 'builder', 'id')));
    set('buildType', str(get(p, 'buildType')));
    const cfgUri = str(get(p, 'invocation', 'configSource', 'uri'));
    const materials = get(p, 'materials');
    const firstMaterial = Array.isArray(materials) ? materials[0] : undefined;
    const uri = cfgUri ?? str(get(firstMaterial, 'uri'));
    if (uri) {
      facts.sourceUri = uri;
      facts.sourceRepository = normaliseRepository(uri);
      set('sourceRef', refOf(uri));
    }
    set('sourceDigest', digestMap(get(p, 'invocation', 'configSource', 'digest')) ?? digestMap(get(firstMaterial, 'digest')));
    set('invocationId', str(get(p, 'metadata', 'buildInvocationID')) ?? str(get(p, 'metadata', 'buildInvocationId')));
    return facts;
  }
  if (st.predicateType === SLSA_PROVENANCE_V1) {
    set('builderId', str(get(p, 'runDetails', 'builder', 'id')));
    set('buildType', str(get(p, 'buildDefinition', 'buildType')));
    const ext = get(p, 'buildDefinition', 'externalParameters');
    const deps = get(p, 'buildDefinition', 'resolvedDependencies');
    const firstDep = Array.isArray(deps) ? deps[0] : undefined;
    const wfRepo = str(get(ext, 'workflow', 'repository'));
    const src = str(get(ext, 'source')) ?? str(get(ext, 'source', 'uri'));
    const depUri = str(get(firstDep, 'uri'));
    const uri = depUri ?? src ?? wfRepo;
    if (uri) {
      facts.sourceUri = uri;
      facts.sourceRepository = normaliseRepository(uri);
      set('sourceRef', str(get(ext, 'workflow', 'ref')) ?? refOf(uri));
    }
    set('sourceDigest', digestMap(get(firstDep, 'digest')));
    set('invocationId', str(get(p, 'runDetails', 'metadata', 'invocationId')));
    return facts;
  }
  return undefined;
}

/** Builder ids match when equal, or when the expected id has no `@ref` and the actual one only adds one. */
export function builderIdMatches(expected: string, actual: string | undefined): boolean {
  if (!actual) return false;
  if (expected === actual) return true;
  if (expected.includes('@')) return false;
  const at = actual.indexOf('@');
  return at >= 0 && actual.slice(0, at) === expected;
}
