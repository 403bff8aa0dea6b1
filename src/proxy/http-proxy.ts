/**
 * The HTTP side of `sockcat proxy`, on the same port as SOCKS (the first byte tells them apart).
 * node:http parses; nothing here reads HTTP by hand.
 *
 * - `CONNECT host:port` opens a tunnel: "200 Connection established", then the shared relay.
 * - An absolute-URI request (`GET http://app.test/ HTTP/1.1`, what `curl -x` sends for http://
 *   URLs) is forwarded with its request line rewritten to origin form and the hop-by-hop headers
 *   dropped, over a fresh upstream connection that closes after the response. Keep-alive with the
 *   client is node:http's. If the upstream fails before its response starts, the client gets a
 *   502/504; after, the client connection is destroyed: never a response that looks complete
 *   when it is not.
 * - Logins: `Proxy-Authorization: Basic`, answered with 407 and `Proxy-Authenticate` when
 *   missing or wrong.
 * - Bounds: node:http's 16 KiB header limit (431 past it), a deadline for the first request
 *   head, and an idle timeout between requests.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Connection } from '../endpoints/types';
import { relay, resetStream, type RelayResult } from '../relay';
import type { ProxyAuth } from './auth';
import { DialFailed, type Dialer, type Dialed, type Route } from './dialer';
import { isSafeHostName } from '../endpoints/socks-wire';

/** What one HTTP connection did, for its log line. */
export interface HttpOutcome {
  /** 'http-connect' for a tunnel, 'http' for forwarded requests. */
  protocol: 'http-connect' | 'http';
  user?: string;
  route?: Route;
  /** How it ended: eof, reset, auth failed, denied by rule, refused upstream, bad request… */
  reason: string;
  /** Bytes from the client and to the client. */
  received: number;
  sent: number;
  /** Forwarded requests on this connection. */
  requests: number;
  /** Error detail for the log. */
  error?: string;
}

/** What the HTTP side needs from the proxy around it. */
export interface HttpProxyDeps {
  auth: ProxyAuth;
  dialer: Dialer;
  /** Relay options for CONNECT tunnels. */
  closeWaitMs: number;
  idleTimeoutMs?: number;
  /** Time for the first request head to arrive. */
  headTimeoutMs: number;
  /** Told about each forwarded request (one log line per request). */
  onRequest?: (info: { client: string; user?: string; method: string; url: string; route?: Route; status: number; reason: string; received: number; sent: number; durationMs: number; error?: string }) => void;
  /** Told about each failed login (logged with the client address, never the password). */
  onAuthFailed?: (client: string, user: string | undefined) => void;
}

/** Idle time allowed between two requests of a keep-alive connection. */
const KEEP_ALIVE_MS = 5_000;
/** Idle time allowed while a request or response is under way. */
const REQUEST_IDLE_MS = 120_000;

/** Headers that belong to one hop, never forwarded (RFC 9110 section 7.6.1, plus Proxy-*). */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

interface ConnState {
  conn: Connection;
  signal: AbortSignal;
  outcome: HttpOutcome;
  /** Settles the handle() promise. */
  finish: (outcome: HttpOutcome) => void;
  headTimer?: NodeJS.Timeout;
  /** A CONNECT tunnel took the socket over. */
  tunnel?: boolean;
}

const stateOf = new WeakMap<Duplex, ConnState>();

export class HttpProxy {
  private readonly server: http.Server;

  constructor(private readonly deps: HttpProxyDeps) {
    this.server = http.createServer({ maxHeaderSize: 16 * 1024, requireHostHeader: false, keepAliveTimeout: KEEP_ALIVE_MS });
    this.server.timeout = REQUEST_IDLE_MS;
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
    this.server.on('request', (req, res) => void this.onRequest(req, res));
    this.server.on('connect', (req, socket, head) => void this.onConnect(req, socket as Duplex, head));
    this.server.on('upgrade', (_req, socket) => this.refuseRaw(socket as Duplex, 501, 'Not Implemented', 'upgrade through an absolute-URI request is not supported; use CONNECT'));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
  }

  /**
   * Serves one client connection whose first bytes (already put back) are HTTP. Resolves when
   * the connection is over.
   */
  handle(conn: Connection, signal: AbortSignal): Promise<HttpOutcome> {
    return new Promise((resolve) => {
      const socket = conn.stream;
      const outcome: HttpOutcome = { protocol: 'http', reason: 'eof', received: 0, sent: 0, requests: 0 };
      let settled = false;
      const state: ConnState = {
        conn,
        signal,
        outcome,
        finish: (o) => {
          if (settled) return;
          settled = true;
          clearTimeout(state.headTimer);
          signal.removeEventListener('abort', onAbort);
          resolve(o);
        },
      };
      stateOf.set(socket, state);
      this.armHeadTimer(state);
      const onAbort = () => socket.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('close', () => {
        if (state.tunnel) return;
        const s = socket as net.Socket;
        state.outcome.received = s.bytesRead ?? 0;
        state.outcome.sent = s.bytesWritten ?? 0;
        state.finish(state.outcome);
      });
      this.server.emit('connection', socket);
      // The bytes used to tell HTTP from SOCKS were put back in the stream's buffer: make it flow
      // into node:http's parser.
      socket.resume();
    });
  }

  /**
   * The next request head must arrive whole within the handshake timeout (node:http does not
   * enforce its own header timeouts on a server that is not listening itself): armed at the
   * start and after each response, so a client trickling a header byte by byte is cut off.
   */
  private armHeadTimer(state: ConnState): void {
    clearTimeout(state.headTimer);
    state.headTimer = setTimeout(() => {
      state.outcome.reason = 'handshake timeout';
      resetStream(state.conn.stream);
    }, this.deps.headTimeoutMs);
    state.headTimer.unref();
  }

  /** Checks Proxy-Authorization; on failure answers 407 and returns false. */
  private authorized(req: http.IncomingMessage, state: ConnState): { ok: boolean; user?: string } {
    if (!this.deps.auth.required) return { ok: true };
    const verdict = this.deps.auth.verifyBasic(req.headers['proxy-authorization']);
    if (!verdict.ok && req.headers['proxy-authorization'] !== undefined) this.deps.onAuthFailed?.(state.conn.remote.label, verdict.user);
    return verdict;
  }

  private async onConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const state = stateOf.get(socket);
    if (!state) return void socket.destroy();
    clearTimeout(state.headTimer);
    state.tunnel = true;
    (socket as net.Socket).setTimeout?.(0);
    const outcome = state.outcome;
    outcome.protocol = 'http-connect';
    const sock = socket as net.Socket;
    const done = (reason: string, error?: string) => {
      outcome.reason = reason;
      outcome.error = error;
      outcome.received = sock.bytesRead ?? 0;
      outcome.sent = sock.bytesWritten ?? 0;
      state.finish(outcome);
    };
    const login = this.authorized(req, state);
    outcome.user = login.user;
    if (!login.ok) {
      this.refuseRaw(socket, 407, 'Proxy Authentication Required', 'login required', { 'Proxy-Authenticate': 'Basic realm="sockcat"' });
      return onceClosed(socket, () => done('auth failed'));
    }
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      this.refuseRaw(socket, 400, 'Bad Request', 'CONNECT needs host:port');
      return onceClosed(socket, () => done('bad request', `CONNECT '${(req.url ?? '').slice(0, 100)}'`));
    }
    outcome.route = { requested: `${target.label}` };
    let dialed: Dialed;
    try {
      dialed = await this.deps.dialer.dial(target.host, target.port, state.signal);
    } catch (err) {
      const f = err instanceof DialFailed ? err : new DialFailed((err as Error).message, 'unreachable', 1);
      outcome.route = { requested: target.label };
      this.refuseRaw(socket, f.httpStatus, statusText(f.httpStatus), f.message);
      return onceClosed(socket, () => done(f.reason, f.message));
    }
    outcome.route = { requested: dialed.requested, mappedTo: dialed.mappedTo, resolved: dialed.resolved };
    if (socket.destroyed) {
      dialed.conn.stream.destroy();
      return done('reset', 'the client went away while we connected');
    }
    socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    const result: RelayResult = await relay(socket, dialed.conn.stream, {
      closeWait: this.deps.closeWaitMs,
      idleTimeoutMs: this.deps.idleTimeoutMs,
      signal: state.signal,
      propagateReset: true,
    });
    outcome.reason = result.reason === 'aborted' ? 'drain timeout' : result.reason;
    outcome.error = result.error?.message;
    // The tunnel's bytes, as the relay counted them (the CONNECT head is not payload).
    outcome.received = result.aToB;
    outcome.sent = result.bToA;
    state.finish(outcome);
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket as Duplex;
    const state = stateOf.get(socket);
    if (!state) return void socket.destroy();
    clearTimeout(state.headTimer);
    const started = Date.now();
    const client = state.conn.remote.label;
    const report = (status: number, reason: string, route?: Route, counts = { received: 0, sent: 0 }, error?: string) => {
      state.outcome.reason = reason;
      if (!socket.destroyed) this.armHeadTimer(state);
      this.deps.onRequest?.({ client, user: state.outcome.user, method: req.method ?? '?', url: (req.url ?? '').slice(0, 200), route, status, reason, durationMs: Date.now() - started, error, ...counts });
    };
    const login = this.authorized(req, state);
    state.outcome.user = login.user;
    if (!login.ok) {
      req.resume();
      sendError(res, 407, 'login required', { 'Proxy-Authenticate': 'Basic realm="sockcat"' });
      return report(407, 'auth failed');
    }
    let url: URL | undefined;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = undefined;
    }
    if (!url || url.protocol !== 'http:' || !url.hostname) {
      req.resume();
      const why = url && url.protocol !== 'http:' ? `only http:// URLs are forwarded (use CONNECT for ${url.protocol}//)` : 'this is a proxy: ask for an absolute http:// URL, or CONNECT host:port';
      sendError(res, 400, why, { Connection: 'close' });
      return report(400, 'bad request');
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port ? Number(url.port) : 80;
    if (!net.isIP(host) && !isSafeHostName(host)) {
      req.resume();
      sendError(res, 400, 'not a host name', { Connection: 'close' });
      return report(400, 'bad request');
    }
    state.outcome.requests++;
    let dialed: Dialed;
    try {
      dialed = await this.deps.dialer.dial(host.toLowerCase(), port, state.signal);
    } catch (err) {
      const f = err instanceof DialFailed ? err : new DialFailed((err as Error).message, 'unreachable', 1);
      req.resume();
      sendError(res, f.httpStatus, f.message);
      return report(f.httpStatus, f.reason, { requested: `${host}:${port}` }, undefined, f.message);
    }
    const route: Route = { requested: dialed.requested, mappedTo: dialed.mappedTo, resolved: dialed.resolved };
    const upstream = dialed.conn.stream;
    let received = 0;
    let sent = 0;
    const headers: string[] = [];
    const connectionTokens = new Set(String(req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim()));
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
      headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
    }
    // One upstream connection per request: it closes after the response.
    headers.push('Connection', 'close');
    const upstreamReq = http.request({
      method: req.method,
      path: url.pathname + url.search,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
      // No agent: with createConnection and no agent, node:http uses our stream for this one request.
      createConnection: () => upstream as net.Socket,
    });
    let finished = false;
    const fail = (error: string) => {
      if (finished) return;
      finished = true;
      upstreamReq.destroy();
      upstream.destroy();
      if (!res.headersSent) {
        sendError(res, 502, `upstream failed: ${error}`, { Connection: 'close' });
        report(502, 'upstream error', route, { received, sent }, error);
      } else {
        // Part of the response is already out: cut the connection, so it cannot look complete.
        resetStream(socket);
        report(res.statusCode, 'reset', route, { received, sent }, error);
      }
    };
    upstreamReq.on('error', (err) => fail(err.message));
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('error', () => fail('the client went away'));
    res.on('close', () => {
      if (!res.writableFinished) fail('the client went away');
    });
    upstreamReq.on('response', (upRes) => {
      const out: string[] = [];
      const upTokens = new Set(String(upRes.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim()));
      for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
        const name = upRes.rawHeaders[i].toLowerCase();
        if (HOP_BY_HOP.has(name) || upTokens.has(name)) continue;
        out.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.on('data', (c: Buffer) => {
        sent += c.length;
        if (!res.write(c)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => {
        if (finished) return;
        // A body shorter than its Content-Length is an error here (node:http says 'aborted').
        if (!upRes.complete) return fail('the upstream closed in the middle of the response');
        finished = true;
        res.end();
        report(upRes.statusCode ?? 0, 'eof', route, { received, sent });
      });
      upRes.on('error', (err) => fail(err.message));
      upRes.on('aborted', () => fail('the upstream closed in the middle of the response'));
    });
    req.pipe(upstreamReq);
  }

  /** Answers on a socket node:http has handed over (CONNECT, upgrade, errors) and closes it. */
  private refuseRaw(socket: Duplex, status: number, text: string, body: string, headers: Record<string, string> = {}): void {
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const message = `${body}\n`;
    endGently(socket, `HTTP/1.1 ${status} ${text}\r\n${extra}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\nConnection: close\r\n\r\n${message}`);
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // node:http keeps parsing what a refused client goes on sending and reports each chunk as a
    // new error: the answer is on its way and the socket is draining, so destroying it now would
    // send an RST that can wipe the answer out of the client's receive buffer.
    if (endingGently.has(socket)) return;
    const state = stateOf.get(socket);
    if (state && !state.tunnel) {
      state.outcome.reason = err.code === 'ECONNRESET' ? 'reset' : 'bad request';
      state.outcome.error = err.code === 'HPE_HEADER_OVERFLOW' ? 'request header over 16 KiB' : err.message;
    }
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request'];
    this.refuseRaw(socket, status, text, status === 431 ? 'request header over 16 KiB' : 'malformed request');
  }
}

/** "host:port" or "[v6]:port" of a CONNECT request. */
export function parseAuthority(text: string): { host: string; port: number; label: string } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]).toLowerCase().replace(/\.$/, '');
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined ? !net.isIPv6(host) : !(net.isIPv4(host) || isSafeHostName(host))) return undefined;
  return { host, port, label: m[1] !== undefined ? `[${host}]:${port}` : `${host}:${port}` };
}

function statusText(status: number): string {
  return http.STATUS_CODES[status] ?? 'Error';
}

/** An error response through node:http (keep-alive stays possible unless Connection: close). */
function sendError(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const body = `${message}\n`;
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * Sends a last message and closes without losing it: the write side is ended (FIN after the
 * bytes), what the client still sends is read and dropped (closing with unread data would send
 * a reset that can wipe the reply before it is read), and the socket is destroyed once the client
 * closes or after 2 s.
 */
/** Sockets that endGently() has answered and is draining. */
const endingGently = new WeakSet<Duplex>();

export function endGently(socket: Duplex, last: string | Buffer): void {
  if (socket.destroyed) return;
  endingGently.add(socket);
  socket.on('error', () => {});
  socket.on('data', () => {});
  socket.resume();
  socket.end(last);
  const timer = setTimeout(() => socket.destroy(), 2_000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
}

/** Calls fn once the socket has closed. */
function onceClosed(socket: Duplex, fn: () => void): void {
  if (socket.destroyed && (socket as { closed?: boolean }).closed) return fn();
  socket.once('close', fn);
}
