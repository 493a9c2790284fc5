/**
 * `admission.external.action: verify`: an image of another registry is checked by pulling its
 * metadata from that registry (OCI distribution API): the manifest (a tag resolved to the digest
 * the runtime will pull), the signatures attached to it (cosign `.sig` tag, OCI 1.1 referrers,
 * the referrers fallback tag) and their blobs, verified with the signature module's code under a
 * trust policy configured for external images, and the image config (labels, platform, created)
 * for the admission policy's rules that need no scan (the controller evaluates them). Never
 * layers: the webhook has seconds.
 *
 * - Only registries matching `registries` are asked (a pod spec must not make the registry
 *   connect to arbitrary hosts); HTTPS, plain HTTP only for hosts configured `plainHttp`.
 * - Credentials per host from configuration (Basic, or the Docker token flow after a 401 Bearer
 *   challenge); anonymous otherwise. They are never logged or put in a reason.
 * - One deadline (`timeoutMs`) for all requests of one image; responses larger than the limits
 *   abort. Any error is a problem (deny, or a warning in `warn` mode): fail closed.
 * - An index whose own digest is not verified passes when every platform manifest in it is
 *   (cosign `--recursive` signs both; some pipelines sign only the platform images).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { Config } from '../config/schema.ts';
import { type Credentials, RegistryClient } from '../../cli/registry-client.ts';
import { isIndexMediaType } from '../../oci/media-types.ts';
import { parseManifest, type ParsedManifest } from '../../oci/manifest.ts';
import { IMAGE_CONFIG_TYPES, imageConfigFacts, type ImageConfig } from '../policy/enforcer.ts';
import { completeInput, type PolicyInput } from '../policy/input.ts';
import { collectArtifacts, isSignatureArtifactManifest, readBlobBounded, verifyCollected, type ArtifactReader } from '../signatures/collect.ts';
import { compilePolicy, type CompiledPolicy, type SignatureVerdict } from '../signatures/policy.ts';
import { TrustPolicyDocumentSchema } from '../signatures/service.ts';
import { DEFAULT_LIMITS } from '../signatures/util.ts';
import { globToRegExp } from '../policy/document.ts';
import { type ImageReference, DOCKER_HUB } from './reference.ts';

export interface ExternalHost {
  /** Plain HTTP (a loopback or lab registry); HTTPS otherwise. */
  plainHttp: boolean;
  /** PEM CA bundle for this host's certificate, instead of the system's. */
  ca?: Buffer | undefined;
  credentials?: Credentials | undefined;
}

export interface ExternalVerifySettings {
  mode: 'enforce' | 'warn';
  /** Globs over `registry/repository`: the images that may be verified; others are denied unasked. */
  registries: string[];
  /** The image must be written with a digest (`name@sha256:…`). */
  requireDigest: boolean;
  trustPolicy: CompiledPolicy;
  /** Per `host[:port]`, lower case. */
  hosts: Map<string, ExternalHost>;
  timeoutMs: number;
  maxManifestBytes: number;
  maxBlobBytes: number;
  maxArtifacts: number;
  maxPlatforms: number;
}

/** The outcome for one image: the digest when resolved, and what is wrong with it (empty: passes). */
export interface ExternalVerdict {
  digest: string | undefined;
  problems: string[];
  /** The problem is an error (network, timeout, size), not a verdict: not cached. */
  error: boolean;
  signers: string[];
  /** The image's facts for the admission policy (image, signatures); absent when not read. */
  input?: PolicyInput;
}

type Signatures = PolicyInput['signatures'];

/** Why an external image cannot be checked before any request is made (undefined: it may be). */
export function externalPrecheck(settings: Pick<ExternalVerifySettings, 'requireDigest'>, patterns: RegExp[], ref: ImageReference): string[] {
  const problems: string[] = [];
  const name = `${ref.registry}/${ref.repository}`;
  if (!patterns.some((re) => re.test(name))) problems.push(`${name} is not in admission.external.verify.registries`);
  if (settings.requireDigest && !ref.digest) problems.push('admission.external.verify.requireDigest: write the image with its digest (name@sha256:…)');
  return problems;
}

export function compileRegistryPatterns(globs: string[]): RegExp[] {
  return globs.map((g) => globToRegExp(g));
}

/** The settings of `admission.external.verify`, with its files read (at start: a bad file stops it). */
export async function loadExternalVerifySettings(config: Config['admission']['external']['verify']): Promise<ExternalVerifySettings> {
  const file = config.trustPolicyFile;
  if (!file) throw new Error('admission.external.verify.trustPolicyFile is not set');
  let trustPolicy: CompiledPolicy;
  try {
    const parsed = TrustPolicyDocumentSchema.safeParse(parseYaml(await readFile(file, 'utf8')));
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || 'policy'}: ${i.message}`).join('; '));
    trustPolicy = compilePolicy({ ...parsed.data, version: 1 });
  } catch (error) {
    throw new Error(`admission.external.verify.trustPolicyFile ${file}: ${(error as Error).message}`);
  }
  const hosts = new Map<string, ExternalHost>();
  for (const h of config.hosts) {
    const password = h.passwordFile ? (await readFile(h.passwordFile, 'utf8')).trim() : undefined;
    hosts.set(h.host.toLowerCase(), {
      plainHttp: h.plainHttp,
      ca: h.caFile ? await readFile(h.caFile) : undefined,
      credentials: h.username && password !== undefined ? { username: h.username, password } : undefined,
    });
  }
  return { ...config, trustPolicy, hosts };
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export class ExternalVerifier {
  readonly #settings: ExternalVerifySettings;

  constructor(settings: ExternalVerifySettings) {
    this.#settings = settings;
  }

  get mode(): 'enforce' | 'warn' {
    return this.#settings.mode;
  }

  /**
   * Resolves and verifies `ref` against its registry. `known(digest)` returns a cached verdict
   * for a digest, so a tag whose target was verified costs one manifest request. Never throws.
   */
  async verify(ref: ImageReference, known: (digest: string) => ExternalVerdict | undefined): Promise<ExternalVerdict> {
    const s = this.#settings;
    const signal = AbortSignal.timeout(s.timeoutMs);
    const host = s.hosts.get(ref.registry);
    const client = new RegistryClient(ref.registry === DOCKER_HUB ? 'registry-1.docker.io' : ref.registry, {
      credentials: host?.credentials,
      http: host?.plainHttp ?? false,
      loopbackHttp: false,
      ca: host?.ca,
      signal,
      timeoutMs: s.timeoutMs,
      maxBodyBytes: Math.max(s.maxManifestBytes, s.maxBlobBytes, 64 * 1024),
      userAgent: 'portcullis-admission',
    });
    let digest: string | undefined = ref.digest;
    try {
      const reference = ref.digest ?? ref.tag ?? 'latest';
      const manifest = await this.#manifest(client, ref.repository, reference);
      if (!manifest) return { digest: undefined, problems: [`${ref.digest ? `manifest ${ref.digest}` : `tag ${reference}`} is not in ${ref.registry}/${ref.repository}`], error: false, signers: [] };
      digest = manifest.digest;
      const hit = known(digest);
      if (hit) return hit;
      if (isSignatureArtifactManifest(manifest.content)) return { digest, problems: [`${digest} is a signature artifact, not an image`], error: false, signers: [] };
      const parsed = parseManifest(manifest.content, manifest.mediaType);
      const reader = this.#reader(client, ref.repository);
      const [top, config] = await Promise.all([this.#verifyDigest(reader, ref, digest), this.#config(client, ref.repository, parsed)]);
      const done = (problems: string[], signatures: Signatures): ExternalVerdict => ({
        digest,
        problems,
        error: false,
        signers: signatures.signers,
        input: completeInput({
          image: {
            digest: digest!,
            repository: `${ref.registry}/${ref.repository}`,
            project: '',
            mediaType: parsed.mediaType,
            platform: { os: config?.os ?? '', architecture: config?.architecture ?? '', variant: config?.variant ?? '' },
            labels: config?.config?.Labels ?? {},
            annotations: parsed.annotations ?? {},
            created: config?.created ?? '',
            size: manifest.content.length + (parsed.config?.size ?? 0) + parsed.layers.reduce((n, l) => n + l.size, 0),
            layers: parsed.layers.map((l) => l.digest),
          },
          signatures,
        }),
      });
      if (top.problems.length === 0 || !isIndexMediaType(parsed.mediaType)) return done(top.problems, top.signatures);
      // The index is not verified itself: every platform image in it must be.
      const platforms = parsed.manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
      if (platforms.length === 0) return done(top.problems, top.signatures);
      if (platforms.length > s.maxPlatforms) return done([...top.problems, `the index lists ${platforms.length} platform manifests, more than admission.external.verify.maxPlatforms (${s.maxPlatforms})`], top.signatures);
      const children = await Promise.all(platforms.map((m) => this.#verifyDigest(reader, ref, m.digest)));
      const failing = children.flatMap((c, i) => (c.problems.length > 0 ? [`platform ${platforms[i]!.platform ? `${platforms[i]!.platform!.os}/${platforms[i]!.platform!.architecture}` : ''} ${platforms[i]!.digest}: ${c.problems.join('; ')}`] : []));
      if (failing.length > 0) return done([`${top.problems.join('; ')}; and not every platform manifest is verified: ${failing.join('; ')}`], top.signatures);
      // Verified through its platform images: what they have in common counts for the index.
      const common = (pick: (c: Signatures) => string[]) => [...new Set(pick(children[0]!.signatures))].filter((x) => children.every((c) => pick(c.signatures).includes(x)));
      return done([], { verdict: 'verified', signers: common((c) => c.signers), attestations: common((c) => c.attestations), missing: [] });
    } catch (error) {
      const why = signal.aborted ? `no answer within ${s.timeoutMs} ms (admission.external.verify.timeoutMs)` : (error as Error).message;
      return { digest, problems: [`cannot verify with ${ref.registry}: ${why}`], error: true, signers: [] };
    }
  }

  async #manifest(client: RegistryClient, repository: string, reference: string): Promise<{ digest: string; mediaType: string; content: Buffer } | undefined> {
    const m = await client.getManifest(repository, reference);
    if (m && m.content.length > this.#settings.maxManifestBytes) {
      throw new Error(`manifest ${reference} is ${m.content.length} bytes, more than admission.external.verify.maxManifestBytes (${this.#settings.maxManifestBytes})`);
    }
    if (m && reference.startsWith('sha256:') && sha256(m.content) !== reference) throw new Error(`the registry sent other content for ${reference}`);
    return m;
  }

  #reader(client: RegistryClient, repository: string): ArtifactReader {
    return {
      resolveTag: async (tag) => (await this.#manifest(client, repository, tag))?.digest,
      referrers: (digest) => client.referrers(repository, digest),
      manifest: async (digest) => {
        const m = await this.#manifest(client, repository, digest);
        return m && { mediaType: m.mediaType, content: m.content };
      },
      // storage redirects followed (credentials stay with the registry), bounded
      fetchBlob: async (digest, maxBytes) => readBlobBounded(await client.openBlob(repository, digest), digest, Math.min(maxBytes, this.#settings.maxBlobBytes)),
    };
  }

  async #verifyDigest(reader: ArtifactReader, ref: ImageReference, digest: string): Promise<{ problems: string[]; signatures: Signatures }> {
    const collected = await collectArtifacts(reader, digest, { maxArtifacts: this.#settings.maxArtifacts, limits: DEFAULT_LIMITS });
    const v = verifyCollected(digest, collected, this.#settings.trustPolicy, { notationRepository: `${ref.registry}/${ref.repository}` });
    const signatures: Signatures = {
      verdict: v.verdict,
      signers: v.signatures.filter((x) => x.ok && x.signer).map((x) => describeSigner(x.signer)),
      attestations: v.attestations.filter((a) => a.ok && a.predicateType).map((a) => a.predicateType!),
      missing: v.missing,
    };
    if (v.verdict === 'verified') return { problems: [], signatures };
    return { problems: [`signature ${v.verdict}: ${v.missing.join('; ') || 'no valid signature'}`], signatures };
  }

  /** The image config's facts (labels, created, platform); undefined for an index or another artifact. */
  async #config(client: RegistryClient, repository: string, parsed: ParsedManifest): Promise<ImageConfig | undefined> {
    const d = parsed.config;
    if (!d || !IMAGE_CONFIG_TYPES.has(d.mediaType)) return undefined;
    if (d.size > this.#settings.maxBlobBytes) throw new Error(`image config ${d.digest} is ${d.size} bytes, more than admission.external.verify.maxBlobBytes (${this.#settings.maxBlobBytes})`);
    const bytes = await readBlobBounded(await client.openBlob(repository, d.digest), d.digest, this.#settings.maxBlobBytes);
    if (sha256(bytes) !== d.digest) throw new Error(`image config ${d.digest}: the registry sent other content`);
    return imageConfigFacts(bytes);
  }
}

function describeSigner(signer: SignatureVerdict['signer']): string {
  if (!signer) return '';
  if (signer.kind === 'key') return signer.keyName ?? signer.keyId;
  if (signer.kind === 'certificate') return `${signer.subjectAlternativeName ?? '?'} (${signer.issuer ?? '?'})`;
  return signer.subject;
}
