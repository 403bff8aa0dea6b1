/**
 * SOCKS5 proxy hop (RFC 1928, user/password RFC 1929): "socks5:[USER:PASS@]HOST:PORT", an
 * overlay used in --via chains (--via socks5://…, socks5h://…, socks5+tls://…). Over a stream to
 * the proxy it asks for a CONNECT to the next hop or the final address; names are sent as names
 * (the proxy resolves them, socks5h style), so a name only the far side knows still works.
 * Each answer is read exactly (handshake-reader.ts): the bytes after the reply belong to the
 * destination and stay in the stream.
 */
import { formatHostPort } from './address';
import { HandshakeEnded, HandshakeReader } from './handshake-reader';
import { formatHop, hopCarrier, hopError, parseHopAddress, HOP_REPLY_TIMEOUT_MS, type HopAddress } from './hop';
import { registerTransport } from './registry';
import { ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, CMD_CONNECT, METHOD_NONE, METHOD_USERPASS, Reply, SOCKS5, encodeAddress, replyText, type ReplyCode } from './socks-wire';
import type { Connection, Transport, WrapOptions } from './types';

/** An errno-like code for a SOCKS5 reply, so callers can tell refused from unreachable. */
function errnoOf(code: number): string | undefined {
  return ({ [Reply.connectionRefused]: 'ECONNREFUSED', [Reply.hostUnreachable]: 'EHOSTUNREACH', [Reply.networkUnreachable]: 'ENETUNREACH', [Reply.ttlExpired]: 'ETIMEDOUT', [Reply.notAllowed]: 'EACCES' } as Record<number, string>)[code];
}

async function wrapSocks5(inner: Connection, hop: HopAddress, opts: WrapOptions): Promise<Connection> {
  const dest = opts.destination;
  const fail = (why: string, reply: ReplyCode, code?: string) => hopError(hop, opts.hop, why, reply, code);
  if (!dest) throw fail('a SOCKS5 hop needs somewhere to go (use it with --via)', Reply.generalFailure);
  const s = inner.stream;
  const timeoutMs = opts.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : HOP_REPLY_TIMEOUT_MS;
  const reader = new HandshakeReader(s, { timeoutMs, signal: opts.signal });
  const target = formatHostPort(dest.host, dest.port);
  try {
    const withLogin = hop.user !== undefined;
    s.write(Buffer.from(withLogin ? [SOCKS5, 2, METHOD_NONE, METHOD_USERPASS] : [SOCKS5, 1, METHOD_NONE]));
    const choice = await reader.read(2);
    if (choice[0] !== SOCKS5) throw fail(`does not speak SOCKS5 (answered 0x${choice[0].toString(16)})`, Reply.generalFailure, 'EPROTO');
    if (choice[1] === METHOD_USERPASS && withLogin) {
      const user = Buffer.from(hop.user ?? '');
      const pass = Buffer.from(hop.password ?? '');
      if (user.length > 255 || pass.length > 255) throw fail('user name or password longer than 255 bytes', Reply.generalFailure);
      s.write(Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]));
      if ((await reader.read(2))[1] !== 0x00) throw fail(`login refused for user '${hop.user}'`, Reply.notAllowed, 'EACCES');
    } else if (choice[1] === METHOD_USERPASS) {
      throw fail('asks for a login: put it in the URL (socks5://USER:PASS@HOST:PORT)', Reply.notAllowed, 'EACCES');
    } else if (choice[1] !== METHOD_NONE) {
      throw fail(withLogin ? 'refused every login method we offered' : 'asks for a login method we do not have (add USER:PASS@ to the URL)', Reply.notAllowed, 'EACCES');
    }
    s.write(Buffer.concat([Buffer.from([SOCKS5, CMD_CONNECT, 0x00]), encodeAddress(dest.host, dest.port)]));
    const head = await reader.read(4);
    if (head[0] !== SOCKS5) throw fail(`answered the request with version ${head[0]}`, Reply.generalFailure, 'EPROTO');
    // Read the bound address whole, so the bytes after it belong to the destination.
    const atyp = head[3];
    if (atyp === ATYP_IPV4) await reader.read(4 + 2);
    else if (atyp === ATYP_IPV6) await reader.read(16 + 2);
    else if (atyp === ATYP_DOMAIN) await reader.read((await reader.byte()) + 2);
    else if (head[1] === Reply.succeeded) throw fail(`answered with an unknown address type ${atyp}`, Reply.generalFailure, 'EPROTO');
    if (head[1] !== Reply.succeeded) {
      const code = head[1];
      const reply = (code <= Reply.addressTypeNotSupported ? code : Reply.generalFailure) as ReplyCode;
      throw fail(`connection to ${target} ${code === Reply.notAllowed ? 'not allowed by its rules' : replyText(code)}`, reply, errnoOf(code));
    }
  } catch (err) {
    if (err instanceof HandshakeEnded) {
      if (err.why === 'timeout') throw fail(`no answer within ${timeoutMs / 1000} s`, Reply.ttlExpired, 'ETIMEDOUT');
      throw fail(`closed the connection during the SOCKS5 handshake (${err.why === 'reset' ? 'reset' : 'not a SOCKS5 proxy, or it refused us'})`, Reply.generalFailure);
    }
    throw err;
  } finally {
    reader.release();
  }
  return inner;
}

export const socks5Transport: Transport<HopAddress> = {
  scheme: 'socks5',
  aliases: ['socks5h'],
  kind: 'stream',
  hop: true,
  help: 'SOCKS5 proxy hop (with USER:PASS@ for RFC 1929 login); the proxy resolves names',
  example: 'socks5:127.0.0.1:1080, socks5:alice:secret@proxy:1080',
  parse: (rest, role, original) => parseHopAddress('socks5', rest, role, original),
  format: formatHop,
  carrier: hopCarrier,
  wrap: wrapSocks5,
};

registerTransport(socks5Transport);
