/**
 * CVSS scoring vectors. v3.x: published NVD/GitHub scores of the fixture records' vectors and the
 * specification's boundary behaviour; v4.0: FIRST-calculator values published with real advisories
 * and vectors whose scores two independent implementations (ae-cvss-calculator, @pandatix/js-cvss)
 * agree on; v2: NVD-published scores.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CvssError, cvss2BaseScore, cvss3BaseScore, cvss4Score, scoreCvss, severityFromScore } from './cvss.ts';

const V3: [string, number][] = [
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10.0],
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H', 7.5], // GHSA-m5pq-gvj9-9vr8, GHSA-qwcr-r2fm-qrc7
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1], // GHSA-rv95-896h-c2vc
  ['CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:L', 5.0], // GHSA-qw6h-vgh9-j6wx
  ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N', 3.3], // GHSA-5mg8-w23w-74h3
  ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N', 5.5], // GHSA-7g45-4rm6-3mm3
  ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H', 5.9], // GHSA-mvr2-9pj6-7w5j
  ['CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.0], // ALPINE-CVE-2025-26519
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L', 5.3],
  ['CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4],
  ['CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N', 1.6],
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0.0],
  ['CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
  ['CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
  ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
  ['CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H', 9.1],
  ['CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N', 6.5],
  ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:P/RL:O', 8.8], // temporal metrics accepted, base score reported
];

const V4: [string, number][] = [
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H', 10.0],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N', 0.0],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.3],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:H/SI:H/SA:H', 7.9],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:U', 9.1],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/MVI:L/MSA:S', 9.8],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N', 6.9],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N', 5.3], // CVE-2024-7657
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N/E:X', 5.3], // CVE-2025-6829
  ['CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:L', 2.3], // GHSA-qw6h-vgh9-j6wx
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N', 8.7], // GHSA-qwcr-r2fm-qrc7
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N', 5.1], // the OSV schema's example
  ['CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:L/VI:H/VA:L/SC:N/SI:L/SA:L', 6.9],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:H/SA:N', 7.7],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:H/VI:L/VA:L/SC:L/SI:H/SA:L', 8.4],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:L/SA:L', 8.7],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:P/VC:H/VI:H/VA:L/SC:H/SI:N/SA:L', 9.2],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:H/SI:L/SA:H', 6.3],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:P/VC:L/VI:H/VA:H/SC:N/SI:L/SA:N', 7.1],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:H/VI:N/VA:L/SC:N/SI:L/SA:L', 7.0],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:A/VC:L/VI:N/VA:H/SC:N/SI:H/SA:H', 8.3],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:A/VC:N/VI:N/VA:L/SC:H/SI:N/SA:N', 5.9],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:A/VC:N/VI:L/VA:L/SC:N/SI:N/SA:N', 4.8],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:N/VA:L/SC:N/SI:L/SA:N', 8.8],
  ['CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:P/VC:L/VI:H/VA:L/SC:H/SI:L/SA:N', 8.3],
];

const V2: [string, number][] = [
  ['AV:N/AC:L/Au:N/C:P/I:P/A:P', 7.5],
  ['AV:N/AC:L/Au:N/C:C/I:C/A:C', 10.0],
  ['AV:N/AC:M/Au:N/C:N/I:P/A:N', 4.3],
  ['AV:L/AC:L/Au:N/C:P/I:N/A:N', 2.1],
  ['AV:N/AC:L/Au:N/C:N/I:N/A:P', 5.0],
  ['AV:N/AC:L/Au:N/C:N/I:N/A:N', 0.0],
];

describe('CVSS', () => {
  test(`v3.x base scores (${V3.length} vectors)`, () => {
    for (const [v, s] of V3) assert.equal(cvss3BaseScore(v).score, s, v);
  });
  test(`v4.0 scores (${V4.length} vectors)`, () => {
    for (const [v, s] of V4) assert.equal(cvss4Score(v).score, s, v);
  });
  test(`v2 base scores (${V2.length} vectors)`, () => {
    for (const [v, s] of V2) assert.equal(cvss2BaseScore(v).score, s, v);
  });
  test('qualitative severity', () => {
    assert.equal(severityFromScore(0), 'none');
    assert.equal(severityFromScore(0.1), 'low');
    assert.equal(severityFromScore(3.9), 'low');
    assert.equal(severityFromScore(4.0), 'medium');
    assert.equal(severityFromScore(6.9), 'medium');
    assert.equal(severityFromScore(7.0), 'high');
    assert.equal(severityFromScore(8.9), 'high');
    assert.equal(severityFromScore(9.0), 'critical');
    assert.equal(scoreCvss('CVSS_V3', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H').severity, 'critical');
    assert.equal(scoreCvss('CVSS_V4', 'CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:L').severity, 'low');
  });
  test('malformed vectors are clean errors', () => {
    const bad: [string, string][] = [
      ['CVSS_V3', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H'], // missing A
      ['CVSS_V3', 'CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'],
      ['CVSS_V3', 'CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'],
      ['CVSS_V3', 'CVSS:4.0/AV:N'],
      ['CVSS_V3', ''],
      ['CVSS_V4', 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H'],
      ['CVSS_V4', 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/ZZ:1'],
      ['CVSS_V4', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'],
      ['CVSS_V2', 'AV:N/AC:L/Au:N/C:P/I:P'],
      ['Ubuntu', 'high'],
    ];
    for (const [t, v] of bad) assert.throws(() => scoreCvss(t, v), CvssError, `${t} ${v}`);
  });
});
