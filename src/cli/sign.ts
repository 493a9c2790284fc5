/**
 * `portcullis key generate | sign | attest | verify`: signatures for CI pipelines, with cosign's flags,
 * environment and file names so that a pipeline can switch between the two:
 *
 *   portcullis key generate [--output-key-prefix cosign] [--force]
 *   portcullis sign IMAGE --key cosign.key [--tag-scheme] [--referrer] [-a key=value ...]
 *   portcullis attest IMAGE --key cosign.key --predicate FILE --type slsaprovenance|cyclonedx|spdx|custom|URI [--referrer] [--replace]
 *   portcullis verify IMAGE --key cosign.pub [--type T ...] [--output json]
 *   portcullis verify IMAGE --certificate-identity ID --certificate-oidc-issuer URL --trusted-root trusted_root.json
 *
 * The private key password comes from `COSIGN_PASSWORD` (set, even empty, means "use it"), else from
 * the terminal. IMAGE is always resolved to a digest and the digest is signed, never the tag.
 * Signatures are cosign simple-signing layers in the `sha256-<hex>.sig` tag (default, appended to
 * what is there, as cosign does) and/or an OCI 1.1 referrer (`--referrer`, cosign's
 * `--registry-referrers-mode oci-1-1` layout); attestations are DSSE envelopes in `.att` (or a
 * referrer). `verify` reads them back from the registry and checks them with the same code the
 * registry uses, under a trust policy made of the flags.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PREDICATE_ALIASES } from '../registry/signatures/attestation.ts';
import { COSIGN_SIGNATURE_ARTIFACT_TYPE, collectArtifacts, verifyCollected, type ArtifactReader } from '../registry/signatures/collect.ts';
import { DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE } from '../registry/signatures/intoto.ts';
import { compilePolicy, type TrustPolicyInput } from '../registry/signatures/policy.ts';
import { COSIGN_ANNOTATIONS } from '../registry/signatures/recognize.ts';
import { cosignSign, cosignSignatureManifest, cosignTag, dsseSign, generateCosignKeyPair, importCosignPrivateKey, referrerManifest } from '../registry/signatures/signing.ts';
import { digestOf, errorMessage } from '../registry/signatures/util.ts';
import { findCredentials, formatRef, parseImageRef, RegistryClient, type ImageRef } from './registry-client.ts';

const usage = `Signatures and attestations (cosign-compatible flags and files):

  portcullis key generate [--output-key-prefix cosign] [--force]
      Write an encrypted ECDSA P-256 key pair: cosign.key (password from COSIGN_PASSWORD or the terminal) and cosign.pub.
  portcullis sign IMAGE --key cosign.key [--tag-scheme] [--referrer] [-a KEY=VALUE ...]
      Sign IMAGE's digest (a tag is resolved first). --tag-scheme (default): the cosign sha256-<hex>.sig tag;
      --referrer: an OCI 1.1 referrer. Both may be given.
  portcullis attest IMAGE --key cosign.key --predicate FILE --type TYPE [--referrer] [--replace]
      Attest IMAGE's digest: an in-toto statement with FILE as predicate, in a DSSE envelope, in the .att tag.
      TYPE: slsaprovenance, slsaprovenance02, slsaprovenance1, cyclonedx, spdx, spdxjson, vuln, openvex, link, custom, or a URI.
  portcullis verify IMAGE --key cosign.pub [--type TYPE ...] [--output text|json]
  portcullis verify IMAGE --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] ISSUER --trusted-root FILE
      Verify IMAGE's signatures (and, with --type, that verified attestations of those types exist). Exit 1 if not verified.

Registry options: --registry-username U --registry-password P (else the container tools' auth files:
  $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json),
  --allow-http-registry (plain HTTP; default for loopback hosts), --allow-insecure-registry (no TLS verification).`;

/** cosign's `--type` names. */
export const PREDICATE_TYPES: Record<string, string> = {
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: 'https://slsa.dev/provenance/v1',
  link: 'https://in-toto.io/Link/v1',
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: 'https://cyclonedx.org/bom',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
  custom: 'https://cosign.sigstore.dev/attestation/v1',
};

const registryOptions = {
  'registry-username': { type: 'string' },
  'registry-password': { type: 'string' },
  'allow-http-registry': { type: 'boolean' },
  'allow-insecure-registry': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

/** Runs `key|sign|attest|verify`; returns the exit code. */
export async function signMain(argv: string[], io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => console.log(s), err: (s) => console.error(s) }): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'key':
        if (rest[0] === 'generate') return await keyGenerate(rest.slice(1), io);
        throw new UsageError(`unknown command "key ${rest[0] ?? ''}"`);
      case 'sign':
        return await sign(rest, io);
      case 'attest':
        return await attest(rest, io);
      case 'verify':
        return await verify(rest, io);
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`${errorMessage(err)}\n\n${usage}`);
      return 2;
    }
    io.err(`Error: ${errorMessage(err)}`);
    return 1;
  }
}

// ---- keys and passwords ----------------------------------------------------------------------------

/** COSIGN_PASSWORD when set (even empty), else the terminal (twice when `confirm`). */
async function password(confirm: boolean): Promise<string> {
  const env = process.env['COSIGN_PASSWORD'];
  if (env !== undefined) return env;
  if (!process.stdin.isTTY) throw new Error('COSIGN_PASSWORD is not set and there is no terminal to ask for the password');
  const first = await ask(confirm ? 'Enter password for private key: ' : 'Enter password for private key: ');
  if (confirm && (await ask('Enter password for private key again: ')) !== first) throw new Error('the passwords do not match');
  return first;
}

async function ask(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode?.(true);
  stdin.resume();
  let text = '';
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return text;
        if (ch === '\u0003') throw new Error('interrupted');
        if (ch === '\u007f') text = text.slice(0, -1);
        else text += ch;
      }
    }
    return text;
  } finally {
    stdin.setRawMode?.(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function loadPrivateKey(file: string): Promise<KeyObject> {
  const pem = readFileSync(file, 'utf8');
  if (/-----BEGIN ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY-----/.test(pem)) return importCosignPrivateKey(pem, await password(false)).privateKey;
  if (/-----BEGIN (EC |RSA )?PRIVATE KEY-----/.test(pem)) return createPrivateKey(pem);
  throw new Error(`${file} is not a cosign key or a PEM private key`);
}

async function keyGenerate(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { values } = parseArgs({ args, options: { 'output-key-prefix': { type: 'string', default: 'cosign' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) return (io.out(usage), 0);
  const prefix = values['output-key-prefix'];
  const keyFile = `${prefix}.key`;
  const pubFile = `${prefix}.pub`;
  for (const f of [keyFile, pubFile]) if (existsSync(f) && !values.force) throw new Error(`${f} exists (use --force to overwrite)`);
  const pair = generateCosignKeyPair(await password(true));
  writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(pubFile, pair.publicKeyPem, { mode: 0o644 });
  io.err(`Private key written to ${keyFile}\nPublic key written to ${pubFile}`);
  return 0;
}

// ---- registry access -------------------------------------------------------------------------------

interface Target {
  client: RegistryClient;
  ref: ImageRef;
  digest: string;
  mediaType: string;
  size: number;
}

function clientFor(ref: ImageRef, values: { 'registry-username'?: string | undefined; 'registry-password'?: string | undefined; 'allow-http-registry'?: boolean | undefined; 'allow-insecure-registry'?: boolean | undefined }): RegistryClient {
  const user = values['registry-username'];
  const credentials = user !== undefined ? { username: user, password: values['registry-password'] ?? '' } : findCredentials(ref.registry, ref.repository);
  return new RegistryClient(ref.registry, { credentials, http: values['allow-http-registry'] ?? false, insecure: values['allow-insecure-registry'] ?? false, userAgent: 'portcullis-cli' });
}

/**
 * IMAGE resolved to its digest (a tag is looked up once; a digest is checked to exist, except with
 * `digestMayBeAbsent`: signatures can be verified for a digest whose manifest is elsewhere).
 */
async function resolve(image: string, values: Parameters<typeof clientFor>[1], io: { err: (s: string) => void }, warnTag: boolean, digestMayBeAbsent = false): Promise<Target> {
  const ref = parseImageRef(image);
  const client = clientFor(ref, values);
  const m = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  if (!m && ref.digest && digestMayBeAbsent) {
    io.err(`WARNING: ${formatRef(ref)} is not in the registry; verifying what is attached to the digest`);
    return { client, ref, digest: ref.digest, mediaType: '', size: 0 };
  }
  if (!m) throw new Error(`${formatRef(ref)}: no such manifest`);
  if (!ref.digest && warnTag) io.err(`WARNING: ${formatRef(ref)} is a tag; signing its digest ${m.digest} (pass IMAGE@${m.digest} to be explicit)`);
  return { client, ref, digest: m.digest, mediaType: m.mediaType, size: m.content.length };
}

function parseAnnotations(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new UsageError(`annotation ${JSON.stringify(a)} is not KEY=VALUE`);
    out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/**
 * Adds a layer to the cosign tag (`.sig`/`.att`) of `digest`, as cosign does: the existing layers
 * are kept (their blobs are in the repository already), `keep` filters them (`--replace`).
 */
async function appendToCosignTag(t: Target, suffix: 'sig' | 'att', layer: LayerDescriptor, blob: Buffer, keep: (l: LayerDescriptor) => boolean = () => true): Promise<string> {
  const tag = cosignTag(t.digest, suffix);
  const existing = await t.client.getManifest(t.ref.repository, tag, `repository:${t.ref.repository}:pull,push`);
  let layers: LayerDescriptor[] = [];
  if (existing) {
    const m = JSON.parse(existing.content.toString('utf8')) as { layers?: LayerDescriptor[] };
    layers = (m.layers ?? []).filter(keep);
  }
  if (!layers.some((l) => l.digest === layer.digest && JSON.stringify(l.annotations ?? {}) === JSON.stringify(layer.annotations ?? {}))) layers.push(layer);
  await t.client.pushBlob(t.ref.repository, blob);
  const { manifest, config } = cosignSignatureManifest(layers as never);
  await t.client.pushBlob(t.ref.repository, config);
  await t.client.putManifest(t.ref.repository, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return `${t.ref.registry}/${t.ref.repository}:${tag}`;
}

async function pushReferrer(t: Target, artifactType: string, layer: LayerDescriptor, blob: Buffer, io: { err: (s: string) => void }): Promise<string> {
  await t.client.pushBlob(t.ref.repository, blob);
  const { manifest, config } = referrerManifest(artifactType, [layer], { mediaType: t.mediaType, digest: t.digest, size: t.size });
  await t.client.pushBlob(t.ref.repository, config);
  const digest = digestOf(manifest);
  const res = await t.client.putManifest(t.ref.repository, digest, manifest, 'application/vnd.oci.image.manifest.v1+json');
  if (!res.subjectAccepted) io.err(`WARNING: ${t.ref.registry} did not confirm the subject (no OCI-Subject header): it may not list the referrer`);
  return `${t.ref.registry}/${t.ref.repository}@${digest}`;
}

// ---- sign, attest ----------------------------------------------------------------------------------

async function sign(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...registryOptions, key: { type: 'string' }, 'tag-scheme': { type: 'boolean' }, referrer: { type: 'boolean' }, annotations: { type: 'string', short: 'a', multiple: true }, yes: { type: 'boolean', short: 'y' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return (io.out(usage), 0);
  if (positionals.length !== 1) throw new UsageError('sign takes one IMAGE');
  if (!values.key) throw new UsageError('--key is required (a cosign.key file)');
  const key = await loadPrivateKey(values.key);
  const t = await resolve(positionals[0]!, values, io, true);
  const layer = cosignSign(key, `${t.ref.registry}/${t.ref.repository}`, t.digest, parseAnnotations(values.annotations));
  const tagScheme = values['tag-scheme'] || !values.referrer;
  if (tagScheme) io.out(await appendToCosignTag(t, 'sig', layer.descriptor, layer.payload));
  if (values.referrer) io.out(await pushReferrer(t, COSIGN_SIGNATURE_ARTIFACT_TYPE, layer.descriptor, layer.payload, io));
  io.err(`Signed ${t.ref.registry}/${t.ref.repository}@${t.digest}`);
  return 0;
}

async function attest(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...registryOptions, key: { type: 'string' }, predicate: { type: 'string' }, type: { type: 'string', default: 'custom' }, 'tag-scheme': { type: 'boolean' }, referrer: { type: 'boolean' }, replace: { type: 'boolean' }, yes: { type: 'boolean', short: 'y' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return (io.out(usage), 0);
  if (positionals.length !== 1) throw new UsageError('attest takes one IMAGE');
  if (!values.key) throw new UsageError('--key is required (a cosign.key file)');
  if (!values.predicate) throw new UsageError('--predicate FILE is required');
  const predicateType = PREDICATE_TYPES[values.type] ?? (/^[a-z][a-z0-9+.-]*:\/\//i.test(values.type) ? values.type : undefined);
  if (!predicateType) throw new UsageError(`--type ${values.type}: one of ${Object.keys(PREDICATE_TYPES).join(', ')}, or a URI`);
  const text = readFileSync(values.predicate, 'utf8');
  let predicate: unknown;
  if (values.type === 'custom') {
    // cosign wraps a custom predicate's content, JSON or not
    predicate = { Data: text, Timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') };
  } else {
    try {
      predicate = JSON.parse(text);
    } catch (err) {
      throw new Error(`${values.predicate} is not JSON: ${errorMessage(err)}`);
    }
  }
  const key = await loadPrivateKey(values.key);
  const t = await resolve(positionals[0]!, values, io, true);
  const statement = {
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType,
    subject: [{ name: `${t.ref.registry}/${t.ref.repository}`, digest: { sha256: t.digest.slice('sha256:'.length) } }],
    predicate,
  };
  const { envelope } = dsseSign(key, IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)));
  const descriptor: LayerDescriptor = {
    mediaType: DSSE_MEDIA_TYPE,
    digest: digestOf(envelope),
    size: envelope.length,
    annotations: { [COSIGN_ANNOTATIONS.signature]: '', [COSIGN_ANNOTATIONS.predicateType]: predicateType },
  };
  const tagScheme = values['tag-scheme'] || !values.referrer;
  const keep = values.replace ? (l: LayerDescriptor) => l.annotations?.[COSIGN_ANNOTATIONS.predicateType] !== predicateType : undefined;
  if (tagScheme) io.out(await appendToCosignTag(t, 'att', descriptor, envelope, keep));
  if (values.referrer) io.out(await pushReferrer(t, 'application/vnd.dev.cosign.artifact.att.v1+json', descriptor, envelope, io));
  io.err(`Attested ${predicateType} for ${t.ref.registry}/${t.ref.repository}@${t.digest}`);
  return 0;
}

// ---- verify ----------------------------------------------------------------------------------------

/** Reads artifacts from a registry over HTTP (the same collection as the registry's own). */
export function httpReader(client: RegistryClient, repository: string): ArtifactReader {
  return {
    resolveTag: async (tag) => (await client.getManifest(repository, tag))?.digest,
    referrers: (digest) => client.referrers(repository, digest),
    manifest: async (digest) => {
      const m = await client.getManifest(repository, digest);
      return m && { mediaType: m.mediaType, content: m.content };
    },
    fetchBlob: (digest, maxBytes) => client.getBlob(repository, digest, maxBytes),
  };
}

async function verify(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...registryOptions,
      key: { type: 'string' },
      'certificate-identity': { type: 'string' },
      'certificate-identity-regexp': { type: 'string' },
      'certificate-oidc-issuer': { type: 'string' },
      'certificate-oidc-issuer-regexp': { type: 'string' },
      'cert-identity': { type: 'string' },
      'cert-oidc-issuer': { type: 'string' },
      'trusted-root': { type: 'string' },
      'insecure-ignore-tlog': { type: 'boolean' },
      type: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o', default: 'text' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return (io.out(usage), 0);
  if (positionals.length !== 1) throw new UsageError('verify takes one IMAGE');
  const identity = values['certificate-identity'] ?? values['cert-identity'];
  const identityRe = values['certificate-identity-regexp'];
  const issuer = values['certificate-oidc-issuer'] ?? values['cert-oidc-issuer'];
  const issuerRe = values['certificate-oidc-issuer-regexp'];
  const keyless = identity !== undefined || identityRe !== undefined;
  if (!values.key && !keyless) throw new UsageError('give --key cosign.pub, or --certificate-identity and --certificate-oidc-issuer with --trusted-root');
  const input: TrustPolicyInput = { version: 0, requireSignature: true, requiredAttestations: (values.type ?? []).map((t) => ({ predicateType: PREDICATE_ALIASES[t] ? t : (PREDICATE_TYPES[t] ?? t) })) };
  if (values.key) input.keys = [{ name: values.key, publicKey: readFileSync(values.key, 'utf8') }];
  if (keyless) {
    if (!values['trusted-root']) throw new UsageError('keyless verification needs --trusted-root FILE (a Sigstore trusted_root.json; nothing is fetched)');
    if (issuer === undefined && issuerRe === undefined) throw new UsageError('--certificate-oidc-issuer (or -regexp) is required with --certificate-identity');
    const id: Record<string, string> = {};
    if (identity !== undefined) id['subject'] = identity;
    if (identityRe !== undefined) id['subjectRegExp'] = identityRe;
    if (issuer !== undefined) id['issuer'] = issuer;
    if (issuerRe !== undefined) id['issuerRegExp'] = issuerRe;
    input.keyless = { trustedRoot: JSON.parse(readFileSync(values['trusted-root'], 'utf8')) as Record<string, unknown>, identities: [id as { subject: string }] };
  }
  const policy = compilePolicy(input);
  const t = await resolve(positionals[0]!, values, io, false, true);
  const collected = await collectArtifacts(httpReader(t.client, t.ref.repository), t.digest, { maxArtifacts: 256 });
  const result = verifyCollected(t.digest, collected, policy, { notationRepository: `${t.ref.registry}/${t.ref.repository}` });
  const name = `${t.ref.registry}/${t.ref.repository}@${t.digest}`;
  if (values.output === 'json') io.out(JSON.stringify({ image: name, ...result }, null, 2));
  if (result.verdict === 'verified') {
    if (values.output !== 'json') {
      io.err(`\nVerification for ${name} --\nThe following checks were performed on each of these signatures:\n  - The signed payload names ${t.digest}\n  - The signatures were verified against the ${keyless ? 'certificate identity and the trusted root' : 'specified public key'}`);
      for (const s of result.signatures.filter((x) => x.ok)) io.out(`${s.artifact}${s.layer !== undefined ? ` layer ${s.layer}` : ''}: ${s.reason}`);
      for (const a of result.attestations.filter((x) => x.ok)) io.out(`${a.artifact}${a.layer !== undefined ? ` layer ${a.layer}` : ''}: ${a.predicateType}: ${a.reason}`);
    }
    return 0;
  }
  if (values.output !== 'json') {
    io.err(`Error: ${name} is not verified: ${result.missing.join('; ')}`);
    for (const s of result.signatures) io.err(`  ${s.artifact}${s.layer !== undefined ? ` layer ${s.layer}` : ''}: ${s.ok ? 'ok' : 'FAILED'}: ${s.reason}`);
    for (const r of result.rejected) io.err(`  ${r.digest}: rejected: ${r.reason}`);
  }
  return 1;
}
