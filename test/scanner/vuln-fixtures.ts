/**
 * Locates the scanner fixtures (`test/fixtures/scanner`, a copy of the shared set, or
 * `$PORTCULLIS_FIXTURES/scanner`). When they are missing, tests skip locally but FAIL under CI=true,
 * so a broken checkout can never pass as green.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function fixturesRoot(): string {
  const fromEnv = process.env.PORTCULLIS_FIXTURES;
  return resolve(fromEnv && fromEnv.length > 0 ? fromEnv : join(repoRoot, 'test', 'fixtures'));
}

export function scannerFixtures(): string {
  return join(fixturesRoot(), 'scanner');
}

/**
 * Returns the scanner fixture directory, or undefined (test should skip) when it is absent and we
 * are not in CI. In CI a missing directory throws.
 */
export function requireScannerFixtures(): string | undefined {
  const dir = scannerFixtures();
  if (existsSync(dir)) return dir;
  if (process.env.CI === 'true') throw new Error(`scanner fixtures not found at ${dir} (set PORTCULLIS_FIXTURES)`);
  return undefined;
}

/** Skip reason for node:test's `{ skip }` option when fixtures are absent locally. */
export function fixturesSkip(): string | false {
  return requireScannerFixtures() === undefined ? `scanner fixtures not found at ${scannerFixtures()}` : false;
}
