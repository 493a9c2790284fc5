/** CIDR lists (IPv4 and IPv6) on Node's `net.BlockList`. */
import { BlockList, isIP } from 'node:net';

/** Parses `10.0.0.0/8`, `2001:db8::/32` or a single address; throws on anything else. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText, extra] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) throw new Error(`not an address or CIDR block: ${JSON.stringify(text)}`);
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** True when `text` is a valid address or CIDR block (for the config schema). */
export function isCidr(text: string): boolean {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}

/** A set of networks; `contains` accepts IPv4, IPv6 and IPv4-mapped IPv6 (`::ffff:10.1.2.3`) addresses. */
export class NetworkList {
  readonly #list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const { address, prefix, family } = parseCidr(cidr);
      this.#list.addSubnet(address, prefix, family);
    }
    this.size = cidrs.length;
  }

  contains(address: string): boolean {
    if (this.size === 0) return false;
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
    const plain = mapped ? mapped[1]! : address;
    const version = isIP(plain);
    if (version === 0) return false;
    return this.#list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  }
}
