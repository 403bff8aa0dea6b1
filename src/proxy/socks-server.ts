/**
 * The server side of SOCKS5 (RFC 1928, with RFC 1929 username/password) and SOCKS4/4a, as a
 * state machine over a HandshakeReader: greeting → method choice → (login) → request. It answers
 * the greeting and the login itself and hands back the request; the caller then connects and
 * sends the final reply with socks5Reply()/socks4Reply().
 *
 * Written by hand and meant to survive any byte sequence: every length is a single byte (so no
 * read is longer than 255 bytes), every field is checked before it is used, and each way a
 * request can be wrong ends in a SocksRefused carrying what to send back (RFC 1928's reply code,
 * SOCKS4's "rejected") before the connection is closed.
 */
import type { Duplex } from 'node:stream';
import { HandshakeReader } from '../endpoints/handshake-reader';
import {
  SOCKS4,
  SOCKS5,
  METHOD_NONE,
  METHOD_USERPASS,
  METHOD_REFUSED,
  CMD_CONNECT,
  CMD_BIND,
  CMD_UDP_ASSOCIATE,
  Reply,
  SOCKS4_GRANTED,
  SOCKS4_REJECTED,
  BadAddress,
  encodeAddress,
  isSafeHostName,
  readAddress,
  type ReplyCode,
  type SocksDestination,
} from '../endpoints/socks-wire';

/** How the server checks logins. */
export interface SocksLogin {
  /** True when clients must log in (--auth / --auth-file). */
  required: boolean;
  /** Checks a user name and password (in constant time). */
  verify(user: string, password: string): boolean;
}

export interface SocksRequest {
  version: 4 | 5;
  command: 'connect' | 'udp-associate';
  destination: SocksDestination;
  /** The user who logged in (SOCKS5), or the SOCKS4 user id if any. */
  user?: string;
}

/** Why a handshake was refused, for the log line. */
export type SocksRefusal = 'auth failed' | 'bad request' | 'command not supported' | 'address type not supported';

/** The handshake was refused; `reply` (possibly empty) is what to send before closing. */
export class SocksRefused extends Error {
  constructor(
    message: string,
    readonly reason: SocksRefusal,
    readonly reply: Buffer,
    /** The user name that failed to log in, for the log (never the password). */
    readonly user?: string,
  ) {
    super(message);
    this.name = 'SocksRefused';
  }
}

/** The longest SOCKS4 user id or 4a host name we read (each is NUL-terminated). */
const SOCKS4_FIELD_MAX = 255;

/**
 * Runs the handshake after its first byte (`version`, already read to tell SOCKS from HTTP).
 * Resolves with the request, or rejects with SocksRefused (send its reply, then close) or
 * HandshakeEnded (the client went away or was too slow).
 */
export async function readSocksRequest(reader: HandshakeReader, stream: Duplex, version: number, login: SocksLogin): Promise<SocksRequest> {
  if (version === SOCKS5) return readSocks5(reader, stream, login);
  if (version === SOCKS4) return readSocks4(reader, login);
  throw new SocksRefused(`not a SOCKS version we speak (first byte 0x${version.toString(16)})`, 'bad request', Buffer.alloc(0));
}

async function readSocks5(reader: HandshakeReader, stream: Duplex, login: SocksLogin): Promise<SocksRequest> {
  const nmethods = await reader.byte();
  const methods = nmethods === 0 ? Buffer.alloc(0) : await reader.read(nmethods);
  const offersNone = methods.includes(METHOD_NONE);
  const offersLogin = methods.includes(METHOD_USERPASS);
  let user: string | undefined;
  if (login.required || (!offersNone && offersLogin)) {
    // Without --auth, a client that only offers a login (curl -U against an open proxy) is let in
    // with any name: refusing it would only make the user drop -U.
    if (!offersLogin) {
      throw new SocksRefused('the client offered no username/password login', 'auth failed', Buffer.from([SOCKS5, METHOD_REFUSED]));
    }
    stream.write(Buffer.from([SOCKS5, METHOD_USERPASS]));
    const subVersion = await reader.byte();
    if (subVersion !== 0x01) throw new SocksRefused(`bad login version ${subVersion}`, 'bad request', Buffer.from([0x01, 0x01]));
    const ulen = await reader.byte();
    const name = ulen === 0 ? Buffer.alloc(0) : await reader.read(ulen);
    const plen = await reader.byte();
    const password = plen === 0 ? Buffer.alloc(0) : await reader.read(plen);
    user = name.toString('utf8');
    if (login.required && !login.verify(user, password.toString('utf8'))) {
      throw new SocksRefused('wrong user name or password', 'auth failed', Buffer.from([0x01, 0x01]), user);
    }
    stream.write(Buffer.from([0x01, 0x00]));
  } else if (offersNone) {
    stream.write(Buffer.from([SOCKS5, METHOD_NONE]));
  } else {
    throw new SocksRefused('the client offered no method we accept', 'bad request', Buffer.from([SOCKS5, METHOD_REFUSED]));
  }

  const head = await reader.read(3);
  if (head[0] !== SOCKS5) throw new SocksRefused(`request with version ${head[0]} after a SOCKS5 greeting`, 'bad request', socks5Reply(Reply.generalFailure));
  const command = head[1];
  let destination: SocksDestination;
  try {
    destination = await readAddress(reader);
  } catch (err) {
    if (err instanceof BadAddress) {
      const reason = err.reply === Reply.addressTypeNotSupported ? 'address type not supported' : 'bad request';
      throw new SocksRefused(err.message, reason, socks5Reply(err.reply), user);
    }
    throw err;
  }
  if (command === CMD_CONNECT) return { version: 5, command: 'connect', destination, user };
  if (command === CMD_UDP_ASSOCIATE) return { version: 5, command: 'udp-associate', destination, user };
  const what = command === CMD_BIND ? 'BIND' : `command 0x${command.toString(16).padStart(2, '0')}`;
  throw new SocksRefused(`${what} is not supported`, 'command not supported', socks5Reply(Reply.commandNotSupported), user);
}

async function readSocks4(reader: HandshakeReader, login: SocksLogin): Promise<SocksRequest> {
  const head = await reader.read(7);
  const command = head[0];
  const port = head.readUInt16BE(1);
  const ip = [...head.subarray(3, 7)];
  const userId = (await readNulTerminated(reader)).toString('latin1');
  // SOCKS4a: 0.0.0.x (x ≠ 0) means "the host name follows the user id".
  const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  const name = is4a ? (await readNulTerminated(reader)).toString('latin1') : undefined;
  const rejected = socks4Reply(false);
  if (login.required) throw new SocksRefused('SOCKS4 has no password, and this proxy asks for one (use SOCKS5)', 'auth failed', rejected, userId || undefined);
  if (command !== CMD_CONNECT) throw new SocksRefused(`SOCKS4 ${command === CMD_BIND ? 'BIND' : `command ${command}`} is not supported`, 'command not supported', rejected);
  if (name !== undefined && !isSafeHostName(name)) throw new SocksRefused(`SOCKS4a host name that is not a host name (${JSON.stringify(name.slice(0, 40))})`, 'bad request', rejected);
  const destination: SocksDestination =
    name !== undefined ? { host: name.toLowerCase().replace(/\.$/, ''), port, type: 'domain' } : { host: ip.join('.'), port, type: 'ipv4' };
  return { version: 4, command: 'connect', destination, user: userId || undefined };
}

/** A NUL-terminated field of at most SOCKS4_FIELD_MAX bytes (without the NUL). */
async function readNulTerminated(reader: HandshakeReader): Promise<Buffer> {
  const bytes: number[] = [];
  for (;;) {
    const b = await reader.byte();
    if (b === 0) return Buffer.from(bytes);
    if (bytes.length >= SOCKS4_FIELD_MAX) throw new SocksRefused(`SOCKS4 field longer than ${SOCKS4_FIELD_MAX} bytes`, 'bad request', socks4Reply(false));
    bytes.push(b);
  }
}

/** A SOCKS5 reply: code, then the bound address (0.0.0.0:0 when there is none to tell). */
export function socks5Reply(code: ReplyCode, bindHost = '0.0.0.0', bindPort = 0): Buffer {
  return Buffer.concat([Buffer.from([SOCKS5, code, 0x00]), encodeAddress(bindHost, bindPort)]);
}

/** A SOCKS4 reply: granted or rejected (the address fields are ignored by clients). */
export function socks4Reply(granted: boolean): Buffer {
  return Buffer.from([0x00, granted ? SOCKS4_GRANTED : SOCKS4_REJECTED, 0, 0, 0, 0, 0, 0]);
}
