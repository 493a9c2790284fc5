import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError } from './errors.ts';
import { type Descriptor, type ParsedManifest, parseManifest } from './manifest.ts';
import { MediaType } from './media-types.ts';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const emptyJsonDigest = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

const config: Descriptor = { mediaType: MediaType.ociConfig, digest: digest('a'), size: 7023 };
const layer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest('b'), size: 32654 };
const emptyConfig: Descriptor = { mediaType: MediaType.ociEmpty, digest: emptyJsonDigest, size: 2 };
const child: Descriptor = { mediaType: MediaType.ociManifest, digest: digest('c'), size: 7143, platform: { architecture: 'amd64', os: 'linux' } };
const subject: Descriptor = { mediaType: MediaType.ociManifest, digest: digest('d'), size: 7682 };

const ociManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] };
const ociIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [child] };
const dockerManifest = {
  schemaVersion: 2,
  mediaType: MediaType.dockerManifest,
  config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: digest('a'), size: 1469 },
  layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: digest('b'), size: 2807 }],
};
const dockerList = {
  schemaVersion: 2,
  mediaType: MediaType.dockerManifestList,
  manifests: [{ mediaType: MediaType.dockerManifest, digest: digest('c'), size: 528, platform: { architecture: 'arm', os: 'linux', variant: 'v7' } }],
};

function parse(document: unknown, contentType?: string): ParsedManifest {
  return parseManifest(Buffer.from(typeof document === 'string' ? document : JSON.stringify(document)), contentType);
}

/** Asserts MANIFEST_INVALID (400) with a message matching `pattern`; returns the error. */
function refused(document: unknown, contentType: string | undefined, pattern: RegExp): RegistryError {
  let caught: unknown;
  try {
    parse(document, contentType);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof RegistryError, `expected a refusal matching ${pattern}`);
  assert.equal(caught.code, 'MANIFEST_INVALID');
  assert.equal(caught.status, 400);
  assert.match(caught.message, pattern);
  return caught;
}

describe('OCI image manifest', () => {
  test('a complete manifest parses to its descriptors; artifactType falls back to the config media type', () => {
    const parsed = parse({ ...ociManifest, annotations: { 'com.example.key1': 'value1' } }, MediaType.ociManifest);
    assert.deepEqual(parsed, {
      mediaType: MediaType.ociManifest,
      artifactType: MediaType.ociConfig,
      config,
      layers: [layer],
      manifests: [],
      subject: undefined,
      annotations: { 'com.example.key1': 'value1' },
    });
  });

  test('mediaType may be omitted: the Content-Type names it, or the shape (config) does', () => {
    const { mediaType: _omitted, ...bare } = ociManifest;
    assert.equal(parse(bare, MediaType.ociManifest).mediaType, MediaType.ociManifest);
    assert.equal(parse(bare, undefined).mediaType, MediaType.ociManifest);
    assert.equal(parse(bare, 'application/octet-stream').mediaType, MediaType.ociManifest);
  });

  test('unknown config and layer media types are stored, not refused (image spec: implementations MUST NOT error on them)', () => {
    const helm = {
      ...ociManifest,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: digest('a'), size: 10 },
      layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: digest('b'), size: 20 }],
    };
    const parsed = parse(helm);
    assert.equal(parsed.artifactType, 'application/vnd.cncf.helm.config.v1+json');
    assert.equal(parsed.layers[0]?.mediaType, 'application/vnd.cncf.helm.chart.content.v1.tar+gzip');
  });

  test('layers may be empty but must be present; config is required', () => {
    assert.deepEqual(parse({ ...ociManifest, layers: [] }).layers, []);
    refused({ schemaVersion: 2, mediaType: MediaType.ociManifest, config }, undefined, /layers/);
    refused({ schemaVersion: 2, mediaType: MediaType.ociManifest, layers: [layer] }, undefined, /config/);
  });

  test('schemaVersion must be 2', () => {
    refused({ ...ociManifest, schemaVersion: 3 }, undefined, /schemaVersion/);
    refused({ ...ociManifest, schemaVersion: '2' }, undefined, /schemaVersion/);
    const { schemaVersion: _omitted, ...noVersion } = ociManifest;
    refused(noVersion, undefined, /schemaVersion/);
  });

  test('annotations are a string-to-string map', () => {
    refused({ ...ociManifest, annotations: { 'com.example.n': 1 } }, undefined, /annotations\.com\.example\.n/);
    refused({ ...ociManifest, annotations: ['a'] }, undefined, /annotations/);
  });
});

describe('artifactType (image spec v1.1)', () => {
  test('an artifact with the empty config carries its artifactType', () => {
    const parsed = parse({ ...ociManifest, artifactType: 'application/vnd.example+type', config: emptyConfig, layers: [emptyConfig] });
    assert.equal(parsed.artifactType, 'application/vnd.example+type');
  });

  test('artifactType overrides the config media type when both say something', () => {
    const parsed = parse({ ...ociManifest, artifactType: 'application/vnd.example+type', config: { ...config, mediaType: 'application/vnd.example.config.v1+json' } });
    assert.equal(parsed.artifactType, 'application/vnd.example+type');
  });

  test('"MUST be set when config.mediaType is set to the empty value"', () => {
    refused({ ...ociManifest, config: emptyConfig, layers: [emptyConfig] }, undefined, /artifactType is required when config\.mediaType is application\/vnd\.oci\.empty\.v1\+json/);
  });

  test('must be an RFC 6838 media type', () => {
    for (const bad of ['', 'example', 'application/', 'application/vnd.example+type; version=1', 7]) {
      refused({ ...ociManifest, artifactType: bad }, undefined, /artifactType/);
    }
  });

  test('an index may have an artifactType; without one it has none (no fallback)', () => {
    assert.equal(parse({ ...ociIndex, artifactType: 'application/vnd.example.bundle.v1' }).artifactType, 'application/vnd.example.bundle.v1');
    assert.equal(parse(ociIndex).artifactType, undefined);
    refused({ ...ociIndex, artifactType: 'bundle' }, undefined, /artifactType/);
  });

  test('Docker manifests have no artifactType, and may not declare one', () => {
    assert.equal(parse(dockerManifest).artifactType, undefined);
    refused({ ...dockerManifest, artifactType: 'application/vnd.example+type' }, undefined, /only valid in OCI manifests/);
    refused({ ...dockerList, artifactType: 'application/vnd.example+type' }, undefined, /only valid in OCI manifests/);
  });
});

describe('subject', () => {
  test('a manifest or an index may name a subject, which is returned', () => {
    assert.deepEqual(parse({ ...ociManifest, subject }).subject, subject);
    assert.deepEqual(parse({ ...ociIndex, subject }).subject, subject);
  });

  test('the subject is a descriptor and is validated like one', () => {
    refused({ ...ociManifest, subject: { ...subject, digest: 'sha256:nope' } }, undefined, /subject\.digest/);
    refused({ ...ociManifest, subject: { ...subject, size: -1 } }, undefined, /subject\.size/);
    refused({ ...ociManifest, subject: subject.digest }, undefined, /subject/);
  });

  test('Docker schema 2 has no subject', () => {
    refused({ ...dockerManifest, subject }, undefined, /subject and artifactType are only valid in OCI manifests/);
  });
});

describe('OCI image index', () => {
  test('an index parses to its child manifests', () => {
    const nested: Descriptor = { mediaType: MediaType.ociIndex, digest: digest('e'), size: 300 };
    const parsed = parse({ ...ociIndex, manifests: [child, nested], annotations: { a: 'b' } }, MediaType.ociIndex);
    assert.deepEqual(parsed, {
      mediaType: MediaType.ociIndex,
      artifactType: undefined,
      config: undefined,
      layers: [],
      manifests: [child, nested],
      subject: undefined,
      annotations: { a: 'b' },
    });
  });

  test('the manifests array may be empty but must be present', () => {
    assert.deepEqual(parse({ ...ociIndex, manifests: [] }).manifests, []);
    refused({ schemaVersion: 2, mediaType: MediaType.ociIndex }, undefined, /manifests/);
  });

  test('without mediaType, an index is recognised by its manifests array', () => {
    const { mediaType: _omitted, ...bare } = ociIndex;
    assert.equal(parse(bare).mediaType, MediaType.ociIndex);
    assert.equal(parse(bare, MediaType.ociIndex).mediaType, MediaType.ociIndex);
  });

  test('entries that are not manifests (BuildKit cache indexes list layers) are blob references, not an error', () => {
    const parsed = parse({ ...ociIndex, manifests: [child, layer] }, MediaType.ociIndex);
    assert.deepEqual(parsed.manifests, [child]);
    assert.deepEqual(parsed.layers, [layer]);
  });

  test('a Docker manifest list may only list manifests', () => {
    refused({ ...dockerList, manifests: [...dockerList.manifests, layer] }, undefined, /non-manifest media type/);
  });

  test('a platform needs architecture and os', () => {
    refused({ ...ociIndex, manifests: [{ ...child, platform: { architecture: 'amd64' } }] }, undefined, /manifests\.0\.platform\.os/);
    refused({ ...ociIndex, manifests: [{ ...child, platform: { os: 'linux' } }] }, undefined, /manifests\.0\.platform\.architecture/);
  });
});

describe('Docker schema 2', () => {
  test('an image manifest is accepted with its own media type', () => {
    const parsed = parse(dockerManifest, MediaType.dockerManifest);
    assert.equal(parsed.mediaType, MediaType.dockerManifest);
    assert.equal(parsed.config?.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.equal(parsed.layers.length, 1);
  });

  test('a manifest list is accepted as an index', () => {
    const parsed = parse(dockerList, MediaType.dockerManifestList);
    assert.equal(parsed.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(parsed.manifests, dockerList.manifests);
    assert.equal(parsed.config, undefined);
  });

  test('must declare mediaType in the body (Docker requires it); the Content-Type alone is not enough', () => {
    const { mediaType: _m, ...bareManifest } = dockerManifest;
    refused(bareManifest, MediaType.dockerManifest, /Docker schema 2 manifests must declare mediaType/);
    const { mediaType: _l, ...bareList } = dockerList;
    refused(bareList, MediaType.dockerManifestList, /Docker schema 2 manifests must declare mediaType/);
  });
});

describe('Docker schema 1 is refused with a message saying what to do', () => {
  const schema1 = {
    schemaVersion: 1,
    name: 'library/hello',
    tag: 'latest',
    architecture: 'amd64',
    fsLayers: [{ blobSum: digest('a') }],
    history: [{ v1Compatibility: '{}' }],
    signatures: [{ header: { alg: 'ES256' }, signature: 'x', protected: 'y' }],
  };

  test('by its schemaVersion', () => {
    const error = refused(schema1, undefined, /schema 1 is not supported/);
    assert.match(error.message, /schema 2 or OCI/);
  });

  test('by its Content-Type, signed or not', () => {
    refused(schema1, MediaType.dockerSchema1Signed, /schema 1 is not supported/);
    refused(schema1, MediaType.dockerSchema1, /schema 1 is not supported/);
    refused(ociManifest, `${MediaType.dockerSchema1Signed}; charset=utf-8`, /schema 1 is not supported/);
  });

  test('by a declared mediaType', () => {
    refused({ ...schema1, schemaVersion: 2, mediaType: MediaType.dockerSchema1 }, undefined, /schema 1 is not supported/);
  });
});

describe('mediaType and Content-Type', () => {
  test('when both name a manifest type they must agree', () => {
    const error = refused(ociManifest, MediaType.ociIndex, /Content-Type application\/vnd\.oci\.image\.index\.v1\+json does not match the manifest mediaType application\/vnd\.oci\.image\.manifest\.v1\+json/);
    assert.equal(error.code, 'MANIFEST_INVALID');
    refused(dockerManifest, MediaType.ociManifest, /does not match/);
    refused(ociIndex, MediaType.dockerManifestList, /does not match/);
  });

  test('Content-Type parameters, case and surrounding space do not matter', () => {
    assert.equal(parse(ociManifest, `${MediaType.ociManifest}; charset=utf-8`).mediaType, MediaType.ociManifest);
    assert.equal(parse(ociManifest, MediaType.ociManifest.toUpperCase()).mediaType, MediaType.ociManifest);
    assert.equal(parse(ociManifest, `  ${MediaType.ociManifest}  `).mediaType, MediaType.ociManifest);
  });

  test('a generic Content-Type does not override the declared mediaType', () => {
    assert.equal(parse(ociManifest, 'application/json').mediaType, MediaType.ociManifest);
    assert.equal(parse(dockerManifest, 'application/octet-stream').mediaType, MediaType.dockerManifest);
  });

  test('a body without mediaType is read as the Content-Type says, and must have that shape', () => {
    const { mediaType: _omitted, ...bare } = ociManifest;
    refused(bare, MediaType.ociIndex, /an? application\/vnd\.oci\.image\.index\.v1\+json must not have config or layers/);
    refused({ schemaVersion: 2, manifests: [child] }, MediaType.ociManifest, /must not have manifests/);
  });

  test('the declared mediaType must be a string naming a supported manifest type', () => {
    refused({ ...ociManifest, mediaType: 5 }, undefined, /mediaType must be a string/);
    refused({ ...ociManifest, mediaType: MediaType.ociConfig }, undefined, /unsupported manifest media type "application\/vnd\.oci\.image\.config\.v1\+json"/);
    // The artifact manifest of the v1.1 release candidates was dropped from the final spec.
    refused({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json', blobs: [] }, undefined, /unsupported manifest media type/);
    refused({ schemaVersion: 2, layers: [] }, undefined, /unsupported manifest media type null/);
  });

  test('a document with both shapes is refused, whatever it declares (CVE-2021-41190)', () => {
    const { mediaType: _omitted, ...bare } = ociManifest;
    refused({ ...bare, manifests: [child] }, undefined, /ambiguous manifest/);
    refused({ ...ociManifest, manifests: [child] }, MediaType.ociManifest, /ambiguous manifest/);
    refused({ ...ociIndex, layers: [layer] }, MediaType.ociIndex, /ambiguous manifest/);
    refused({ ...ociIndex, config }, undefined, /ambiguous manifest/);
    refused({ ...dockerList, layers: [] }, undefined, /ambiguous manifest/);
  });
});

describe('descriptors', () => {
  test('sha512 digests are accepted', () => {
    const sha512 = { ...layer, digest: `sha512:${'f'.repeat(128)}` };
    assert.equal(parse({ ...ociManifest, layers: [sha512] }).layers[0]?.digest, sha512.digest);
  });

  test('bad digests are refused, naming the field', () => {
    for (const bad of ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'not-a-digest', '', 42]) {
      refused({ ...ociManifest, layers: [{ ...layer, digest: bad }] }, undefined, /layers\.0\.digest/);
    }
    refused({ ...ociManifest, config: { ...config, digest: `sha256:${'a'.repeat(63)}` } }, undefined, /config\.digest/);
    refused({ ...ociIndex, manifests: [{ ...child, digest: 'sha256:' }] }, undefined, /manifests\.0\.digest/);
  });

  test('size must be a non-negative safe integer', () => {
    for (const bad of [-1, 1.5, '10', null, Number.MAX_SAFE_INTEGER + 1]) {
      refused({ ...ociManifest, layers: [{ ...layer, size: bad }] }, undefined, /layers\.0\.size/);
    }
    assert.equal(parse({ ...ociManifest, layers: [{ ...layer, size: 0 }] }).layers[0]?.size, 0);
  });

  test('mediaType, digest and size are required', () => {
    for (const field of ['mediaType', 'digest', 'size'] as const) {
      const { [field]: _omitted, ...partial } = layer;
      refused({ ...ociManifest, layers: [layer, partial] }, undefined, new RegExp(`layers\\.1\\.${field}`));
    }
  });

  test('a descriptor media type must be RFC 6838', () => {
    refused({ ...ociManifest, layers: [{ ...layer, mediaType: 'tar' }] }, undefined, /layers\.0\.mediaType: invalid media type/);
    refused({ ...ociManifest, layers: [{ ...layer, artifactType: 'sbom' }] }, undefined, /layers\.0\.artifactType/);
  });

  test('urls and annotations have their types', () => {
    assert.deepEqual(parse({ ...ociManifest, layers: [{ ...layer, urls: ['https://example.com/layer'] }] }).layers[0]?.urls, ['https://example.com/layer']);
    refused({ ...ociManifest, layers: [{ ...layer, urls: [1] }] }, undefined, /layers\.0\.urls\.0/);
    refused({ ...ociManifest, layers: [{ ...layer, annotations: { a: true } }] }, undefined, /layers\.0\.annotations\.a/);
  });

  test('the refusal lists the first issues in its detail', () => {
    const error = refused({ ...ociManifest, layers: [{ ...layer, size: -1 }, { ...layer, digest: 'x' }] }, undefined, /layers\.0\.size/);
    const detail = error.detail as { issues: Array<{ path: string; message: string }> };
    assert.deepEqual(
      detail.issues.map((i) => i.path),
      ['layers.0.size', 'layers.1.digest'],
    );
  });
});

describe('not a manifest at all', () => {
  test('malformed JSON', () => {
    refused('{', undefined, /not valid JSON/);
    refused('', undefined, /not valid JSON/);
    refused(`\ufeff${JSON.stringify(ociManifest)}`, undefined, /not valid JSON/);
  });

  test('JSON that is not an object', () => {
    for (const body of ['null', '[]', '"manifest"', '2', 'true']) refused(body, undefined, /must be a JSON object/);
  });
});
