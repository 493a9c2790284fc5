/**
 * `portcullis audit verify | query | export`: the audit log from the command line, next to a
 * running server or on a copy of its data directory.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { openAuditStore } from '../app/build-app.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { loadTrustedKeys, publicKeyPath } from './keys.ts';
import type { AuditRecord } from './record.ts';
import { auditPaths, queryAudit } from './service.ts';
import type { AuditFilter, SqlAuditStore } from './store.ts';
import { verifyAuditLog } from './verify.ts';

export const auditUsage = `  portcullis audit verify [--config FILE | --data-dir DIR] [--public-key FILE]... [--archive-dir DIR] [--json]
      Prove the audit chain intact (exit 0) or name the first altered, inserted, deleted or
      reordered record (exit 1). Trusts the data directory's public key unless --public-key is given.
  portcullis audit query [--config FILE | --data-dir DIR] [--from TIME] [--to TIME] [--actor NAME]
                         [--repository NAME|PROJECT/*] [--action ACTION|PREFIX.*] [--outcome OUTCOME]
                         [--limit N] [--cursor C] [--order asc|desc] [--json]
      List audit records, newest first; prints the cursor of the next page.
  portcullis audit export --format jsonl [--output FILE] [filters as for query]
      Write every matching record, oldest first, as JSON Lines.`;

const options = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  'public-key': { type: 'string', multiple: true },
  'archive-dir': { type: 'string' },
  json: { type: 'boolean' },
  from: { type: 'string' },
  to: { type: 'string' },
  actor: { type: 'string' },
  repository: { type: 'string' },
  action: { type: 'string' },
  outcome: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  order: { type: 'string' },
  format: { type: 'string' },
  output: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

function time(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`--${name}: not a time: ${value} (use RFC 3339, e.g. 2025-01-31T00:00:00Z)`);
  return ms;
}

/** Runs `portcullis audit ...`; returns the exit code (0 ok, 1 verification failed, 2 usage). */
export async function auditMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${auditUsage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help) {
    console.log(`Usage:\n${auditUsage}`);
    return 0;
  }
  if (command !== 'verify' && command !== 'query' && command !== 'export') {
    console.error(`portcullis audit: expected verify, query or export\n\n${auditUsage}`);
    return 2;
  }
  let config: Config;
  try {
    const overrides = values['data-dir'] ? [{ path: ['storage', 'dataDir'], value: values['data-dir'] }] : [];
    config = await loadConfig({ file: values.config, overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  let store: SqlAuditStore | undefined;
  try {
    const filter = {
      from: time(values.from, 'from'),
      to: time(values.to, 'to'),
      actor: values.actor,
      repository: values.repository,
      action: values.action,
      outcome: values.outcome,
    };
    if (values.order !== undefined && values.order !== 'asc' && values.order !== 'desc') throw new UsageError('--order: asc or desc');
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit: 1 to 10000');
    if (command === 'export' && values.format !== 'jsonl') throw new UsageError('export needs --format jsonl');
    store = await openAuditStore(config);
    if (command === 'verify') return await verify(store, config, values);
    if (command === 'export') return await exportJsonl(store, filter, values.output);
    const page = await queryAudit(store, { ...filter, order: (values.order as 'asc' | 'desc' | undefined) ?? 'desc', limit, cursor: values.cursor });
    if (values.json) console.log(JSON.stringify(page, null, 2));
    else {
      for (const r of page.records) console.log(line(r));
      if (page.nextCursor) console.log(`next page: --cursor ${page.nextCursor}`);
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof RangeError) {
      console.error(`portcullis audit ${command}: ${error.message}`);
      return 2;
    }
    throw error;
  } finally {
    await store?.close();
  }
}

function line(r: AuditRecord): string {
  const actor = `${r.actor.kind}${r.actor.name ? `:${r.actor.name}` : ''}${r.actor.auth ? `(${r.actor.auth})` : ''}`;
  const target = r.repository ? `${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}` : '-';
  return [r.seq, r.time, actor, r.client ?? '-', r.action, target, r.outcome, r.reason ?? ''].join('\t').trimEnd();
}

async function verify(store: SqlAuditStore, config: Config, values: { 'public-key'?: string[]; 'archive-dir'?: string; json?: boolean }): Promise<number> {
  const paths = auditPaths(config.audit, config.storage.dataDir);
  const keyFiles = values['public-key']?.length ? values['public-key'] : [publicKeyPath(paths.keyFile)];
  let keys;
  try {
    keys = await loadTrustedKeys(keyFiles);
  } catch (error) {
    console.error(`audit verify: cannot read the public key: ${(error as Error).message}`);
    return 2;
  }
  const started = performance.now();
  const report = await verifyAuditLog(store, { keys, archiveDir: values['archive-dir'] ?? paths.archiveDir });
  const ms = Math.round(performance.now() - started);
  if (values.json) console.log(JSON.stringify({ ...report, durationMs: ms }, null, 2));
  else if (report.ok) {
    const range = report.records > 0 ? ` (records ${report.firstSeq} to ${report.lastSeq})` : '';
    const archived = report.archives.files > 0 ? `, ${report.archives.records} archived records in ${report.archives.files} files` : '';
    console.log(`audit verify: OK: ${report.records} records${range}${archived}; ${ms} ms`);
    const c = report.lastCheckpoint;
    console.log(c ? `last checkpoint: #${c.id} at record ${c.seq}, ${new Date(c.at).toISOString()}, key ${c.keyId}` : 'last checkpoint: none yet');
    if (report.unsigned > 0) console.log(`${report.unsigned} records after the last checkpoint are chained but not yet signed`);
    for (const note of report.notes) console.log(`note: ${note}`);
  } else {
    const f = report.failure!;
    console.error(`audit verify: FAILED${f.seq !== undefined ? ` at record ${f.seq}` : ''} (${f.kind}, ${f.where}): ${f.message}`);
  }
  return report.ok ? 0 : 1;
}

type Filter = Pick<AuditFilter, 'from' | 'to' | 'actor' | 'repository' | 'action' | 'outcome'>;

async function exportJsonl(store: SqlAuditStore, filter: Filter, output: string | undefined): Promise<number> {
  const out = output ? createWriteStream(output, { mode: 0o600 }) : process.stdout;
  let cursor: string | undefined;
  let count = 0;
  do {
    const page = await queryAudit(store, { ...filter, order: 'asc', limit: 1000, cursor });
    const text = page.records.map((r) => `${JSON.stringify(r)}\n`).join('');
    if (text && !out.write(text)) await once(out, 'drain');
    count += page.records.length;
    cursor = page.nextCursor;
  } while (cursor);
  if (output) {
    (out as ReturnType<typeof createWriteStream>).end();
    await once(out, 'finish');
    console.error(`audit export: ${count} records to ${output}`);
  }
  return 0;
}
