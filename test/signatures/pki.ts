/**
 * A throw-away test PKI made with the openssl CLI: root CA → intermediate CA → signing leaf, each
 * valid from now for a given number of days. Tests move the verification clock instead of forging
 * dates, so "expired" and "not yet valid" need no date tricks.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestPki {
  dir: string;
  rootPem: string;
  intermediatePem: string;
  leafPem: string;
  leafKeyPem: string;
  /** Another root that issued nothing here. */
  otherRootPem: string;
  /** A CRL from the intermediate: empty, or revoking the leaf. */
  crl(revokeLeaf: boolean): string;
  cleanup(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTestPki(opts: { leafKey?: 'rsa:3072' | 'rsa:2048' | 'ec'; leafDays?: number; leafSubject?: string; san?: string } = {}): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-pki-'));
  const ext = (name: string, body: string) => fs.writeFileSync(path.join(dir, name), body);
  ext('ca.ext', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  ext(
    'leaf.ext',
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n${opts.san ? `subjectAltName=${opts.san}\n` : ''}`,
  );
  const root = (name: string, cn: string) =>
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '3650', '-subj', `/C=US/ST=WA/O=Portcullis Test/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  root('root', 'Test Root');
  root('other', 'Other Root');
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/C=US/ST=WA/O=Portcullis Test/CN=Test Intermediate']);
  openssl(dir, ['x509', '-req', '-in', 'int.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.crt', '-days', '1825', '-extfile', 'ca.ext']);
  const keyArgs = opts.leafKey === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', opts.leafKey ?? 'rsa:3072'];
  openssl(dir, ['req', ...keyArgs, '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', opts.leafSubject ?? '/C=US/ST=WA/O=Portcullis Test/CN=Signer']);
  openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', String(opts.leafDays ?? 30), '-extfile', 'leaf.ext']);
  const r = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return {
    dir,
    rootPem: r('root.crt'),
    intermediatePem: r('int.crt'),
    leafPem: r('leaf.crt'),
    leafKeyPem: r('leaf.key'),
    otherRootPem: r('other.crt'),
    crl: (revokeLeaf: boolean) => {
      const db = `db-${revokeLeaf ? 'r' : 'e'}`;
      fs.writeFileSync(path.join(dir, `${db}.txt`), '');
      fs.writeFileSync(path.join(dir, `${db}.num`), '01\n');
      fs.writeFileSync(
        path.join(dir, `${db}.cnf`),
        `[ca]\ndefault_ca=d\n[d]\ndatabase=${db}.txt\ncrlnumber=${db}.num\ndefault_md=sha256\ndefault_crl_days=30\ncertificate=int.crt\nprivate_key=int.key\n`,
      );
      if (revokeLeaf) openssl(dir, ['ca', '-config', `${db}.cnf`, '-revoke', 'leaf.crt']);
      openssl(dir, ['ca', '-config', `${db}.cnf`, '-gencrl', '-out', `${db}.crl`]);
      return r(`${db}.crl`);
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** `openssl dgst -verify`: true when openssl prints "Verified OK". */
export function opensslVerify(dir: string, args: { pubPem: string; data: Uint8Array; signature: Uint8Array; digest: string; extra?: string[] }): boolean {
  const id = Math.random().toString(36).slice(2);
  const pub = path.join(dir, `pub-${id}.pem`);
  const data = path.join(dir, `data-${id}.bin`);
  const sig = path.join(dir, `sig-${id}.bin`);
  fs.writeFileSync(pub, args.pubPem);
  fs.writeFileSync(data, args.data);
  fs.writeFileSync(sig, args.signature);
  try {
    const out = execFileSync('openssl', ['dgst', `-${args.digest}`, ...(args.extra ?? []), '-verify', pub, '-signature', sig, data], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.includes('Verified OK');
  } catch {
    return false;
  }
}
