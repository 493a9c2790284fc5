/**
 * Importing OSV data: directories (with a malformed record rejected alone), zips (including
 * hostile ones), HTTP(S) URLs with conditional requests against a local server, content hashes,
 * change summaries, and the persisted snapshot.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { fixturesSkip, scannerFixtures } from '../../../../test/scanner/vuln-fixtures.ts';
import { buildZip } from '../../../../test/scanner/zip-writer.ts';
import { VulnDatabase } from './database.ts';
import { importOsv, importPath, importUrl } from './import.ts';
import { SourceError } from './sources.ts';
import { loadDatabase, saveDatabase, SnapshotError, snapshotPath } from './store.ts';

const rec = (id: string, fixed = '2.0.0', modified = '2024-01-01T00:00:00Z') =>
  JSON.stringify({ id, modified, affected: [{ package: { ecosystem: 'npm', name: 'pkg' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed }] }] }] });

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'vulndb-test-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('OSV import', () => {
  test('directory: JSON and YAML twins, a malformed record rejected with its reason, the rest imported', { skip: fixturesSkip() }, async () => {
    const dir = join(work, 'dir');
    await cp(join(scannerFixtures(), 'osv'), dir, { recursive: true });
    await writeFile(join(dir, 'npm', 'BROKEN-1.json'), '{"id": "BROKEN-1", "modified": 5}');
    await writeFile(join(dir, 'npm', 'notes.txt'), 'ignored');
    const db = new VulnDatabase();
    const report = await importPath(db, dir);
    assert.equal(report.status, 'imported');
    assert.equal(report.rejectedCount, 1);
    assert.equal(report.rejected[0]!.path, join('npm', 'BROKEN-1.json'));
    assert.equal(report.rejected[0]!.id, 'BROKEN-1');
    assert.match(report.rejected[0]!.reason, /modified/);
    assert.equal(db.size, 50);
    assert.equal(report.changes.added.length, 50);
    assert.equal(report.meta!.records, 50);
    assert.match(report.meta!.contentHash, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(report.meta!.importedAt)));
    // Same content again: unchanged, nothing replaced.
    const again = await importPath(db, dir);
    assert.equal(again.status, 'unchanged');
  });

  test('zip: same records as a directory give the same content hash; re-import reports changes', async () => {
    const dir = join(work, 'samedir');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'A-1.json'), rec('A-1'));
    await writeFile(join(dir, 'A-2.json'), rec('A-2'));
    const zip1 = join(work, 'all1.zip');
    await writeFile(zip1, buildZip([{ name: 'A-1.json', data: rec('A-1'), deflate: true }, { name: 'A-2.json', data: rec('A-2') }, { name: 'x/', data: '' }]));
    const dbDir = new VulnDatabase();
    const dbZip = new VulnDatabase();
    const rd = await importPath(dbDir, dir);
    const rz = await importPath(dbZip, zip1);
    assert.equal(rz.meta!.kind, 'zip');
    assert.equal(rz.meta!.contentHash, rd.meta!.contentHash);
    // A newer all.zip for the same source: one changed, one removed, one added.
    await writeFile(zip1, buildZip([{ name: 'A-1.json', data: rec('A-1', '3.0.0', '2024-02-01T00:00:00Z') }, { name: 'A-3.json', data: rec('A-3') }]));
    const r2 = await importPath(dbZip, zip1);
    assert.deepEqual(r2.changes, { added: ['A-3'], removed: ['A-2'], changed: ['A-1'] });
    assert.equal(dbZip.get('A-1')!.affected[0]!.ranges[0]!.events[1]!.version, '3.0.0');
  });

  test('hostile zips fail cleanly with a reason and leave the database untouched', async () => {
    const db = new VulnDatabase();
    await importPath(db, join(work, 'samedir'));
    const before = db.meta.contentHash;
    const cases: [string, Buffer, RegExp, object?][] = [
      ['lying-size.zip', buildZip([{ name: 'A.json', data: rec('A-9'), declaredSize: 5 }]), /corrupt zip|size/i],
      ['too-many.zip', buildZip(Array.from({ length: 20 }, (_, i) => ({ name: `R-${i}.json`, data: rec(`R-${i}`) }))), /entries/, { maxEntries: 10 }],
      ['big-entry.zip', buildZip([{ name: 'B.json', data: ' '.repeat(5000) + rec('B-1'), deflate: true }]), /too large/, { maxEntryBytes: 1000 }],
      ['bomb.zip', buildZip([{ name: 'C.json', data: ' '.repeat(200_000) + rec('C-1'), deflate: true }]), /too large/, { maxTotalBytes: 100_000 }],
      ['truncated.zip', buildZip([{ name: 'D.json', data: rec('D-1') }]).subarray(0, 60), /not a readable zip|corrupt/],
    ];
    for (const [name, bytes, reason, limits] of cases) {
      const file = join(work, name);
      await writeFile(file, bytes);
      const lim = limits ? { maxEntries: 2_000_000, maxEntryBytes: 16 << 20, maxTotalBytes: 1 << 30, maxDownloadBytes: 1 << 30, maxDepth: 32, ...limits } : undefined;
      await assert.rejects(importPath(db, file, lim ? { limits: lim } : {}), (err: unknown) => err instanceof SourceError && reason.test(err.message), name);
    }
    assert.equal(db.meta.contentHash, before);
    await assert.rejects(importPath(db, join(work, 'nope')), SourceError);
  });

  test('a JSON array of records (API dump) and a single record file', async () => {
    const file = join(work, 'dump.json');
    await writeFile(file, `[${rec('J-1')},${rec('J-2')},{"id":"J-3"}]`);
    const db = new VulnDatabase();
    const r = await importOsv(db, file);
    assert.equal(db.size, 2);
    assert.equal(r.rejectedCount, 1);
    assert.equal(r.rejected[0]!.path.endsWith('[2]'), true);
  });

  describe('HTTP(S) URL import with conditional requests (local server on 127.0.0.1)', () => {
    let server: Server;
    let base: string;
    let body = buildZip([{ name: 'U-1.json', data: rec('U-1') }]);
    let etag = '"v1"';
    const lastModified = 'Wed, 01 May 2024 10:00:00 GMT';
    const seen: { inm?: string; ims?: string }[] = [];
    before(async () => {
      server = createServer((req, res) => {
        const h: { inm?: string; ims?: string } = {};
        if (req.headers['if-none-match']) h.inm = req.headers['if-none-match'];
        if (req.headers['if-modified-since']) h.ims = req.headers['if-modified-since'];
        seen.push(h);
        if (req.url === '/huge') {
          res.writeHead(200, { 'content-type': 'application/zip' });
          res.end(Buffer.alloc(4096));
          return;
        }
        if (req.url === '/missing') {
          res.writeHead(404).end();
          return;
        }
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304, { etag }).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/zip', etag, 'last-modified': lastModified, 'content-length': body.length });
        res.end(body);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    test('200, then 304 with If-None-Match/If-Modified-Since, then a changed body', async () => {
      const db = new VulnDatabase();
      const r1 = await importUrl(db, `${base}/npm/all.zip`);
      assert.equal(r1.status, 'imported');
      assert.equal(r1.meta!.etag, '"v1"');
      assert.equal(r1.meta!.lastModified, lastModified);
      assert.deepEqual(seen.at(-1), {});
      const r2 = await importUrl(db, `${base}/npm/all.zip`);
      assert.equal(r2.status, 'unchanged');
      assert.deepEqual(seen.at(-1), { inm: '"v1"', ims: lastModified });
      body = buildZip([{ name: 'U-1.json', data: rec('U-1') }, { name: 'U-2.json', data: rec('U-2') }]);
      etag = '"v2"';
      const r3 = await importOsv(db, `${base}/npm/all.zip`);
      assert.equal(r3.status, 'imported');
      assert.deepEqual(r3.changes.added, ['U-2']);
      assert.equal(db.meta.sources.find((s) => s.source === `${base}/npm/all.zip`)!.etag, '"v2"');
    });

    test('errors: HTTP status, size limit, scheme', async () => {
      const db = new VulnDatabase();
      await assert.rejects(importUrl(db, `${base}/missing`), /HTTP 404/);
      await assert.rejects(
        importUrl(db, `${base}/huge`, { limits: { maxEntries: 10, maxEntryBytes: 1 << 20, maxTotalBytes: 1 << 20, maxDownloadBytes: 1024, maxDepth: 4 } }),
        /larger than 1024/,
      );
      await assert.rejects(importUrl(db, 'file:///etc/passwd'), /scheme|supported/);
    });
  });

  test('snapshot: save, load, identical matching data; corrupt snapshots are clean errors', async () => {
    const db = new VulnDatabase();
    await importPath(db, join(work, 'samedir'));
    const file = snapshotPath(join(work, 'data'));
    await saveDatabase(db, file);
    const loaded = await loadDatabase(file);
    assert.equal(loaded.size, db.size);
    assert.deepEqual(loaded.meta, db.meta);
    assert.deepEqual(loaded.get('A-1'), db.get('A-1'));
    assert.equal(loaded.lookup('npm', 'pkg').length, 2);
    assert.equal((await loadDatabase(join(work, 'absent.gz'))).size, 0);
    const bad = join(work, 'bad.gz');
    await writeFile(bad, gzipSync('{"format":1,"meta":{"format":1,"sources":[],"contentHash":"","updatedAt":""}}\n{"s":"x"'));
    await assert.rejects(loadDatabase(bad), SnapshotError);
    await writeFile(bad, Buffer.from('not gzip at all'));
    await assert.rejects(loadDatabase(bad), SnapshotError);
    assert.ok((await readFile(file)).length > 0);
  });
});

describe('database entry points', () => {
  test('import, persist, reopen, status and staleness', async () => {
    const { openVulnDatabase, importAndPersist, databaseStatus } = await import('./index.ts');
    const dataDir = join(work, 'data-entry');
    const db = await openVulnDatabase(dataDir);
    assert.equal(databaseStatus(db, 3600).stale, true);
    const r = await importAndPersist(db, dataDir, join(work, 'samedir'), { now: () => new Date('2024-05-01T00:00:00Z') });
    assert.equal(r.status, 'imported');
    const reopened = await openVulnDatabase(dataDir);
    assert.equal(reopened.size, 2);
    const st = databaseStatus(reopened, 3600, new Date('2024-05-01T00:30:00Z'));
    assert.equal(st.ageSeconds, 1800);
    assert.equal(st.stale, false);
    assert.equal(databaseStatus(reopened, 3600, new Date('2024-05-01T02:00:00Z')).stale, true);
    assert.equal(st.sources[0]!.records, 2);
  });
});
