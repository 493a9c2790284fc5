import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MediaType, isIndexMediaType, isMediaType, isNonDistributable, manifestMediaTypes } from './media-types.ts';

describe('media types', () => {
  test('the manifest media types are the OCI manifest and index and the Docker schema 2 manifest and list, never schema 1', () => {
    assert.deepEqual([...manifestMediaTypes].sort(), [
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.oci.image.manifest.v1+json',
    ]);
    assert.ok(!manifestMediaTypes.includes(MediaType.dockerSchema1));
    assert.ok(!manifestMediaTypes.includes(MediaType.dockerSchema1Signed));
  });

  test('isIndexMediaType: the OCI index and the Docker manifest list only', () => {
    assert.equal(isIndexMediaType(MediaType.ociIndex), true);
    assert.equal(isIndexMediaType(MediaType.dockerManifestList), true);
    for (const type of [MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociConfig, 'application/json', '']) {
      assert.equal(isIndexMediaType(type), false, type);
    }
  });

  test('isNonDistributable: OCI non-distributable layers and Docker foreign layers', () => {
    for (const type of [
      'application/vnd.oci.image.layer.nondistributable.v1.tar',
      'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
      'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
    ]) {
      assert.equal(isNonDistributable(type), true, type);
    }
    for (const type of ['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip', MediaType.ociEmpty]) {
      assert.equal(isNonDistributable(type), false, type);
    }
  });

  test('isMediaType: RFC 6838 type/subtype names (restricted-name, at most 127 characters each)', () => {
    for (const type of [
      ...Object.values(MediaType),
      'application/json',
      'application/vnd.example+type',
      'application/vnd.cncf.helm.config.v1+json',
      'text/plain',
      'application/x.y_z!#$&^',
      `a/${'b'.repeat(127)}`,
      `${'a'.repeat(127)}/b`,
    ]) {
      assert.equal(isMediaType(type), true, type);
    }
  });

  test('isMediaType refuses what is not a bare type/subtype', () => {
    for (const type of [
      '',
      'application',
      'application/',
      '/json',
      'application/json/extra',
      'application/json; charset=utf-8',
      'application/ json',
      ' application/json',
      'application/json\n',
      '.application/json',
      'application/-json',
      'application/js*n',
      'application/jsön',
      `a/${'b'.repeat(128)}`,
      `${'a'.repeat(128)}/b`,
    ]) {
      assert.equal(isMediaType(type), false, JSON.stringify(type));
    }
  });
});
