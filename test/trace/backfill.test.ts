/**
 * Traceability turned on for a registry that already holds images: at start the index records
 * what it has not seen (build source from annotations, base image by layer prefix, index
 * children), once; later starts record nothing more.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildImage, buildIndex } from '../acceptance/helpers/oci.ts';
import { waitFor } from '../scanner/support.ts';
import { startTraceRegistry, type TraceHarness, withAnnotations } from './support.ts';

const COMMIT = '5a5a5a5a6b6b6b6b7c7c7c7c8d8d8d8d9e9e9e9e';

describe('trace backfill of images pushed while traceability was off', () => {
  let h: TraceHarness;
  const d = { base: '', app: '', index: '' };

  before(async () => {
    const off = await startTraceRegistry({ kind: 'sqlite' }, [{ path: ['trace', 'enabled'], value: false }]);
    assert.equal(off.registry.trace, undefined);
    assert.equal((await off.request('POST', '/api/v1/projects', { body: { name: 'team' } })).status, 201);
    const baseLayer = [{ path: 'etc/base-release', content: Buffer.from('base 1\n') }];
    d.base = await off.push('team/base', '1', buildImage({ layers: [baseLayer] }));
    const app = withAnnotations(buildImage({ layers: [baseLayer, [{ path: 'app/main', content: Buffer.from('app') }]] }), {
      'org.opencontainers.image.source': 'https://github.com/acme/backfilled.git',
      'org.opencontainers.image.revision': COMMIT,
    });
    d.app = await off.push('team/app', '1.0', app);
    const index = buildIndex([app]);
    d.index = await off.putManifest('team/app', 'multi', index.manifest.bytes, index.manifest.descriptor.mediaType);
    await off.registry.close();
    h = await startTraceRegistry({ kind: 'sqlite' }, [], { dataDir: off.dataDir });
  });

  after(async () => {
    await h?.close();
  });

  test('the images stored before are recorded at start, with source, base and index children', async () => {
    const found = await waitFor('backfilled image by commit', async () => {
      const res = await h.request('GET', `/api/v1/trace/images?commit=${COMMIT}`);
      return res.status === 200 && res.body.images.length > 0 ? res.body : undefined;
    });
    assert.deepEqual(found.images.map((i: any) => `${i.repository}@${i.digest}`), [`team/app@${d.app}`]);
    assert.deepEqual([found.images[0].sources[0].sourceRepository, found.images[0].sources[0].how], ['github.com/acme/backfilled', 'annotation']);
    await h.settle();
    const graph = (await h.request('GET', `/api/v1/trace/${d.app}`)).body;
    const layerBase = graph.bases.find((b: any) => b.how === 'layers');
    assert.deepEqual([layerBase?.digest, layerBase?.baseRepository], [d.base, 'team/base']);
    const index = (await h.request('GET', `/api/v1/trace/${d.index}`)).body;
    assert.deepEqual(index.images.map((i: any) => i.repository), ['team/app'], 'the index is traced too');
  });

  test('a second pass records nothing: the index already holds every stored image', async () => {
    await waitFor('backfill finished', async () => ((await h.request('GET', `/api/v1/trace/${d.index}`)).body?.images?.length ? true : undefined));
    assert.equal(await h.registry.trace!.backfill(), 0);
  });
});
