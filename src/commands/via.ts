/** --via: proxy hops for the modes that connect out (connect, forward, proxy). */
import type { Argv } from 'yargs';
import { UsageError } from '../errors';
import type { Address } from '../endpoints/index';
import { parseViaUrl, type Hop } from '../proxy/hops';

export const VIA_DESCRIPTION = 'Reach the target through this proxy: socks5://, socks5h://, socks5+tls://, http:// or https:// [USER:PASS@]HOST:PORT; repeat for a chain, first hop first';

export function withViaOption<T>(y: Argv<T>) {
  return y.option('via', { type: 'string', describe: VIA_DESCRIPTION });
}

/** The --via hops in order (a repeated flag never split on commas: URLs and passwords may hold them). */
export function viaFromArgs(value: unknown, target?: Address): Hop[] {
  if (value === undefined) return [];
  const hops = ([] as unknown[]).concat(value).map(String).filter((v) => v !== '').map(parseViaUrl);
  if (hops.length > 0 && target && target.scheme !== 'tcp') {
    throw new UsageError(`--via reaches TCP targets (HOST:PORT); ${target.scheme}: targets cannot go through proxy hops`);
  }
  return hops;
}
