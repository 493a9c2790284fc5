/**
 * Notary Project signatures: JWS (`application/jose+json`) and COSE_Sign1 (`application/cose`)
 * envelopes, and verification under a Notary Project trust policy (trust stores, trusted identities,
 * verification levels strict / permissive / audit / skip with overrides, signing time and expiry,
 * RFC 3161 authentic timestamps, `plugin-required` when a verification plugin is demanded).
 */
import { X509Certificate as SigstoreCertificate } from '@sigstore/core';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { X509Certificate, constants, verify as nodeVerify } from 'node:crypto';
import { checkRevocation, type Crl } from './revocation.ts';
import { verifyTimestampToken, type VerifiedTimestampToken } from './timestamp.ts';
import {
  DEFAULT_LIMITS,
  SignatureFormatError,
  assertSize,
  decodeBase64,
  decodeBase64Url,
  errorMessage,
  isDigest,
  isObject,
  parseJsonObject,
  sha256Hex,
  str,
  type SignatureLimits,
} from './util.ts';
import { describeCert, fingerprint256, iso, parseCertificate, sameCert, subjectMatches, validAt, verifyOrderedChain } from './x509.ts';

export const NOTATION_ARTIFACT_TYPE = 'application/vnd.cncf.notary.signature';
export const JWS_MEDIA_TYPE = 'application/jose+json';
export const COSE_MEDIA_TYPE = 'application/cose';
export const NOTATION_PAYLOAD_TYPE = 'application/vnd.cncf.notary.payload.v1+json';
export const THUMBPRINT_ANNOTATION = 'io.cncf.notary.x509chain.thumbprint#S256';

const H = {
  signingScheme: 'io.cncf.notary.signingScheme',
  signingTime: 'io.cncf.notary.signingTime',
  authenticSigningTime: 'io.cncf.notary.authenticSigningTime',
  expiry: 'io.cncf.notary.expiry',
  plugin: 'io.cncf.notary.verificationPlugin',
  pluginMinVersion: 'io.cncf.notary.verificationPluginMinVersion',
  signingAgent: 'io.cncf.notary.signingAgent',
  timestamp: 'io.cncf.notary.timestampSignature',
} as const;

export type SigningScheme = 'notary.x509' | 'notary.x509.signingAuthority';

export interface TargetArtifact {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface NotationEnvelope {
  format: 'jws' | 'cose';
  mediaType: string;
  /** JWS alg name (PS256, ES384, ...), also for COSE. */
  algorithm: string;
  contentType: string;
  target: TargetArtifact;
  signingScheme: SigningScheme;
  signingTime?: Date;
  authenticSigningTime?: Date;
  expiry?: Date;
  verificationPlugin?: string;
  verificationPluginMinVersion?: string;
  critical: string[];
  /** Signed attributes that are not Notary Project ones (extended attributes). */
  extendedAttributes: Record<string, unknown>;
  certificateChain: X509Certificate[];
  signature: Buffer;
  /** Exactly the bytes the signature covers (JWS signing input, COSE Sig_structure). */
  signedBytes: Buffer;
  timestampToken?: Buffer;
  signingAgent?: string;
}

const JWS_ALGS: Record<string, { kind: 'pss' | 'ecdsa'; hash: 'sha256' | 'sha384' | 'sha512' }> = {
  PS256: { kind: 'pss', hash: 'sha256' },
  PS384: { kind: 'pss', hash: 'sha384' },
  PS512: { kind: 'pss', hash: 'sha512' },
  ES256: { kind: 'ecdsa', hash: 'sha256' },
  ES384: { kind: 'ecdsa', hash: 'sha384' },
  ES512: { kind: 'ecdsa', hash: 'sha512' },
};

const COSE_ALGS: Record<number, string> = { [-37]: 'PS256', [-38]: 'PS384', [-39]: 'PS512', [-7]: 'ES256', [-35]: 'ES384', [-36]: 'ES512' };

export function parseNotationEnvelope(mediaType: string, bytes: Uint8Array, limits: SignatureLimits = DEFAULT_LIMITS): NotationEnvelope {
  assertSize(bytes, limits.envelopeBytes, 'Notation envelope');
  if (mediaType === JWS_MEDIA_TYPE) return parseJws(bytes, limits);
  if (mediaType === COSE_MEDIA_TYPE) return parseCose(bytes, limits);
  throw new SignatureFormatError('UNSUPPORTED_ENVELOPE', `unsupported Notation envelope media type ${mediaType}`);
}

function parseTime(v: unknown, what: string): Date {
  if (v instanceof Date) return v;
  if (typeof v === 'string') {
    const d = new Date(v);
    if (!Number.isNaN(d.getTime()) && /^\d{4}-\d{2}-\d{2}T/.test(v)) return d;
  }
  if (typeof v === 'number') return new Date(v * 1000);
  throw new SignatureFormatError('BAD_ENVELOPE', `${what} is not a valid time`);
}

function parsePayload(bytes: Uint8Array, limits: SignatureLimits): TargetArtifact {
  const json = parseJsonObject(bytes, limits.envelopeBytes, 'Notation payload');
  const t = json['targetArtifact'];
  if (!isObject(t)) throw new SignatureFormatError('BAD_PAYLOAD', 'Notation payload has no targetArtifact');
  const digest = t['digest'];
  const mediaType = str(t['mediaType']);
  const size = t['size'];
  if (!isDigest(digest) || !mediaType || typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
    throw new SignatureFormatError('BAD_PAYLOAD', 'Notation targetArtifact needs mediaType, digest and size');
  }
  const out: TargetArtifact = { mediaType, digest, size };
  if (isObject(t['annotations'])) {
    out.annotations = {};
    for (const [k, v] of Object.entries(t['annotations'])) if (typeof v === 'string') out.annotations[k] = v;
  }
  return out;
}

/** Checks shared by both envelope formats on the signed attributes. */
function signedAttributes(get: (k: string) => unknown, critical: string[], known: Set<string>, all: string[]) {
  const scheme = get(H.signingScheme);
  if (scheme !== 'notary.x509' && scheme !== 'notary.x509.signingAuthority') {
    throw new SignatureFormatError('BAD_ENVELOPE', `unsupported signing scheme ${String(scheme)}`);
  }
  const required: string[] = [H.signingScheme];
  if (scheme === 'notary.x509.signingAuthority') required.push(H.authenticSigningTime);
  for (const k of [H.expiry, H.plugin, H.pluginMinVersion, H.authenticSigningTime]) if (get(k) !== undefined) required.push(k);
  for (const k of required) {
    if (!critical.includes(k)) throw new SignatureFormatError('BAD_ENVELOPE', `${k} must be marked critical`);
  }
  for (const k of critical) {
    if (get(k) === undefined) throw new SignatureFormatError('BAD_ENVELOPE', `critical header ${k} is missing`);
  }
  const out = {
    signingScheme: scheme as SigningScheme,
    extendedAttributes: {} as Record<string, unknown>,
  } as Pick<NotationEnvelope, 'signingScheme' | 'extendedAttributes' | 'signingTime' | 'authenticSigningTime' | 'expiry' | 'verificationPlugin' | 'verificationPluginMinVersion'>;
  if (scheme === 'notary.x509') {
    if (get(H.signingTime) === undefined) throw new SignatureFormatError('BAD_ENVELOPE', 'signing time is missing');
    out.signingTime = parseTime(get(H.signingTime), 'signing time');
  } else {
    out.authenticSigningTime = parseTime(get(H.authenticSigningTime), 'authentic signing time');
    if (get(H.signingTime) !== undefined) out.signingTime = parseTime(get(H.signingTime), 'signing time');
  }
  if (get(H.expiry) !== undefined) out.expiry = parseTime(get(H.expiry), 'expiry');
  const plugin = get(H.plugin);
  if (plugin !== undefined) {
    if (typeof plugin !== 'string' || !plugin) throw new SignatureFormatError('BAD_ENVELOPE', 'verification plugin name is not a string');
    out.verificationPlugin = plugin;
  }
  const minVer = get(H.pluginMinVersion);
  if (typeof minVer === 'string') out.verificationPluginMinVersion = minVer;
  for (const k of all) if (!known.has(k)) out.extendedAttributes[k] = get(k);
  return out;
}

function parseJws(bytes: Uint8Array, limits: SignatureLimits): NotationEnvelope {
  const json = parseJsonObject(bytes, limits.envelopeBytes, 'JWS envelope');
  const protectedB64 = str(json['protected']);
  const payloadB64 = str(json['payload']);
  if (!protectedB64 || payloadB64 === undefined) throw new SignatureFormatError('BAD_ENVELOPE', 'JWS needs protected and payload');
  const signature = decodeBase64Url(json['signature'], 'JWS signature');
  if (signature.length === 0) throw new SignatureFormatError('BAD_ENVELOPE', 'JWS signature is empty');
  const prot = parseJsonObject(decodeBase64Url(protectedB64, 'JWS protected header'), limits.envelopeBytes, 'JWS protected header');
  const payloadBytes = decodeBase64Url(payloadB64, 'JWS payload');
  const alg = str(prot['alg']);
  if (!alg || !JWS_ALGS[alg]) throw new SignatureFormatError('BAD_ENVELOPE', `unsupported JWS alg ${String(alg)}`);
  const cty = str(prot['cty']);
  if (cty !== NOTATION_PAYLOAD_TYPE) throw new SignatureFormatError('BAD_ENVELOPE', `unsupported content type ${String(cty)}`);
  const crit = prot['crit'];
  if (!Array.isArray(crit) || !crit.every((c) => typeof c === 'string')) throw new SignatureFormatError('BAD_ENVELOPE', 'JWS crit is not a list of names');
  const known = new Set(['alg', 'crit', 'cty', H.signingScheme, H.signingTime, H.authenticSigningTime, H.expiry, H.plugin, H.pluginMinVersion]);
  const attrs = signedAttributes((k) => prot[k], crit as string[], known, Object.keys(prot));
  const header = isObject(json['header']) ? json['header'] : {};
  const x5c = header['x5c'];
  if (!Array.isArray(x5c) || x5c.length === 0) throw new SignatureFormatError('BAD_ENVELOPE', 'JWS header has no x5c certificate chain');
  if (x5c.length > limits.chainLength) throw new SignatureFormatError('TOO_LARGE', 'certificate chain too long');
  const chain = x5c.map((c, i) => parseCertificate(decodeBase64(c, `x5c[${i}]`), `x5c[${i}]`));
  const env: NotationEnvelope = {
    format: 'jws',
    mediaType: JWS_MEDIA_TYPE,
    algorithm: alg,
    contentType: cty,
    target: parsePayload(payloadBytes, limits),
    critical: crit as string[],
    ...attrs,
    certificateChain: chain,
    signature,
    signedBytes: Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'),
  };
  const ts = header[H.timestamp];
  if (ts !== undefined) env.timestampToken = decodeBase64(ts, 'timestamp signature');
  const agent = str(header[H.signingAgent]) ?? str(header['io.cncf.notary.SigningAgent']);
  if (agent) env.signingAgent = agent;
  return env;
}

type TagDecode = () => unknown;
const coseTags: Record<number, (decode: TagDecode) => unknown> = {
  18: (decode) => ({ cose18: decode() }),
  1: (decode) => {
    const v = decode();
    return typeof v === 'number' ? new Date(v * 1000) : v;
  },
};

function cbor(bytes: Uint8Array, what: string): unknown {
  try {
    return cborDecode(bytes, { useMaps: true, tags: coseTags as never, rejectDuplicateMapKeys: true });
  } catch (err) {
    throw new SignatureFormatError('BAD_ENVELOPE', `${what}: ${errorMessage(err)}`);
  }
}

function parseCose(bytes: Uint8Array, limits: SignatureLimits): NotationEnvelope {
  const top = cbor(bytes, 'COSE envelope');
  const msg = isObject(top) && Array.isArray((top as { cose18?: unknown }).cose18) ? (top as { cose18: unknown[] }).cose18 : top;
  if (!Array.isArray(msg) || msg.length !== 4) throw new SignatureFormatError('BAD_ENVELOPE', 'not a COSE_Sign1 message');
  const [protBytes, unprot, payloadBytes, signature] = msg as [unknown, unknown, unknown, unknown];
  if (!(protBytes instanceof Uint8Array) || !(payloadBytes instanceof Uint8Array) || !(signature instanceof Uint8Array) || !(unprot instanceof Map)) {
    throw new SignatureFormatError('BAD_ENVELOPE', 'malformed COSE_Sign1 structure');
  }
  const prot = cbor(protBytes, 'COSE protected header');
  if (!(prot instanceof Map)) throw new SignatureFormatError('BAD_ENVELOPE', 'COSE protected header is not a map');
  const get = (k: string | number) => prot.get(k);
  const algNum = get(1);
  const alg = typeof algNum === 'number' ? COSE_ALGS[algNum] : undefined;
  if (!alg) throw new SignatureFormatError('BAD_ENVELOPE', `unsupported COSE alg ${String(algNum)}`);
  const cty = get(3);
  if (cty !== NOTATION_PAYLOAD_TYPE) throw new SignatureFormatError('BAD_ENVELOPE', `unsupported content type ${String(cty)}`);
  const crit = get(2);
  if (!Array.isArray(crit)) throw new SignatureFormatError('BAD_ENVELOPE', 'COSE crit is not a list');
  const critNames = crit.map(String);
  const known = new Set(['1', '2', '3', H.signingScheme, H.signingTime, H.authenticSigningTime, H.expiry, H.plugin, H.pluginMinVersion]);
  const keys = [...prot.keys()].map(String);
  const attrs = signedAttributes((k) => get(k) ?? (/^-?\d+$/.test(k) ? get(Number(k)) : undefined), critNames, known, keys);
  const x5 = unprot.get(33);
  const certs = x5 instanceof Uint8Array ? [x5] : Array.isArray(x5) ? x5 : [];
  if (certs.length === 0) throw new SignatureFormatError('BAD_ENVELOPE', 'COSE header has no x5chain');
  if (certs.length > limits.chainLength) throw new SignatureFormatError('TOO_LARGE', 'certificate chain too long');
  const chain = certs.map((c: unknown, i: number) => {
    if (!(c instanceof Uint8Array)) throw new SignatureFormatError('BAD_ENVELOPE', `x5chain[${i}] is not bytes`);
    return parseCertificate(c, `x5chain[${i}]`);
  });
  const sigStructure = Buffer.from(cborEncode(['Signature1', protBytes, new Uint8Array(0), payloadBytes]));
  const env: NotationEnvelope = {
    format: 'cose',
    mediaType: COSE_MEDIA_TYPE,
    algorithm: alg,
    contentType: cty,
    target: parsePayload(payloadBytes, limits),
    critical: critNames,
    ...attrs,
    certificateChain: chain,
    signature: Buffer.from(signature),
    signedBytes: sigStructure,
  };
  const ts = unprot.get(H.timestamp);
  if (ts instanceof Uint8Array) env.timestampToken = Buffer.from(ts);
  const agent = unprot.get(H.signingAgent);
  if (typeof agent === 'string') env.signingAgent = agent;
  return env;
}

/** Integrity: the signature verifies with the leaf's key under an algorithm the key allows. */
export function checkIntegrity(env: NotationEnvelope): string | undefined {
  const leaf = env.certificateChain[0];
  if (!leaf) return 'no signing certificate';
  const spec = JWS_ALGS[env.algorithm];
  if (!spec) return `unsupported algorithm ${env.algorithm}`;
  const key = leaf.publicKey;
  const type = key.asymmetricKeyType;
  const expected = expectedAlgorithm(leaf);
  if (!expected) return `signing certificate key (${type}) is not allowed by the Notary Project`;
  if (expected !== env.algorithm) return `algorithm ${env.algorithm} does not match the signing key (expected ${expected})`;
  let ok = false;
  try {
    ok =
      spec.kind === 'pss'
        ? nodeVerify(spec.hash, env.signedBytes, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, env.signature)
        : nodeVerify(spec.hash, env.signedBytes, { key, dsaEncoding: 'ieee-p1363' }, env.signature);
  } catch {
    ok = false;
  }
  return ok ? undefined : 'signature does not verify with the signing certificate';
}

function expectedAlgorithm(cert: X509Certificate): string | undefined {
  const k = cert.publicKey;
  if (k.asymmetricKeyType === 'rsa') {
    const bits = k.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits === 2048 ? 'PS256' : bits === 3072 ? 'PS384' : bits === 4096 ? 'PS512' : undefined;
  }
  if (k.asymmetricKeyType === 'ec') {
    const c = k.asymmetricKeyDetails?.namedCurve;
    return c === 'prime256v1' ? 'ES256' : c === 'secp384r1' ? 'ES384' : c === 'secp521r1' ? 'ES512' : undefined;
  }
  return undefined;
}

// ---- trust policy ----------------------------------------------------------------------------

export type Level = 'strict' | 'permissive' | 'audit' | 'skip';
export type Action = 'enforce' | 'log' | 'skip';
export type Check = 'integrity' | 'authenticity' | 'authenticTimestamp' | 'expiry' | 'revocation';

export interface NotationPolicyStatement {
  name: string;
  registryScopes: string[];
  signatureVerification: { level: Level; override?: Partial<Record<Check, Action>>; verifyTimestamp?: 'always' | 'afterCertExpiry' };
  trustStores: string[];
  trustedIdentities: string[];
}

export interface NotationTrustPolicy {
  version: string;
  trustPolicies: NotationPolicyStatement[];
}

/** Trust stores by type and name: `{ ca: { e2e: [...] }, signingAuthority: {...}, tsa: {...} }`. */
export type NotationTrustStores = Partial<Record<'ca' | 'signingAuthority' | 'tsa', Record<string, X509Certificate[]>>>;

const LEVELS: Record<Exclude<Level, 'skip'>, Record<Check, Action>> = {
  strict: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'enforce', expiry: 'enforce', revocation: 'enforce' },
  permissive: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' },
  audit: { integrity: 'enforce', authenticity: 'log', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' },
};

/** Validate a trust policy document (the Notary Project rules), throwing on the first problem. */
export function parseNotationTrustPolicy(input: unknown): NotationTrustPolicy {
  const doc = isObject(input) ? input : parseJsonObject(input as Uint8Array | string, DEFAULT_LIMITS.envelopeBytes, 'trust policy');
  const bad = (m: string) => new SignatureFormatError('BAD_TRUST_POLICY', m);
  if (doc['version'] !== '1.0') throw bad(`unsupported trust policy version ${String(doc['version'])}`);
  const list = doc['trustPolicies'];
  if (!Array.isArray(list) || list.length === 0) throw bad('trust policy has no statements');
  const names = new Set<string>();
  const scopes = new Set<string>();
  let globals = 0;
  const out: NotationPolicyStatement[] = list.map((raw: unknown, i: number) => {
    if (!isObject(raw)) throw bad(`statement ${i} is not an object`);
    const name = str(raw['name']);
    if (!name) throw bad(`statement ${i} has no name`);
    if (names.has(name)) throw bad(`duplicate statement name ${name}`);
    names.add(name);
    const rs = raw['registryScopes'];
    if (!Array.isArray(rs) || rs.length === 0 || !rs.every((s) => typeof s === 'string' && s)) throw bad(`${name}: registryScopes must be a non-empty list`);
    if (rs.includes('*')) {
      if (rs.length > 1) throw bad(`${name}: the global scope * cannot be combined with other scopes`);
      globals++;
    } else {
      for (const s of rs as string[]) {
        if (s.includes('*') || !s.includes('/')) throw bad(`${name}: registry scope ${s} must be a fully qualified repository`);
        if (scopes.has(s)) throw bad(`registry scope ${s} appears in more than one statement`);
        scopes.add(s);
      }
    }
    const sv = raw['signatureVerification'];
    if (!isObject(sv)) throw bad(`${name}: signatureVerification is missing`);
    const level = sv['level'];
    if (level !== 'strict' && level !== 'permissive' && level !== 'audit' && level !== 'skip') throw bad(`${name}: unknown level ${String(level)}`);
    const stmt: NotationPolicyStatement = {
      name,
      registryScopes: rs as string[],
      signatureVerification: { level },
      trustStores: [],
      trustedIdentities: [],
    };
    if (sv['override'] !== undefined) {
      if (level === 'skip') throw bad(`${name}: level skip cannot be overridden`);
      if (!isObject(sv['override'])) throw bad(`${name}: override must be an object`);
      const ov: Partial<Record<Check, Action>> = {};
      for (const [k, v] of Object.entries(sv['override'])) {
        if (k === 'integrity') throw bad(`${name}: integrity cannot be overridden`);
        if (!['authenticity', 'authenticTimestamp', 'expiry', 'revocation'].includes(k)) throw bad(`${name}: unknown override ${k}`);
        if (v !== 'enforce' && v !== 'log' && !(v === 'skip' && k === 'revocation')) throw bad(`${name}: invalid override ${k}=${String(v)}`);
        ov[k as Check] = v as Action;
      }
      stmt.signatureVerification.override = ov;
    }
    const vt = sv['verifyTimestamp'];
    if (vt !== undefined) {
      if (vt !== 'always' && vt !== 'afterCertExpiry') throw bad(`${name}: invalid verifyTimestamp ${String(vt)}`);
      stmt.signatureVerification.verifyTimestamp = vt;
    }
    const ts = raw['trustStores'] ?? [];
    const ti = raw['trustedIdentities'] ?? [];
    if (!Array.isArray(ts) || !Array.isArray(ti)) throw bad(`${name}: trustStores and trustedIdentities must be lists`);
    if (level !== 'skip') {
      if (ts.length === 0) throw bad(`${name}: trustStores must not be empty`);
      if (ti.length === 0) throw bad(`${name}: trustedIdentities must not be empty`);
    }
    for (const s of ts) {
      if (typeof s !== 'string' || !/^(ca|signingAuthority|tsa):[A-Za-z0-9_.-]+$/.test(s)) throw bad(`${name}: malformed trust store ${String(s)}`);
    }
    if (ti.includes('*') && ti.length > 1) throw bad(`${name}: * cannot be combined with other trusted identities`);
    const parsedIds: Map<string, string[]>[] = [];
    for (const id of ti) {
      if (id === '*') continue;
      if (typeof id !== 'string' || !id.startsWith('x509.subject:')) throw bad(`${name}: unsupported trusted identity ${String(id)}`);
      const dn = id.slice('x509.subject:'.length).trim();
      const attrs = new Map<string, string[]>();
      for (const part of dn.split(/(?<!\\),/)) {
        const eq = part.indexOf('=');
        if (eq <= 0) throw bad(`${name}: malformed distinguished name in ${id}`);
        const k = part.slice(0, eq).trim().toUpperCase();
        attrs.set(k, [...(attrs.get(k) ?? []), part.slice(eq + 1).trim()]);
      }
      for (const req of ['C', 'ST', 'O']) if (!attrs.has(req)) throw bad(`${name}: trusted identity ${id} lacks ${req}`);
      for (const other of parsedIds) {
        const subset = (a: Map<string, string[]>, b: Map<string, string[]>) => [...a].every(([k, v]) => v.every((x) => b.get(k)?.includes(x)));
        if (subset(other, attrs) || subset(attrs, other)) throw bad(`${name}: overlapping trusted identities`);
      }
      parsedIds.push(attrs);
    }
    stmt.trustStores = ts as string[];
    stmt.trustedIdentities = ti as string[];
    return stmt;
  });
  if (globals > 1) throw bad('only one statement may use the global scope *');
  return { version: '1.0', trustPolicies: out };
}

/** The statement that applies to a repository (`registry/repo`): an exact scope first, else the global one. */
export function selectStatement(policy: NotationTrustPolicy, repository: string): NotationPolicyStatement | undefined {
  return (
    policy.trustPolicies.find((p) => p.registryScopes.includes(repository)) ??
    policy.trustPolicies.find((p) => p.registryScopes.includes('*'))
  );
}

export interface CheckOutcome {
  check: Check;
  action: Action;
  ok: boolean;
  message: string;
}

export type NotationVerdict = 'valid' | 'invalid' | 'plugin-required' | 'skipped';

export interface NotationResult {
  verdict: NotationVerdict;
  ok: boolean;
  reason: string;
  statement?: string;
  checks: CheckOutcome[];
  target?: TargetArtifact;
  signer?: { subject: string; thumbprints: string[]; trustStore?: string };
  timestamp?: { genTime: string; tsa: string };
}

export interface NotationVerifyOptions {
  policy: NotationTrustPolicy;
  trustStores: NotationTrustStores;
  /** `registry/repository` of the artifact, for scope selection. */
  repository: string;
  /** The digest the signature must be for (from the registry, never from tags). */
  expectedDigest?: string;
  /** Verification time; defaults to now. */
  now?: Date;
  /** Names of installed verification plugins (none in Portcullis today). */
  plugins?: string[];
  /** Thumbprints from the signature manifest annotation, checked against the envelope's chain. */
  manifestThumbprints?: string[];
  /** CRLs to check the signing chain against (revocation is enforced or logged per level). */
  crls?: Crl[];
}

/** Verify one parsed envelope per the Notary Project verification steps. */
export function verifyNotation(env: NotationEnvelope, opts: NotationVerifyOptions): NotationResult {
  const now = opts.now ?? new Date();
  const checks: CheckOutcome[] = [];
  const stmt = selectStatement(opts.policy, opts.repository);
  const base = { target: env.target, signer: signerOf(env) };
  if (!stmt) return { verdict: 'invalid', ok: false, reason: `no trust policy statement applies to ${opts.repository}`, checks, ...base };
  if (stmt.signatureVerification.level === 'skip') {
    return { verdict: 'skipped', ok: true, reason: `trust policy ${stmt.name} skips verification`, statement: stmt.name, checks, ...base };
  }
  const actions = { ...LEVELS[stmt.signatureVerification.level], ...(stmt.signatureVerification.override ?? {}) };
  const record = (check: Check, error: string | undefined, okMessage: string): boolean => {
    const action = check === 'integrity' ? 'enforce' : actions[check];
    checks.push({ check, action, ok: !error, message: error ?? okMessage });
    return !error || action !== 'enforce';
  };
  const done = (verdict: NotationVerdict, reason: string): NotationResult => ({
    verdict,
    ok: verdict === 'valid',
    reason,
    statement: stmt.name,
    checks,
    ...base,
  });

  // Integrity (never overridable), including the target digest and the manifest's thumbprints.
  let integrity = checkIntegrity(env);
  if (!integrity && opts.expectedDigest && env.target.digest !== opts.expectedDigest) {
    integrity = `signature is for ${env.target.digest}, not ${opts.expectedDigest}`;
  }
  if (!integrity && opts.manifestThumbprints) {
    const got = env.certificateChain.map(fingerprint256);
    if (got.length !== opts.manifestThumbprints.length || got.some((g, i) => g !== opts.manifestThumbprints?.[i])) {
      integrity = 'certificate thumbprints in the signature manifest do not match the envelope';
    }
  }
  if (!record('integrity', integrity, 'signature verifies with the signing certificate')) return done('invalid', `integrity: ${integrity}`);

  // A verification plugin named as critical must run; Portcullis runs none.
  if (env.verificationPlugin && !(opts.plugins ?? []).includes(env.verificationPlugin)) {
    return done('plugin-required', `signature requires verification plugin "${env.verificationPlugin}", which is not installed`);
  }

  // Authenticity: the chain leads to a certificate in a trust store of the scheme's type, and the identity is trusted.
  const storeType = env.signingScheme === 'notary.x509' ? 'ca' : 'signingAuthority';
  let authErr: string | undefined = verifyOrderedChain(env.certificateChain) ?? signingCertificateProblem(env.certificateChain[0] as X509Certificate);
  let trustStoreName: string | undefined;
  const names = stmt.trustStores.filter((s) => s.startsWith(`${storeType}:`)).map((s) => s.slice(storeType.length + 1));
  if (authErr) {
    /* the chain itself is unacceptable */
  } else if (names.length === 0) authErr = `trust policy ${stmt.name} has no ${storeType} trust store for signing scheme ${env.signingScheme}`;
  else {
    for (const n of names) {
      const certs = opts.trustStores[storeType]?.[n] ?? [];
      if (env.certificateChain.some((c) => certs.some((t) => sameCert(t, c)))) {
        trustStoreName = `${storeType}:${n}`;
        break;
      }
    }
    if (!trustStoreName) authErr = "the signature's certificate chain does not contain any trusted certificate";
  }
  const leaf = env.certificateChain[0] as X509Certificate;
  if (!authErr && !stmt.trustedIdentities.includes('*')) {
    const ok = stmt.trustedIdentities.some((id) => subjectMatches(leaf.subject, id.slice('x509.subject:'.length)));
    if (!ok) authErr = 'signing certificate from the digital signature does not match the X.509 trusted identities';
  }
  if (trustStoreName && base.signer) base.signer.trustStore = trustStoreName;
  if (!record('authenticity', authErr, `certificate chain leads to ${trustStoreName} and the identity is trusted`)) {
    return done('invalid', `authenticity: ${authErr}`);
  }

  // Expiry.
  const expErr = env.expiry && now.getTime() >= env.expiry.getTime() ? `digital signature has expired on ${env.expiry.toISOString()}` : undefined;
  if (!record('expiry', expErr, env.expiry ? `signature expires ${env.expiry.toISOString()}` : 'signature has no expiry')) {
    return done('invalid', `expiry: ${expErr}`);
  }

  // Authentic timestamp.
  const ts = authenticTimestamp(env, stmt, opts, now);
  const result = done('valid', 'all enforced validations passed');
  if (ts.token) result.timestamp = { genTime: ts.token.genTime.toISOString(), tsa: describeCert(ts.token.tsaCertificate) };
  if (!record('authenticTimestamp', ts.error, ts.message)) {
    const r = done('invalid', `authenticTimestamp: ${ts.error}`);
    if (result.timestamp) r.timestamp = result.timestamp;
    return r;
  }

  // Revocation: from the CRLs the policy provides (offline: nothing is fetched).
  if (actions.revocation === 'skip') {
    checks.push({ check: 'revocation', action: 'skip', ok: true, message: 'revocation check skipped by policy' });
  } else if (!opts.crls || opts.crls.length === 0) {
    checks.push({ check: 'revocation', action: 'log', ok: true, message: 'revocation not checked: no CRLs configured (offline verifier, no OCSP/CRL download)' });
  } else {
    const rev = checkRevocation(env.certificateChain, opts.crls, now);
    const err = rev.status === 'good' ? undefined : rev.status === 'revoked' ? rev.message : `revocation status cannot be determined: ${rev.message}`;
    if (!record('revocation', err, rev.message)) {
      const r = done('invalid', `revocation: ${err}`);
      if (result.timestamp) r.timestamp = result.timestamp;
      return r;
    }
  }
  return result;
}

/** Notary Project signing certificate requirements: not a CA, digitalSignature, codeSigning if EKUs are listed. */
export function signingCertificateProblem(cert: X509Certificate): string | undefined {
  const eku = cert.keyUsage;
  if (eku && eku.length > 0 && !eku.includes('1.3.6.1.5.5.7.3.3')) return `signing certificate "${describeCert(cert)}" is not for code signing (extended key usage)`;
  try {
    const c = SigstoreCertificate.parse(cert.raw as Buffer<ArrayBuffer>);
    if (c.extBasicConstraints?.isCA) return `signing certificate "${describeCert(cert)}" is a CA certificate`;
    const ku = c.extKeyUsage;
    if (ku && !ku.digitalSignature) return `signing certificate "${describeCert(cert)}" key usage lacks digitalSignature`;
  } catch (err) {
    return `signing certificate cannot be read: ${errorMessage(err)}`;
  }
  return undefined;
}

function signerOf(env: NotationEnvelope): { subject: string; thumbprints: string[]; trustStore?: string } | undefined {
  const leaf = env.certificateChain[0];
  return leaf ? { subject: describeCert(leaf), thumbprints: env.certificateChain.map(fingerprint256) } : undefined;
}

/** The authentic-timestamp step on its own (notary.x509: RFC 3161 countersignature; signingAuthority: signed time). */
export function authenticTimestamp(
  env: NotationEnvelope,
  stmt: NotationPolicyStatement,
  opts: NotationVerifyOptions,
  now: Date,
): { error?: string; message: string; token?: VerifiedTimestampToken } {
  const chain = env.certificateChain;
  const within = (lower: Date, upper: Date, what: string): string | undefined => {
    for (const c of chain) {
      if (lower.getTime() < new Date(c.validFrom).getTime()) {
        return `${what} can be before certificate "${describeCert(c)}" validity period, it will be valid from ${iso(c.validFrom)}`;
      }
      if (upper.getTime() > new Date(c.validTo).getTime()) {
        return `${what} can be after certificate "${describeCert(c)}" validity period, it was expired at ${iso(c.validTo)}`;
      }
    }
    return undefined;
  };
  if (env.signingScheme === 'notary.x509.signingAuthority') {
    const t = env.authenticSigningTime as Date;
    const e = within(t, t, 'authentic signing time');
    return e ? { error: e, message: e } : { message: `authentic signing time ${t.toISOString()} is within the chain's validity` };
  }
  const tsaStores = stmt.trustStores.filter((s) => s.startsWith('tsa:')).map((s) => s.slice(4));
  let perform = tsaStores.length > 0;
  if (perform && stmt.signatureVerification.verifyTimestamp === 'afterCertExpiry') {
    perform = chain.some((c) => now.getTime() > new Date(c.validTo).getTime());
  }
  if (!perform) {
    for (const c of chain) {
      if (!validAt(c, now)) {
        const e = now.getTime() < new Date(c.validFrom).getTime()
          ? `verification time is before certificate "${describeCert(c)}" validity period, it will be valid from ${iso(c.validFrom)}`
          : `verification time is after certificate "${describeCert(c)}" validity period, it was expired at ${iso(c.validTo)}`;
        return { error: e, message: e };
      }
    }
    return { message: `certificate chain is valid at verification time ${now.toISOString()}` };
  }
  if (!env.timestampToken) {
    const e = 'no timestamp countersignature was found in the signature envelope';
    return { error: e, message: e };
  }
  const roots = tsaStores.flatMap((n) => opts.trustStores.tsa?.[n] ?? []);
  let token: VerifiedTimestampToken;
  try {
    token = verifyTimestampToken(env.timestampToken, env.signature, roots);
  } catch (err) {
    const e = `failed to verify the timestamp countersignature: ${errorMessage(err)}`;
    return { error: e, message: e };
  }
  const e = within(token.lower, token.upper, 'timestamp');
  return e
    ? { error: e, message: e, token }
    : { message: `timestamp ${token.genTime.toISOString()} by "${describeCert(token.tsaCertificate)}" is within the chain's validity`, token };
}

/** The thumbprint annotation of a Notation signature manifest: a JSON array of lowercase hex SHA-256. */
export function parseThumbprints(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  try {
    const v = JSON.parse(value) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' && /^[a-f0-9]{64}$/.test(x))) return v as string[];
  } catch {
    /* fall through */
  }
  throw new SignatureFormatError('BAD_ANNOTATION', `${THUMBPRINT_ANNOTATION} is not a JSON array of SHA-256 thumbprints`);
}

export function thumbprintsOf(chain: X509Certificate[]): string[] {
  return chain.map((c) => sha256Hex(c.raw));
}

/** Parse and verify envelope bytes: a malformed envelope is an integrity failure, reported as `invalid`. */
export function verifyNotationBytes(mediaType: string, bytes: Uint8Array, opts: NotationVerifyOptions & { limits?: SignatureLimits }): NotationResult {
  let env: NotationEnvelope;
  try {
    env = parseNotationEnvelope(mediaType, bytes, opts.limits);
  } catch (err) {
    const message = `signature envelope cannot be parsed: ${errorMessage(err)}`;
    return { verdict: 'invalid', ok: false, reason: `integrity: ${message}`, checks: [{ check: 'integrity', action: 'enforce', ok: false, message }] };
  }
  return verifyNotation(env, opts);
}
