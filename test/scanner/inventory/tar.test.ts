/**
 * The tar reader against archives written by GNU tar itself (gnu, posix/pax and ustar formats:
 * long names and link targets, hard links, directories), hand-made headers (base-256 sizes, pax
 * globals), any chunking, and broken input.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LayerError } from '../../../src/registry/scanner/inventory/errors.ts';
import { TarReader, type TarEntryHeader } from '../../../src/registry/scanner/inventory/tar.ts';
import { buildTar, quickTar } from './helpers.ts';

async function read(tar: Buffer, chunk = tar.length): Promise<Array<TarEntryHeader & { body: string }>> {
  const out: Array<TarEntryHeader & { body: string }> = [];
  const reader = new TarReader((h) => {
    const parts: Buffer[] = [];
    return { data: (c) => parts.push(Buffer.from(c)), end: () => void out.push({ ...h, body: Buffer.concat(parts).toString() }) };
  });
  for (let i = 0; i < tar.length; i += chunk) await reader.write(tar.subarray(i, i + chunk));
  reader.end();
  return out;
}

const longDir = `deep/${'d'.repeat(90)}/${'e'.repeat(90)}`;
const longName = `${longDir}/${'f'.repeat(120)}.txt`;

describe('archives written by GNU tar', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tar-'));
    const root = join(dir, 'root');
    mkdirSync(join(root, longDir), { recursive: true });
    writeFileSync(join(root, longName), 'long');
    writeFileSync(join(root, 'a.txt'), 'A'.repeat(1000));
    linkSync(join(root, 'a.txt'), join(root, 'hard.txt'));
    symlinkSync(`../${longName}`, join(root, 'deep/link'));
    writeFileSync(join(root, 'empty'), '');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['gnu', 'posix', 'ustar'] as const) {
    it(`--format=${format}`, async (t) => {
      let tar: Buffer;
      try {
        tar = execFileSync('tar', [`--format=${format}`, '--sort=name', '-C', join(dir, 'root'), '-cf', '-', '.']);
      } catch (e) {
        if (format === 'ustar') {
          // ustar cannot hold names this long: GNU tar refuses, which is the point of the other formats.
          t.diagnostic(String((e as Error).message).split('\n')[0]!);
          return;
        }
        throw e;
      }
      for (const chunk of [tar.length, 4096, 511, 1]) {
        const entries = await read(tar, chunk);
        const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ''), e]));
        assert.equal(byName.get(longName)?.body, 'long', `${format}/${chunk}`);
        assert.equal(byName.get(longName)?.type, 'file');
        assert.equal(byName.get('a.txt')?.body, 'A'.repeat(1000));
        const hard = [byName.get('a.txt'), byName.get('hard.txt')].find((e) => e?.type === 'link');
        assert.ok(hard !== undefined && /a\.txt|hard\.txt/.test(hard.linkname), 'hard link');
        assert.equal(byName.get('deep/link')?.type, 'symlink');
        assert.equal(byName.get('deep/link')?.linkname, `../${longName}`);
        assert.equal(byName.get('deep/')?.type ?? byName.get('deep')?.type, 'directory');
        assert.equal(byName.get('empty')?.size, 0);
        if (chunk === 1) break;
      }
    });
  }
});

describe('hand-made headers', () => {
  it('tar-stream pax headers (long names) and base-256 sizes', async () => {
    const name = `x/${'n'.repeat(300)}`;
    const entries = await read(await buildTar([{ name, content: 'pax' }]), 100);
    assert.deepEqual(entries.map((e) => [e.name, e.body]), [[name, 'pax']]);
    const t = quickTar([{ name: 'big', content: 'hello' }]);
    t.fill(0, 124, 136);
    t[124] = 0x80;
    t[135] = 5; // base-256 size 5
    let sum = 0;
    t.fill(0x20, 148, 156);
    for (let i = 0; i < 512; i++) sum += t[i]!;
    t.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.deepEqual((await read(t)).map((e) => [e.name, e.size, e.body]), [['big', 5, 'hello']]);
  });

  it('ignores what follows the end-of-archive blocks, accepts archives without them', async () => {
    const t = quickTar([{ name: 'a', content: 'x' }]);
    assert.equal((await read(Buffer.concat([t, Buffer.from('trailing garbage')]))).length, 1);
    assert.equal((await read(t.subarray(0, t.length - 1024))).length, 1);
  });

  it('rejects bad checksums, oversized extended headers and truncation', async () => {
    const t = quickTar([{ name: 'a', content: 'x' }]);
    const bad = Buffer.from(t);
    bad[0] = 0x62;
    await assert.rejects(read(bad), (e: unknown) => e instanceof LayerError && e.code === 'corrupt-tar');
    const pax = quickTar([{ name: 'PaxHeader', content: Buffer.alloc(2 * 1024 * 1024, 0x61) }]);
    pax[156] = 0x78;
    let sum = 0;
    pax.fill(0x20, 148, 156);
    for (let i = 0; i < 512; i++) sum += pax[i]!;
    pax.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await assert.rejects(read(pax.subarray(0, 4096)), (e: unknown) => e instanceof LayerError && e.code === 'corrupt-tar' && /extended/.test(e.message));
    await assert.rejects(read(t.subarray(0, 600)), (e: unknown) => e instanceof LayerError && e.code === 'truncated');
    await assert.rejects(read(t.subarray(0, 300)), (e: unknown) => e instanceof LayerError && e.code === 'truncated');
  });
});
