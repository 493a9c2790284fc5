/**
 * The ES256 keys that sign registry tokens, kept in the access store so that every replica signs
 * and verifies with the same set.
 *
 * Rotation without downtime: the newest key signs; a new key is created once the newest is older
 * than the rotation period, and a replaced key stays published (JWKS) and accepted for
 * verification until every token it signed has expired (token lifetime + clock skew after its
 * successor appeared); then it is deleted. Replicas reload the set periodically and at once when
 * a token names an unknown `kid` (rate-limited), so a key created by another replica is accepted
 * immediately.
 *
 * The private keys are stored as JWKs in the database: whoever can read the database can mint
 * tokens, so protect it (and its backups) like the tokens themselves.
 */
import { type CryptoKey, type JWK, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { SigningKeyStore } from './store/ports.ts';

interface LoadedKey {
  kid: string;
  createdAt: number;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export interface SigningKeyOptions {
  rotationMs: number;
  /** Longest lifetime of a token signed by a key (access tokens), plus clock skew. */
  retainMs: number;
  /** How often to reload the set from the store. */
  reloadMs?: number;
  now?: () => number;
}

export class SigningKeys {
  readonly #store: SigningKeyStore;
  readonly #options: Required<SigningKeyOptions>;
  #keys: LoadedKey[] = [];
  #loadedAt = 0;
  #reloading: Promise<void> | undefined;

  constructor(store: SigningKeyStore, options: SigningKeyOptions) {
    this.#store = store;
    this.#options = { reloadMs: 60_000, now: Date.now, ...options };
  }

  /** Loads the keys, creating the first one or rotating when due; prunes expired ones. */
  async maintain(): Promise<void> {
    await this.#load();
    const now = this.#options.now();
    const newest = this.#keys[0];
    if (!newest || now - newest.createdAt >= this.#options.rotationMs) {
      await this.#create(newest ? new Date(newest.createdAt) : new Date(0));
      await this.#load();
    }
    // A key is needed while tokens it signed may still be valid: until its successor has been
    // signing for `retainMs`.
    for (let i = 1; i < this.#keys.length; i++) {
      const successor = this.#keys[i - 1]!;
      if (now - successor.createdAt > this.#options.retainMs) await this.#store.deleteSigningKey(this.#keys[i]!.kid);
    }
    await this.#load();
  }

  async #create(lastSeen: Date): Promise<void> {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! });
    await this.#store.addSigningKey({ kid, privateJwk: JSON.stringify({ ...jwk, kid, alg: 'ES256' }), createdAt: new Date(this.#options.now()) }, lastSeen);
  }

  async #load(): Promise<void> {
    const records = await this.#store.listSigningKeys();
    const known = new Map(this.#keys.map((k) => [k.kid, k]));
    const keys: LoadedKey[] = [];
    for (const record of records) {
      const existing = known.get(record.kid);
      if (existing) {
        keys.push(existing);
        continue;
      }
      const jwk = JSON.parse(record.privateJwk) as JWK;
      const { d: _private, ...publicJwk } = jwk;
      keys.push({
        kid: record.kid,
        createdAt: record.createdAt.getTime(),
        privateKey: (await importJWK(jwk, 'ES256')) as CryptoKey,
        publicKey: (await importJWK(publicJwk, 'ES256')) as CryptoKey,
        publicJwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y, kid: record.kid, alg: 'ES256', use: 'sig' },
      });
    }
    this.#keys = keys;
    this.#loadedAt = this.#options.now();
  }

  /** The key that signs now. @throws when `maintain()` never ran */
  signingKey(): { kid: string; key: CryptoKey } {
    const newest = this.#keys[0];
    if (!newest) throw new Error('no token-signing key loaded');
    if (this.#options.now() - this.#loadedAt > this.#options.reloadMs) this.#reloadSoon();
    return { kid: newest.kid, key: newest.privateKey };
  }

  /** The public key for `kid`, reloading once (at most every second) when it is unknown. */
  async verificationKey(kid: string | undefined): Promise<CryptoKey | undefined> {
    if (kid === undefined) return undefined;
    const found = this.#keys.find((k) => k.kid === kid);
    if (found) return found.publicKey;
    if (this.#options.now() - this.#loadedAt < 1000) return undefined;
    await this.#reload();
    return this.#keys.find((k) => k.kid === kid)?.publicKey;
  }

  /** The published key set (public parts only). */
  jwks(): { keys: JWK[] } {
    return { keys: this.#keys.map((k) => k.publicJwk) };
  }

  #reload(): Promise<void> {
    this.#reloading ??= this.#load().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  #reloadSoon(): void {
    this.#reload().catch(() => undefined);
  }
}
