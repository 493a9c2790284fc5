import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { BlobFile } from '../storage/ports.ts';

/** A byte range of an open blob file, both ends inclusive (`end` = start - 1 for nothing). */
export interface BlobFileBody {
  file: BlobFile;
  start: number;
  end: number;
}

const CHUNK_BYTES = 1024 * 1024;
/** Free buffers kept between responses: enough for a few concurrent pulls, small next to the RSS budget. */
const POOL_MAX = 8;
const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
}

function returnBuffer(buffer: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(buffer);
}

/**
 * Sends a blob GET's body by reading the file into pooled 1 MiB buffers, one read ahead of the
 * socket. A buffer goes back to the pool only in its write callback (the socket is done with it),
 * so no chunk is allocated per read: with a fresh buffer per chunk (`createReadStream`), 64 MiB of
 * external memory per blob made V8 run a full mark-compact of the whole heap about once per
 * pull, which cost as much CPU as the copying itself. The headers set on `reply` are written as
 * they are; the response hooks (onResponse) still run on finish, onSend hooks do not (a stream
 * body cannot be changed by them anyway).
 */
export function sendBlobFile(reply: FastifyReply, body: BlobFileBody): FastifyReply {
  reply.hijack();
  const res = reply.raw;
  const headers = reply.getHeaders();
  for (const name in headers) res.setHeader(name, headers[name]!);
  res.writeHead(reply.statusCode);
  pump(res, body).catch((error: unknown) => {
    reply.log.warn({ err: error }, 'blob response aborted');
    res.destroy(error as Error);
  });
  return reply;
}

async function pump(res: ServerResponse, { file, start, end }: BlobFileBody): Promise<void> {
  const limit = end + 1;
  let position = start;
  const readAt = (at: number) => {
    const buffer = takeBuffer();
    const length = Math.min(CHUNK_BYTES, limit - at);
    const read = file.read(buffer, length, at).then((bytes) => {
      // Shorter than the recorded size: the response cannot be completed (Content-Length is sent).
      if (bytes !== length) throw new Error(`blob file ended at ${at + bytes} bytes, expected ${limit}`);
      return buffer;
    });
    // Awaited in the next round; a failure while this round waits for drain is not unhandled.
    read.catch(() => undefined);
    return read;
  };
  try {
    let next = position < limit ? readAt(position) : undefined;
    while (next) {
      const buffer = await next;
      const length = Math.min(CHUNK_BYTES, limit - position);
      position += length;
      // The next read overlaps this chunk's write.
      next = position < limit ? readAt(position) : undefined;
      if (res.destroyed) {
        await next?.then(returnBuffer, () => undefined);
        return;
      }
      const chunk = length === buffer.length ? buffer : buffer.subarray(0, length);
      if (!res.write(chunk, () => returnBuffer(buffer))) await drained(res);
    }
    res.end();
  } finally {
    await file.close();
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
