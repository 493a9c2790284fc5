/**
 * The real Redis for edge tests (127.0.0.1:6379 or PORTCULLIS_TEST_REDIS_URL). Unreachable:
 * the tests fail under CI=true and are skipped otherwise.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';

export const redisUrl = process.env.PORTCULLIS_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || 6379), hostname, () => done(true));
  });
}

/** `false` to run, or a skip reason; throws under CI=true when Redis is unreachable. */
export async function redisSkip(): Promise<false | string> {
  if (await reachable(redisUrl)) return false;
  if (process.env.CI === 'true') throw new Error(`Redis is not reachable at ${redisUrl} (required under CI=true)`);
  return `Redis not reachable at ${redisUrl}`;
}

/** A key prefix of its own per test run. */
export const uniquePrefix = () => `portcullis-test:${randomBytes(6).toString('hex')}:`;
