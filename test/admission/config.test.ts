/** admission.* settings: defaults, and refusals naming the setting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/registry/config/load.ts';

const load = (admission: Record<string, unknown>) => loadConfig({ env: {}, overrides: Object.entries(admission).map(([k, value]) => ({ path: ['admission', ...k.split('.')], value })) });

describe('admission configuration', () => {
  it('defaults: off, deny external images and unknown kinds, kube-system excluded, Fail, 5 s', async () => {
    const a = (await load({})).admission;
    assert.equal(a.enabled, false);
    assert.equal(a.external.action, 'deny');
    assert.deepEqual(a.external.allow, []);
    const v = a.external.verify;
    assert.deepEqual([v.mode, v.registries, v.requireDigest, v.policyProject, v.trustPolicyFile, v.hosts, v.timeoutMs, v.maxManifestBytes, v.maxBlobBytes, v.maxArtifacts, v.maxPlatforms], ['enforce', [], false, 'global', undefined, [], 3000, 1 << 20, 1 << 20, 16, 16]);
    assert.equal(a.unknownKinds, 'deny');
    assert.deepEqual(a.namespaces, { include: [], exclude: ['kube-system'] });
    assert.equal(a.failurePolicy, 'Fail');
    assert.equal(a.timeoutSeconds, 5);
    assert.equal(a.clusterName, 'default');
  });

  it('refuses an admission without a caller check, and TLS settings that cannot work', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ enabled: true }, /admission\.auth .*needs a caller check: admission\.auth\.tokenFile, admission\.tls\.clientCaFile/],
      [{ listen: '0.0.0.0:8443' }, /admission\.listen .*needs admission\.tls\.certFile and keyFile/],
      [{ 'tls.certFile': '/c.pem' }, /admission\.tls\.certFile needs admission\.tls\.keyFile/],
      [{ 'tls.keyFile': '/k.pem' }, /admission\.tls\.keyFile needs admission\.tls\.certFile/],
      [{ 'tls.clientCaFile': '/ca.pem' }, /clientCaFile needs admission\.listen/],
      [{ timeoutSeconds: 31 }, /admission\.timeoutSeconds/],
      [{ 'external.action': 'verify' }, /admission\.external\.verify\.registries .*needs admission\.external\.verify\.registries/],
      [{ 'external.action': 'verify', 'external.verify.registries': ['ghcr.io/*'] }, /needs admission\.external\.verify\.trustPolicyFile/],
      [{ 'external.action': 'verify', 'external.verify.registries': ['ghcr.io/*'], 'external.verify.trustPolicyFile': '/t.yaml', 'external.verify.timeoutMs': 5000 }, /timeoutMs must be below admission\.timeoutSeconds \(5 s\)/],
      [{ 'external.verify.hosts': [{ host: 'ghcr.io', username: 'robot' }] }, /username and passwordFile go together/],
      [{ 'external.verify.hosts': [{ host: 'ghcr.io', token: 'x' }] }, /admission\.external\.verify\.hosts/],
      [{ 'external.action': 'pull' }, /admission\.external\.action/],
      [{ clusterName: 'a b' }, /admission\.clusterName/],
    ];
    for (const [settings, message] of cases) {
      await assert.rejects(load(settings), (error: unknown) => error instanceof ConfigError && message.test(error.message), JSON.stringify(settings));
    }
    assert.equal((await load({ enabled: true, 'auth.allowUnauthenticatedLoopback': true })).admission.enabled, true);
  });
});
