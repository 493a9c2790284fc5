/**
 * Password hashing with argon2id (Node's built-in `crypto.argon2`, no native addon) in the PHC
 * string format, so that parameters can be raised later without invalidating stored hashes.
 * Parameters: OWASP's first recommendation for argon2id (19 MiB, 2 passes, 1 lane).
 */
import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Argon2Parameters {
  memoryKiB: number;
  passes: number;
  parallelism: number;
}

export const defaultArgon2: Argon2Parameters = { memoryKiB: 19_456, passes: 2, parallelism: 1 };

const TAG_LENGTH = 32;
const phc = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function derive(password: string, salt: Buffer, params: Argon2Parameters, tagLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2(
      'argon2id',
      { message: Buffer.from(password, 'utf8'), nonce: salt, parallelism: params.parallelism, tagLength, memory: params.memoryKiB, passes: params.passes },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

/** Hashes a password: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. */
export async function hashPassword(password: string, params: Argon2Parameters = defaultArgon2): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, params, TAG_LENGTH);
  return `$argon2id$v=19$m=${params.memoryKiB},t=${params.passes},p=${params.parallelism}$${b64(salt)}$${b64(hash)}`;
}

/** Checks a password against a stored hash in constant time. False for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const match = phc.exec(stored);
  if (!match) return false;
  const params = { memoryKiB: Number(match[1]), passes: Number(match[2]), parallelism: Number(match[3]) };
  const expected = Buffer.from(match[5]!, 'base64');
  const actual = await derive(password, Buffer.from(match[4]!, 'base64'), params, expected.length);
  return timingSafeEqual(actual, expected);
}

/**
 * A hash to verify against when the user does not exist, so that an unknown user name costs
 * the same time as a wrong password (no user enumeration by timing).
 */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  return decoy;
}

export interface PasswordPolicy {
  minLength: number;
}

const MAX_PASSWORD_LENGTH = 1024;
const common = new Set([
  'password', 'password1', 'password12', 'password123', 'password1234', '123456789012', 'qwertyuiopas', 'letmein12345',
  'administrator', 'changeme1234', 'welcome12345', 'iloveyou1234', 'portcullis123', 'portcullis1234',
]);

/** Why `password` is refused for `username`, or undefined when it is acceptable (NIST SP 800-63B style: length, no composition rules). */
export function passwordProblem(password: string, username: string, policy: PasswordPolicy): string | undefined {
  const length = [...password].length;
  if (length < policy.minLength) return `the password must have at least ${policy.minLength} characters`;
  if (length > MAX_PASSWORD_LENGTH) return `the password must have at most ${MAX_PASSWORD_LENGTH} characters`;
  const lower = password.toLowerCase();
  if (username.length >= 3 && lower.includes(username.toLowerCase())) return 'the password must not contain the user name';
  if (common.has(lower) || /^(.)\1+$/.test(password)) return 'the password is too common';
  if (/^pc[a-z]_/.test(password)) return 'the password must not look like a Portcullis token (pc?_ prefix)';
  return undefined;
}
