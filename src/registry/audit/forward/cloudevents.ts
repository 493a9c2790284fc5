/**
 * HTTP forwarding as CloudEvents 1.0 in structured content mode: one POST per record, body
 * `application/cloudevents+json` with the record as `data`.
 *
 * `id` is `<seq>-<first 16 hex of the record hash>`: stable across retries, so a receiver can
 * drop the duplicates at-least-once delivery may produce (CloudEvents: source + id identify an
 * event). A 2xx answer delivers; 408, 429, 5xx and network errors are transient (retried with
 * back-off, order kept); any other answer is a rejection of that record, retried `maxAttempts`
 * times and then kept in the dead-letter store.
 */
import { readFile } from 'node:fs/promises';
import type { AuditRecord } from '../record.ts';
import type { SendOutcome, Transport } from './forwarder.ts';

export interface CloudEventsSink {
  kind: 'cloudevents';
  name?: string | undefined;
  url: string;
  /** The CloudEvents `source` (a URI reference naming this registry). */
  source: string;
  /** File holding a bearer token for `Authorization` (read at each start, kept out of the config). */
  bearerTokenFile?: string | undefined;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Requests in flight at once. */
  concurrency: number;
}

export function toCloudEvent(record: AuditRecord, source: string): Record<string, unknown> {
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: `${record.seq}-${record.hash.slice(0, 16)}`,
    source,
    type: `io.portcullis.audit.${record.action}`,
    time: record.time,
    datacontenttype: 'application/json',
    auditseq: record.seq,
    data: record,
  };
  if (record.repository) event.subject = record.repository;
  return event;
}

export class CloudEventsTransport implements Transport {
  readonly #sink: CloudEventsSink;
  #headers: Promise<Record<string, string>> | undefined;
  readonly #abort = new AbortController();

  constructor(sink: CloudEventsSink) {
    const url = new URL(sink.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`cloudevents url must be http(s), not ${sink.url}`);
    this.#sink = sink;
  }

  #requestHeaders(): Promise<Record<string, string>> {
    this.#headers ??= (async () => {
      const headers: Record<string, string> = { ...this.#sink.headers, 'content-type': 'application/cloudevents+json; charset=utf-8' };
      if (this.#sink.bearerTokenFile) headers.authorization = `Bearer ${(await readFile(this.#sink.bearerTokenFile, 'utf8')).trim()}`;
      return headers;
    })();
    return this.#headers;
  }

  async #post(record: AuditRecord): Promise<{ error: string; permanent: boolean } | undefined> {
    const headers = await this.#requestHeaders();
    try {
      const response = await fetch(this.#sink.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(toCloudEvent(record, this.#sink.source)),
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#sink.timeoutMs)]),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.ok) return undefined;
      const transient = response.status === 408 || response.status === 429 || response.status >= 500;
      return { error: `HTTP ${response.status}`, permanent: !transient };
    } catch (error) {
      return { error: (error as Error).cause ? `${(error as Error).message}: ${((error as Error).cause as Error).message}` : (error as Error).message, permanent: false };
    }
  }

  async send(records: AuditRecord[]): Promise<SendOutcome> {
    const outcome: SendOutcome = { failed: [] };
    let next = 0;
    const worker = async () => {
      while (next < records.length) {
        const record = records[next++]!;
        const failure = await this.#post(record);
        if (failure) outcome.failed.push({ seq: record.seq, ...failure });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#sink.concurrency, records.length) }, worker));
    return outcome;
  }

  async close(): Promise<void> {
    this.#abort.abort();
  }
}
