/**
 * A relay whose target is its own listening address (`forward 9000 127.0.0.1:9000`) connects to
 * itself for every connection, which connects to itself again: one client became ~10,000
 * connections. Told apart at start-up, before anything listens, so it is refused with one line.
 */
import dns from 'node:dns';
import os from 'node:os';
import path from 'node:path';
import { addressKind, formatAddress, type Address } from './endpoints/index';
import { isWildcardHost } from './endpoints/address';

/** An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address. */
function unmapped(ip: string): string {
  return ip.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

/** The addresses `host` names (itself when it is an address), or none when it does not resolve. */
async function addressesOf(host: string): Promise<string[]> {
  try {
    return (await dns.promises.lookup(host.replace(/^\[(.*)\]$/, '$1'), { all: true, verbatim: true })).map((a) => unmapped(a.address));
  } catch {
    return [];
  }
}

/** Whether `ip` belongs to this machine: loopback, or an address of one of its interfaces. */
function isLocal(ip: string): boolean {
  if (ip.startsWith('127.') || ip === '::1') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => unmapped(i.address) === ip));
}

/**
 * Why connecting to `target` would reach the listener at `listen` itself (a sentence for a usage
 * error), or undefined. Port 0 listeners cannot be named in advance: never a loop.
 */
export async function loopToSelf(listen: Address, target: Address): Promise<string | undefined> {
  const why = `${formatAddress(target)} is this relay's own listening address (${formatAddress(listen)}): every connection would come back into sockcat, again and again; forward to another port or host`;
  if (listen.scheme === 'unix' || target.scheme === 'unix') {
    const same = listen.scheme === 'unix' && target.scheme === 'unix' && path.resolve(listen.path) === path.resolve(target.path);
    return same ? why : undefined;
  }
  if (addressKind(listen) !== addressKind(target)) return undefined;
  if (listen.port === 0 || listen.port !== target.port) return undefined;
  const targets = await addressesOf(target.host);
  if (isWildcardHost(listen.host)) return targets.some(isLocal) ? why : undefined;
  const mine = await addressesOf(listen.host);
  return targets.some((t) => mine.includes(t)) ? why : undefined;
}
