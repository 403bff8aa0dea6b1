/**
 * HTTP CONNECT proxy hop: "http-connect:[USER:PASS@]HOST:PORT", an overlay used in --via chains.
 * Over a stream to the proxy it sends "CONNECT host:port" (Basic auth when credentials are
 * given) and hands the stream on once a 2xx status line and its headers have been read.
 */
import { formatHostPort } from './address';
import { formatHop, hopCarrier, hopError, parseHopAddress, readReply, type HopAddress } from './hop';
import { registerTransport } from './registry';
import type { Connection, Transport, WrapOptions } from './types';

/** Longest response head we read from a proxy. */
const MAX_HEAD = 16 * 1024;

async function wrapHttpConnect(inner: Connection, hop: HopAddress, opts: WrapOptions): Promise<Connection> {
  const dest = opts.destination;
  if (!dest) throw hopError(hop, opts.hop, 'an HTTP CONNECT hop needs somewhere to go (use it with --via)');
  const target = formatHostPort(dest.host, dest.port);
  const auth = hop.user !== undefined ? `Proxy-Authorization: Basic ${Buffer.from(`${hop.user}:${hop.password ?? ''}`).toString('base64')}\r\n` : '';
  inner.stream.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  let head: string;
  try {
    const end = (b: Buffer) => {
      const i = b.indexOf('\r\n\r\n');
      return i < 0 ? undefined : i + 4;
    };
    head = (await readReply(inner.stream, end, MAX_HEAD, opts.signal)).toString('latin1');
  } catch (err) {
    throw hopError(hop, opts.hop, (err as Error).message);
  }
  const status = /^HTTP\/1\.[01] (\d{3})([^\r]*)/.exec(head);
  if (!status) throw hopError(hop, opts.hop, 'does not speak HTTP (no status line in its reply)');
  const code = Number(status[1]);
  if (code === 407) throw hopError(hop, opts.hop, 'proxy authentication required (http-connect:USER:PASS@HOST:PORT)', 'EACCES');
  if (code < 200 || code > 299) throw hopError(hop, opts.hop, `connection to ${target} refused: ${code}${status[2]}`, 'ECONNREFUSED');
  return inner;
}

export const httpConnectTransport: Transport<HopAddress> = {
  scheme: 'http-connect',
  kind: 'stream',
  hop: true,
  help: 'HTTP proxy hop speaking CONNECT (with USER:PASS@ for Basic auth)',
  example: 'http-connect:127.0.0.1:3128',
  parse: (rest, role, original) => parseHopAddress('http-connect', rest, role, original),
  format: formatHop,
  carrier: hopCarrier,
  wrap: wrapHttpConnect,
};

registerTransport(httpConnectTransport);
