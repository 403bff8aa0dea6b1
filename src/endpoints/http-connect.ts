/**
 * HTTP CONNECT proxy hop: "http-connect:[USER:PASS@]HOST:PORT", an overlay used in --via chains
 * (--via http://…, https://…). Over a stream to the proxy it sends "CONNECT host:port" (Basic
 * auth when credentials are given) and hands the stream on once a 2xx status line and its
 * headers have been read; the bytes after the head stay in the stream.
 */
import { formatHostPort } from './address';
import { HandshakeEnded, HandshakeReader } from './handshake-reader';
import { formatHop, hopCarrier, hopError, parseHopAddress, HOP_REPLY_TIMEOUT_MS, type HopAddress } from './hop';
import { registerTransport } from './registry';
import { Reply, type ReplyCode } from './socks-wire';
import type { Connection, Transport, WrapOptions } from './types';

/** Longest response head we read from a proxy. */
const MAX_HEAD = 16 * 1024;

async function wrapHttpConnect(inner: Connection, hop: HopAddress, opts: WrapOptions): Promise<Connection> {
  const dest = opts.destination;
  const fail = (why: string, reply: ReplyCode, code?: string) => hopError(hop, opts.hop, why, reply, code);
  if (!dest) throw fail('an HTTP CONNECT hop needs somewhere to go (use it with --via)', Reply.generalFailure);
  const target = formatHostPort(dest.host, dest.port);
  const auth = hop.user !== undefined ? `Proxy-Authorization: Basic ${Buffer.from(`${hop.user}:${hop.password ?? ''}`).toString('base64')}\r\n` : '';
  inner.stream.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  const timeoutMs = opts.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : HOP_REPLY_TIMEOUT_MS;
  const reader = new HandshakeReader(inner.stream, { timeoutMs, signal: opts.signal });
  let head: string;
  try {
    head = (await reader.readUntil(Buffer.from('\r\n\r\n'), MAX_HEAD)).toString('latin1');
  } catch (err) {
    if (!(err instanceof HandshakeEnded)) throw err;
    if (err.why === 'timeout') throw fail(`no answer within ${timeoutMs / 1000} s`, Reply.ttlExpired, 'ETIMEDOUT');
    if (err.why === 'too-long') throw fail(`answered CONNECT with a header over ${MAX_HEAD} bytes`, Reply.generalFailure, 'EPROTO');
    throw fail(`closed the connection during the HTTP CONNECT handshake (${err.why === 'reset' ? 'reset' : 'not an HTTP proxy, or it refused us'})`, Reply.generalFailure);
  } finally {
    reader.release();
  }
  const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head);
  if (!status) throw fail('not an HTTP proxy (no HTTP status line in its answer)', Reply.generalFailure, 'EPROTO');
  const code = Number(status[1]);
  const text = `${code}${status[2]}`.trim();
  if (code >= 200 && code < 300) return inner;
  if (code === 407) throw fail(hop.user === undefined ? `asks for a login (${text}): put it in the URL (http://USER:PASS@HOST:PORT)` : `login refused for user '${hop.user}' (${text})`, Reply.notAllowed, 'EACCES');
  if (code === 403) throw fail(`connection to ${target} not allowed (${text})`, Reply.notAllowed, 'EACCES');
  if (code === 504) throw fail(`connection to ${target} timed out (${text})`, Reply.ttlExpired, 'ETIMEDOUT');
  throw fail(`connection to ${target} failed (${text})`, Reply.generalFailure);
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
