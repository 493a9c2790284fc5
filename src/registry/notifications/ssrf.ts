/**
 * Webhook targets must not reach the registry's own network (SSRF): a URL whose host is, or
 * resolves to, a loopback, link-local, private, shared, documentation, multicast or reserved
 * address is refused unless it lies in `webhooks.allowedNetworks`. The check runs when a webhook
 * is saved (a clear 400) and again inside the connection's own DNS lookup at every delivery, so a
 * name re-pointed later (DNS rebinding) is refused too; redirects are never followed.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { NetworkList } from '../edge/networks.ts';

const RESERVED = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  '::/128', '::1/128', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '2001:db8::/32', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8',
];

export class TargetRefused extends Error {
  override name = 'TargetRefused';
  readonly code = 'EPORTCULLIS_TARGET_REFUSED';
}

export class TargetPolicy {
  readonly #reserved = new NetworkList(RESERVED);
  readonly #allowed: NetworkList;
  readonly #allowHttp: boolean;

  constructor(settings: { allowedNetworks: string[]; allowHttp: boolean }) {
    this.#allowed = new NetworkList(settings.allowedNetworks);
    this.#allowHttp = settings.allowHttp;
  }

  /** Why `address` may not be contacted, or undefined when it may. */
  refusal(address: string): string | undefined {
    if (this.#allowed.contains(address)) return undefined;
    if (this.#reserved.contains(address) || isIP(address.replace(/^\[|\]$/g, '')) === 0) return `${address} is a loopback, private, link-local or reserved address (allow it with webhooks.allowedNetworks)`;
    return undefined;
  }

  /** Parses and checks a target URL (syntax only; `resolve` checks the addresses). */
  parse(text: string): URL {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new TargetRefused('url: not an absolute URL');
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.#allowHttp)) throw new TargetRefused(`url: ${url.protocol} targets are not allowed (https${this.#allowHttp ? ' or http' : ''})`);
    if (url.username || url.password) throw new TargetRefused('url: credentials in the URL are not allowed (use the HMAC secret)');
    if (url.hash) throw new TargetRefused('url: a fragment is not allowed');
    return url;
  }

  /** Resolves the host and refuses when any address is not allowed. */
  async check(text: string): Promise<URL> {
    const url = this.parse(text);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const addresses = isIP(host) ? [host] : await resolveAll(host);
    for (const address of addresses) {
      const why = this.refusal(address);
      if (why) throw new TargetRefused(`url: ${url.hostname} ${isIP(host) ? 'is refused' : `resolves to ${address}`}: ${why}`);
    }
    return url;
  }

  /** A `lookup` for http.request that refuses forbidden addresses at connection time. */
  lookup(): (hostname: string, options: { all?: boolean; family?: number }, callback: (...args: any[]) => void) => void {
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
        if (error) return callback(error);
        const bad = addresses.find((a) => this.refusal(a.address));
        if (bad) return callback(new TargetRefused(`${hostname} resolves to ${bad.address}: ${this.refusal(bad.address)}`));
        if (options.all) return callback(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    };
  }
}

function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (error, addresses) => {
      if (error) reject(new TargetRefused(`url: ${host} does not resolve (${(error as NodeJS.ErrnoException).code ?? error.message})`));
      else resolve(addresses.map((a) => a.address));
    });
  });
}
