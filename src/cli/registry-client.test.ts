import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { authFiles, findCredentials, formatRef, parseImageRef } from './registry-client.ts';

const D = `sha256:${'a'.repeat(64)}`;

test('image references name the registry, and a tag and/or a digest', () => {
  assert.deepEqual(parseImageRef('127.0.0.1:5000/team/app:v1'), { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1', digest: undefined });
  assert.deepEqual(parseImageRef(`registry.example.com/a/b/c@${D}`), { registry: 'registry.example.com', repository: 'a/b/c', tag: undefined, digest: D });
  assert.deepEqual(parseImageRef(`localhost/app:1.0@${D}`), { registry: 'localhost', repository: 'app', tag: '1.0', digest: D });
  assert.equal(parseImageRef('localhost:5000/app').tag, undefined);
  for (const bad of ['app:v1', 'team/app', 'r.io/App:v1', 'r.io/app:bad tag', 'r.io/app@sha256:zz', 'r.io/', 'r.io/a//b']) assert.throws(() => parseImageRef(bad), Error, bad);
  assert.equal(formatRef(parseImageRef(`r.io/app:v1@${D}`)), `r.io/app@${D}`);
});

test('credentials: container tools files in order, the most specific key first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-auth-'));
  try {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const env = { HOME: dir, XDG_RUNTIME_DIR: join(dir, 'run'), XDG_CONFIG_HOME: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker') } as NodeJS.ProcessEnv;
    assert.deepEqual(authFiles(env), [join(dir, 'run/containers/auth.json'), join(dir, 'config/containers/auth.json'), join(dir, 'docker/config.json')]);
    assert.equal(findCredentials('r.io', 'team/app', env), undefined);
    mkdirSync(join(dir, 'docker'));
    writeFileSync(join(dir, 'docker/config.json'), JSON.stringify({ auths: { 'https://r.io': { auth: b64('docker:pw') } } }));
    assert.deepEqual(findCredentials('r.io', 'team/app', env), { username: 'docker', password: 'pw' });
    mkdirSync(join(dir, 'run/containers'), { recursive: true });
    writeFileSync(join(dir, 'run/containers/auth.json'), JSON.stringify({ auths: { 'r.io': { auth: b64('podman:pw:with:colons') }, 'r.io/team': { auth: b64('team:pw') }, 'other.io': { auth: b64('x:y') } } }));
    assert.deepEqual(findCredentials('r.io', 'team/app', env), { username: 'team', password: 'pw' }, 'host/namespace beats host');
    assert.deepEqual(findCredentials('r.io', 'solo/app', env), { username: 'podman', password: 'pw:with:colons' });
    writeFileSync(join(dir, 'explicit.json'), JSON.stringify({ auths: { 'r.io': { auth: b64('explicit:pw'), identitytoken: 'pcf_refresh' } } }));
    assert.deepEqual(findCredentials('r.io', 'team/app', { ...env, REGISTRY_AUTH_FILE: join(dir, 'explicit.json') }), { username: 'explicit', password: 'pw', identityToken: 'pcf_refresh' }, '$REGISTRY_AUTH_FILE first');
    writeFileSync(join(dir, 'broken.json'), '{');
    assert.throws(() => findCredentials('r.io', 'x', { ...env, REGISTRY_AUTH_FILE: join(dir, 'broken.json') }), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('credentials: credential helpers (credHelpers per host, then auths, then credsStore), as Docker runs them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-credhelper-'));
  try {
    // A real helper executable speaking the protocol: server on stdin, JSON on stdout.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const helper = (name: string, body: string) => writeFileSync(join(bin, `docker-credential-${name}`), `#!/bin/sh\n[ "$1" = get ] || exit 3\nread server\n${body}\n`, { mode: 0o755 });
    helper('team', 'case "$server" in r.io) echo \'{"ServerURL":"r.io","Username":"robot$ci","Secret":"s3cret"}\' ;; *) echo "credentials not found in native keychain"; exit 1 ;; esac');
    helper('store', 'echo "{\\"Username\\":\\"<token>\\",\\"Secret\\":\\"refresh-for-$server\\"}"');
    helper('broken', 'echo "the secret is hunter2" >&2; exit 2');
    const env = { PATH: `${bin}:${process.env['PATH']}`, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker') } as NodeJS.ProcessEnv;
    mkdirSync(join(dir, 'docker'));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    writeFileSync(join(dir, 'docker/config.json'), JSON.stringify({ credHelpers: { 'r.io': 'team', 'other.io': 'team' }, auths: { 'other.io': { auth: b64('plain:pw') }, 'store.io': {} }, credsStore: 'store' }));
    assert.deepEqual(findCredentials('r.io', 'team/app', env), { username: 'robot$ci', password: 's3cret' }, 'credHelpers for the host');
    assert.deepEqual(findCredentials('other.io', 'x', env), { username: 'plain', password: 'pw' }, 'a helper without credentials passes to auths');
    assert.deepEqual(findCredentials('store.io', 'x', env), { username: '<token>', password: '', identityToken: 'refresh-for-store.io' }, 'credsStore last; <token> is an identity token');
    writeFileSync(join(dir, 'docker/config.json'), JSON.stringify({ credsStore: 'broken' }));
    assert.throws(() => findCredentials('r.io', 'x', env), (err: Error) => /docker-credential-broken failed \(exit 2\)/.test(err.message) && !err.message.includes('hunter2'));
    writeFileSync(join(dir, 'docker/config.json'), JSON.stringify({ credsStore: 'missing' }));
    assert.throws(() => findCredentials('r.io', 'x', env), /docker-credential-missing is not on PATH/);
    writeFileSync(join(dir, 'docker/config.json'), JSON.stringify({ credHelpers: { 'r.io': '../../bin/sh' } }));
    assert.throws(() => findCredentials('r.io', 'x', env), /not a plain name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
