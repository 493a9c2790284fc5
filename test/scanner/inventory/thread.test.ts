/**
 * The inventory stage run in a worker thread (scanner.isolation.thread): the same result as in the
 * server's thread, the same typed failures, backpressure over many chunks, abort, and a heap limit
 * that fails the scan instead of the process.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { LayerError } from '../../../src/registry/scanner/inventory/errors.ts';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { inventoryInThread } from '../../../src/registry/scanner/inventory-thread.ts';
import { buildTar, layer, layerFromBlob } from './helpers.ts';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const dpkg = (name: string, version: string) => `Package: ${name}\nStatus: install ok installed\nVersion: ${version}\nArchitecture: amd64\n`;

describe('inventory in a worker thread', () => {
  it('finds what the in-thread walk finds, over many small chunks (backpressure)', async () => {
    const specs = [
      [{ name: 'etc/os-release', content: 'ID=debian\nVERSION_ID="12"\n' }, { name: 'var/lib/dpkg/status', content: dpkg('bash', '5.2.15-2') + '\n' + dpkg('tar', '1.34+dfsg-1.2') }],
      [{ name: 'filler', content: Buffer.alloc(3_000_000, 7) }, { name: 'usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA', content: 'Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\n' }],
    ];
    const direct = await inventoryImage(await Promise.all(specs.map((s) => layer(s))));
    // 4 KiB chunks: hundreds of messages, far more than the credit window
    const threaded = await inventoryInThread(
      await Promise.all(specs.map(async (s) => layerFromBlob(gzipSync(await buildTar(s)), GZ, 4096))),
      { maxMemoryMb: 256 },
    );
    const names = (r: typeof direct) => r.inventory.packages.map((p) => `${p.kind}:${p.name}@${p.version}@@${p.layerDiffId}`).sort();
    assert.deepEqual(names(threaded), names(direct));
    assert.ok(names(threaded).some((n) => n.startsWith('dpkg:bash@5.2.15-2@@sha256:')), names(threaded).join(','));
    assert.equal(threaded.inventory.os?.id, 'debian');
    assert.deepEqual(threaded.layers.map((l) => l.diffId), direct.layers.map((l) => l.diffId));
  });

  it('a hostile layer fails with the same typed error as in the server thread', async () => {
    const blob = gzipSync(await buildTar([{ name: 'a', content: Buffer.alloc(300_000, 1) }]));
    const truncated = () => layerFromBlob(blob.subarray(0, blob.length >> 1), GZ);
    await assert.rejects(inventoryInThread([truncated()], { maxMemoryMb: 128 }), (e: unknown) => {
      assert.ok(e instanceof LayerError, String(e));
      assert.equal(e.code, 'truncated');
      assert.equal(typeof e.layerDigest, 'string');
      return true;
    });
  });

  it('an aborted scan rejects at once and stops the thread', async () => {
    const controller = new AbortController();
    const endless = {
      digest: 'sha256:' + '0'.repeat(64),
      mediaType: GZ,
      // never ends: only the abort can finish this scan
      stream: new (await import('node:stream')).Readable({ read() {} }),
    };
    const running = inventoryInThread([endless], { maxMemoryMb: 128, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(running, (e: unknown) => e instanceof LayerError && e.code === 'aborted');
  });

  it('a reused thread gives each scan its own result, after a typed failure and concurrently', async () => {
    const blob = gzipSync(await buildTar([{ name: 'a', content: Buffer.alloc(300_000, 1) }]));
    await assert.rejects(inventoryInThread([layerFromBlob(blob.subarray(0, blob.length >> 1), GZ, 4096)], { maxMemoryMb: 128 }), LayerError);
    // same heap limit: these run in the worker(s) kept from the scans before; small chunks leave
    // acknowledgements in flight when each scan ends
    const scan = async (name: string, version: string) => {
      const tar = await buildTar([{ name: 'filler', content: Buffer.alloc(200_000, 3) }, { name: 'var/lib/dpkg/status', content: dpkg(name, version) }]);
      return inventoryInThread([layerFromBlob(gzipSync(tar), GZ, 4096)], { maxMemoryMb: 128 });
    };
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all([scan('bash', `5.${round}`), scan('tar', `1.${round}`), scan('zlib', `2.${round}`)]);
      assert.deepEqual(
        results.map((r) => r.inventory.packages.map((p) => `${p.name}@${p.version}`)),
        [[`bash@5.${round}`], [`tar@1.${round}`], [`zlib@2.${round}`]],
      );
    }
  });

  it('a scan that needs more memory than the thread may use fails alone, with a reason', async () => {
    // many package entries inflate the in-memory inventory far beyond the compressed size; the
    // walker's own retained-bytes limit is lifted so that only the thread's heap limit can stop it
    const entries = [];
    for (let i = 0; i < 40; i++) {
      let status = '';
      for (let j = 0; j < 4000; j++) status += dpkg(`pkg-${i}-${j}-${'x'.repeat(200)}`, `1.${j}`) + '\n';
      entries.push({ name: `var/lib/dpkg/status.d/p${i}`, content: status });
    }
    const blob = gzipSync(await buildTar(entries));
    await assert.rejects(
      inventoryInThread([layerFromBlob(blob, GZ)], { maxMemoryMb: 64, limits: { maxRetainedBytes: 4 * 1024 ** 3 } }),
      (e: unknown) => {
        assert.ok(e instanceof LayerError, String(e));
        assert.equal(e.code, 'retained-limit');
        assert.match(e.message, /needed more than 64 MiB of memory/);
        return true;
      },
    );
    // the server thread is unharmed and the next scan works
    const ok = await inventoryInThread([await layer([{ name: 'var/lib/dpkg/status', content: dpkg('bash', '5.2') }])], { maxMemoryMb: 128 });
    assert.equal(ok.inventory.packages.length, 1);
  });
});
