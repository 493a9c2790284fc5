/** The traceability scenario on PostgreSQL (scenario.suite.ts); skipped when unreachable, failed when CI=true. */
import { test } from 'node:test';
import { createTestDatabase, postgresRequired, postgresUnavailable, type TestDatabase } from '../support/postgres.ts';
import { traceScenario } from './scenario.suite.ts';

const unavailable = await postgresUnavailable();
if (unavailable && postgresRequired) {
  test('PostgreSQL is reachable (required when CI=true)', () => {
    throw new Error(unavailable);
  });
} else if (unavailable) {
  test('traceability scenario (postgres)', { skip: unavailable }, () => undefined);
} else {
  let db: TestDatabase | undefined;
  traceScenario(
    'postgres',
    async () => {
      db = await createTestDatabase();
      return { kind: 'postgres', url: db.url };
    },
    async () => db?.drop(),
  );
}
