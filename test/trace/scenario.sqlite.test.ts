/** The traceability scenario on SQLite (scenario.suite.ts). */
import { traceScenario } from './scenario.suite.ts';

traceScenario('sqlite', async () => ({ kind: 'sqlite' }));
