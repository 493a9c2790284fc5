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
