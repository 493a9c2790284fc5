/**
 * The scanner's store on one engine: the job queue (claiming with leases by several workers at
 * once, back-off, lost leases, re-queueing, restarts), results (revisions guarding re-evaluation
 * writes, pages of inventories not yet evaluated, forgetting deleted images) and exemptions.
 * Run against SQLite and PostgreSQL by store.sqlite.test.ts and store.postgres.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BuilderSbomStore } from '../../src/registry/scanner/builder-sbom.ts';
import { ExemptionStore, newExemption } from '../../src/registry/scanner/exemptions.ts';
import { JobQueue } from '../../src/registry/scanner/jobs.ts';
import { type Evaluation, type ScanRecord, ScanStore } from '../../src/registry/scanner/store.ts';
import { evaluationOf, type FindingTemplate, templateKey } from '../../src/registry/scanner/evaluation.ts';
import type { VulnerabilityFinding } from '../../src/registry/scanner/model.ts';

export type OpenStore = () => Promise<{ store: ScanStore; /** A second connection to the same database (another replica). */ other: () => Promise<ScanStore>; close(): Promise<void> }>;

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function finding(id: string, severity: VulnerabilityFinding['severity'], packageIndex = 0): VulnerabilityFinding {
  return { id, aliases: [], cves: [], packageIndex, packageName: 'p', ecosystem: 'npm', matchedName: 'p', installedVersion: '1.0.0', fixedVersions: ['1.0.1'], fixAvailable: true, severity, severitySource: 'cvss:3.1', malicious: false };
}

/** An evaluation of findings (each its own template list, all on package 0). */
function evaluation(findings: VulnerabilityFinding[], fingerprint: string, dbHash: string): Evaluation {
  const templates: FindingTemplate[] = findings.map(({ packageIndex: _i, packageName: _n, ...t }) => t);
  const e = evaluationOf(templates.length > 0 ? [{ packageIndex: 0, findings: templates }] : [], { hash: dbHash, updatedAt: 1000 });
  return { ...e, fingerprint };
}

function record(ev: Evaluation): ScanRecord {
  return { scannerVersion: '1', os: { id: 'debian', versionId: '12' }, inventory: { packages: [{ name: 'p' }] }, matchInput: { layers: [], packages: [['npm', 'p', '1.0.0', null, null, null, null]] }, secrets: [], configFindings: [], evaluation: ev };
}

export function runScanStoreSuite(engine: string, open: OpenStore): void {
  describe(`scanner store: ${engine}`, () => {
    test('a job is claimed by exactly one of several racing workers, and a pending job is not duplicated', async () => {
      const h = await open();
      try {
        const other = await h.other();
        const a = new JobQueue(h.store.db);
        const b = new JobQueue(other.db);
        for (let i = 0; i < 40; i++) assert.equal(await a.enqueue({ id: `scan:${d(i)}`, kind: 'scan', digest: d(i) }, 1000), true);
        assert.equal(await b.enqueue({ id: `scan:${d(0)}`, kind: 'scan', digest: d(0) }, 1000), false, 'same key: no second job');
        const claimed: string[] = [];
        await Promise.all(
          Array.from({ length: 8 }, async (_, w) => {
            const q = w % 2 === 0 ? a : b;
            for (;;) {
              const jobs = await q.claim(3, 2000, 60_000);
              if (jobs.length === 0) break;
              claimed.push(...jobs.map((j) => j.id));
            }
          }),
        );
        assert.equal(claimed.length, 40, 'every job claimed once');
        assert.equal(new Set(claimed).size, 40, 'no job claimed twice');
        assert.equal((await a.claim(10, 3000, 60_000)).length, 0, 'running jobs with a live lease are not claimable');
        await other.close();
      } finally {
        await h.close();
      }
    });

    test('an expired lease makes the job claimable again; the old holder can no longer touch it', async () => {
      const h = await open();
      try {
        const q = new JobQueue(h.store.db);
        await q.enqueue({ id: 'scan:x', kind: 'scan', digest: d(1) }, 0);
        const [first] = await q.claim(1, 10, 100);
        assert.ok(first);
        assert.equal(first.attempts, 1);
        assert.equal((await q.claim(1, 50, 100)).length, 0);
        // The worker died: after the lease, another claims it (this is how jobs survive restarts).
        const [second] = await q.claim(1, 200, 100);
        assert.ok(second);
        assert.equal(second.attempts, 2);
        assert.notEqual(second.leaseToken, first.leaseToken);
        assert.equal(await q.heartbeat(first, 210, 100), false, 'lost lease');
        await q.complete(first, 220); // ignored: not the holder
        assert.equal(await q.pending(), 1);
        assert.equal(await q.heartbeat(second, 230, 100), true);
        await q.complete(second, 240);
        assert.equal(await q.pending(), 0);
      } finally {
        await h.close();
      }
    });

    test('retry waits for its back-off; release gives the attempt back; re-enqueueing a running job runs it once more', async () => {
      const h = await open();
      try {
        const q = new JobQueue(h.store.db);
        await q.enqueue({ id: 'rematch', kind: 'rematch', priority: 0 }, 0);
        const [job] = await q.claim(1, 0, 1000);
        await q.retry(job!, 'boom', 5000, 10);
        assert.equal((await q.claim(1, 4999, 1000)).length, 0, 'not before run_after');
        const [again] = await q.claim(1, 5000, 1000);
        assert.equal(again!.attempts, 2);
        assert.equal(again!.lastError, 'boom');
        await q.release(again!, 5001);
        const [third] = await q.claim(1, 5002, 1000);
        assert.equal(third!.attempts, 2, 'a released attempt does not count');
        // Asked again while running: done once more after this run, never twice at once.
        await q.enqueue({ id: 'rematch', kind: 'rematch', priority: 0, payload: { n: 2 } }, 5003, { replace: true });
        assert.equal((await q.claim(1, 5004, 1000)).length, 0);
        await q.complete(third!, 5005);
        const [fourth] = await q.claim(1, 5006, 1000);
        assert.ok(fourth, 're-queued');
        assert.deepEqual(fourth.payload, { n: 2 });
        assert.equal(fourth.attempts, 1);
        await q.complete(fourth, 5007);
        assert.equal(await q.pending(), 0);
      } finally {
        await h.close();
      }
    });

    test('higher priority (rematch) is claimed first', async () => {
      const h = await open();
      try {
        const q = new JobQueue(h.store.db);
        await q.enqueue({ id: 'scan:1', kind: 'scan', digest: d(1), priority: 1 }, 0);
        await q.enqueue({ id: 'rematch', kind: 'rematch', priority: 0 }, 10);
        const [first] = await q.claim(1, 20, 1000);
        assert.equal(first!.kind, 'rematch');
      } finally {
        await h.close();
      }
    });

    test('results: statuses, revisions guard re-evaluation writes, pages skip evaluated inventories', async () => {
      const h = await open();
      try {
        const s = h.store;
        await s.recordImage('team/app', d(1), 'application/vnd.oci.image.manifest.v1+json', 1);
        await s.markQueued(d(1), 1);
        assert.equal((await s.status(d(1)))?.status, 'queued');
        await s.markRunning(d(1), 2);
        await s.saveScan(d(1), record(evaluation([finding('CVE-1', 'high')], 'fp1', 'db1')), 3);
        const r = await s.result(d(1));
        assert.equal(r?.status, 'complete');
        assert.equal(r?.revision, 1);
        assert.equal(r?.findings.length, 1);
        assert.equal(r?.summary?.bySeverity.high, 1);
        assert.deepEqual(r?.os, { id: 'debian', versionId: '12' });
        assert.equal(await s.needsRematch('db1'), false);
        assert.equal(await s.needsRematch('db2'), true);

        for (let i = 2; i <= 5; i++) {
          await s.recordImage('team/app', d(i), 'application/vnd.oci.image.manifest.v1+json', 1);
          await s.saveScan(d(i), record(evaluation([], 'empty', 'db1')), 3);
        }
        const page = await s.rematchPage('', 3, 'db2');
        assert.deepEqual(page.map((p) => p.digest), [d(1), d(2), d(3)]);
        assert.equal(page[0]!.fingerprint, 'fp1');
        assert.deepEqual(page[0]!.matchInput.packages[0], ['npm', 'p', '1.0.0', null, null, null, null]);

        // A scan completed meanwhile (revision 2): the stale evaluation of revision 1 is not written.
        await s.saveScan(d(1), record(evaluation([finding('CVE-1', 'high'), finding('CVE-2', 'low')], 'fp2', 'db2')), 4);
        const written = await s.applyEvaluations(
          [
            { digest: d(1), revision: 1, evaluation: evaluation([], 'none', 'db2') },
            { digest: d(2), revision: 1, evaluation: evaluation([finding('CVE-9', 'critical')], 'fp9', 'db2') },
          ],
          [d(3)],
          { hash: 'db2', updatedAt: 2000 },
          5,
        );
        assert.deepEqual([...written], [d(2)]);
        assert.equal((await s.result(d(1)))?.findings.length, 2, 'the newer scan stays');
        assert.equal((await s.result(d(2)))?.summary?.bySeverity.critical, 1);
        assert.equal((await s.result(d(3)))?.dbHash, 'db2');
        assert.deepEqual((await s.rematchPage('', 10, 'db2')).map((p) => p.digest), [d(4), d(5)]);
        const before = await s.refsOf([d(2), d(4)]);
        const key = (await s.result(d(2)))!.findings[0]!;
        assert.equal(key.id, 'CVE-9');
        assert.equal(key.packageName, 'p', 'materialised with the package of the inventory');
        const [, k] = before.get(d(2))!.split(':') as [string, string];
        assert.equal(before.get(d(4)), '');
        assert.equal((await s.templates([k, 'nope'])).get(k)?.severity, 'critical');
        assert.equal(k, templateKey((await s.templates([k])).get(k)!), 'keys are content hashes');
        assert.deepEqual(await s.counts(), { queued: 0, running: 0, complete: 5, failed: 0 });
      } finally {
        await h.close();
      }
    });

    test('a failed scan keeps its reason; forgetting an image drops the result once no repository holds it', async () => {
      const h = await open();
      try {
        const s = h.store;
        await s.recordImage('a/x', d(7), 'm', 1);
        await s.recordImage('b/x', d(7), 'm', 1);
        await s.markFailed(d(7), 'decompression-bomb: layer 0 expands 1000x', 2);
        assert.deepEqual(await s.status(d(7)), { status: 'failed', reason: 'decompression-bomb: layer 0 expands 1000x', completedAt: 2 });
        assert.deepEqual(await s.repositoriesOf(d(7)), ['a/x', 'b/x']);
        await s.setReferrers('a/x', d(7), { cyclonedx: d(8) });
        assert.deepEqual((await s.image('a/x', d(7)))?.referrers, { cyclonedx: d(8) });
        assert.equal(await s.forgetImage('a/x', d(7)), false);
        assert.ok(await s.result(d(7)));
        assert.equal(await s.forgetImage('b/x', d(7)), true);
        assert.equal(await s.result(d(7)), undefined);
      } finally {
        await h.close();
      }
    });

    test('exemptions: create, list in force, revoke (kept), expiry warnings taken once', async () => {
      const h = await open();
      try {
        const x = new ExemptionStore(h.store.db);
        const day = 86_400_000;
        const now = 1_700_000_000_000;
        const input = (v: string, days: number, scope: 'project' | 'repository' = 'project') => ({
          vulnerability: v,
          scope,
          ...(scope === 'project' ? { project: 'team' } : { repository: 'team/app' }),
          owner: 'alice',
          reason: 'not reachable',
          expiresAt: new Date(now + days * day).toISOString(),
        });
        const a = newExemption(input('CVE-2024-1', 30), 'alice', now, 365 * day);
        const b = newExemption(input('CVE-2024-2', 5, 'repository'), 'alice', now, 365 * day);
        await x.create(a);
        await x.create(b);
        assert.equal(b.project, 'team');
        assert.deepEqual((await x.inForce('team/app', now)).map((e) => e.id).sort(), [a.id, b.id].sort());
        assert.deepEqual((await x.inForce('team/other', now)).map((e) => e.id), [a.id]);
        assert.deepEqual((await x.list({ project: 'team', expiringBefore: now + 7 * day }, now)).map((e) => e.id), [b.id]);
        assert.deepEqual((await x.takeExpiring(now + 14 * day, now)).map((e) => e.id), [b.id]);
        assert.deepEqual(await x.takeExpiring(now + 14 * day, now), [], 'warned once');
        assert.equal(await x.revoke(a.id, 'bob', now + 1), true);
        assert.equal(await x.revoke(a.id, 'bob', now + 2), false);
        assert.deepEqual((await x.inForce('team/app', now + 3)).map((e) => e.id), [b.id]);
        const revoked = await x.get(a.id);
        assert.equal(revoked?.revokedBy, 'bob');
        assert.equal((await x.list({ project: 'team', all: true }, now)).length, 2);
        assert.deepEqual(await x.inForce('team/app', now + 6 * day), [], 'expired ones no longer apply');
      } finally {
        await h.close();
      }
    });

    test('builder SBOMs: stored per referrer and repository, listed by subject, forgotten per repository; inventories replaced without a new scan time', async () => {
      const h = await open();
      try {
        const b = new BuilderSbomStore(h.store.db);
        const sbom = { id: d(7), repository: 'team/app', subject: d(1), format: 'cyclonedx' as const, tool: 'syft 1.4.1', packages: [{ purl: 'pkg:npm/a@1.0.0' }, { purl: 'pkg:pypi/b@2.0' }], createdAt: 5 };
        await b.put(sbom);
        await b.put(sbom); // idempotent
        await b.put({ ...sbom, repository: 'team/mirror' });
        await b.put({ id: d(8), repository: 'team/app', subject: d(2), format: 'spdx', packages: [], createdAt: 6 });
        const listed = await b.forSubject(d(1));
        assert.deepEqual(
          listed.map((x) => x.repository),
          ['team/app', 'team/mirror'],
        );
        assert.deepEqual(listed[0], sbom);
        assert.equal((await b.forSubject(d(2)))[0]!.tool, undefined);
        assert.equal(await b.delete('team/app', d(7)), d(1));
        assert.equal(await b.delete('team/app', d(7)), undefined);
        assert.deepEqual(
          (await b.forSubject(d(1))).map((x) => x.repository),
          ['team/mirror'],
        );

        const s = h.store;
        await s.recordImage('team/app', d(3), 'application/vnd.oci.image.manifest.v1+json', 1);
        assert.equal(await s.replaceInventory(d(3), { packages: [] }, { layers: [], packages: [] }, evaluation([], 'fpx', 'db1'), 9), false, 'no complete result yet');
        await s.saveScan(d(3), record(evaluation([], 'fp1', 'db1')), 3);
        assert.equal(await s.replaceInventory(d(3), { packages: [], builderSboms: [] }, { layers: [], packages: [] }, evaluation([finding('CVE-9', 'critical')], 'fp2', 'db1'), 9), true);
        const r = await s.result(d(3));
        assert.equal(r?.revision, 2);
        assert.equal(r?.completedAt, 3, 'the scan time stays');
        assert.equal(r?.summary?.bySeverity.critical, 1);
        assert.deepEqual(r?.inventory, { packages: [], builderSboms: [] });
      } finally {
        await h.close();
      }
    });
  });
}
