/**
 * The endpoint layer. Importing this module registers every transport; modes use the
 * functions re-exported here and never a transport directly.
 */
import './tcp';
import './tls';
import './unix';
import './udp';

export { parseAddress, formatAddress, connectAddress, listenAddress, listTransports } from './registry';
export * from './address';
export type * from './types';
