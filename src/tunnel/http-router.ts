/**
 * Named tunnels on one shared port, as MySocket and ngrok give them (`shy-bush-6765.edge…`):
 * `relay --http ADDR --domain D` reads each connection's first request head and routes it by its
 * `Host:` to the tunnel that registered NAME.D; `--https ADDR` terminates TLS with the relay's
 * certificate (one for *.D) and routes by SNI. An unknown name gets a 404 (HTTP) or a TLS alert
 * (HTTPS), never another tunnel.
 *
 * The request head is rewritten once per connection: `X-Forwarded-For` (appended), `X-Real-IP`
 * and the standard `Forwarded:` (RFC 7239, appended) name the real client, and `Connection: close`
 * makes the service close after its answer, so every request arrives on a fresh connection with
 * its own headers (upgrades such as WebSocket keep their `Connection: upgrade`). A tunnel
 * registered with `expose --http-auth USER:PASS` answers 401 to a request without those
 * credentials (Basic, RFC 7617), compared in constant time.
 */
import tls from 'node:tls';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Connection } from '../endpoints/index';
import { resetStream } from '../relay';
import type { ConnectionSummary } from '../runtime/listener';

/** Longest request head read before routing; a longer one gets 431. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** How long a client may take to send its request head (and TLS handshake). */
export const HEAD_TIMEOUT_MS = 10_000;

/** A tunnel as the router sees it. */
export interface NamedRoute {
  name: string;
  /** "user:pass" from expose --http-auth. */
  httpAuth?: string;
  /** Hands the connection over to the tunnel, `head` first; `id` is its number in the router's log. */
  handle(conn: Connection, stream: Duplex, head: Buffer, id?: number): Promise<ConnectionSummary>;
}

export interface RouterOptions {
  domain: string;
  lookup(name: string): NamedRoute | undefined;
  /** For --https: the relay's certificate and key. */
  tls?: { cert: Buffer; key: Buffer };
  /** The connection's number in the router listener's log. */
  id?: number;
}

/** The tunnel name in a Host or SNI value under `domain`, or undefined. */
export function nameFromHost(host: string | undefined, domain: string): string | undefined {
  if (!host) return undefined;
  const h = host.trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = '.' + domain.toLowerCase();
  if (!h.endsWith(suffix)) return undefined;
  const name = h.slice(0, -suffix.length);
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(name) ? name : undefined;
}

/** Serves one connection of the --http or --https port. */
export async function routeConnection(conn: Connection, opts: RouterOptions): Promise<ConnectionSummary> {
  let stream: Duplex = conn.stream;
  let sniName: string | undefined;
  if (opts.tls) {
    const secure = await tlsHandshake(conn.stream, opts);
    if (typeof secure === 'string') return { received: 0, sent: 0, reason: secure };
    stream = secure.socket;
    sniName = secure.name;
  }
  const read = await readHead(stream);
  if (typeof read === 'string') {
    let sent = 0;
    if (read === 'too large') sent = answer(stream, 431, 'Request Header Fields Too Large', 'request head over 16 KiB\n');
    else if (read === 'malformed') sent = answer(stream, 400, 'Bad Request', 'not an HTTP request\n');
    else resetStream(stream);
    return { received: 0, sent, reason: `request head: ${read}` };
  }
  // The request head is read here, not by the relay that follows: the log counts it.
  const { head, rest, bytes: received } = read;
  const host = head.headers.find(([k]) => k.toLowerCase() === 'host')?.[1];
  const name = sniName ?? nameFromHost(host, opts.domain);
  const route = name === undefined ? undefined : opts.lookup(name);
  if (!route) {
    const sent = answer(stream, 404, 'Not Found', `no tunnel named ${host ?? '(no Host header)'} on this relay\n`);
    return { received, sent, reason: `unknown name ${JSON.stringify(host ?? '')}` };
  }
  if (route.httpAuth && !authorized(head.headers, route.httpAuth)) {
    const sent = answer(stream, 401, 'Unauthorized', 'this tunnel needs a user name and password\n', [`WWW-Authenticate: Basic realm="${route.name}", charset="UTF-8"`]);
    return { received, sent, reason: 'no or wrong credentials (--http-auth)' };
  }
  const rewritten = rewriteHead(head, conn.remote.address, opts.tls ? 'https' : 'http', host);
  if (rest.length) stream.unshift(rest);
  const summary = await route.handle(conn, stream, rewritten, opts.id);
  return { ...summary, received: summary.received + received };
}

function tlsHandshake(raw: Duplex, opts: RouterOptions): Promise<{ socket: tls.TLSSocket; name: string } | string> {
  const context = tls.createSecureContext({ cert: opts.tls!.cert, key: opts.tls!.key });
  return new Promise((resolve) => {
    let name: string | undefined;
    const socket = new tls.TLSSocket(raw as import('node:net').Socket, {
      isServer: true,
      secureContext: context,
      // An unknown name fails the handshake with an alert: the client never reaches another tunnel.
      SNICallback: (servername, cb) => {
        const n = nameFromHost(servername, opts.domain);
        if (n !== undefined && opts.lookup(n)) {
          name = n;
          cb(null, context);
        } else cb(new Error(`no tunnel named ${servername}`));
      },
    });
    const timer = setTimeout(() => done(`TLS handshake timed out`), HEAD_TIMEOUT_MS);
    const done = (r: { socket: tls.TLSSocket; name: string } | string) => {
      clearTimeout(timer);
      socket.off('error', onError);
      if (typeof r === 'string') {
        socket.on('error', () => {});
        socket.destroy();
      }
      resolve(r);
    };
    const onError = (err: Error) => done(`TLS: ${err.message}`);
    socket.on('error', onError);
    socket.once('secure', () => (name === undefined ? done('TLS client sent no server name (SNI)') : done({ socket, name })));
  });
}

interface RequestHead {
  requestLine: string;
  headers: Array<[string, string]>;
}

/** Reads up to the blank line ending the request head; the bytes after it are returned apart. */
function readHead(stream: Duplex): Promise<{ head: RequestHead; rest: Buffer; bytes: number } | 'too large' | 'malformed' | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish('timeout'), HEAD_TIMEOUT_MS);
    const finish = (r: Awaited<ReturnType<typeof readHead>>) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.pause();
      resolve(r);
    };
    const onEnd = () => finish('closed');
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) finish('too large');
        return;
      }
      if (end > MAX_HEAD_BYTES) return finish('too large');
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const requestLine = lines.shift()!;
      if (!/^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(requestLine)) return finish('malformed');
      const headers: Array<[string, string]> = [];
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon <= 0 || /\s/.test(line.slice(0, colon))) return finish('malformed');
        headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
      }
      finish({ head: { requestLine, headers }, rest: buf.subarray(end + 4), bytes: end + 4 });
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.resume();
  });
}

function authorized(headers: Array<[string, string]>, userPass: string): boolean {
  const value = headers.find(([k]) => k.toLowerCase() === 'authorization')?.[1] ?? '';
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(value);
  if (!m) return false;
  // Hashes of equal length, compared in constant time: the password's length does not leak either.
  const given = createHash('sha256').update(Buffer.from(m[1], 'base64')).digest();
  const expected = createHash('sha256').update(Buffer.from(userPass, 'utf8')).digest();
  return timingSafeEqual(given, expected);
}

/** The head with the client named in X-Forwarded-For, X-Real-IP and Forwarded, and Connection: close. */
export function rewriteHead(head: RequestHead, clientIp: string, proto: 'http' | 'https', host: string | undefined): Buffer {
  const lower = (k: string) => k.toLowerCase();
  const get = (k: string) => head.headers.filter(([h]) => lower(h) === k).map(([, v]) => v);
  const upgrade = get('upgrade').length > 0 && get('connection').some((v) => /upgrade/i.test(v));
  const xff = [...get('x-forwarded-for'), clientIp].join(', ');
  const forIp = clientIp.includes(':') ? `"[${clientIp}]"` : clientIp;
  const fwd = [...get('forwarded'), `for=${forIp};proto=${proto}${host ? `;host="${host.replace(/["\\]/g, '')}"` : ''}`].join(', ');
  const drop = new Set(['x-forwarded-for', 'x-real-ip', 'forwarded', 'x-forwarded-proto', ...(upgrade ? [] : ['connection', 'keep-alive'])]);
  const lines = [head.requestLine];
  for (const [k, v] of head.headers) if (!drop.has(lower(k))) lines.push(`${k}: ${v}`);
  lines.push(`X-Forwarded-For: ${xff}`, `X-Real-IP: ${clientIp}`, `X-Forwarded-Proto: ${proto}`, `Forwarded: ${fwd}`);
  if (!upgrade) lines.push('Connection: close');
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** Answers with a short plain-text response and closes; returns its length in bytes, for the log. */
function answer(stream: Duplex, status: number, reason: string, body: string, extra: string[] = []): number {
  const text = [`HTTP/1.1 ${status} ${reason}`, 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', ...extra, '', body].join('\r\n');
  stream.end(text);
  // A client that never reads must not hold the connection: close it after a moment.
  setTimeout(() => stream.destroy(), 2000).unref();
  return Buffer.byteLength(text);
}
