/**
 * The endpoint layer. Importing this module registers every transport; modes use the
 * functions re-exported here and never a transport directly. A new transport is one file
 * that calls registerTransport(), and one import line here.
 */
import './tcp';
import './tls';
import './unix';
import './udp';
import './socks5';
import './http-connect';

export { parseAddress, parseHop, formatAddress, addressKind, connectAddress, listenAddress, listTransports, transportFlags, getTransport } from './registry';
export * from './address';
export type * from './types';
export type { TcpAddress } from './tcp';
export type { TlsAddress, TlsSettings, PemFile } from './tls';
export type { UnixAddress } from './unix';
export type { UdpAddress } from './udp';
