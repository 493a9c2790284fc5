/**
 * The HTTP spec tests for pushes, pulls, manifests and discovery, run once more against Portcullis
 * with PostgreSQL metadata instead of SQLite (`PORTCULLIS_HTTP_TARGET=portcullis-postgres`, one
 * fresh database per target). The whole suite runs that way with
 * `PORTCULLIS_HTTP_TARGET=portcullis-postgres node --test test/http/*.test.ts`.
 *
 * An unreachable server skips this file locally but FAILS it when CI=true.
 */
import { test } from 'node:test';
import { postgresRequired, postgresUnavailable } from '../support/postgres.ts';

const chosen = process.env.PORTCULLIS_HTTP_TARGET;
const unavailable = chosen === 'distribution' ? 'the target is distribution, which has no metadata database' : await postgresUnavailable();

if (unavailable && !(postgresRequired && chosen !== 'distribution')) {
  test('HTTP spec tests on PostgreSQL metadata', { skip: unavailable }, () => undefined);
} else {
  // Read by test/support/http-target.ts when it is first imported, i.e. by the first file below.
  process.env.PORTCULLIS_HTTP_TARGET = 'portcullis-postgres';
  await import('./push-blobs.test.ts');
  await import('./push-manifests.test.ts');
  await import('./pull.test.ts');
  await import('./discovery.test.ts');
}
