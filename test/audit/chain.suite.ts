/**
 * The audit log on one backend: appends, the chain and checkpoints, tampering (each kind named
 * at exactly the record tampered with), retention with verifiable archives, queries, back-pressure
 * and concurrent writers. Run by chain.sqlite.test.ts and chain.postgres.test.ts.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { keyIdOf } from '../../src/registry/audit/keys.ts';
import type { AuditLog } from '../../src/registry/audit/log.ts';
import { type AuditEntry, type RecordFields, chainHash, presentRecord } from '../../src/registry/audit/record.ts';
import { AuditRetention } from '../../src/registry/audit/retention.ts';
import { recordFromRow } from '../../src/registry/audit/store.ts';
import { verifyAuditLog } from '../../src/registry/audit/verify.ts';
import type { AuditFixture, FixtureFactory } from './support.ts';

export function entry(i: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  const kinds = ['manifest.pulled', 'blob.pulled', 'manifest.pushed', 'tag.deleted'];
  return {
    at: new Date(Date.UTC(2025, 0, 1) + i * 1000),
    actor: i % 3 === 0 ? { kind: 'anonymous', auth: 'none' } : { kind: 'user', name: i % 3 === 1 ? 'alice' : 'bob', auth: 'token' },
    client: `10.0.0.${i % 7}`,
    userAgent: 'containerd/2.0',
    requestId: `req-${i}`,
    action: kinds[i % kinds.length]!,
    repository: `project${i % 2}/app`,
    digest: `sha256:${String(i).padStart(64, '0')}`,
    tag: i % 4 === 2 ? 'v1' : undefined,
    outcome: i % 10 === 9 ? 'denied' : 'success',
    details: i % 5 === 0 ? { size: i * 10, mediaType: 'application/vnd.oci.image.manifest.v1+json' } : undefined,
    ...overrides,
  };
}

export async function fill(log: AuditLog, count: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i++) assert.ok(log.record(entry(i)));
  await log.flush();
}

const verify = (f: AuditFixture, archiveDir?: string) => verifyAuditLog(f.store, { keys: f.keys, archiveDir, pageSize: 97 });

async function row(f: AuditFixture, seq: number) {
  const rows = await f.sql('SELECT * FROM audit_records WHERE seq = $1', [seq]);
  return recordFromRow(rows[0]!);
}

/** Moves records seq >= `from` up by one (two steps: unique checks are per row). */
async function shiftUp(f: AuditFixture, from: number): Promise<void> {
  await f.sql('UPDATE audit_records SET seq = -seq - 1 WHERE seq >= $1', [from]);
  await f.sql('UPDATE audit_records SET seq = -seq WHERE seq < 0');
}

async function insertRow(f: AuditFixture, seq: number, fields: RecordFields, prevHash: Buffer, hash: Buffer): Promise<void> {
  await f.sql(
    `INSERT INTO audit_records (seq, at, actor_kind, actor_name, actor_auth, client, user_agent, request_id, action, repository, digest, tag, outcome, reason, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [seq, fields.at, fields.actorKind, fields.actorName, fields.actorAuth, fields.client, fields.userAgent, fields.requestId, fields.action, fields.repository, fields.digest, fields.tag, fields.outcome, fields.reason, fields.details, prevHash, hash],
  );
}

function forged(at: number): RecordFields {
  return {
    at,
    actorKind: 'user',
    actorName: 'mallory',
    actorAuth: 'password',
    client: '203.0.113.9',
    userAgent: null,
    requestId: null,
    action: 'manifest.pulled',
    repository: 'secret/app',
    digest: null,
    tag: null,
    outcome: 'success',
    reason: null,
    details: null,
  };
}

export function runAuditSuite(backend: string, open: FixtureFactory): void {
  const withFixture = (name: string, fn: (f: AuditFixture) => Promise<void>) =>
    test(`${backend}: ${name}`, async () => {
      const f = await open();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    });

  withFixture('records form a verifiable chain with signed checkpoints', async (f) => {
    const log = f.log();
    await fill(log, 250);
    const { seq } = await log.append(entry(250, { action: 'auth.failed', outcome: 'failure', reason: 'bad password' }));
    assert.equal(seq, 251);
    await log.close();
    const report = await verify(f);
    assert.equal(report.ok, true, report.failure?.message);
    assert.equal(report.records, 251);
    assert.equal(report.firstSeq, 1);
    assert.equal(report.lastSeq, 251);
    // Every 100 records, and a final one at close.
    assert.deepEqual((await f.store.checkpoints()).map((c) => c.seq), [100, 200, 251]);
    assert.equal(report.lastCheckpoint?.seq, 251);
    assert.equal(report.unsigned, 0);
    const stored = await f.store.record(251);
    assert.equal(stored?.action, 'auth.failed');
    assert.equal(stored?.reason, 'bad password');
    assert.deepEqual((await f.store.record(6))?.details, JSON.stringify({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 50 }));
  });

  withFixture('an empty log verifies', async (f) => {
    const report = await verify(f);
    assert.equal(report.ok, true);
    assert.equal(report.records, 0);
  });

  withFixture('tamper: a changed field is named as altered at exactly that record', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    await f.sql(`UPDATE audit_records SET actor_name = 'mallory' WHERE seq = 137`);
    const report = await verify(f);
    assert.equal(report.ok, false);
    assert.equal(report.failure?.kind, 'altered');
    assert.equal(report.failure?.seq, 137);
  });

  withFixture('tamper: a change whose hash was recomputed breaks the next link; a rewritten chain contradicts the checkpoint', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    const r = await row(f, 137);
    const changed = { ...r, outcome: 'success', actorName: 'nobody' };
    await f.sql('UPDATE audit_records SET actor_name = $1, hash = $2 WHERE seq = 137', ['nobody', chainHash(r.prevHash, changed)]);
    let report = await verify(f);
    assert.equal(report.failure?.kind, 'broken-link');
    assert.equal(report.failure?.seq, 138);
    assert.match(report.failure!.message, /record 137 was altered/);
    // Rewrite every later hash so that all links hold: only the signed checkpoint at 200 disagrees.
    let prev = chainHash(r.prevHash, changed);
    for (let seq = 138; seq <= 300; seq++) {
      const next = await row(f, seq);
      const hash = chainHash(prev, next);
      await f.sql('UPDATE audit_records SET prev_hash = $1, hash = $2 WHERE seq = $3', [prev, hash, seq]);
      prev = hash;
    }
    report = await verify(f);
    assert.equal(report.failure?.kind, 'rewritten');
    assert.equal(report.failure?.seq, 101);
    assert.match(report.failure!.message, /checkpoint #2/);
  });

  withFixture('tamper: a deleted record is named as missing', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    await f.sql('DELETE FROM audit_records WHERE seq = 137');
    const report = await verify(f);
    assert.equal(report.failure?.kind, 'deleted');
    assert.equal(report.failure?.seq, 137);
    assert.match(report.failure!.message, /record 137 is missing/);
  });

  withFixture('tamper: an inserted record is named, forged carelessly or with correct hashes', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    // Careless: made-up hashes.
    await shiftUp(f, 137);
    await insertRow(f, 137, forged(Date.now()), Buffer.alloc(32, 1), Buffer.alloc(32, 2));
    let report = await verify(f);
    assert.equal(report.failure?.kind, 'inserted');
    assert.equal(report.failure?.seq, 137);
    // Careful: chained to its predecessor with a correct hash of its own.
    await f.sql('DELETE FROM audit_records WHERE seq = 137');
    const before = await row(f, 136);
    const fields = forged(Date.now());
    await insertRow(f, 137, fields, before.hash, chainHash(before.hash, fields));
    report = await verify(f);
    assert.equal(report.failure?.kind, 'inserted');
    assert.equal(report.failure?.seq, 137);
  });

  withFixture('tamper: two swapped records are named as reordered', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    await f.sql('UPDATE audit_records SET seq = -1 WHERE seq = 137');
    await f.sql('UPDATE audit_records SET seq = 137 WHERE seq = 138');
    await f.sql('UPDATE audit_records SET seq = 138 WHERE seq = -1');
    const report = await verify(f);
    assert.equal(report.failure?.kind, 'reordered');
    assert.equal(report.failure?.seq, 137);
  });

  withFixture('tamper: the tail cut after a checkpoint, a deleted or altered checkpoint, an untrusted key', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await log.close();
    await f.sql('DELETE FROM audit_records WHERE seq > 250');
    let report = await verify(f);
    assert.equal(report.failure?.kind, 'truncated');
    assert.equal(report.failure?.seq, 251);
    const g = await open();
    try {
      const glog = g.log();
      await fill(glog, 250);
      await glog.close();
      await g.sql('UPDATE audit_checkpoints SET seq = 199 WHERE id = 2');
      report = await verify(g);
      assert.equal(report.failure?.kind, 'checkpoint');
      assert.match(report.failure!.message, /checkpoint #2 has an invalid signature/);
      await g.sql('DELETE FROM audit_checkpoints WHERE id = 2');
      report = await verify(g);
      assert.match(report.failure!.message, /checkpoint #2 is missing/);
      const other = generateKeyPairSync('ed25519').publicKey;
      report = await verifyAuditLog(g.store, { keys: new Map([[keyIdOf(other), other]]) });
      assert.match(report.failure!.message, /not trusted/);
    } finally {
      await g.cleanup();
    }
  });

  withFixture('records appended after the last checkpoint are reported as unsigned', async (f) => {
    const log = f.log({ checkpointEveryRecords: 1000 });
    await fill(log, 30);
    await f.store.checkpoint(f.signer, Date.now());
    await fill(log, 12, 30);
    const report = await verify(f);
    assert.equal(report.ok, true);
    assert.equal(report.unsigned, 12);
    await log.close();
  });

  withFixture('retention archives old records into files that keep the chain verifiable', async (f) => {
    const log = f.log();
    await fill(log, 450);
    await log.close();
    const archiveDir = join(f.dir, 'archive');
    const alerts: unknown[] = [];
    const now = Date.UTC(2025, 0, 1) + 260 * 1000 + 30 * 86_400_000;
    const log2 = f.log();
    const retention = new AuditRetention({ store: f.store, log: log2, signer: f.signer, alert: (a) => alerts.push(a), now: () => now }, { maxAgeDays: 30, maxBytes: 0, alertAtPercent: 80, archiveDir });
    const first = await retention.run();
    // Older than 30 days: records 1..260; the cut is at the last checkpoint inside (200).
    assert.equal(first.archived, 200);
    assert.equal(await f.store.firstSeq(), 201);
    let report = await verify(f, archiveDir);
    assert.equal(report.ok, true, report.failure?.message);
    assert.deepEqual(report.archives, { files: 1, records: 200 });
    assert.equal(report.records, 251); // 201..450 and the audit.archived record
    // Without the archives: still verifiable from the signed cut, with a note.
    report = await verify(f);
    assert.equal(report.ok, true, report.failure?.message);
    assert.match(report.notes.join(), /records 1 to 200 are archived and were not checked/);
    // A second pass continues the archive chain.
    const later = new AuditRetention({ store: f.store, log: log2, signer: f.signer, alert: () => undefined, now: () => now + 86_400_000 * 365 }, { maxAgeDays: 30, maxBytes: 0, alertAtPercent: 80, archiveDir });
    const second = await later.run();
    assert.ok(second.archived > 200);
    report = await verify(f, archiveDir);
    assert.equal(report.ok, true, report.failure?.message);
    assert.equal(report.archives.files, 2);
    await log2.close();
    // A record altered inside an archive is found there.
    const [file] = (await readdir(archiveDir)).sort();
    const lines = gunzipSync(await readFile(join(archiveDir, file!))).toString().split('\n');
    lines[42] = lines[42]!.replace('"alice"', '"mallory"').replace('"bob"', '"mallory"');
    await writeFile(join(archiveDir, file!), gzipSync(lines.join('\n')));
    report = await verify(f, archiveDir);
    assert.equal(report.ok, false);
    assert.equal(report.failure?.kind, 'altered');
    assert.equal(report.failure?.seq, 42);
    assert.equal(report.failure?.where, file);
  });

  withFixture('a size budget raises an alert before it is reached, then archives down', async (f) => {
    const log = f.log();
    await fill(log, 400);
    const used = await f.store.usedBytes();
    assert.ok(used > 0);
    const alerts: Array<{ level: string }> = [];
    const archiveDir = join(f.dir, 'archive');
    const warn = new AuditRetention({ store: f.store, log, signer: f.signer, alert: (a) => alerts.push(a) }, { maxAgeDays: 0, maxBytes: Math.ceil(used / 0.9), alertAtPercent: 80, archiveDir });
    assert.equal((await warn.run()).archived, 0);
    assert.deepEqual(alerts.map((a) => a.level), ['warning']);
    await warn.run();
    assert.equal(alerts.length, 1, 'alerted once per crossing');
    const exceeded = new AuditRetention({ store: f.store, log, signer: f.signer, alert: (a) => alerts.push(a) }, { maxAgeDays: 0, maxBytes: Math.floor(used / 2), alertAtPercent: 80, archiveDir });
    const report = await exceeded.run();
    assert.equal(alerts.at(-1)?.level, 'exceeded');
    assert.ok(report.archived >= 100, `archived ${report.archived}`);
    await log.close();
    assert.equal((await verify(f, archiveDir)).ok, true);
  });

  withFixture('retention never prunes records a forwarding receiver has not acknowledged', async (f) => {
    const log = f.log();
    await fill(log, 300);
    await f.store.advanceCursor('siem', 150, Date.now());
    const retention = new AuditRetention(
      { store: f.store, log, signer: f.signer, sinks: () => ['siem'], alert: () => undefined, now: () => Date.UTC(2030, 0, 1) },
      { maxAgeDays: 1, maxBytes: 0, alertAtPercent: 80, archiveDir: join(f.dir, 'archive') },
    );
    const report = await retention.run();
    assert.equal(report.archived, 100);
    assert.match(report.heldBy ?? '', /forwarding/);
    await log.close();
  });

  withFixture('queries filter by time, actor, repository, action and outcome with cursor pagination', async (f) => {
    const log = f.log();
    await fill(log, 200);
    await log.close();
    const t0 = Date.UTC(2025, 0, 1);
    const all = await f.store.query({ limit: 1000 });
    assert.equal(all.length, 200);
    assert.equal(all[0]!.seq, 200, 'newest first');
    assert.equal((await f.store.query({ from: t0 + 10_000, to: t0 + 20_000, limit: 100 })).length, 10);
    const alice = await f.store.query({ actor: 'alice', limit: 1000 });
    assert.ok(alice.length > 0 && alice.every((r) => r.actorName === 'alice'));
    assert.ok((await f.store.query({ repository: 'project1/app', limit: 1000 })).every((r) => r.repository === 'project1/app'));
    assert.equal((await f.store.query({ repository: 'project1/*', limit: 1000 })).length, 100);
    assert.equal((await f.store.query({ action: 'manifest.*', limit: 1000 })).length, 100);
    assert.equal((await f.store.query({ outcome: 'denied', limit: 1000 })).length, 20);
    // Pages in both directions cover everything exactly once.
    for (const order of ['asc', 'desc'] as const) {
      const seen: number[] = [];
      let cursor: number | undefined;
      for (;;) {
        const page = await f.store.query({ order, cursor, limit: 33, actor: 'bob' });
        seen.push(...page.map((r) => r.seq));
        if (page.length < 33) break;
        cursor = page.at(-1)!.seq;
      }
      assert.equal(new Set(seen).size, seen.length);
      assert.equal(seen.length, (await f.store.query({ actor: 'bob', limit: 1000 })).length);
    }
  });

  withFixture('a full queue drops observations, counts them and records the loss in the chain', async (f) => {
    const log = f.log({ maxQueue: 10, flushIntervalMs: 10_000 });
    let accepted = 0;
    for (let i = 0; i < 25; i++) if (log.record(entry(i))) accepted++;
    assert.equal(accepted, 10);
    assert.equal(log.stats().dropped, 15);
    // A durable append is not dropped: it goes past the bound.
    const { seq } = await log.append(entry(99, { action: 'auth.failed', outcome: 'failure' }));
    await log.close();
    const dropped = (await f.store.query({ action: 'audit.dropped', limit: 10 }))[0];
    assert.equal(JSON.parse(dropped!.details!).count, 15);
    assert.equal((await f.store.record(seq))?.action, 'auth.failed');
    assert.equal((await verify(f)).ok, true);
  });

  withFixture('forwarding cursors only move forward; dead letters keep their message', async (f) => {
    assert.equal(await f.store.cursor('siem'), undefined);
    await f.store.advanceCursor('siem', 10, 1);
    await f.store.advanceCursor('siem', 7, 2);
    assert.equal(await f.store.cursor('siem'), 10);
    await f.store.advanceCursor('siem', 12, 3);
    assert.equal(await f.store.minimumCursor(['siem', 'other']), 0);
    await f.store.addDeadLetters([
      { sink: 'siem', seq: 3, payload: '{"seq":3}', attempts: 5, lastError: 'HTTP 422', at: 5 },
      { sink: 'other', seq: 4, payload: '{"seq":4}', attempts: 5, lastError: 'HTTP 400', at: 6 },
    ]);
    const letters = await f.store.deadLetters('siem', 10);
    assert.deepEqual(letters.map((l) => [l.seq, l.payload, l.lastError]), [[3, '{"seq":3}', 'HTTP 422']]);
    await f.store.deleteDeadLetters(letters.map((l) => l.id));
    assert.equal(await f.store.deadLetterCount('siem'), 0);
    assert.equal(await f.store.deadLetterCount(), 1);
  });

  withFixture('bus events: observations are dropped when the queue is full, security events never', async (f) => {
    const { EventBus } = await import('../../src/registry/events/bus.ts');
    const events = new EventBus();
    const log = f.log({ maxQueue: 5, flushIntervalMs: 10_000 });
    log.subscribe(events);
    const origin = { clientAddress: '192.0.2.1', userAgent: 'x', requestId: 'r', actor: { kind: 'anonymous' as const } };
    for (let i = 0; i < 20; i++) events.publish({ type: 'manifest.pulled', at: new Date(), origin, repository: 'a/b', digest: `sha256:${'1'.repeat(64)}`, mediaType: 'm', tag: undefined });
    for (let i = 0; i < 10; i++) events.publish({ type: 'auth.failed', at: new Date(), origin, username: `u${i}`, method: 'password', reason: 'bad password' });
    await new Promise((resolve) => setImmediate(resolve));
    await log.close();
    assert.equal((await f.store.query({ action: 'auth.failed', limit: 100 })).length, 10);
    assert.equal((await f.store.query({ action: 'manifest.pulled', limit: 100 })).length, 5);
    assert.equal(log.stats().dropped, 15);
  });

  withFixture('identical successful pulls within the window are one record with count and lastAt; others are not merged', async (f) => {
    const { EventBus } = await import('../../src/registry/events/bus.ts');
    const events = new EventBus();
    const log = f.log({ coalescePullsMs: 60_000, maxOpenPulls: 3 });
    log.subscribe(events);
    const digest = `sha256:${'1'.repeat(64)}`;
    const origin = (client: string, requestId: string) => ({ clientAddress: client, userAgent: 'containerd/2.0', requestId, actor: { kind: 'anonymous' as const } });
    const pull = (client: string, i: number, tag: string | undefined, at: Date) => events.publish({ type: 'manifest.pulled', at, origin: origin(client, `r${i}`), repository: 'a/b', digest, mediaType: 'm', tag });
    const t0 = Date.parse('2026-11-27T10:00:00.000Z');
    for (let i = 0; i < 20; i++) pull('192.0.2.1', i, 'v1', new Date(t0 + i * 10));
    for (let i = 0; i < 3; i++) pull('192.0.2.2', 100 + i, 'v1', new Date(t0 + 500 + i));
    events.publish({ type: 'manifest.pushed', at: new Date(t0 + 600), origin: origin('192.0.2.9', 'push'), repository: 'a/b', digest, mediaType: 'm', artifactType: undefined, subject: undefined, created: true, tag: 'v2', size: 10, previousTagTarget: undefined });
    pull('192.0.2.1', 200, undefined, new Date(t0 + 700)); // by digest: another record
    pull('192.0.2.3', 300, 'v1', new Date(t0 + 800)); // a fourth distinct pull: past maxOpenPulls, queued alone
    const refused = { at: new Date(t0 + 900), actor: { kind: 'anonymous' as const, auth: 'none' }, client: '192.0.2.1', userAgent: 'containerd/2.0', action: 'manifest.pulled', repository: 'a/b', digest, tag: 'v1', reason: 'policy' };
    log.record({ ...refused, requestId: 'denied', outcome: 'denied' });
    log.record({ ...refused, requestId: 'denied-2', outcome: 'denied' });
    await new Promise((resolve) => setImmediate(resolve));
    await log.flush();
    const pulls = (await f.store.query({ action: 'manifest.pulled', limit: 100 })).map(presentRecord);
    const byRequest = new Map(pulls.map((r) => [r.requestId, r]));
    assert.equal(pulls.length, 6);
    assert.equal(byRequest.get('r0')?.details?.count, 20);
    assert.equal(byRequest.get('r0')?.details?.lastAt, new Date(t0 + 190).toISOString());
    assert.equal(byRequest.get('r0')?.time, new Date(t0).toISOString());
    assert.equal(byRequest.get('r0')?.client, '192.0.2.1');
    assert.equal(byRequest.get('r100')?.details?.count, 3);
    assert.equal(byRequest.get('r200')?.details?.count, undefined, 'a single pull is recorded as it was');
    assert.equal(byRequest.get('r300')?.details?.count, undefined);
    assert.equal(byRequest.get('denied')?.outcome, 'denied', 'a refused pull is never merged');
    assert.equal(byRequest.get('denied-2')?.outcome, 'denied');
    // Everything is in one verifiable chain with the push.
    assert.equal((await f.store.query({ action: 'manifest.pushed', limit: 10 })).length, 1);
    await log.close();
    const report = await verifyAuditLog(f.store, { keys: f.keys });
    assert.equal(report.ok, true, report.failure?.message);
  });

  withFixture('pulls still open when the log closes are written', async (f) => {
    const log = f.log({ coalescePullsMs: 60_000 });
    for (let i = 0; i < 5; i++) log.record(entry(0, { action: 'blob.pulled', requestId: `q${i}`, at: new Date() }));
    await log.close();
    const records = (await f.store.query({ action: 'blob.pulled', limit: 10 })).map(presentRecord);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.details?.count, 5);
  });

  withFixture('concurrent writers (two replicas) form one chain', async (f) => {
    const other = await f.openStore();
    const a = f.log({ batchSize: 7 });
    const { AuditLog } = await import('../../src/registry/audit/log.ts');
    const b = new AuditLog({ store: other, signer: f.signer }, { maxQueue: 10_000, batchSize: 5, flushIntervalMs: 1, checkpointEveryRecords: 50, checkpointEveryMs: 3_600_000 });
    const appends: Array<Promise<{ seq: number }>> = [];
    for (let i = 0; i < 120; i++) appends.push((i % 2 ? a : b).append(entry(i)));
    const seqs = (await Promise.all(appends)).map((r) => r.seq).sort((x, y) => x - y);
    assert.deepEqual(seqs, Array.from({ length: 120 }, (_, i) => i + 1));
    await a.close();
    await b.close();
    const report = await verify(f);
    assert.equal(report.ok, true, report.failure?.message);
    assert.equal(report.records, 120);
  });
}
