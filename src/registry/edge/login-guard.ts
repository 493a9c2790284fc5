/**
 * Brute-force protection (the `LoginGuard` access control calls before every credential check):
 * failures are counted per account and per client address; past `freeFailures` each failure
 * doubles a delay (from `baseDelay` up to `maxDelay`, the lockout) during which attempts for that
 * account or from that address are refused with 429 TOOMANYREQUESTS and Retry-After, before any
 * password is checked. Success clears the account's
 * counter (the address's is forgotten `forgetAfter` after its last failure).
 *
 * An attacker guessing the admin's password from outside locks the account for outsiders only:
 * attempts from a trusted network are never refused (their failures still count towards the
 * account's lockout elsewhere), so an administrator can always log in from there.
 */
import { RegistryError } from '../../oci/errors.ts';
import type { LoginAttempt, LoginGuard } from '../auth/ports.ts';
import type { NetworkList } from './networks.ts';
import type { BackoffPolicy, FailureCounters } from './ports.ts';

export interface BruteForceOptions extends BackoffPolicy {
  /** Networks whose attempts are never refused. */
  trusted: NetworkList;
  now?: () => number;
  /** Told when a counter could not be updated (e.g. Redis down). */
  onError?: (error: unknown) => void;
}

export class BruteForceGuard implements LoginGuard {
  readonly #counters: FailureCounters;
  readonly #options: BruteForceOptions;
  readonly #now: () => number;
  /** Outstanding `record` updates (tests wait for them). */
  readonly #pending = new Set<Promise<unknown>>();

  constructor(counters: FailureCounters, options: BruteForceOptions) {
    this.#counters = counters;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  static accountKey(username: string): string {
    return `account:${username.toLowerCase()}`;
  }

  static addressKey(address: string): string {
    return `address:${address}`;
  }

  async check(attempt: LoginAttempt): Promise<void> {
    const now = this.#now();
    if (this.#options.trusted.contains(attempt.clientAddress)) return;
    const keys = [BruteForceGuard.addressKey(attempt.clientAddress), BruteForceGuard.accountKey(attempt.username)];
    const states = await Promise.all(keys.map((key) => this.#counters.get(key, now)));
    const until = Math.max(...states.map((state) => state.blockedUntilMs));
    if (until > now) {
      const seconds = Math.max(1, Math.ceil((until - now) / 1000));
      throw new RegistryError('TOOMANYREQUESTS', `too many failed logins: retry in ${seconds} s`, { headers: { 'Retry-After': String(seconds) } });
    }
  }

  record(attempt: LoginAttempt, success: boolean): void {
    const account = BruteForceGuard.accountKey(attempt.username);
    const now = this.#now();
    // Success forgets the account's failures, not the address's: otherwise an attacker holding one
    // valid account could reset the counter of the address it guesses other passwords from.
    const work = (success ? this.#counters.clear(account) : Promise.all([account, BruteForceGuard.addressKey(attempt.clientAddress)].map((key) => this.#counters.fail(key, this.#options, now)))).catch((error) => this.#options.onError?.(error));
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
  }

  /** Resolves when every recorded outcome has been stored. */
  async settled(): Promise<void> {
    await Promise.all([...this.#pending]);
  }
}
