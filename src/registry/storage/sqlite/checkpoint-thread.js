// The checkpointer's thread (see checkpointer.ts). Plain JavaScript on purpose: a TypeScript entry
// point loads Node's type stripper (a WebAssembly module) into the thread, about 18 MB of RSS for
// some forty lines.
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

const port = parentPort;
/** @type {Map<string, DatabaseSync>} */
const connections = new Map();
// The thread is unref'd: with no connection left it idles without keeping the process alive.
setInterval(() => {
  for (const db of connections.values()) {
    try {
      db.exec('PRAGMA wal_checkpoint(PASSIVE)');
    } catch {
      // Busy (another process is checkpointing) or the file went away: try again next round.
    }
  }
}, workerData.intervalMs);
port.on('message', (/** @type {{ open: string } | { close: string, ack: number }} */ message) => {
  if ('open' in message) {
    if (connections.has(message.open)) return;
    try {
      const db = new DatabaseSync(message.open);
      db.exec('PRAGMA busy_timeout = 0');
      connections.set(message.open, db);
    } catch {
      // The writer's own autocheckpoint still runs.
    }
    return;
  }
  const db = connections.get(message.close);
  connections.delete(message.close);
  try {
    db?.close();
  } finally {
    port.postMessage({ closed: message.ack });
  }
});
