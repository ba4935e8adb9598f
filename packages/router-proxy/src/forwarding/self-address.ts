import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { BoundedMemo } from '@graylane/lane-core';
import { AddressRanges } from '../http/addresses.js';
import { hostWithoutPort } from '../routing/entrypoint.js';

/** The bound addresses of this proxy's listeners, admin included. */
export type OwnAddresses = () => readonly AddressInfo[];

/** Loopback, and the wildcard addresses a listener may be bound to. */
const THIS_MACHINE = new AddressRanges(['127.0.0.0/8', '::1', '0.0.0.0', '::']);

/** Whether a host name or IP literal (brackets allowed) is this machine on loopback. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  return THIS_MACHINE.has(bare);
}

/**
 * Whether `host` (`name[:port]`, the port `defaultPort` when absent) is one of the proxy's own
 * listeners: a call or tunnel to it would loop through the proxy, or reach its admin listener from
 * wherever the sidecar is reachable.
 */
export function addressesItself(host: string, defaultPort: number, own: OwnAddresses): boolean {
  const addresses = own();
  let answers = answered.get(addresses);
  if (!answers) {
    answers = new BoundedMemo(MEMO_LIMIT);
    answered.set(addresses, answers);
  }
  const key = `${defaultPort} ${host}`;
  return answers.get(key) ?? answers.set(key, isOwnAddress(host, defaultPort, addresses));
}

/**
 * Answers per set of bound addresses (a new set when a listener starts or stops), by host: a
 * sidecar is asked on every call, mostly for the same few hosts, and working it out each time was
 * 0.7 % of a call (issue 21). A host's answer for a wildcard listener follows the machine's
 * interfaces as they were when it was first asked.
 */
const answered = new WeakMap<readonly AddressInfo[], BoundedMemo<string, boolean>>();
const MEMO_LIMIT = 1024;

function isOwnAddress(
  host: string,
  defaultPort: number,
  addresses: readonly AddressInfo[],
): boolean {
  const bare = hostWithoutPort(host) ?? '';
  const port = Number(/:(\d{1,5})$/.exec(host)?.[1] ?? defaultPort);
  const unbracketed = bare.replace(/^\[|\]$/g, '');
  return addresses.some((self) => {
    if (self.port !== port) return false;
    if (isLoopbackHost(bare) || unbracketed === self.address.toLowerCase()) return true;
    // A listener on 0.0.0.0 or :: is reachable on every address of this machine.
    return WILDCARD.has(self.address) && interfaceAddresses().has(unbracketed);
  });
}

const WILDCARD = new Set(['0.0.0.0', '::']);

/** This machine's interface addresses, lower case. */
function interfaceAddresses(): Set<string> {
  return new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((info) => info?.address.toLowerCase())
      .filter((address): address is string => address !== undefined),
  );
}
