/**
 * Every file in examples/config must load with the real loader (the same code `portcullis
 * config check` and `serve` use), so the examples never drift from the schema.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/registry/config/load.ts';

const examplesDir = fileURLToPath(new URL('../../examples/config/', import.meta.url));
const files = (await readdir(examplesDir, { withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => entry.name).sort();

describe('examples/config', () => {
  test('holds the embedded and the PostgreSQL examples, and only YAML files', () => {
    assert.ok(files.includes('embedded.yaml'), 'embedded.yaml');
    assert.ok(files.includes('postgres.yaml'), 'postgres.yaml');
    for (const file of files) assert.match(file, /\.ya?ml$/, `${file} is not a YAML config`);
  });

  for (const file of files) {
    test(`${file} is a valid configuration`, async () => {
      // No environment: the file alone must be complete and valid.
      await assert.doesNotReject(loadConfig({ file: `${examplesDir}${file}`, env: {} }));
    });
  }

  test('embedded.yaml is exactly the defaults, written out', async () => {
    const defaults = await loadConfig({ env: {} });
    const embedded = await loadConfig({ file: `${examplesDir}embedded.yaml`, env: {} });
    assert.deepEqual(embedded, defaults);
    assert.equal(embedded.storage.metadata.kind, 'sqlite');
    assert.equal(embedded.storage.blobs.kind, 'filesystem');
  });

  test('postgres.yaml uses PostgreSQL metadata and keeps the password out of the file', async () => {
    const config = await loadConfig({ file: `${examplesDir}postgres.yaml`, env: {} });
    assert.equal(config.storage.metadata.kind, 'postgres');
    const url = new URL(config.storage.metadata.postgresUrl ?? '');
    assert.equal(url.protocol, 'postgres:');
    assert.equal(url.password, '');
    assert.equal(url.searchParams.get('password'), null);
  });
});
