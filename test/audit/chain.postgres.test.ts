/** The audit log suite on PostgreSQL (skipped when unreachable, failed when CI=true). */
import { after, test } from 'node:test';
import { runAuditSuite } from './chain.suite.ts';
import { onPostgres } from './support.ts';

await onPostgres((factory) => runAuditSuite('postgres', factory), after, test);
