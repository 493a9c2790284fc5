/** The audit log suite on SQLite (the embedded default). */
import { runAuditSuite } from './chain.suite.ts';
import { sqliteFixture } from './support.ts';

runAuditSuite('sqlite', sqliteFixture);
