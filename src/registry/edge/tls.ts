/**
 * The HTTPS listener: TLS 1.2 or later only, forward-secret AEAD cipher suites, and the
 * certificate and key re-read when their files change (no restart: new connections get the new
 * certificate, open ones keep theirs).
 */
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';

export interface TlsSettings {
  certFile: string;
  keyFile: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** How often the files are checked for a change (ms); 0: never. */
  reloadIntervalMs: number;
  /** CA of client certificates (mutual TLS): requested from every client, required from none; auth decides what a verified one proves. */
  clientCaFile?: string;
}

/** TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305 only (TLS 1.3 suites are all modern). */
export const tlsCiphers = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'].join(':');

function stamp(settings: TlsSettings): string {
  return [settings.certFile, settings.keyFile, ...(settings.clientCaFile ? [settings.clientCaFile] : [])].map((file) => {
    const stat = statSync(file);
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
  }).join('|');
}

/** Creates the HTTPS server; `onReload` hears of every reload (or failure to, which keeps the old certificate). */
export function createTlsServer(
  settings: TlsSettings,
  http: { headersTimeout: number; requestTimeout: number; maxHeaderSize: number; connectionsCheckingInterval: number; keepAliveTimeout: number; connectionTimeout: number },
  handler: RequestListener<typeof IncomingMessage, typeof ServerResponse>,
  onReload: (error: unknown) => void = () => undefined,
): Server {
  const material = () => ({ cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile), ...(settings.clientCaFile ? { ca: readFileSync(settings.clientCaFile) } : {}) });
  // Request, do not require: clients without a certificate (or with an unverifiable one) still connect.
  const clientAuth = settings.clientCaFile ? { requestCert: true, rejectUnauthorized: false } : {};
  const server = createServer(
    { ...material(), ...clientAuth, minVersion: settings.minVersion, ciphers: tlsCiphers, honorCipherOrder: true, headersTimeout: http.headersTimeout, requestTimeout: http.requestTimeout, maxHeaderSize: http.maxHeaderSize, connectionsCheckingInterval: http.connectionsCheckingInterval },
    handler,
  );
  server.keepAliveTimeout = http.keepAliveTimeout;
  server.setTimeout(http.connectionTimeout);
  if (settings.reloadIntervalMs > 0) {
    let last = stamp(settings);
    const timer = setInterval(() => {
      try {
        const now = stamp(settings);
        if (now === last) return;
        server.setSecureContext({ ...material(), minVersion: settings.minVersion, ciphers: tlsCiphers, honorCipherOrder: true });
        last = now;
        onReload(undefined);
      } catch (error) {
        // Half-written files or a key that does not match: keep serving the previous pair.
        onReload(error);
      }
    }, settings.reloadIntervalMs);
    timer.unref();
    server.once('close', () => clearInterval(timer));
  }
  return server;
}
