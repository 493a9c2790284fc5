/**
 * Table-driven ordering tests: every row of the shared fixtures' versions/*.tsv (real test vectors
 * of dpkg, apk-tools, rpm, node-semver and pypa/packaging, see the fixtures README), checked in
 * both directions, plus antisymmetry. A missing or empty table fails the test.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixturesSkip, scannerFixtures } from '../../../../test/scanner/vuln-fixtures.ts';
import { SCHEMES } from './index.ts';
import { rpmvercmp } from './rpm.ts';

interface Row {
  a: string;
  b: string;
  expected: number;
  line: number;
}

function readTsv(file: string): Row[] {
  const text = readFileSync(file, 'utf8');
  const rows: Row[] = [];
  let header = false;
  text.split('\n').forEach((raw, idx) => {
    if (raw.startsWith('#') || raw.trim() === '') return;
    const cols = raw.split('\t');
    if (!header) {
      assert.deepEqual(cols.slice(0, 3), ['a', 'b', 'expected'], `${file}: header`);
      header = true;
      return;
    }
    assert.ok(cols.length >= 3, `${file}:${idx + 1}: expected at least 3 columns`);
    const expected = Number(cols[2]);
    assert.ok(expected === -1 || expected === 0 || expected === 1, `${file}:${idx + 1}: bad expected ${cols[2]}`);
    rows.push({ a: cols[0]!, b: cols[1]!, expected, line: idx + 1 });
  });
  return rows;
}

type Compare = (a: string, b: string) => number;

// rpm.tsv holds rpmvercmp comparisons of single fields (no epoch/release split), per its header.
const TABLES: [string, string, Compare][] = [
  ['dpkg.tsv', 'dpkg', SCHEMES.dpkg.compare],
  ['apk.tsv', 'apk', SCHEMES.apk.compare],
  ['rpm.tsv', 'rpmvercmp', rpmvercmp],
  ['semver.tsv', 'semver', SCHEMES.semver.compare],
  ['pep440.tsv', 'pep440', SCHEMES.pep440.compare],
];

describe('version ordering vectors (fixtures/scanner/versions)', { skip: fixturesSkip() }, () => {
  for (const [file, scheme, cmp] of TABLES) {
    test(`${file} (${scheme})`, () => {
      const rows = readTsv(join(scannerFixtures(), 'versions', file));
      assert.ok(rows.length > 0, `${file} has no vectors`);
      const failures: string[] = [];
      for (const r of rows) {
        const got = Math.sign(cmp(r.a, r.b));
        const back = Math.sign(cmp(r.b, r.a));
        if (got !== r.expected) failures.push(`line ${r.line}: compare(${JSON.stringify(r.a)}, ${JSON.stringify(r.b)}) = ${got}, want ${r.expected}`);
        else if (back !== -r.expected) failures.push(`line ${r.line}: reverse compare = ${back}, want ${-r.expected}`);
      }
      assert.deepEqual(failures, [], `${failures.length}/${rows.length} vectors failed`);
      console.log(`# ${file}: ${rows.length} vectors passed`);
    });
  }
});
