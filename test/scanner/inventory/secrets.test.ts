/**
 * Secret detection in layers: rules, the files they look at, findings that name rule, path, layer
 * and line but never carry the secret, and secrets in files a later layer deletes.
 */
import { strict as assert } from 'node:assert';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { inventoryImage } from '../../../src/registry/scanner/inventory/inventory.ts';
import { createSecretScanner, wantsSecretScan } from '../../../src/registry/scanner/inventory/secrets.ts';
import { layer } from './helpers.ts';

const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const AWS_ID = 'AKIA' + 'Q3EGPQ4SXJ2TKZ7M';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY';
const GH = 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8';
const NPM = 'npm_' + 'Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8';
const DOCKER_AUTH = Buffer.from('robot:s3cr3t-p4ssw0rd').toString('base64');

describe('secret detection', () => {
  it('finds credentials in the usual places and never reports the secret itself', async () => {
    const inv = await inventoryImage([
      await layer([
        { name: 'root/.ssh/id_ed25519', content: pem },
        { name: 'etc/ssl/private/server.key', content: rsa },
        { name: 'root/.aws/credentials', content: `[default]\naws_access_key_id = ${AWS_ID}\naws_secret_access_key = ${AWS_SECRET}\n` },
        { name: 'root/.docker/config.json', content: JSON.stringify({ auths: { 'registry.example.com': { auth: DOCKER_AUTH } } }) },
        { name: 'home/app/.npmrc', content: `registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=${NPM}\n` },
        { name: 'home/app/.pypirc', content: '[pypi]\nusername = __token__\npassword = pypi-not-a-real-token-but-long-enough\n' },
        { name: 'root/.netrc', content: 'machine github.com login bot password hunter2hunter2\n' },
        { name: 'app/.env', content: `NODE_ENV=production\nGITHUB_TOKEN=${GH}\nDB_PASSWORD=correct-horse-battery\nAPI_KEY=\${API_KEY}\n` },
        { name: 'app/config/settings.yaml', content: `github: ${GH}\n` },
      ]),
    ]);
    const got = inv.secrets.map((s) => `${s.rule} ${s.path}:${s.line}`).sort();
    assert.deepEqual(got, [
      'aws-access-key-id /root/.aws/credentials:2',
      'aws-secret-access-key /root/.aws/credentials:3',
      'docker-config-auth /root/.docker/config.json:1',
      'env-secret /app/.env:3',
      'github-token /app/.env:2',
      'github-token /app/config/settings.yaml:1',
      'netrc-password /root/.netrc:1',
      'npm-token /home/app/.npmrc:2',
      'private-key /etc/ssl/private/server.key:1',
      'private-key /root/.ssh/id_ed25519:1',
      'pypirc-password /home/app/.pypirc:3',
    ]);
    const serialized = JSON.stringify(inv.secrets);
    for (const secret of [AWS_ID, AWS_SECRET, GH, NPM, DOCKER_AUTH, 'hunter2hunter2', 'correct-horse-battery', pem.split('\n')[1]!]) assert.ok(!serialized.includes(secret), 'a secret leaked into the findings');
    for (const s of inv.secrets) {
      assert.match(s.fingerprint, /^[0-9a-f]{32}$/);
      assert.equal(s.layerIndex, 0);
      assert.match(s.layerDiffId ?? '', /^sha256:/);
    }
    // Same secret, same fingerprint (in different files); different key, different fingerprint.
    const gh = inv.secrets.filter((s) => s.rule === 'github-token');
    assert.equal(gh[0]!.fingerprint, gh[1]!.fingerprint);
    const other = await inventoryImage([await layer([{ name: 'app/.env', content: `GITHUB_TOKEN=${GH}\n` }])], { secrets: { key: 'another-installation' } });
    assert.notEqual(other.secrets[0]!.fingerprint, gh[0]!.fingerprint);
  });

  it('reports secrets in files that a later layer deletes (they still ship in the blob)', async () => {
    const inv = await inventoryImage([await layer([{ name: 'root/.npmrc', content: `//r/:_authToken=${NPM}\n` }]), await layer([{ name: 'root/.wh..npmrc' }])]);
    assert.deepEqual(inv.secrets.map((s) => [s.rule, s.path, s.layerIndex]), [['npm-token', '/root/.npmrc', 0]]);
  });

  it('ignores placeholders, documentation, third-party trees and binaries', async () => {
    const inv = await inventoryImage([
      await layer([
        { name: 'app/.env', content: 'PASSWORD=changeme\nSECRET=${SECRET}\nTOKEN=<your-token>\nAPI_KEY=\n' },
        { name: 'app/node_modules/x/test/key.pem', content: pem },
        { name: 'usr/share/doc/openssl/example.key', content: pem },
        { name: 'app/bin/blob.json', content: Buffer.concat([Buffer.from(GH), Buffer.alloc(10)]) },
      ]),
    ]);
    assert.deepEqual(inv.secrets, []);
  });

  it('selects files by path before reading them', () => {
    const file = { type: 'file' as const, size: 100, mode: 0o644 };
    assert.equal(wantsSecretScan('usr/lib/python3/x.py', file), false);
    assert.equal(wantsSecretScan('app/main.py', file), true);
    assert.equal(wantsSecretScan('root/.git-credentials', file), true);
    assert.equal(wantsSecretScan('app/big.json', { ...file, size: 10 * 1024 * 1024 }), false);
    assert.equal(createSecretScanner().select('usr/bin/ls', { ...file, mode: 0o755 }), undefined);
  });
});

describe('secrets in the image config', () => {
  it('environment, labels, command and build history; placeholders ignored', async () => {
    const { findConfigSecrets } = await import('../../../src/registry/scanner/inventory/secrets.ts');
    const found = findConfigSecrets({
      config: {
        Env: ['PATH=/usr/bin', `GITHUB_TOKEN=${GH}`, 'DB_PASSWORD=s3cr3t-value-42', 'API_KEY=${API_KEY}', 'SECRET_NAME=changeme'],
        Labels: { 'org.opencontainers.image.source': 'https://example.com', 'deploy.key': AWS_ID },
        Cmd: ['node', 'server.js'],
      },
      history: [{ created_by: '/bin/sh -c #(nop) ENV NPM_TOKEN=' + NPM }, { created_by: 'RUN apt-get update' }, { created_by: 'ARG DEPLOY_PASSWORD=hunter2hunter2' }],
    });
    assert.deepEqual(found.map((f) => `${f.rule} ${f.location}`).sort(), [
      'aws-access-key-id label:deploy.key',
      'env-secret env:DB_PASSWORD',
      'env-secret history[2] (DEPLOY_PASSWORD)',
      'github-token env:GITHUB_TOKEN',
      'npm-token history[0]',
    ]);
    const s = JSON.stringify(found);
    for (const secret of [GH, NPM, AWS_ID, 's3cr3t-value-42', 'hunter2hunter2']) assert.ok(!s.includes(secret));
  });
});
