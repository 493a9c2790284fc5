/**
 * The audit log in a running registry: every bus event becomes a record with who/what/where,
 * the HTTP query API with filters and cursor pagination, and the `portcullis audit` commands
 * (verify, query, export) on the data directory, including verify failing at a record tampered
 * with directly in the database.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, test } from 'node:test';
import type { AuditRecord } from '../../src/registry/audit/record.ts';
import { type RunningRegistry, startRegistry } from '../support/registry-process.ts';
import { cli, pullManifest, pushImage } from './clients.ts';

let registry: RunningRegistry;
let first: string;
let second: string;

before(async () => {
  registry = await startRegistry({ env: { PORTCULLIS_AUDIT_API_ENABLED: 'true', PORTCULLIS_AUDIT_QUEUE_FLUSH_INTERVAL_MS: '20', PORTCULLIS_AUDIT_PULLS_COALESCE_MS: '50', PORTCULLIS_LOG_LEVEL: 'warn' } });
  first = await pushImage(registry.url, 'team/app', 'v1', 'one');
  second = await pushImage(registry.url, 'team/app', 'v1', 'two'); // moves v1
  await pullManifest(registry.url, 'team/app', 'v1', 'kubelet/1.31');
  await pullManifest(registry.url, 'team/app', first);
  const deleted = await fetch(`${registry.url}/v2/team/app/manifests/${first}`, { method: 'DELETE' });
  assert.equal(deleted.status, 202);
  await new Promise((resolve) => setTimeout(resolve, 300));
});

after(async () => {
  await registry?.stop();
});

async function api(query: string): Promise<{ status: number; body: { records: AuditRecord[]; nextCursor?: string }; link: string | null }> {
  const response = await fetch(`${registry.url}/api/v1/audit${query}`);
  return { status: response.status, body: (await response.json()) as { records: AuditRecord[]; nextCursor?: string }, link: response.headers.get('link') };
}

test('pushes, pulls, tag moves and deletes are recorded with actor, client, user agent and target', async () => {
  const { body } = await api('?order=asc&limit=1000');
  const actions = body.records.map((r) => r.action);
  assert.equal(actions.filter((a) => a === 'blob.uploaded').length, 4);
  assert.equal(actions.filter((a) => a === 'manifest.pushed').length, 2);
  const moved = body.records.find((r) => r.action === 'tag.moved');
  assert.equal(moved?.tag, 'v1');
  assert.equal(moved?.digest, second);
  assert.deepEqual(moved?.details, { from: first });
  const pull = body.records.find((r) => r.action === 'manifest.pulled' && r.tag === 'v1');
  assert.equal(pull?.userAgent, 'kubelet/1.31');
  assert.equal(pull?.client, '127.0.0.1');
  assert.deepEqual(pull?.actor, { kind: 'anonymous', auth: 'none' });
  assert.equal(pull?.repository, 'team/app');
  assert.equal(pull?.digest, second);
  assert.equal(pull?.outcome, 'success');
  assert.ok(body.records.some((r) => r.action === 'manifest.deleted' && r.digest === first));
  // Sequence numbers and links are contiguous.
  body.records.forEach((r, i) => {
    assert.equal(r.seq, i + 1);
    if (i > 0) assert.equal(r.prevHash, body.records[i - 1]!.hash);
  });
});

test('GET /api/v1/audit filters and pages with a cursor', async () => {
  const page1 = await api('?action=blob.*&limit=3');
  assert.equal(page1.status, 200);
  assert.equal(page1.body.records.length, 3);
  assert.ok(page1.body.nextCursor);
  assert.match(page1.link ?? '', /rel="next"/);
  const page2 = await api(`?action=blob.*&limit=3&cursor=${page1.body.nextCursor}`);
  const seqs = [...page1.body.records, ...page2.body.records].map((r) => r.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first, no overlap');
  assert.equal(new Set(seqs).size, seqs.length);
  assert.ok([...page1.body.records, ...page2.body.records].every((r) => r.action.startsWith('blob.')));
  const repo = await api('?repository=team/*&outcome=success&limit=1000');
  assert.ok(repo.body.records.length > 5);
  const none = await api(`?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z`);
  assert.deepEqual(none.body.records, []);
  assert.equal((await api('?limit=0')).status, 400);
  assert.equal((await api('?outcome=maybe')).status, 400);
  assert.equal((await api('?cursor=bogus')).status, 400);
  assert.equal((await api('?unknown=1')).status, 400);
});

test('the signing key is private to its owner and the public key is exported', async () => {
  const key = await stat(join(registry.dataDir, 'audit', 'signing-key.pem'));
  assert.equal(key.mode & 0o777, 0o600);
  await stat(join(registry.dataDir, 'audit', 'signing-key.pub.pem'));
});

test('audit verify, query and export on the data directory; verify names a tampered record', async () => {
  // A running server: the unsigned tail is reported, the chain verifies.
  let result = await cli(['audit', 'verify', '--data-dir', registry.dataDir]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /audit verify: OK: \d+ records/);
  await registry.stop();
  // Stopped: a final checkpoint signs everything.
  result = await cli(['audit', 'verify', '--data-dir', registry.dataDir, '--public-key', join(registry.dataDir, 'audit', 'signing-key.pub.pem')]);
  assert.equal(result.code, 0, result.stderr);
  const count = Number(/OK: (\d+) records/.exec(result.stdout)![1]);
  assert.match(result.stdout, new RegExp(`last checkpoint: #\\d+ at record ${count}`));
  result = await cli(['audit', 'query', '--data-dir', registry.dataDir, '--action', 'tag.moved']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\ttag\.moved\tteam\/app:v1@sha256:/);
  result = await cli(['audit', 'export', '--format', 'jsonl', '--data-dir', registry.dataDir]);
  assert.equal(result.code, 0, result.stderr);
  const exported = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
  assert.equal(exported.length, count);
  assert.deepEqual(exported.map((r) => r.seq), Array.from({ length: count }, (_, i) => i + 1));
  assert.equal((await cli(['audit', 'export', '--data-dir', registry.dataDir])).code, 2, 'export needs --format jsonl');

  const db = new DatabaseSync(join(registry.dataDir, 'audit', 'audit.sqlite'));
  db.prepare("UPDATE audit_records SET client = '198.51.100.7' WHERE seq = 5").run();
  db.close();
  result = await cli(['audit', 'verify', '--data-dir', registry.dataDir]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /FAILED at record 5 \(altered, database\)/);
});
