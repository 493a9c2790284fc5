import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, environmentVariables, loadConfig, redactedConfig, validateConfig } from './load.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-config-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
async function yamlFile(text: string): Promise<string> {
  const file = join(dir, `config-${++fileCounter}.yaml`);
  await writeFile(file, text);
  return file;
}

/** Asserts a ConfigError whose message matches every pattern; returns the message. */
async function rejects(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<string> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught.message;
}

describe('defaults', () => {
  test('with no file, environment or flags: loopback 127.0.0.1:5000, ./data, SQLite metadata, filesystem blobs', async () => {
    const config = await loadConfig({ env: {} });
    assert.equal(config.server.listen, '127.0.0.1:5000');
    assert.equal(config.server.trustProxy, false);
    assert.equal(config.storage.dataDir, './data');
    assert.equal(config.storage.metadata.kind, 'sqlite');
    assert.equal(config.storage.metadata.sqlitePath, undefined);
    assert.equal(config.storage.metadata.postgresUrl, undefined);
    assert.equal(config.storage.blobs.kind, 'filesystem');
    assert.equal(config.storage.delete.enabled, true);
    assert.equal(config.limits.manifestMaxBytes, 4 * 1024 * 1024);
    assert.equal(config.limits.blobMaxBytes, 0);
    assert.equal(config.log.level, 'info');
  });

  test('an empty file, an empty mapping and validateConfig({}) give the same defaults', async () => {
    const defaults = await loadConfig({ env: {} });
    assert.deepEqual(await loadConfig({ file: await yamlFile(''), env: {} }), defaults);
    assert.deepEqual(await loadConfig({ file: await yamlFile('{}\n'), env: {} }), defaults);
    assert.deepEqual(validateConfig({}), defaults);
  });
});

describe('precedence: file < PORTCULLIS_* environment < flags', () => {
  test('each source overrides the one before it, key by key', async () => {
    const file = await yamlFile(['server:', '  listen: 127.0.0.1:6001', '  keepAliveTimeoutSeconds: 30', 'storage:', '  dataDir: /from/file', 'log:', '  level: warn', ''].join('\n'));
    const env = { PORTCULLIS_SERVER_LISTEN: '127.0.0.1:6002', PORTCULLIS_STORAGE_DATA_DIR: '/from/env' };

    const fileOnly = await loadConfig({ file, env: {} });
    assert.equal(fileOnly.server.listen, '127.0.0.1:6001');
    assert.equal(fileOnly.storage.dataDir, '/from/file');

    const fileAndEnv = await loadConfig({ file, env });
    assert.equal(fileAndEnv.server.listen, '127.0.0.1:6002');
    assert.equal(fileAndEnv.storage.dataDir, '/from/env');
    // Keys the environment does not name keep their file values.
    assert.equal(fileAndEnv.server.keepAliveTimeoutSeconds, 30);
    assert.equal(fileAndEnv.log.level, 'warn');

    const all = await loadConfig({ file, env, overrides: [{ path: ['server', 'listen'], value: '127.0.0.1:6003', flag: '--listen' }] });
    assert.equal(all.server.listen, '127.0.0.1:6003');
    assert.equal(all.storage.dataDir, '/from/env');
    assert.equal(all.server.keepAliveTimeoutSeconds, 30);
  });

  test('an environment variable sets one leaf without replacing its siblings from the file', async () => {
    const file = await yamlFile(['storage:', '  metadata:', '    kind: postgres', '    postgresUrl: postgres://registry@db.internal:5432/portcullis', ''].join('\n'));
    const config = await loadConfig({ file, env: { PORTCULLIS_STORAGE_METADATA_POSTGRES_POOL_SIZE: '25' } });
    assert.deepEqual(config.storage.metadata, { kind: 'postgres', postgresUrl: 'postgres://registry@db.internal:5432/portcullis', postgresPoolSize: 25 });
  });

  test('environment values are read as JSON for numbers and booleans, and kept verbatim for strings', async () => {
    const config = await loadConfig({
      env: {
        PORTCULLIS_STORAGE_DELETE_ENABLED: 'false',
        PORTCULLIS_SERVER_TRUST_PROXY: 'true',
        PORTCULLIS_GC_INTERVAL_SECONDS: '0',
        PORTCULLIS_LIMITS_BLOB_MAX_BYTES: '1073741824',
        PORTCULLIS_STORAGE_DATA_DIR: '123',
        PORTCULLIS_STORAGE_METADATA_SQLITE_PATH: 'true',
        PORTCULLIS_LOG_LEVEL: 'debug',
      },
    });
    assert.equal(config.storage.delete.enabled, false);
    assert.equal(config.server.trustProxy, true);
    assert.equal(config.gc.intervalSeconds, 0);
    assert.equal(config.limits.blobMaxBytes, 1073741824);
    assert.equal(config.storage.dataDir, '123');
    assert.equal(config.storage.metadata.sqlitePath, 'true');
    assert.equal(config.log.level, 'debug');
  });
});

describe('errors name the dotted key and where the bad value came from', () => {
  test('a bad value in the file', async () => {
    const file = await yamlFile('server:\n  listen: localhost\n');
    const message = await rejects(loadConfig({ file, env: {} }), /server\.listen/, /HOST:PORT/);
    assert.ok(message.includes(file), message);
  });

  test('a bad value in the environment names the variable', async () => {
    await rejects(loadConfig({ env: { PORTCULLIS_STORAGE_DELETE_ENABLED: 'yes' } }), /storage\.delete\.enabled \(from PORTCULLIS_STORAGE_DELETE_ENABLED\)/, /boolean/);
    await rejects(loadConfig({ env: { PORTCULLIS_SERVER_KEEP_ALIVE_TIMEOUT_SECONDS: '-5' } }), /server\.keepAliveTimeoutSeconds \(from PORTCULLIS_SERVER_KEEP_ALIVE_TIMEOUT_SECONDS\)/);
  });

  test('a bad value from a flag names the flag', async () => {
    await rejects(loadConfig({ env: {}, overrides: [{ path: ['server', 'listen'], value: 'nowhere', flag: '--listen' }] }), /server\.listen \(from --listen; env PORTCULLIS_SERVER_LISTEN\)/);
    await rejects(loadConfig({ env: {}, overrides: [{ path: ['storage', 'dataDir'], value: '', flag: '--data-dir' }] }), /storage\.dataDir \(from --data-dir/);
  });

  test('the source is the last one that set the key', async () => {
    const file = await yamlFile('server:\n  listen: 127.0.0.1:5000\n');
    await rejects(loadConfig({ file, env: { PORTCULLIS_SERVER_LISTEN: 'bad' } }), /server\.listen \(from PORTCULLIS_SERVER_LISTEN\)/);
    const badFile = await yamlFile('server:\n  listen: bad\n');
    const fixedByEnv = await loadConfig({ file: badFile, env: { PORTCULLIS_SERVER_LISTEN: '127.0.0.1:5001' } });
    assert.equal(fixedByEnv.server.listen, '127.0.0.1:5001');
  });

  test('nested keys, enums and cross-field rules name the full path', async () => {
    await rejects(loadConfig({ file: await yamlFile('storage:\n  metadata:\n    kind: mysql\n'), env: {} }), /storage\.metadata\.kind/);
    await rejects(loadConfig({ file: await yamlFile('storage:\n  metadata:\n    kind: postgres\n'), env: {} }), /storage\.metadata\.postgresUrl \(not set; env PORTCULLIS_STORAGE_METADATA_POSTGRES_URL\): postgresUrl is required/);
    await rejects(loadConfig({ file: await yamlFile('log:\n  level: loud\n'), env: {} }), /log\.level/);
  });

  test('every bad key is listed, one per line', async () => {
    const file = await yamlFile('gc:\n  intervalSeconds: -1\nlimits:\n  manifestMaxBytes: -1\n');
    const message = await rejects(loadConfig({ file, env: {} }), /gc\.intervalSeconds/, /limits\.manifestMaxBytes/);
    assert.equal(message.split('\n').length, 3);
  });

  test('a port outside 0-65535 is refused at load time, not when the server binds', async () => {
    await rejects(loadConfig({ env: { PORTCULLIS_SERVER_LISTEN: '127.0.0.1:65536' } }), /server\.listen/, /65535/);
    await rejects(loadConfig({ env: { PORTCULLIS_SERVER_LISTEN: '127.0.0.1:99999' } }), /server\.listen/);
    assert.equal((await loadConfig({ env: { PORTCULLIS_SERVER_LISTEN: '[::1]:65535' } })).server.listen, '[::1]:65535');
    assert.equal((await loadConfig({ env: { PORTCULLIS_SERVER_LISTEN: '127.0.0.1:0' } })).server.listen, '127.0.0.1:0');
  });

  test('the default page size may not exceed the largest page size', async () => {
    await rejects(loadConfig({ env: { PORTCULLIS_LIMITS_LIST_MAX_PAGE_SIZE: '100' } }), /limits\.listDefaultPageSize \(not set; env PORTCULLIS_LIMITS_LIST_DEFAULT_PAGE_SIZE\): must not exceed listMaxPageSize/);
    const config = await loadConfig({ env: { PORTCULLIS_LIMITS_LIST_MAX_PAGE_SIZE: '100', PORTCULLIS_LIMITS_LIST_DEFAULT_PAGE_SIZE: '100' } });
    assert.equal(config.limits.listDefaultPageSize, 100);
  });

  test('validateConfig alone still names the key', () => {
    assert.throws(() => validateConfig({ gc: { intervalSeconds: 'hourly' } }), (error: Error) => error instanceof ConfigError && /gc\.intervalSeconds/.test(error.message));
  });
});

describe('unknown settings are errors, not silently ignored', () => {
  test('unknown keys in the file, at any depth, are named', async () => {
    await rejects(loadConfig({ file: await yamlFile('sever:\n  listen: 127.0.0.1:5000\n'), env: {} }), /sever .*: unknown setting/);
    await rejects(loadConfig({ file: await yamlFile('server:\n  lisen: 127.0.0.1:5000\n'), env: {} }), /server\.lisen .*: unknown setting/);
    await rejects(loadConfig({ file: await yamlFile('storage:\n  metadata:\n    postgresURL: x\n'), env: {} }), /storage\.metadata\.postgresURL .*: unknown setting/);
    const message = await rejects(loadConfig({ file: await yamlFile('a: 1\nb: 2\n'), env: {} }), /^ {2}a .*unknown setting$/m, /^ {2}b .*unknown setting$/m);
    assert.match(message, /config file/);
  });

  test('an unknown PORTCULLIS_* variable is refused by name', async () => {
    await rejects(loadConfig({ env: { PORTCULLIS_SERVER_PORT: '5000' } }), /unknown environment variable PORTCULLIS_SERVER_PORT/);
    await rejects(loadConfig({ env: { PORTCULLIS_STORAGE_DATADIR: '/x' } }), /PORTCULLIS_STORAGE_DATADIR/);
    await rejects(loadConfig({ env: { PORTCULLIS_STORAGE: '{}' } }), /PORTCULLIS_STORAGE\b/);
  });

  test('variables of other programs, and the secrets other modules read, are not settings', async () => {
    const config = await loadConfig({ env: { HOME: '/root', PATH: '/bin', PORTCULLIS_ADMIN_PASSWORD: 'x'.repeat(20), PORTCULLIS_HTTP_TARGET: 'portcullis' } });
    assert.equal(config.server.listen, '127.0.0.1:5000');
  });

  test('every advertised variable is read and maps to one setting', async () => {
    const names = environmentVariables();
    assert.equal(new Set(names).size, names.length, 'no duplicates');
    assert.ok(names.includes('PORTCULLIS_SERVER_LISTEN'));
    assert.ok(names.includes('PORTCULLIS_STORAGE_METADATA_POSTGRES_URL'));
    assert.ok(names.includes('PORTCULLIS_GC_UNTAGGED_MANIFESTS_AFTER_SECONDS'));
    const marker = '{"marker":1}';
    for (const name of names) {
      assert.match(name, /^PORTCULLIS_[A-Z0-9_]+$/);
      // A JSON object is wrong for every setting but a string: the error must name this variable,
      // or the string must land, verbatim, in exactly one setting.
      let config;
      try {
        config = await loadConfig({ env: { [name]: marker } });
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`(from ${name})`), error.message);
        continue;
      }
      assert.equal(leafValues(config).filter((value) => value === marker).length, 1, name);
    }
  });
});

function leafValues(node: unknown): unknown[] {
  if (node === null || typeof node !== 'object') return [node];
  return Object.values(node).flatMap(leafValues);
}

describe('the file itself', () => {
  test('a missing file, invalid YAML and a non-mapping are reported with the file name', async () => {
    const missing = join(dir, 'does-not-exist.yaml');
    await rejects(loadConfig({ file: missing, env: {} }), /cannot read config file/, new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await rejects(loadConfig({ file: await yamlFile('server: [\n'), env: {} }), /is not valid YAML/);
    await rejects(loadConfig({ file: await yamlFile('server:\n  listen: a\nserver:\n  listen: b\n'), env: {} }), /is not valid YAML/);
    await rejects(loadConfig({ file: await yamlFile('- server\n'), env: {} }), /must be a YAML mapping/);
    await rejects(loadConfig({ file: await yamlFile('just a string\n'), env: {} }), /must be a YAML mapping/);
  });
});

describe('redactedConfig', () => {
  async function shown(url: string): Promise<string | undefined> {
    const config = await loadConfig({ env: { PORTCULLIS_STORAGE_METADATA_KIND: 'postgres', PORTCULLIS_STORAGE_METADATA_POSTGRES_URL: url } });
    return redactedConfig(config).storage.metadata.postgresUrl;
  }

  test('masks the PostgreSQL password, wherever the URL carries it', async () => {
    assert.equal(await shown('postgres://registry:s3cret@db:5432/portcullis'), 'postgres://registry:***@db:5432/portcullis');
    assert.equal(await shown('postgres://registry@db/portcullis?password=s3cret&sslmode=require'), 'postgres://registry@db/portcullis?password=***&sslmode=require');
    assert.equal(await shown('host=db password=s3cret'), '***');
  });

  test('leaves a URL without a password, and everything else, as it is', async () => {
    assert.equal(await shown('postgres://registry@db:5432/portcullis'), 'postgres://registry@db:5432/portcullis');
    const config = await loadConfig({ env: {} });
    assert.deepEqual(redactedConfig(config), config);
  });

  test('does not modify the configuration it is given', async () => {
    const config = await loadConfig({ env: { PORTCULLIS_STORAGE_METADATA_KIND: 'postgres', PORTCULLIS_STORAGE_METADATA_POSTGRES_URL: 'postgres://u:p@h/d' } });
    redactedConfig(config);
    assert.equal(config.storage.metadata.postgresUrl, 'postgres://u:p@h/d');
  });
});
