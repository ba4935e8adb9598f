import { BlockList, isIP } from 'node:net';
import { BoundedMemo } from '@graylane/lane-core';

/** `10.0.0.0/8`, `fd00::/8`, or one address (a /32 or /128). */
export function parseCidr(
  text: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Distinct peers remembered per range set; past it the memory starts afresh (a scan of addresses). */
const REMEMBERED_PEERS = 4096;

/** A set of address ranges, checked with Node's BlockList; an IPv4-mapped IPv6 peer is its IPv4. */
export class AddressRanges {
  private readonly list = new BlockList();
  /**
   * Answers by address: `BlockList.check` builds a SocketAddress per call, which cost about 3 % of
   * a small request at the gateway (a CPU profile, issue 21), and a proxy sees few distinct peers.
   */
  private readonly verdicts = new BoundedMemo<string, boolean>(REMEMBERED_PEERS);
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const parsed = parseCidr(cidr);
      if (!parsed) throw new Error(`not an address range: ${cidr}`);
      this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string | undefined): boolean {
    if (!address || this.empty) return false;
    return this.verdicts.get(address) ?? this.verdicts.set(address, this.check(address));
  }

  private check(address: string): boolean {
    const bare = address.replace(/^\[|\]$/g, '');
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1];
    const candidate = mapped ?? bare;
    const version = isIP(candidate);
    if (version === 0) return false;
    return this.list.check(candidate, version === 4 ? 'ipv4' : 'ipv6');
  }
}

const LOOPBACK = new AddressRanges(['127.0.0.0/8', '::1']);

/** Whether a client address (a socket's `remoteAddress`) is this machine's loopback. */
export function isLoopbackAddress(address: string | undefined): boolean {
  return LOOPBACK.has(address);
}
