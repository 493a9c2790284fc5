import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteDriver } from '../../src/registry/storage/sqlite/sqlite-driver.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-checkpoints-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `rows` rows of 2 KiB in transactions of 50: about 1,000 pages, all in the WAL at first. */
async function fill(driver: SqliteDriver, rows: number): Promise<void> {
  await driver.run('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)');
  for (let start = 0; start < rows; start += 50) {
    await driver.transaction(async (tx) => {
      for (let i = start; i < start + 50; i++) await tx.run('INSERT INTO t (id, body) VALUES ($1, randomblob(2048))', [i]);
    });
  }
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) if (condition()) return true;
  return condition();
}

test('the WAL is copied into the database file by the checkpointer thread, not by commits', async () => {
  const path = join(dir, 'a.db');
  const driver = new SqliteDriver(path);
  try {
    await fill(driver, 1_000);
    // The event loop's connection only checkpoints past 16,000 pages, so a grown main file can
    // only be the checkpointer's work.
    assert.ok(await until(() => statSync(path).size > 1_500_000, 3_000), `main file is ${statSync(path).size} bytes: nothing was checkpointed`);
    // Everything written is in the main file: a reader that ignores the WAL sees all rows.
    const copy = new DatabaseSync(path, { readOnly: true });
    try {
      assert.equal((copy.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n, 1_000);
    } finally {
      copy.close();
    }
  } finally {
    await driver.close();
  }
  // Closing the last connection (the checkpointer's went first) removes the WAL.
  assert.equal(existsSync(`${path}-wal`), false);
});

test('two drivers of one file share the checkpointer; closing one keeps checkpoints going for the other', async () => {
  const path = join(dir, 'b.db');
  const first = new SqliteDriver(path);
  const second = new SqliteDriver(path);
  await first.run('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)');
  await first.close();
  try {
    const before = statSync(path).size;
    await fill(second, 1_000);
    assert.ok(await until(() => statSync(path).size > before + 1_500_000, 3_000), 'the remaining driver is not checkpointed');
  } finally {
    await second.close();
  }
});

test('a database written by another process while the checkpointer holds a connection stays consistent', async () => {
  const path = join(dir, 'c.db');
  const driver = new SqliteDriver(path);
  try {
    await fill(driver, 200);
    // Another connection (as a CLI command would open) writes and reads concurrently with checkpoints.
    const other = new DatabaseSync(path);
    try {
      other.exec('PRAGMA busy_timeout = 2000');
      for (let i = 0; i < 200; i++) other.prepare('INSERT INTO t (id, body) VALUES (?, randomblob(2048))').run(10_000 + i);
    } finally {
      other.close();
    }
    await sleep(400);
    const rows = await driver.all<{ n: number }>('SELECT COUNT(*) AS n FROM t');
    assert.equal(Number(rows[0]!.n), 400);
    const check = await driver.all<{ integrity_check: string }>('PRAGMA integrity_check');
    assert.equal(check[0]!.integrity_check, 'ok');
  } finally {
    await driver.close();
  }
});

test('a process that leaves a database open still exits: the checkpointer thread never holds it', async () => {
  const child = spawn(process.execPath, [new URL('./fixtures/left-open.ts', import.meta.url).pathname, join(dir, 'd.db')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk));
  const exited = await Promise.race([new Promise<number | null>((resolve) => child.once('exit', resolve)), sleep(10_000).then(() => 'hung' as const)]);
  if (exited === 'hung') child.kill('SIGKILL');
  assert.equal(out, 'done\n');
  assert.equal(exited, 0, 'the process did not exit by itself');
});
