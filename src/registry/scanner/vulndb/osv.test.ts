/**
 * OSV record parsing: every fixture record parses; malformed and oversized records are clean
 * errors with a reason; GIT ranges are dropped, events are sorted by the ecosystem's order,
 * limits and withdrawn are kept, severities resolved.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixturesSkip, scannerFixtures } from '../../../../test/scanner/vuln-fixtures.ts';
import { OSV_LIMITS, OsvParseError, parseOsvRecord, parseOsvValue } from './osv.ts';

const base = { id: 'TEST-1', modified: '2024-01-01T00:00:00Z' };

describe('OSV parsing', () => {
  test('every fixture record parses', { skip: fixturesSkip() }, () => {
    const dir = join(scannerFixtures(), 'osv');
    let n = 0;
    for (const eco of readdirSync(dir)) {
      for (const f of readdirSync(join(dir, eco)).filter((x) => x.endsWith('.json'))) {
        const rec = parseOsvRecord(readFileSync(join(dir, eco, f)));
        assert.equal(`${rec.id}.json`, f);
        assert.ok(rec.affected.length > 0, f);
        n++;
      }
    }
    assert.ok(n >= 50, `parsed ${n} records`);
    console.log(`# ${n} fixture records parsed`);
  });

  test('PyPI record: GIT range dropped, ECOSYSTEM kept; PEP 503 key', { skip: fixturesSkip() }, () => {
    const rec = parseOsvRecord(readFileSync(join(scannerFixtures(), 'osv', 'PyPI', 'PYSEC-2022-43012.json')));
    const a = rec.affected[0]!;
    assert.equal(a.ranges.length, 1);
    assert.equal(a.ranges[0]!.type, 'ECOSYSTEM');
    assert.deepEqual(a.ranges[0]!.events, [{ kind: 'introduced', version: '0' }, { kind: 'fixed', version: '65.5.1' }]);
    assert.equal(a.key, 'setuptools');
  });

  test('events are sorted in version order; limits and last_affected kept', () => {
    const rec = parseOsvValue({
      ...base,
      affected: [{
        package: { ecosystem: 'npm', name: 'x' },
        ranges: [{ type: 'SEMVER', events: [{ fixed: '2.0.10' }, { introduced: '2.0.2' }, { limit: '3.0.0' }, { last_affected: '1.5.0' }, { introduced: '0' }] }],
      }],
    });
    const r = rec.affected[0]!.ranges[0]!;
    assert.deepEqual(r.events.map((e) => `${e.kind}:${e.version}`), ['introduced:0', 'last_affected:1.5.0', 'introduced:2.0.2', 'fixed:2.0.10']);
    assert.deepEqual(r.limits, ['3.0.0']);
  });

  test('a range without introduced reads as introduced 0, with a warning', () => {
    const rec = parseOsvValue({ ...base, affected: [{ package: { ecosystem: 'PyPI', name: 'Foo_Bar' }, ranges: [{ type: 'ECOSYSTEM', events: [{ fixed: '1.0' }] }] }] });
    assert.equal(rec.affected[0]!.ranges[0]!.events[0]!.version, '0');
    assert.equal(rec.affected[0]!.key, 'foo-bar');
    assert.ok(rec.warnings.some((w) => w.includes('without introduced')));
  });

  test('withdrawn, aliases, upstream, MAL severity', () => {
    const rec = parseOsvValue({ ...base, id: 'MAL-2024-1', withdrawn: '2024-02-01T00:00:00Z', aliases: ['GHSA-aaaa-bbbb-cccc', 'MAL-2024-1'], upstream: ['CVE-2024-1'], affected: [{ package: { ecosystem: 'npm', name: 'evil' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }] });
    assert.equal(rec.withdrawn, '2024-02-01T00:00:00Z');
    assert.deepEqual(rec.aliases, ['GHSA-aaaa-bbbb-cccc']);
    assert.deepEqual(rec.upstream, ['CVE-2024-1']);
    assert.equal(rec.affected[0]!.severity.severity, 'critical');
    assert.equal(rec.affected[0]!.severity.source, 'malicious');
  });

  test('Debian urgency and GHSA severity words are vendor ratings', () => {
    const deb = parseOsvValue({ ...base, id: 'DEBIAN-CVE-2024-1', affected: [{ package: { ecosystem: 'Debian:12', name: 'x' }, ecosystem_specific: { urgency: 'unimportant' }, versions: ['1'] }] });
    assert.equal(deb.affected[0]!.severity.severity, 'low');
    const gh = parseOsvValue({ ...base, database_specific: { severity: 'CRITICAL' }, severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N' }], affected: [{ package: { ecosystem: 'npm', name: 'x' }, versions: ['1'] }] });
    assert.equal(gh.affected[0]!.severity.severity, 'critical');
    assert.equal(gh.affected[0]!.severity.score, 1.8);
  });

  test('bad CVSS vectors are warnings, the record survives', () => {
    const rec = parseOsvValue({ ...base, severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:X' }], affected: [{ package: { ecosystem: 'npm', name: 'x' }, versions: ['1.0.0'] }] });
    assert.equal(rec.affected[0]!.severity.severity, 'unknown');
    assert.ok(rec.warnings.some((w) => w.includes('CVSS')));
  });

  test('unknown ecosystems keep versions[] but drop ranges they cannot order', () => {
    const rec = parseOsvValue({ ...base, affected: [{ package: { ecosystem: 'NoSuchEco', name: 'x' }, versions: ['1'], ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }] });
    assert.equal(rec.affected[0]!.ranges.length, 0);
    assert.deepEqual(rec.affected[0]!.versions, ['1']);
  });

  test('malformed records are clean errors with a reason', () => {
    const bad: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      [[], /not a JSON object/],
      ['x', /not a JSON object/],
      [{ modified: 'x' }, /id/],
      [{ id: 'X-1' }, /modified/],
      [{ ...base, id: '../../etc/passwd' }, /malformed id/],
      [{ ...base, id: 'x'.repeat(OSV_LIMITS.maxIdLength + 1) }, /id/],
      [{ ...base, aliases: 'CVE-1' }, /aliases/],
      [{ ...base, affected: [{ package: { ecosystem: 'npm' } }] }, /name/],
      [{ ...base, affected: [{ package: { ecosystem: 'npm', name: 'x' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0', fixed: '1' }] }] }] }, /exactly one/],
      [{ ...base, affected: [{ package: { ecosystem: 'npm', name: 'x' }, ranges: [{ type: 'SEMVER', events: [{ introduced: 5 }] }] }] }, /introduced/],
      [{ ...base, affected: [{ package: { ecosystem: 'npm', name: 'x' }, versions: new Array(OSV_LIMITS.maxVersionsPerAffected + 1).fill('1') }] }, /versions/],
      [{ ...base, affected: new Array(OSV_LIMITS.maxAffected + 1).fill({ package: { ecosystem: 'npm', name: 'x' } }) }, /affected/],
    ];
    for (const [value, reason] of bad) {
      assert.throws(() => parseOsvValue(value), (err: unknown) => err instanceof OsvParseError && reason.test(err.message), JSON.stringify(value)?.slice(0, 80));
    }
    assert.throws(() => parseOsvRecord('{"id": '), (e: unknown) => e instanceof OsvParseError && /invalid JSON/.test(e.message));
    assert.throws(() => parseOsvRecord(' '.repeat(OSV_LIMITS.maxRecordBytes + 1)), (e: unknown) => e instanceof OsvParseError && /too large/.test(e.message));
    const e = (() => {
      try {
        parseOsvValue({ id: 'GHSA-1', modified: 3 });
      } catch (err) {
        return err as OsvParseError;
      }
      return undefined;
    })();
    assert.equal(e?.recordId, 'GHSA-1');
  });
});
