/**
 * The audit signing key (Ed25519, node:crypto) that signs checkpoints.
 *
 * Generated at first start into the data directory: the private key as PKCS#8 PEM with mode
 * 0600 (created with O_EXCL, so two processes starting at once cannot overwrite each other's
 * key), the public key beside it as SPKI PEM. Copy the public key somewhere the registry's host
 * cannot write (the auditor's machine) and verify with `audit verify --public-key FILE`: a
 * checkpoint only proves something against a key the attacker does not hold.
 *
 * Replicas sharing one PostgreSQL database should share one key file (`audit.keyFile`), or pass
 * every replica's public key to `audit verify`.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AuditSigner {
  keyId: string;
  sign(payload: Buffer): Buffer;
}

/** A public key trusted to have signed checkpoints, by id. */
export type TrustedKeys = Map<string, KeyObject>;

/** Key id: `ed25519:` + the first 16 bytes of SHA-256 over the SPKI DER, hex. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `${publicKey.asymmetricKeyType}:${createHash('sha256').update(der).digest('hex').slice(0, 32)}`;
}

export function publicKeyPath(keyFile: string): string {
  return keyFile.replace(/(\.pem)?$/, '.pub.pem');
}

function signerFor(privateKey: KeyObject): AuditSigner {
  const keyId = keyIdOf(createPublicKey(privateKey));
  return { keyId, sign: (payload) => sign(null, payload, privateKey) };
}

/**
 * Loads the signing key from `keyFile`, creating it (and its `.pub.pem`) when absent.
 * Refuses a key file readable by group or others.
 */
export async function loadOrCreateSigningKey(keyFile: string): Promise<AuditSigner & { created: boolean; publicKeyFile: string }> {
  const publicKeyFile = publicKeyPath(keyFile);
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  let created = false;
  if (!(await exists(keyFile))) {
    // Written whole to a private temporary file, then linked into place: link() fails when the
    // name exists, so a concurrent start keeps the first key, and a crash leaves no empty key.
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const temporary = `${keyFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, keyFile);
      await writeFile(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
      created = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await unlink(temporary);
    }
  }
  const info = await stat(keyFile);
  if ((info.mode & 0o077) !== 0) throw new Error(`audit signing key ${keyFile} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  const privateKey = createPrivateKey(await readFile(keyFile));
  // Re-export the public key when it went missing (it is derived, never trusted from disk here).
  await readFile(publicKeyFile).catch(async () => {
    await writeFile(publicKeyFile, createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
    await chmod(publicKeyFile, 0o644);
  });
  return { ...signerFor(privateKey), created, publicKeyFile };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
}

/** Reads public keys (PEM, SPKI) or private key files (their public half) into a trust set. */
export async function loadTrustedKeys(files: string[]): Promise<TrustedKeys> {
  const keys: TrustedKeys = new Map();
  for (const file of files) {
    const pem = await readFile(file, 'utf8');
    const key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
    keys.set(keyIdOf(key), key);
  }
  return keys;
}

/** What a checkpoint signature covers. */
export function checkpointPayload(c: { id: number; seq: number; hash: Uint8Array; at: number }): Buffer {
  return Buffer.from(`portcullis-audit-checkpoint:v1\n${c.id}\n${c.seq}\n${Buffer.from(c.hash).toString('hex')}\n${c.at}\n`);
}

export function verifyCheckpointSignature(key: KeyObject, payload: Buffer, signature: Uint8Array): boolean {
  try {
    return verify(null, payload, key, signature);
  } catch {
    return false;
  }
}
