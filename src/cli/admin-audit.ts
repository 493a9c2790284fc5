/**
 * Audit records for `portcullis admin`: the administrations publish their `access.changed`
 * events on a bus of the command's own, and each becomes a durable record in the audit log with
 * the actor `cli:<os user>` (kind `cli`). The audit store serialises appends on the chain head
 * (audit/store.ts), so the command writes into the same chain as running servers; it signs a
 * checkpoint with the data directory's audit key when it ends, as a server does when it stops.
 * With audit.enabled false nothing is written (as for the server).
 */
import { userInfo } from 'node:os';
import { openAuditStore } from '../registry/app/build-app.ts';
import { entriesFromEvent } from '../registry/audit/from-event.ts';
import { loadOrCreateSigningKey } from '../registry/audit/keys.ts';
import { AuditLog } from '../registry/audit/log.ts';
import { auditPaths } from '../registry/audit/service.ts';
import type { Config } from '../registry/config/schema.ts';
import { EventBus } from '../registry/events/bus.ts';

export interface CliAudit {
  /** Hand this to the administrations. */
  events: EventBus;
  /** Waits for every record; resolves with why some could not be written, or undefined. */
  close(): Promise<string | undefined>;
}

/** The operating-system user running the command (`USER` when the passwd entry is missing). */
export function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
}

export async function openCliAudit(config: Config): Promise<CliAudit> {
  const events = new EventBus();
  if (!config.audit.enabled) return { events, close: async () => undefined };
  const store = await openAuditStore(config);
  try {
    // The server's key (created here when no server ran yet, as a server would at its first start).
    const signer = await loadOrCreateSigningKey(auditPaths(config.audit, config.storage.dataDir).keyFile);
    if (signer.created) console.error(`portcullis admin: created the audit checkpoint signing key; its public key is ${signer.publicKeyFile}`);
    const log = new AuditLog(
      { store, signer },
      // One short command: write each record at once (batching buys nothing here).
      { maxQueue: 1000, batchSize: 100, flushIntervalMs: 10, checkpointEveryRecords: config.audit.checkpoint.everyRecords, checkpointEveryMs: config.audit.checkpoint.everySeconds * 1000 },
    );
    const actor = { kind: 'cli', name: `cli:${osUser()}`, auth: 'local' };
    const pending: Promise<unknown>[] = [];
    events.subscribe('*', (event) => {
      for (const entry of entriesFromEvent(event)) {
        const appended = log.append({ ...entry, actor });
        appended.catch(() => undefined); // reported by close()
        pending.push(appended);
      }
    });
    return {
      events,
      async close() {
        try {
          // The bus runs handlers on the next turn: let the events published so far reach the log.
          await new Promise((resolve) => setImmediate(resolve));
          const failed = (await Promise.allSettled(pending)).filter((result) => result.status === 'rejected');
          await log.close();
          return failed.length > 0 ? `${failed.length} audit record(s) could not be written: ${String((failed[0] as PromiseRejectedResult).reason?.message ?? failed[0])}` : undefined;
        } catch (error) {
          return `the audit log could not be written: ${(error as Error).message}`;
        } finally {
          await store.close();
        }
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}
