/**
 * --via URL: proxy hops for the modes that connect out (connect, forward, proxy), taken in the
 * order given (gost's -F). Each URL becomes a hop address of the socks5: or http-connect:
 * transport (src/endpoints/), put in the target address's `via`; connectAddress goes through them.
 *
 *   socks5://[USER:PASS@]HOST[:PORT]     a SOCKS5 proxy (port 1080 by default)
 *   socks5h://…                          the same; the name curl users write when the hop resolves
 *   http://[USER:PASS@]HOST:PORT         an HTTP proxy, asked with CONNECT
 *   socks5+tls://…, https://…            the same, with the hop itself reached over TLS
 *                                        (?ca=FILE, ?servername=NAME, ?insecure)
 *   socks5:HOST:PORT, http-connect:HOST:PORT   the transports' own syntax works too
 *
 * Names are never resolved here: each hop is handed the next hop's (or the target's) name and
 * resolves it on its side, which is what a chain into a private network needs.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Argv } from 'yargs';
import { UsageError } from '../errors';
import { parseHop, type Address } from '../endpoints/index';
import type { HopAddress } from '../endpoints/hop';
import { isSafeHostName } from '../endpoints/socks-wire';

export const VIA_DESCRIPTION = 'Reach the target through this proxy: socks5://, socks5h://, socks5+tls://, http:// or https:// [USER:PASS@]HOST:PORT; repeat for a chain, first hop first';

export function withViaOption<T>(y: Argv<T>) {
  return y.option('via', { type: 'string', describe: VIA_DESCRIPTION });
}

const SCHEMES: Record<string, { scheme: 'socks5' | 'http-connect'; tls: boolean; defaultPort?: number }> = {
  'socks5:': { scheme: 'socks5', tls: false, defaultPort: 1080 },
  'socks5h:': { scheme: 'socks5', tls: false, defaultPort: 1080 },
  'socks5+tls:': { scheme: 'socks5', tls: true, defaultPort: 1080 },
  'socks5h+tls:': { scheme: 'socks5', tls: true, defaultPort: 1080 },
  'http:': { scheme: 'http-connect', tls: false },
  'https:': { scheme: 'http-connect', tls: true },
};

/** Parses one --via value (a proxy URL, or socks5:/http-connect: hop syntax); throws a UsageError. */
export function parseViaUrl(text: string): HopAddress {
  if (/^(socks5h?|http-connect):(?!\/\/)/i.test(text)) return parseHop(text) as HopAddress;
  const example = 'e.g. socks5://127.0.0.1:1080, socks5h://user:pass@bastion:1080, http://proxy:3128, https://proxy:443';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--via '${text}' is not a proxy URL (${example})`);
  }
  const kind = SCHEMES[url.protocol.toLowerCase()];
  if (!kind) throw new UsageError(`--via '${text}': unknown proxy scheme '${url.protocol}' (socks5://, socks5h://, socks5+tls://, http://, https://)`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new UsageError(`--via '${text}' names no host (${example})`);
  if (!net.isIP(host) && !isSafeHostName(host)) throw new UsageError(`--via '${text}': '${host}' is not a host name or IP address`);
  // WHATWG URL drops a port equal to the scheme's default (http:80, https:443).
  const port = url.port ? Number(url.port) : (kind.defaultPort ?? (url.protocol === 'https:' ? 443 : /:80(\/|$)/.test(text) ? 80 : undefined));
  if (port === undefined) throw new UsageError(`--via '${text}' needs a port (e.g. ${url.protocol}//${url.host}:3128)`);
  if (url.pathname && url.pathname !== '/') throw new UsageError(`--via '${text}': a proxy URL has no path ('${url.pathname}')`);
  const hop: HopAddress = { scheme: kind.scheme, host, port, hostGiven: true };
  if (url.username) hop.user = decodeURIComponent(url.username);
  if (url.password) hop.password = decodeURIComponent(url.password);
  if (kind.tls) hop.tls = {};
  for (const [key, value] of url.searchParams) {
    if (!hop.tls) throw new UsageError(`--via '${text}': '?${key}' applies to TLS hops (socks5+tls://, https://)`);
    if (key === 'insecure') hop.tls.insecure = value === '' || value === '1' || value === 'true';
    else if (key === 'servername') hop.tls.servername = value;
    else if (key === 'ca') {
      try {
        hop.tls.ca = { path: value, pem: fs.readFileSync(value) };
      } catch {
        throw new UsageError(`--via '${text}': cannot read the CA file ${value}`);
      }
    } else throw new UsageError(`--via '${text}': unknown option '?${key}' (ca=FILE, servername=NAME, insecure)`);
  }
  return hop;
}

/** The --via hops in order (a repeated flag, never split on commas: URLs and passwords may hold them). */
export function viaFromArgs(value: unknown): HopAddress[] {
  if (value === undefined) return [];
  return ([] as unknown[]).concat(value).map(String).filter((v) => v !== '').map(parseViaUrl);
}

/** The target with its --via hops; only TCP (and TLS) targets can go through proxies. */
export function withVia<A extends Address>(target: A, value: unknown): A {
  const via = viaFromArgs(value);
  if (via.length === 0) return target;
  if (target.scheme !== 'tcp' && target.scheme !== 'tls') {
    throw new UsageError(`--via reaches TCP targets (HOST:PORT, or tls:HOST:PORT); ${target.scheme}: targets cannot go through proxy hops`);
  }
  return { ...target, via };
}
