import { z } from 'zod';
import { parseDigest } from './digest.ts';
import { RegistryError } from './errors.ts';
import { MediaType, isMediaType, manifestMediaTypes } from './media-types.ts';

const digestField = z.string().refine((value) => {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}, 'invalid or unsupported digest');

const descriptorSchema = z.object({
  mediaType: z.string().refine(isMediaType, 'invalid media type'),
  digest: digestField,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().refine(isMediaType, 'invalid media type').optional(),
  platform: z
    .object({
      architecture: z.string(),
      os: z.string(),
      'os.version': z.string().optional(),
      'os.features': z.array(z.string()).optional(),
      variant: z.string().optional(),
      features: z.array(z.string()).optional(),
    })
    .optional(),
});

export type Descriptor = z.infer<typeof descriptorSchema>;

const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().refine(isMediaType, 'invalid media type').optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().refine(isMediaType, 'invalid media type').optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** What the core needs to know of a manifest; the bytes themselves are stored verbatim. */
export interface ParsedManifest {
  mediaType: string;
  /** `artifactType`, else the config media type for image manifests (OCI 1.1 referrers rule). */
  artifactType: string | undefined;
  config: Descriptor | undefined;
  layers: Descriptor[];
  /** Child manifests of an index or manifest list. */
  manifests: Descriptor[];
  subject: Descriptor | undefined;
  annotations: Record<string, string> | undefined;
}

function stripParameters(contentType: string | undefined): string | undefined {
  return contentType?.split(';', 1)[0]?.trim().toLowerCase() || undefined;
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, { detail });
}

/**
 * Parses and validates manifest bytes as pushed. The media type is the manifest's own
 * `mediaType` field, else the request Content-Type; when both are present they must agree.
 * Docker schema 1 is refused.
 * @throws RegistryError MANIFEST_INVALID
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw invalid(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw invalid('manifest must be a JSON object');
  const fields = document as Record<string, unknown>;
  const declared = typeof fields.mediaType === 'string' ? fields.mediaType : undefined;
  if (fields.mediaType !== undefined && declared === undefined) throw invalid('mediaType must be a string');
  const header = stripParameters(contentType);
  const schema1 = [MediaType.dockerSchema1, MediaType.dockerSchema1Signed] as string[];
  if (fields.schemaVersion === 1 || schema1.includes(declared ?? '') || schema1.includes(header ?? '')) {
    throw invalid('Docker image manifest schema 1 is not supported; push schema 2 or OCI (e.g. skopeo copy --format v2s2)');
  }
  if (declared !== undefined && header !== undefined && declared !== header && manifestMediaTypes.includes(header)) {
    throw invalid(`Content-Type ${header} does not match the manifest mediaType ${declared}`);
  }
  let mediaType = declared ?? header;
  if (mediaType === undefined || !manifestMediaTypes.includes(mediaType)) {
    // An OCI manifest may omit mediaType; infer it from its shape when the header says nothing useful.
    if (declared === undefined && Array.isArray(fields.manifests)) mediaType = MediaType.ociIndex;
    else if (declared === undefined && fields.config !== undefined) mediaType = MediaType.ociManifest;
    else throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType ?? null)}`, { supported: manifestMediaTypes });
  }

  const isIndex = mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
  // CVE-2021-41190: a document with both shapes reads as an image to one client and an index to another.
  if (isIndex ? fields.config !== undefined || fields.layers !== undefined : fields.manifests !== undefined) {
    throw invalid(`ambiguous manifest: a ${mediaType} must not have ${isIndex ? 'config or layers' : 'manifests'}`);
  }
  const result = (isIndex ? indexSchema : imageManifestSchema).safeParse(document);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') || '(root)';
    throw invalid(`manifest field ${where}: ${issue?.message ?? 'invalid'}`, { issues: result.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })) });
  }
  const docker = mediaType === MediaType.dockerManifest || mediaType === MediaType.dockerManifestList;
  if (docker && declared === undefined) throw invalid('Docker schema 2 manifests must declare mediaType');
  if (docker && (fields.subject !== undefined || fields.artifactType !== undefined)) {
    throw invalid('subject and artifactType are only valid in OCI manifests');
  }
  if ('manifests' in result.data) {
    // Image spec: an unknown mediaType "MUST NOT generate an error". Entries that are not
    // manifests (BuildKit's registry cache lists layers in an index) are blob references:
    // they must exist as blobs in the repository, like an image's layers.
    const children = result.data.manifests.filter((entry) => manifestMediaTypes.includes(entry.mediaType));
    const blobs = result.data.manifests.filter((entry) => !manifestMediaTypes.includes(entry.mediaType));
    if (docker && blobs.length > 0) throw invalid(`manifest list entry ${blobs[0]!.digest} has non-manifest media type ${blobs[0]!.mediaType}`);
    return {
      mediaType,
      artifactType: result.data.artifactType,
      config: undefined,
      layers: blobs,
      manifests: children,
      subject: result.data.subject,
      annotations: result.data.annotations,
    };
  }
  const data = result.data;
  // Image spec, artifactType: "This MUST be set when config.mediaType is set to the empty value."
  if (mediaType === MediaType.ociManifest && data.config.mediaType === MediaType.ociEmpty && data.artifactType === undefined) {
    throw invalid(`artifactType is required when config.mediaType is ${MediaType.ociEmpty}`);
  }
  return {
    mediaType,
    artifactType: data.artifactType ?? (mediaType === MediaType.ociManifest ? data.config.mediaType : undefined),
    config: data.config,
    layers: data.layers,
    manifests: [],
    subject: data.subject,
    annotations: data.annotations,
  };
}
