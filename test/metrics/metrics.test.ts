/**
 * /metrics on a running registry: request counts by route and status, latency histograms, bytes
 * in and out, uploads in progress, events and audit counters; access by bearer token or from
 * loopback only.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pullManifest, pushImage } from '../audit/clients.ts';
import { startRegistry } from '../support/registry-process.ts';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `series ${series} in:\n${text.slice(0, 2000)}`);
  return Number(line.slice(series.length + 1));
}

test('request, latency, byte, event and audit metrics; loopback only without a token', async () => {
  const registry = await startRegistry({ env: { PORTCULLIS_METRICS_ENABLED: 'true', PORTCULLIS_SERVER_TRUST_PROXY: 'true', PORTCULLIS_AUDIT_PULLS_COALESCE_MS: '0', PORTCULLIS_LOG_LEVEL: 'warn' } });
  try {
    await pushImage(registry.url, 'metrics/app', 'v1', 'one');
    for (let i = 0; i < 3; i++) await pullManifest(registry.url, 'metrics/app', 'v1');
    await fetch(`${registry.url}/v2/metrics/app/manifests/missing`).then((r) => r.arrayBuffer());
    await new Promise((resolve) => setTimeout(resolve, 400));
    const response = await fetch(`${registry.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.equal(value(text, 'portcullis_http_requests_total{method="GET",route="manifest",status="200"}'), 3);
    assert.equal(value(text, 'portcullis_http_requests_total{method="GET",route="manifest",status="404"}'), 1);
    assert.equal(value(text, 'portcullis_http_requests_total{method="PUT",route="manifest",status="201"}'), 1);
    assert.equal(value(text, 'portcullis_http_requests_total{method="POST",route="uploads",status="201"}'), 2);
    assert.equal(value(text, 'portcullis_http_request_duration_seconds_count{method="GET",route="manifest"}'), 4);
    assert.ok(value(text, 'portcullis_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="manifest"}') === 4);
    assert.ok(value(text, 'portcullis_http_sent_bytes_total{route="manifest"}') > 3 * 300);
    assert.ok(value(text, 'portcullis_http_received_bytes_total{route="uploads"}') > 20);
    assert.equal(value(text, 'portcullis_uploads_in_progress'), 0);
    assert.equal(value(text, 'portcullis_events_total{type="manifest.pulled"}'), 3);
    assert.ok(value(text, 'portcullis_audit_records_written_total') >= 6);
    assert.equal(value(text, 'portcullis_audit_records_dropped_total'), 0);
    assert.match(text, /^portcullis_process_cpu_seconds_total /m);
    // Through a proxy, from elsewhere: refused without a token.
    const remote = await fetch(`${registry.url}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.5' } });
    assert.equal(remote.status, 403);
  } finally {
    await registry.stop();
  }
});

test('with metrics.bearerTokenFile a scrape needs the token', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-metrics-'));
  await writeFile(join(dir, 'token'), 'scrape-me\n');
  const registry = await startRegistry({ env: { PORTCULLIS_METRICS_ENABLED: 'true', PORTCULLIS_METRICS_BEARER_TOKEN_FILE: join(dir, 'token'), PORTCULLIS_LOG_LEVEL: 'warn' } });
  try {
    assert.equal((await fetch(`${registry.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${registry.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(`${registry.url}/metrics`, { headers: { authorization: 'Bearer scrape-me' } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /portcullis_http_requests_total/);
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('without metrics.enabled there is no /metrics', async () => {
  const registry = await startRegistry({ env: { PORTCULLIS_LOG_LEVEL: 'warn' } });
  try {
    assert.equal((await fetch(`${registry.url}/metrics`)).status, 404);
  } finally {
    await registry.stop();
  }
});
