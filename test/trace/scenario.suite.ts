/**
 * The traceability scenario of issue 7, run on SQLite and on PostgreSQL: images built from two
 * commits (OCI annotations, image labels, a verified SLSA provenance attestation), a base image
 * found by layer prefix and named by annotation, signatures, deployments, a vulnerability published
 * after the images were scanned, and the permission filter (a reader of one project sees nothing of
 * another).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { buildImage } from '../acceptance/helpers/oci.ts';
import { fixturesSkip, requireScannerFixtures } from '../scanner/vuln-fixtures.ts';
import { osvSubset, ubuntuBaseLayer, waitFor } from '../scanner/support.ts';
import { traceMain } from '../../src/registry/trace/cli.ts';
import { ADMIN, newKey, pushProvenance, pushSignature, slsaV02, slsaV1, startTraceRegistry, type TraceHarness, withAnnotations } from './support.ts';

const COMMIT_A = 'a'.repeat(8) + '1111222233334444555566667777888899990000'.slice(0, 32);
const COMMIT_B = 'b0b0b0b0c1c1c1c1d2d2d2d2e3e3e3e3f4f4f4f4';
const COMMIT_TOOL = '0123456789abcdef0123456789abcdef01234567';
const BUILDER = 'https://github.com/actions/runner/github-hosted';
const NEW_ADVISORY = 'USN-5378-1';

export function traceScenario(backend: string, metadata: () => Promise<{ kind: 'sqlite' } | { kind: 'postgres'; url: string }>, cleanup: () => Promise<void> = async () => undefined): void {
  describe(`traceability scenario (${backend})`, { skip: fixturesSkip() }, () => {
    let h: TraceHarness;
    let fixtures: string;
    let osvWithout: string;
    let osvAll: string;
    const d = { base: '', appA: '', otherA: '', appB: '', tool: '' };
    const alice = { username: 'alice', password: `pw-${randomBytes(12).toString('base64url')}` };

    before(async () => {
      fixtures = requireScannerFixtures()!;
      osvAll = await osvSubset(fixtures, ['Ubuntu']);
      osvWithout = await osvSubset(fixtures, ['Ubuntu'], [NEW_ADVISORY, 'USN-4968-1']);
      h = await startTraceRegistry(await metadata());
      const scanner = h.registry.scanner!;
      await scanner.importVulnData(osvWithout);
      // projects: team (alice reads it) and other (she does not)
      for (const name of ['team', 'other', 'prod']) assert.equal((await h.request('POST', '/api/v1/projects', { body: { name } })).status, 201);
      assert.equal((await h.request('POST', '/api/v1/users', { body: { name: alice.username, password: alice.password } })).status, 201);
      assert.equal((await h.request('POST', '/api/v1/projects/team/members', { body: { user: 'alice', role: 'reader' } })).status, 201);
      const key = newKey();
      assert.equal((await h.request('PUT', '/api/v1/projects/team/trust-policy', { body: { policy: { keys: [{ name: 'ci', publicKey: key.publicPem }] }, requireSignatureToPull: false } })).status, 201);

      const base = await ubuntuBaseLayer(fixtures);
      const baseImage = buildImage({ layers: [base] });
      d.base = await h.push('team/base', '18.04', baseImage);
      // commit A: annotations on the manifest; also pushed to another project
      const appA = withAnnotations(buildImage({ layers: [base, [{ path: 'app/version', content: Buffer.from('A') }]] }), {
        'org.opencontainers.image.source': 'https://github.com/acme/app.git',
        'org.opencontainers.image.revision': COMMIT_A,
        'org.opencontainers.image.created': '2026-11-01T10:00:00Z',
      });
      d.appA = await h.push('team/app', '1.0', appA);
      d.otherA = await h.push('other/app', '1.0', appA);
      // commit B: labels (as docker buildx writes them), a base annotation, a signature and verified provenance
      const appB = withAnnotations(
        buildImage({
          layers: [base, [{ path: 'app/version', content: Buffer.from('B') }]],
          labels: { 'org.opencontainers.image.source': 'https://github.com/acme/app', 'org.opencontainers.image.revision': COMMIT_B.toUpperCase() },
        }),
        { 'org.opencontainers.image.base.name': 'localhost:5000/team/base:18.04', 'org.opencontainers.image.base.digest': d.base },
      );
      d.appB = await h.push('team/app', '2.0', appB);
      await pushSignature(h, 'team/app', d.appB, key.privateKey);
      await pushProvenance(h, 'team/app', d.appB, key.privateKey, slsaV1(COMMIT_B, BUILDER));
      await h.settle();
      // released: promoted to prod with a registry-signed promotion attestation
      const promoted = await h.request('POST', '/api/v1/promotions', { body: { source: `team/app@${d.appB}`, destination: 'prod/app', tag: '2.0' } });
      assert.equal(promoted.status, 201, JSON.stringify(promoted.body));
      // a tool built elsewhere: SLSA v0.2 provenance, no annotations
      const tool = buildImage({ layers: [[{ path: 'usr/bin/tool', content: Buffer.from('tool') }]] });
      d.tool = await h.push('team/tool', '1', tool);
      await pushProvenance(h, 'team/tool', d.tool, key.privateKey, slsaV02(COMMIT_TOOL, 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0'));
      await h.settle();
      for (const [repository, digest] of [['team/base', d.base], ['team/app', d.appA], ['team/app', d.appB], ['other/app', d.otherA]] as const) {
        await waitFor(`scan of ${repository}@${digest}`, async () => ((await h.request('GET', `/api/v1/repositories/${repository}/scans/${digest}`)).body?.status === 'complete' ? true : undefined));
      }
      await h.settle();
      // where they run: two clusters; a workload in a project alice cannot read
      const admitted = [
        await h.admit('prod-eu', 'shop', 'Deployment', 'web', [{ name: 'app', image: 'localhost:5000/team/app:1.0' }]),
        await h.admit('prod-us', 'shop', 'Deployment', 'web', [{ name: 'app', image: `localhost:5000/team/app@${d.appB}` }]),
        await h.admit('prod-eu', 'tools', 'Job', 'migrate', [{ name: 'tool', image: 'localhost:5000/team/tool:1' }]),
        await h.admit('prod-eu', 'billing', 'StatefulSet', 'ledger', [{ name: 'main', image: 'localhost:5000/other/app:1.0' }]),
      ];
      assert.deepEqual(admitted, [true, true, true, true]);
    });

    after(async () => {
      await h?.close();
      await cleanup();
    });

    test('the graph of an image: sources by how far they can be trusted, base, signatures, findings', async () => {
      const res = await h.request('GET', `/api/v1/trace/${d.appB}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const g = res.body;
      // the promoted copy is traced where it landed, with the facts it carries
      assert.deepEqual(g.images.map((i: any) => [i.repository, i.tags]), [['prod/app', ['2.0']], ['team/app', ['2.0']]]);
      assert.equal(g.images[1].layers, 2);
      const label = g.sources.find((s: any) => s.how === 'label' && s.repository === 'team/app');
      assert.deepEqual([label.sourceRepository, label.commit, label.verified], ['github.com/acme/app', COMMIT_B, false]);
      const provenance = g.sources.find((s: any) => s.how === 'provenance');
      assert.ok(provenance, `no provenance fact in ${JSON.stringify(g.sources)}`);
      assert.deepEqual([provenance.sourceRepository, provenance.commit, provenance.builder, provenance.verified], ['github.com/acme/app', COMMIT_B, BUILDER, true]);
      assert.equal(provenance.buildType, 'https://actions.github.io/buildtypes/workflow/v1');
      assert.deepEqual(g.sources.filter((s: any) => s.repository === 'team/app').map((s: any) => s.how), ['provenance', 'label'], 'verified facts first');
      assert.ok(!g.sources.some((s: any) => s.repository === 'prod/app' && s.verified), 'prod has no trust policy: nothing verified there');
      const layerBase = g.bases.find((b: any) => b.how === 'layers');
      assert.deepEqual([layerBase.digest, layerBase.baseRepository, layerBase.layers], [d.base, 'team/base', 1]);
      const annotated = g.bases.find((b: any) => b.how === 'annotation');
      assert.deepEqual([annotated.digest, annotated.baseName, annotated.baseRepository], [d.base, 'localhost:5000/team/base:18.04', 'team/base']);
      const teamVerdict = g.signatures.find((x: any) => x.repository === 'team/app');
      assert.equal(teamVerdict.verdict, 'verified');
      assert.ok(teamVerdict.attestations.includes('https://slsa.dev/provenance/v1'));
      assert.ok(g.findings.total > 0, 'the Ubuntu packages have findings');
      assert.deepEqual(g.deployments.map((x: any) => [x.cluster, x.namespace, x.workloadKind, x.workloadName, x.container]), [['prod-us', 'shop', 'Deployment', 'web', 'app']]);
      assert.ok(Date.parse(g.deployments[0].firstSeen) <= Date.parse(g.deployments[0].lastSeen));
      assert.deepEqual(g.promotions.map((p: any) => [p.sourceRepository, p.destinationRepository, p.destinationTag, p.decision, p.actor]), [['team/app', 'prod/app', '2.0', 'allowed', 'admin']]);
      assert.match(g.promotions[0].attestation, /^sha256:[a-f0-9]{64}$/);
      // alice reads team but not prod: she does not learn where the image went
      const forAlice = (await h.request('GET', `/api/v1/trace/${d.appB}`, { auth: alice })).body;
      assert.deepEqual(forAlice.promotions, []);
      assert.deepEqual(forAlice.images.map((i: any) => i.repository), ['team/app']);
      assert.equal(g.findings.top.some((f: any) => f.id === NEW_ADVISORY), false, 'not yet published');
    });

    test('the graph of a base image lists the images built on it', async () => {
      const g = (await h.request('GET', `/api/v1/trace/${d.base}`)).body;
      const derived = g.derived.filter((x: any) => x.how === 'layers').map((x: any) => `${x.repository}@${x.digest}`).sort();
      assert.deepEqual(derived, [`other/app@${d.otherA}`, `prod/app@${d.appB}`, `team/app@${d.appA}`, `team/app@${d.appB}`].sort());
      assert.deepEqual(g.bases, []);
    });

    test('which images were built from a commit: full id, abbreviation, verified only', async () => {
      const a = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_A}`)).body;
      assert.deepEqual(a.images.map((i: any) => `${i.repository}@${i.digest}`).sort(), [`other/app@${d.otherA}`, `team/app@${d.appA}`].sort());
      assert.equal(a.images[0].sources[0].how, 'annotation');
      const short = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_B.slice(0, 10).toUpperCase()}`)).body;
      assert.deepEqual(short.images.map((i: any) => `${i.repository}@${i.digest}`), [`prod/app@${d.appB}`, `team/app@${d.appB}`]);
      assert.deepEqual(short.images[1].sources.map((s: any) => s.how).sort(), ['label', 'provenance']);
      const verifiedB = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_B}&verified=true`)).body;
      assert.deepEqual(verifiedB.images.map((i: any) => i.repository), ['team/app']);
      const verifiedA = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_A}&verified=true`)).body;
      assert.deepEqual(verifiedA.images, [], 'commit A is only claimed by annotations');
      const tool = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_TOOL}&verified=true`)).body;
      assert.deepEqual(tool.images.map((i: any) => i.digest), [d.tool]);
      assert.equal(tool.images[0].sources[0].sourceRepository, 'github.com/acme/tool');
      const bySource = (await h.request('GET', `/api/v1/trace/images?source=https://github.com/acme/app`)).body;
      assert.deepEqual([...new Set(bySource.images.map((i: any) => i.digest))].sort(), [d.appA, d.otherA, d.appB].filter((x, i, all) => all.indexOf(x) === i).sort());
    });

    test('where an image runs, and where the images of a commit run', async () => {
      const byDigest = (await h.request('GET', `/api/v1/trace/deployments?digest=${d.appA}`)).body;
      assert.deepEqual(byDigest.deployments.map((x: any) => `${x.cluster}/${x.namespace}/${x.workloadName}`).sort(), ['prod-eu/billing/ledger', 'prod-eu/shop/web']);
      const byCommit = (await h.request('GET', `/api/v1/trace/deployments?commit=${COMMIT_A}`)).body;
      assert.deepEqual(byCommit.deployments.map((x: any) => `${x.cluster}/${x.namespace}/${x.workloadName} ${x.digest}`).sort(), [`prod-eu/billing/ledger ${d.otherA}`, `prod-eu/shop/web ${d.appA}`]);
      assert.equal(byCommit.deployments.find((x: any) => x.workloadName === 'web').image, 'localhost:5000/team/app:1.0');
      const verified = (await h.request('GET', `/api/v1/trace/deployments?commit=${COMMIT_B}&verified=true`)).body;
      assert.deepEqual(verified.deployments.map((x: any) => x.cluster), ['prod-us']);
      const forAlice = (await h.request('GET', `/api/v1/trace/deployments?commit=${COMMIT_A}`, { auth: alice })).body;
      assert.deepEqual(forAlice.deployments.map((x: any) => x.namespace), ['shop']);
    });

    test('a reader of one project sees only that project', async () => {
      const a = (await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_A}`, { auth: alice })).body;
      assert.deepEqual(a.images.map((i: any) => i.repository), ['team/app']);
      // appA and otherA are the same bytes: alice sees the team copy only
      const g = (await h.request('GET', `/api/v1/trace/${d.appA}`, { auth: alice })).body;
      assert.deepEqual(g.images.map((i: any) => i.repository), ['team/app']);
      assert.ok(g.sources.every((s: any) => s.repository === 'team/app'));
      const base = (await h.request('GET', `/api/v1/trace/${d.base}`, { auth: alice })).body;
      assert.ok(base.derived.every((x: any) => x.repository.startsWith('team/')), JSON.stringify(base.derived));
      // an image only in a project she cannot read is answered like an unknown digest
      const hidden = withAnnotations(buildImage({ layers: [[{ path: 'secret', content: Buffer.from('s') }]] }), { 'org.opencontainers.image.revision': COMMIT_A });
      const digest = await h.push('other/secret', '1', hidden);
      await h.settle();
      const denied = await h.request('GET', `/api/v1/trace/${digest}`, { auth: alice });
      const unknown = await h.request('GET', `/api/v1/trace/sha256:${'0'.repeat(64)}`, { auth: alice });
      assert.equal(denied.status, 404);
      assert.deepEqual(denied.body.errors.map((e: any) => e.code), unknown.body.errors.map((e: any) => e.code));
      const anonymous = await h.request('GET', `/api/v1/trace/${d.appA}`, { auth: null });
      assert.equal(anonymous.status, 401);
      // where images run is not for anonymous callers, even of public projects
      for (const url of [`/api/v1/trace/images?commit=${COMMIT_A}`, `/api/v1/trace/deployments?vulnerability=${NEW_ADVISORY}`]) {
        const res = await h.request('GET', url, { auth: null });
        assert.equal(res.status, 401, url);
        assert.match(String(res.headers['www-authenticate']), /^Basic /);
      }
      const wrong = await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_A}`, { auth: { username: 'alice', password: 'wrong-password-1' } });
      assert.equal(wrong.status, 401);
    });

    test('bad queries get a clear 400 in the registry error format', async () => {
      const cases: Array<[string, string]> = [
        ['/api/v1/trace/not-a-digest', 'DIGEST_INVALID'],
        ['/api/v1/trace/images?commit=xyz', 'INVALID_REQUEST'],
        ['/api/v1/trace/images?commit=abc', 'INVALID_REQUEST'],
        [`/api/v1/trace/images?commit=${COMMIT_A}&vulnerability=CVE-2024-1`, 'INVALID_REQUEST'],
        ['/api/v1/trace/images', 'INVALID_REQUEST'],
        [`/api/v1/trace/images?commit=${COMMIT_A}&colour=red`, 'INVALID_REQUEST'],
        [`/api/v1/trace/images?commit=${COMMIT_A}&limit=0`, 'INVALID_REQUEST'],
        [`/api/v1/trace/images?commit=${COMMIT_A}&verified=yes`, 'INVALID_REQUEST'],
        [`/api/v1/trace/deployments?vulnerability=${encodeURIComponent("CVE' OR 1=1")}`, 'INVALID_REQUEST'],
        ['/api/v1/trace/deployments?digest=sha256:abc', 'DIGEST_INVALID'],
      ];
      for (const [url, code] of cases) {
        const res = await h.request('GET', url);
        assert.equal(res.status, 400, url);
        assert.equal(res.body.errors[0].code, code, url);
        assert.ok(res.body.errors[0].message.length > 0);
      }
    });

    test('a new advisory: the affected images are found from stored data', async () => {
      const before = (await h.request('GET', `/api/v1/trace/images?vulnerability=${NEW_ADVISORY}`)).body;
      assert.deepEqual(before.images, []);
      await h.registry.scanner!.importVulnData(osvAll);
      const after = await waitFor('re-evaluated findings in the trace', async () => {
        await h.settle();
        const body = (await h.request('GET', `/api/v1/trace/images?vulnerability=${NEW_ADVISORY.toLowerCase()}`)).body;
        return body.images.length >= 5 ? body : undefined;
      });
      const affected = after.images.map((i: any) => `${i.repository}@${i.digest}`).sort();
      assert.deepEqual(affected, [`other/app@${d.otherA}`, `prod/app@${d.appB}`, `team/app@${d.appA}`, `team/app@${d.appB}`, `team/base@${d.base}`].sort());
      assert.ok(after.images[0].findings.every((f: any) => f.id === NEW_ADVISORY || f.id.length > 0));
      const g = (await h.request('GET', `/api/v1/trace/${d.appB}`)).body;
      assert.ok(g.findings.top.length > 0);
      const forAlice = (await h.request('GET', `/api/v1/trace/images?vulnerability=${NEW_ADVISORY}`, { auth: alice })).body;
      assert.ok(forAlice.images.every((i: any) => i.repository.startsWith('team/')));
      // the question of the incident: which running workloads are affected?
      const running = (await h.request('GET', `/api/v1/trace/deployments?vulnerability=${NEW_ADVISORY}`)).body;
      assert.deepEqual(running.deployments.map((x: any) => `${x.cluster}/${x.namespace}/${x.workloadKind}/${x.workloadName}`).sort(), ['prod-eu/billing/StatefulSet/ledger', 'prod-eu/shop/Deployment/web', 'prod-us/shop/Deployment/web']);
      const runningForAlice = (await h.request('GET', `/api/v1/trace/deployments?vulnerability=${NEW_ADVISORY}`, { auth: alice })).body;
      assert.deepEqual(runningForAlice.deployments.map((x: any) => `${x.cluster}/${x.namespace}`).sort(), ['prod-eu/shop', 'prod-us/shop']);
      const none = (await h.request('GET', '/api/v1/trace/deployments?vulnerability=CVE-1999-0001')).body;
      assert.deepEqual(none, { images: [], truncated: false, deployments: [] });
    });

    test('the CLI answers the same questions over HTTP with the caller\'s credentials', async () => {
      await h.registry.app.listen({ host: '127.0.0.1', port: 0 });
      const address = h.registry.app.server.address();
      const host = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      const cli = async (...args: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await traceMain(args, { out: (s) => void out.push(s), err: (s) => void err.push(s) });
        return { code, out: out.join('\n'), err: err.join('\n') };
      };
      const asAdmin = ['--registry-username', ADMIN.username, '--registry-password', ADMIN.password];
      const graph = await cli(`${host}/team/app:2.0`, ...asAdmin);
      assert.equal(graph.code, 0, graph.err);
      assert.match(graph.out, new RegExp(`^${d.appB}`));
      assert.match(graph.out, new RegExp(`github.com/acme/app @ ${COMMIT_B} built by ${BUILDER.replace(/[/.]/g, '\\$&')} \\[verified provenance`));
      assert.match(graph.out, /\[label, a claim \(unverified\)\]/);
      assert.match(graph.out, new RegExp(`team/base@${d.base} \\(its 1 layer\\(s\\) are the first of this image\\)`));
      const json = await cli(d.appA, '--registry', host, '--json', ...asAdmin);
      assert.deepEqual(JSON.parse(json.out).images.map((i: any) => i.repository).sort(), ['other/app', 'team/app']);
      const byCommit = await cli('--commit', COMMIT_A.slice(0, 12), '--registry', host, '--json', '--registry-username', alice.username, '--registry-password', alice.password);
      assert.equal(byCommit.code, 0, byCommit.err);
      assert.deepEqual(JSON.parse(byCommit.out).images.map((i: any) => i.repository), ['team/app'], 'alice reads team only');
      const vuln = await cli('--vulnerability', 'CVE-1999-0001', '--registry', host, ...asAdmin);
      assert.equal(vuln.code, 0, vuln.err);
      assert.match(vuln.out, /^images \(0\):\ndeployments \(0\):$/);
      const affected = await cli('--vulnerability', NEW_ADVISORY, '--registry', host, '--registry-username', alice.username, '--registry-password', alice.password);
      assert.match(affected.out, /^deployments \(2\):$/m);
      assert.match(affected.out, new RegExp(`^  prod-us/shop Deployment/web container app: localhost:5000/team/app@${d.appB}, first seen `, 'm'));
      assert.doesNotMatch(affected.out, /billing/);
      // errors: usage (2), a refusal or unknown image (1)
      assert.equal((await cli('--commit', COMMIT_A, d.appA, '--registry', host)).code, 2);
      assert.equal((await cli(d.appA)).code, 2, 'a bare digest needs --registry');
      const anonymous = await cli(d.appA, '--registry', host);
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.err, /401 UNAUTHORIZED/);
      const unknown = await cli(`sha256:${'1'.repeat(64)}`, '--registry', host, ...asAdmin);
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /404 MANIFEST_UNKNOWN/);
    });

    test('deleting an image removes it from the answers', async () => {
      const digest = await h.push('team/app', 'tmp', withAnnotations(buildImage({ layers: [[{ path: 'tmp', content: Buffer.from('tmp') }]] }), { 'org.opencontainers.image.revision': COMMIT_TOOL }));
      await h.settle();
      assert.ok((await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_TOOL}`)).body.images.some((i: any) => i.digest === digest));
      assert.equal((await h.request('DELETE', `/v2/team/app/manifests/${digest}`)).status, 202);
      await h.settle();
      assert.ok(!(await h.request('GET', `/api/v1/trace/images?commit=${COMMIT_TOOL}`)).body.images.some((i: any) => i.digest === digest));
      assert.equal((await h.request('GET', `/api/v1/trace/${digest}`)).status, 404);
    });
  });
}
