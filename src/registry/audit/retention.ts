/**
 * Retention: moves old records out of the database into archive files that stay verifiable,
 * and keeps the audit log inside a size budget, alerting before the budget is reached.
 *
 * A run archives the records older than `maxAgeDays`, or, when the log uses more than
 * `maxBytes`, enough of the oldest to get back under the alert threshold. The cut is always at a
 * signed checkpoint (one is signed first if needed) and never passes a forwarding cursor (a
 * record is not pruned before every receiver has it). Order, so that a crash at any point leaves
 * a verifiable log: write and fsync the archive; append (durably) an `audit.archived` record
 * naming the cut, the file and its SHA-256; delete the archived rows. After a crash between the
 * last two steps the rows are still there; the verifier starts after the cut anyway, and the next
 * run deletes them.
 *
 * Several replicas on one PostgreSQL database: enable retention on one of them (archives are
 * files on that replica's disk).
 */
import { basename } from 'node:path';
import { removeTemporaries, writeArchive } from './archive.ts';
import type { AuditSigner } from './keys.ts';
import type { AuditAppender } from './log.ts';
import type { StoredRecord } from './record.ts';
import type { SqlAuditStore } from './store.ts';

export interface RetentionOptions {
  /** Archive records older than this; 0 keeps them (subject to the budget). */
  maxAgeDays: number;
  /** Size budget of the audit log in the database; 0 = none. */
  maxBytes: number;
  /** Alert when usage reaches this share of the budget. */
  alertAtPercent: number;
  archiveDir: string;
}

export interface BudgetAlert {
  level: 'warning' | 'exceeded';
  usedBytes: number;
  budgetBytes: number;
}

export interface RetentionReport {
  archived: number;
  file: string | undefined;
  usedBytes: number;
  /** Why fewer records were archived than wanted, if so. */
  heldBy: string | undefined;
}

const DELETE_CHUNK = 10_000;

export class AuditRetention {
  readonly #store: SqlAuditStore;
  readonly #log: AuditAppender;
  readonly #signer: AuditSigner;
  readonly #options: RetentionOptions;
  readonly #sinks: () => string[];
  readonly #alert: (alert: BudgetAlert) => void;
  readonly #now: () => number;
  #alerted: BudgetAlert['level'] | undefined;

  constructor(
    deps: { store: SqlAuditStore; log: AuditAppender; signer: AuditSigner; sinks?: () => string[]; alert: (alert: BudgetAlert) => void; now?: () => number },
    options: RetentionOptions,
  ) {
    this.#store = deps.store;
    this.#log = deps.log;
    this.#signer = deps.signer;
    this.#sinks = deps.sinks ?? (() => []);
    this.#alert = deps.alert;
    this.#now = deps.now ?? Date.now;
    this.#options = options;
  }

  /** Checks the budget and raises an alert once per level crossed (again after dropping below). */
  async checkBudget(): Promise<number> {
    const used = await this.#store.usedBytes();
    const budget = this.#options.maxBytes;
    if (budget <= 0) return used;
    const level = used >= budget ? 'exceeded' : used >= (budget * this.#options.alertAtPercent) / 100 ? 'warning' : undefined;
    if (level && level !== this.#alerted) this.#alert({ level, usedBytes: used, budgetBytes: budget });
    this.#alerted = level;
    return used;
  }

  /** One retention pass (see the module comment). */
  async run(): Promise<RetentionReport> {
    const used = await this.checkBudget();
    const report: RetentionReport = { archived: 0, file: undefined, usedBytes: used, heldBy: undefined };
    const marker = await this.#store.lastArchiveMarker();
    const archivedThrough = marker ? (JSON.parse(marker.details ?? '{}') as { throughSeq?: number }).throughSeq ?? 0 : 0;
    // Rows and files a crash left behind.
    await this.#deleteThrough(archivedThrough);
    await removeTemporaries(this.#options.archiveDir);
    const bounds = await this.#store.bounds();
    if (bounds.first === undefined || bounds.last === undefined) return report;

    let wanted = 0;
    if (this.#options.maxAgeDays > 0) {
      const cutoff = this.#now() - this.#options.maxAgeDays * 86_400_000;
      wanted = (await this.#store.lastSeqBefore(cutoff)) ?? 0;
    }
    const budget = this.#options.maxBytes;
    if (budget > 0 && used > budget) {
      // Down to ten points under the alert threshold, assuming rows of equal size.
      const target = (budget * Math.max(this.#options.alertAtPercent - 10, 10)) / 100;
      const remove = Math.ceil(bounds.count * (1 - target / used));
      wanted = Math.max(wanted, bounds.first - 1 + remove);
    }
    if (wanted < bounds.first) return report;

    // A cut at a signed checkpoint, behind every forwarding cursor.
    await this.#store.checkpoint(this.#signer, this.#now());
    let through = wanted;
    const sinks = this.#sinks();
    const forwarded = sinks.length > 0 ? await this.#store.minimumCursor(sinks) : undefined;
    if (forwarded !== undefined && forwarded < through) {
      through = forwarded;
      report.heldBy = 'forwarding (a receiver has not acknowledged older records)';
    }
    const checkpoints = await this.#store.checkpoints();
    const cut = checkpoints.filter((c) => c.seq <= through && c.seq >= bounds.first!).at(-1);
    if (!cut) {
      report.heldBy ??= 'no signed checkpoint inside the range yet';
      return report;
    }
    through = cut.seq;
    const first = bounds.first;
    const previous = first === 1 ? undefined : checkpoints.find((c) => c.seq === first - 1);
    const prevHash = first === 1 ? Buffer.alloc(32) : (previous?.hash ?? (await this.#store.recordsAfter(first - 1, 1))[0]!.prevHash);
    const store = this.#store;
    async function* pages(): AsyncGenerator<StoredRecord[]> {
      for (let after = first - 1; after < through; ) {
        const page = (await store.recordsAfter(after, 5000)).filter((r) => r.seq <= through);
        if (page.length === 0) return;
        yield page;
        after = page.at(-1)!.seq;
      }
    }
    const inRange = checkpoints.filter((c) => c.seq >= first && c.seq <= through);
    const written = await writeArchive(this.#options.archiveDir, { firstSeq: first, lastSeq: through, prevHash: prevHash.toString('hex') }, pages(), inRange);
    await this.#log.append({
      actor: { kind: 'system', name: 'portcullis' },
      action: 'audit.archived',
      outcome: 'success',
      details: { firstSeq: first, throughSeq: through, throughHash: cut.hash.toString('hex'), file: basename(written.file), sha256: written.sha256, records: written.records },
    });
    await this.#deleteThrough(through);
    report.archived = written.records;
    report.file = written.file;
    report.usedBytes = await this.checkBudget();
    return report;
  }

  async #deleteThrough(through: number): Promise<void> {
    for (;;) {
      const first = await this.#store.firstSeq();
      if (first === undefined || first > through) return;
      await this.#store.deleteThrough(Math.min(through, first + DELETE_CHUNK - 1));
    }
  }
}
