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
import { type ClaimedJob, type JobHandler, JobQueue, JobWorker } from '../../src/registry/scanner/jobs.ts';
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

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const workerOptions = { concurrency: 1, pollMs: 50, leaseMs: 60_000, maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 10 };

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

    test('enqueue, claim and completion each write in one transaction with the writes joined to them (all or nothing)', async () => {
      const h = await open();
      try {
        const s = h.store;
        const q = new JobQueue(s.db);
        const job = { id: `scan:${d(1)}`, kind: 'scan' as const, repository: 'a/x', digest: d(1) };
        // A failing joined write rolls back the image and the job with it.
        await assert.rejects(
          q.enqueue(job, 0, { before: (tx) => s.recordImage('a/x', d(1), 'm', 0, tx), after: async () => Promise.reject(new Error('boom')) }),
          /boom/,
        );
        assert.equal(await q.pending(), 0);
        assert.deepEqual(await s.repositoriesOf(d(1)), []);
        assert.equal(await q.enqueue(job, 0, { before: (tx) => s.recordImage('a/x', d(1), 'm', 0, tx), after: (tx) => s.markQueued(d(1), 0, { onlyFailed: true }, tx) }), true);
        assert.equal((await s.status(d(1)))?.status, 'queued');
        assert.equal(await q.enqueue(job, 1, { replace: true }), false, 'replaced, not created');
        // A failing claim hook leaves the job unclaimed; a succeeding one's value travels with the job.
        await assert.rejects(q.claimIds([job.id], 10, 1000, async () => Promise.reject(new Error('hook'))), /hook/);
        const [claimed] = await q.claimIds([job.id, 'scan:absent'], 10, 1000, async (tx, j) => ({ marked: await s.startScan(j.digest!, '1', false, 10, tx) }));
        assert.ok(claimed);
        assert.equal(claimed.attempts, 1, 'the rolled-back claim did not count');
        assert.deepEqual(claimed.started, { marked: true });
        assert.equal((await s.status(d(1)))?.status, 'running');
        assert.equal((await q.claimIds([job.id], 20, 1000)).length, 0, 'claimed once');
        // Completion with a failing write keeps the job (its lease runs out, another run records the result).
        await assert.rejects(
          q.complete(claimed, 30, async (tx) => {
            await s.markFailed(d(1), 'x', 30, tx);
            throw new Error('late');
          }),
          /late/,
        );
        assert.equal(await q.pending(), 1);
        assert.equal((await s.status(d(1)))?.status, 'running');
        assert.equal(await q.complete(claimed, 40, (tx) => s.markFailed(d(1), 'corrupt', 40, tx)), false, 'done, not queued again');
        assert.equal(await q.pending(), 0);
        assert.deepEqual(await s.status(d(1)), { status: 'failed', reason: 'corrupt', completedAt: 40 });
      } finally {
        await h.close();
      }
    });

    test('a result is marked queued only when new, failed or forced, and running when claimed unless current', async () => {
      const h = await open();
      try {
        const s = h.store;
        assert.equal(await s.startScan(d(2), '1', true, 0), false, 'no result row: none created');
        assert.equal(await s.status(d(2)), undefined);
        await s.markQueued(d(2), 1, { onlyFailed: true });
        assert.equal((await s.status(d(2)))?.status, 'queued', 'created');
        assert.equal(await s.startScan(d(2), '1', false, 2), true);
        await s.markQueued(d(2), 3, { onlyFailed: true });
        assert.equal((await s.status(d(2)))?.status, 'running', 'a running scan stays');
        await s.saveScan(d(2), record(evaluation([], 'f', 'db')), 4);
        await s.markQueued(d(2), 5, { onlyFailed: true });
        assert.equal((await s.status(d(2)))?.status, 'complete', 'a complete result stays');
        assert.equal(await s.startScan(d(2), '1', false, 6), false, 'current: not scanned again');
        assert.equal((await s.status(d(2)))?.status, 'complete');
        assert.equal(await s.startScan(d(2), '2', false, 7), true, 'made by another scanner version');
        await s.markFailed(d(2), 'r', 8);
        await s.markQueued(d(2), 9, { onlyFailed: true });
        assert.deepEqual(await s.status(d(2)), { status: 'queued', reason: undefined, completedAt: 8 }, 'a failed one is queued again');
        await s.saveScan(d(2), record(evaluation([], 'f', 'db')), 10);
        await s.markQueued(d(2), 11);
        assert.equal((await s.status(d(2)))?.status, 'queued', 'forced');
        assert.equal(await s.startScan(d(2), '1', true, 12), true);
      } finally {
        await h.close();
      }
    });

    test('worker: named jobs, jobs of another replica (polled), a job re-enqueued while running runs once more, an expired lease is taken over', async () => {
      const h = await open();
      const other = await h.other();
      const runs: string[] = [];
      let active = 0;
      let maxActive = 0;
      let gate: (() => void) | undefined;
      const handler: JobHandler = async (job) => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs.push(`${job.id}:${String(job.payload.n ?? '')}`);
        if (job.payload.hold === true) await new Promise<void>((resolve) => (gate = resolve));
        active--;
      };
      const hooks = { onGiveUp: async () => undefined, onError: (error: unknown) => assert.fail(String(error)) };
      const q = new JobQueue(h.store.db);
      const worker = new JobWorker(q, { scan: handler, rematch: handler, 'builder-sbom': handler }, hooks, { ...workerOptions, concurrency: 2 });
      worker.start();
      try {
        // Named to the worker by this process: more than its slots, all run.
        for (let i = 0; i < 5; i++) {
          await q.enqueue({ id: `scan:${d(i)}`, kind: 'scan', digest: d(i) }, Date.now());
          worker.wake(`scan:${d(i)}`);
        }
        await until('named jobs ran', () => runs.length === 5);
        assert.ok(maxActive <= 2, 'bounded concurrency');
        // Enqueued by another replica: found by polling.
        await new JobQueue(other.db).enqueue({ id: 'scan:other', kind: 'scan', digest: d(9) }, Date.now());
        await until('the other replica\'s job ran', () => runs.includes('scan:other:'));
        // Re-enqueued while running: runs again after the current run, never twice at once.
        runs.length = 0;
        await q.enqueue({ id: 'rematch', kind: 'rematch', payload: { hold: true, n: 1 } }, Date.now());
        worker.wake('rematch');
        await until('the first run started', () => gate !== undefined);
        await q.enqueue({ id: 'rematch', kind: 'rematch', payload: { n: 2 } }, Date.now(), { replace: true });
        worker.wake('rematch');
        await new Promise((resolve) => setTimeout(resolve, 120));
        assert.deepEqual(runs, ['rematch:1'], 'not while running');
        gate!();
        await until('it ran once more', () => runs.length === 2);
        assert.deepEqual(runs, ['rematch:1', 'rematch:2']);
        // Claimed by a replica that died (its lease runs out): taken over by this worker, restarted.
        runs.length = 0;
        await worker.stop();
        const dead = new JobQueue(other.db);
        await dead.enqueue({ id: 'scan:dead', kind: 'scan', digest: d(10) }, Date.now());
        const [taken] = await dead.claimIds(['scan:dead'], Date.now(), 100);
        assert.ok(taken);
        worker.start();
        await until('the expired lease was taken over', () => runs.includes('scan:dead:'));
        await until('the queue is empty', async () => (await q.pending()) === 0);
        assert.equal(await dead.heartbeat(taken, Date.now(), 100), false, 'the dead holder lost its lease');
      } finally {
        await worker.stop();
        await other.close();
        await h.close();
      }
    });

    test('worker: a handler or give-up records its outcome with the job\'s end', async () => {
      const h = await open();
      const s = h.store;
      const q = new JobQueue(s.db);
      const gaveUp: ClaimedJob[] = [];
      const handler: JobHandler = async (job, _signal, complete) => {
        if (job.payload.fail === true) throw new Error('corrupt');
        await complete((tx) => s.markFailed(job.digest!, 'recorded by the handler', 5, tx));
        throw new Error('after completion: changes nothing of the job');
      };
      const errors: unknown[] = [];
      const worker = new JobWorker(
        q,
        { scan: handler, rematch: handler, 'builder-sbom': handler },
        {
          onGiveUp: async (job, error, complete) => {
            gaveUp.push(job);
            await complete((tx) => s.markFailed(job.digest!, String((error as Error).message), 6, tx));
          },
          onError: (error) => errors.push(error),
        },
        { ...workerOptions, maxAttempts: 1 },
      );
      worker.start();
      try {
        await q.enqueue({ id: 'scan:a', kind: 'scan', digest: d(20) }, Date.now());
        worker.wake('scan:a');
        await q.enqueue({ id: 'scan:b', kind: 'scan', digest: d(21), payload: { fail: true } }, Date.now());
        worker.wake('scan:b');
        await until('both ended', async () => (await q.pending()) === 0 && (await s.status(d(21))) !== undefined);
        assert.equal((await s.status(d(20)))?.reason, 'recorded by the handler');
        assert.equal(errors.length, 1, 'the error after completion is reported, the job not retried');
        assert.deepEqual(gaveUp.map((j) => j.id), ['scan:b']);
        assert.equal((await s.status(d(21)))?.reason, 'corrupt');
      } finally {
        await worker.stop();
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
