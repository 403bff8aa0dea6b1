/**
 * The agent side of a tunnel (`sockcat expose LOCAL --via RELAY`): connects out to the relay,
 * proves its token, and from then on carries every public client as a stream multiplexed over
 * that one connection (mux.ts): for each stream the relay opens, it opens LOCAL and joins the two
 * with the shared relay.
 *
 * - Heartbeats both ways; a relay silent for 3 heartbeats is dead. The agent then resets every
 *   connection to LOCAL it carried (their transfer was cut) and reconnects with exponential
 *   backoff and jitter, capped at 30 s, asking for the port it had.
 * - A stream's EOF is its FIN frame, ordered after its data on the one connection: the loss of
 *   the connection (a killed relay) is never an EOF but a reset of every stream, so LOCAL is reset.
 * - The access log names the public client (its real address), bytes each way and session time.
 */
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { connectAddress, formatAddress, type Address } from '../endpoints/index';
import { connectTcpSocket } from '../endpoints/tcp';
import { formatHostPort } from '../endpoints/address';
import { describeTlsError, type TlsClientFlags } from '../endpoints/tls';
import { relay, resetStream } from '../relay';
import { encodeProxyHeader, type ProxyVersion } from '../proxy-protocol';
import { formatDuration, type Logger } from '../log';
import { NetError, describeError } from '../errors';
import { Channel } from './channel';
import { proveToken, ProtocolError, PROTOCOL_VERSION, type Message } from './protocol';
import { Mux, type MuxStream, type OpenInfo } from './mux';
import type { CountedConnection, Metrics } from '../metrics';

export const DEFAULT_HEARTBEAT_MS = 5000;
export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_CAP_MS = 30_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** How the agent reaches the relay. */
export interface RelayTarget {
  host: string;
  port: number;
  /** undefined: plain TCP (--insecure on both sides). */
  tls?: {
    /** Pinned SHA-256 fingerprint, normalized "AB:CD:…". */
    fingerprint?: string;
    /** Trusted CA PEM. */
    ca?: Buffer;
    servername?: string;
  };
}

export interface AgentOptions {
  local: Address;
  relay: RelayTarget;
  token: string;
  /** Public port to ask for (undefined: the relay picks, then the same one on reconnects). */
  remotePort?: number;
  /** Only these clients (CIDR list) may use the tunnel; enforced by the relay. */
  allow?: string[];
  /** --name: the tunnel's name under the relay's --domain. */
  name?: string;
  /** --http-auth "user:pass": the relay asks HTTP clients for them. */
  httpAuth?: string;
  heartbeatMs?: number;
  /** Exit on the first lost connection instead of reconnecting. */
  once?: boolean;
  proxyProtocol?: ProxyVersion;
  closeWaitMs?: number;
  connectTimeoutMs?: number;
  logger: Logger;
  signal: AbortSignal;
  /** Told every time the tunnel is (re)established. */
  onPublic?: (info: { host: string; port: number; name: string }) => void;
  /** --metrics: the tunnel up or down, its clients and their bytes. */
  metrics?: Metrics;
}

/** A refusal that reconnecting cannot fix (wrong token, wrong certificate): the agent exits. */
export class FatalTunnelError extends NetError {}

/** Backoff before attempt `n` (0-based): 0.5 s doubling, capped at 30 s, with ±50 % jitter below the cap. */
export function backoffDelay(n: number, random = Math.random): number {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** Math.min(n, 16));
  return Math.min(BACKOFF_CAP_MS, Math.round(base * (0.5 + random())));
}

/** Runs the agent until stopped (0), or until a fatal refusal or, with --once, the first loss (1). */
export async function runAgent(opts: AgentOptions): Promise<number> {
  const { logger, signal } = opts;
  const relayLabel = formatHostPort(opts.relay.host, opts.relay.port);
  let attempt = 0;
  let port = opts.remotePort;
  while (!signal.aborted) {
    let session: AgentSession | undefined;
    try {
      session = await AgentSession.open(opts, port);
      attempt = 0;
      port = session.port;
      opts.metrics?.tunnelUp(session.name, true);
      const reason = await session.run();
      opts.metrics?.tunnelUp(session.name, false);
      if (signal.aborted) return 0;
      logger.warn('disconnected', `lost the relay ${relayLabel}: ${reason}`, { relay: relayLabel, reason });
    } catch (err) {
      if (signal.aborted) return 0;
      if (err instanceof FatalTunnelError) {
        logger.error('refused', err.message, { relay: relayLabel });
        return 1;
      }
      logger.warn('connect-failed', `cannot reach the relay ${relayLabel}: ${(err as Error).message}`, { relay: relayLabel, error: (err as Error).message });
    }
    if (opts.once) return 1;
    const delay = backoffDelay(attempt++);
    logger.warn('reconnect', `reconnecting to ${relayLabel} in ${formatDuration(delay)} (attempt ${attempt})`, { relay: relayLabel, attempt, delay_ms: delay });
    await sleep(delay, signal);
  }
  return 0;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * How the agent's TLS errors word the way out: its --fingerprint (which skips the CA check) rather
 * than --insecure, which for the agent means a plain-text relay.
 */
const RELAY_TLS_FLAGS: TlsClientFlags = {
  ca: '--ca',
  insecure: '--fingerprint',
  servername: 'pass --servername NAME',
  untrusted: 'pin the fingerprint the relay printed with --fingerprint, or trust its certificate with --ca',
  closed: 'is the relay started with --insecure (then give the agent --insecure too)?',
};

/** Opens a stream to the relay: TLS verified by fingerprint, CA or the system's CAs; or plain TCP. */
export async function connectRelay(target: RelayTarget, signal?: AbortSignal): Promise<Duplex> {
  const where = formatHostPort(target.host, target.port);
  const raw = await connectTcpSocket({ host: target.host, port: target.port, hostGiven: true }, { timeoutMs: CONNECT_TIMEOUT_MS, signal });
  raw.setKeepAlive(true, 30_000);
  if (!target.tls) return raw;
  const t = target.tls;
  const servername = t.servername ?? target.host;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: raw,
      servername: /^[\d.]+$/.test(servername) || servername.includes(':') ? undefined : servername,
      ca: t.ca,
      // A pinned fingerprint replaces the CA check: the certificate is the one we were told, or nothing.
      rejectUnauthorized: !t.fingerprint,
      checkServerIdentity: (_h, cert) => (t.fingerprint ? undefined : tls.checkServerIdentity(servername, cert)),
    });
    const timer = setTimeout(() => fail(new NetError(`TLS handshake with the relay ${where} timed out`)), HANDSHAKE_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      if (err instanceof NetError) return reject(err);
      const words = describeTlsError(err, `the relay ${where}`, 'client', RELAY_TLS_FLAGS);
      if (words && /certificate|TLS/.test(words) && !/closed the connection/.test(words)) return reject(new FatalTunnelError(words));
      if (words) return reject(new NetError(words));
      reject(new NetError(describeError(err, { action: 'connect', address: where })));
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      if (t.fingerprint) {
        const got = socket.getPeerX509Certificate()?.fingerprint256;
        if (got !== t.fingerprint) {
          return fail(new FatalTunnelError(`the relay ${where} presented a certificate with SHA-256 fingerprint ${got ?? 'none'}, not the --fingerprint ${t.fingerprint}: refusing it (someone in the path, or the relay has a new certificate)`));
        }
      }
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * What the relay said on a connection's first exchange. `plain`: the agent talks in plain text
 * (--insecure), so a relay that hangs up on its hello is most likely a TLS one.
 */
async function greet(channel: Channel, where: string, plain: boolean): Promise<string> {
  channel.send({ type: 'hello', version: PROTOCOL_VERSION });
  let m: Message;
  try {
    m = await channel.next(HANDSHAKE_TIMEOUT_MS, 'challenge from the relay');
  } catch (err) {
    const why = (err as Error).message;
    // Only a plain agent can be talking to a TLS relay; over TLS the handshake already succeeded.
    const hint = plain && /closed/.test(why) ? ' (a TLS relay? then drop --insecure and pin --fingerprint)' : '';
    throw new NetError(`the relay ${where} did not answer the handshake: ${why}${hint}`);
  }
  if (m.type === 'error') throw refusal(m, where);
  if (m.type !== 'challenge') throw new NetError(`the relay ${where} sent '${m.type}' instead of a challenge`);
  return m.nonce;
}

function refusal(m: Extract<Message, { type: 'error' }>, where: string): Error {
  const text = `the relay ${where} refused the tunnel: ${m.message}`;
  return m.retry ? new NetError(text) : new FatalTunnelError(text);
}

/** One connection to the relay: its multiplexed control connection and the clients it carries. */
class AgentSession {
  private closedWith: string | undefined;
  private wakeRun: ((reason: string) => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;
  private readonly localLabel: string;
  /** Connections to LOCAL being carried, to reset them if the relay is lost. */
  private readonly locals = new Set<Duplex>();
  private readonly mux: Mux;

  private constructor(
    private readonly opts: AgentOptions,
    stream: Duplex,
    readonly port: number,
    readonly name: string,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.localLabel = formatAddress(opts.local);
    this.mux = new Mux(stream, {
      role: 'agent',
      onStream: (s, info) => void this.serveClient(s, info),
      // A session that was up lost its relay (restart, network): no protocol mix-up to hint at.
      onClose: (reason) => this.stop(reason.message),
    });
  }

  /** Connects, authenticates and registers; rejects with a NetError (retry) or FatalTunnelError. */
  static async open(opts: AgentOptions, port: number | undefined): Promise<AgentSession> {
    const where = formatHostPort(opts.relay.host, opts.relay.port);
    opts.logger.event('connecting', `connecting to the relay ${where}`, { relay: where });
    const stream = await connectRelay(opts.relay, opts.signal);
    const channel = new Channel(stream);
    try {
      const nonce = await greet(channel, where, !opts.relay.tls);
      // Past `ready` the connection carries multiplexed streams (mux.ts), not messages.
      channel.rawAfterNext();
      channel.send({ type: 'auth', mac: proveToken(opts.token, 'control', nonce), port, heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, allow: opts.allow, name: opts.name, httpAuth: opts.httpAuth });
      let m: Message;
      try {
        m = await channel.next(HANDSHAKE_TIMEOUT_MS, 'answer from the relay');
      } catch (err) {
        throw new NetError(`the relay ${where} did not answer: ${(err as Error).message}`);
      }
      if (m.type === 'error') throw refusal(m, where);
      if (m.type !== 'ready') throw new NetError(`the relay ${where} sent '${m.type}' instead of ready`);
      const session = new AgentSession(opts, channel.detach(), m.port, m.name);
      opts.logger.notice('public', `public: ${formatHostPort(opts.relay.host, m.port)}`, { relay: where, host: opts.relay.host, port: m.port, agent: m.name });
      for (const url of m.urls ?? []) opts.logger.notice('public', `public: ${url}`, { relay: where, url, agent: m.name });
      if (opts.httpAuth && !m.urls?.length) opts.logger.warn('http-auth', '--http-auth protects the named HTTP routes only; this relay has none, and the port above is open', {});
      opts.onPublic?.({ host: opts.relay.host, port: m.port, name: m.name });
      return session;
    } catch (err) {
      channel.close(err as Error);
      throw err;
    }
  }

  /** Serves until the control connection is lost or the agent stops; resolves with why. */
  run(): Promise<string> {
    return new Promise<string>((resolve) => {
      this.wakeRun = resolve;
      if (this.closedWith) return resolve(this.closedWith);
      const onAbort = () => this.stop('stopping');
      this.opts.signal.addEventListener('abort', onAbort, { once: true });
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.mux.lastSeen > 3 * this.heartbeatMs) return this.stop(`no heartbeat for ${formatDuration(3 * this.heartbeatMs)}`);
        this.mux.ping();
      }, this.heartbeatMs);
    });
  }

  private stop(reason: string): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    clearInterval(this.heartbeat);
    // Every connection to LOCAL this session carried was cut: LOCAL must see a reset, not an end.
    for (const local of this.locals) resetStream(local);
    this.mux.close(new ProtocolError(reason));
    this.wakeRun?.(reason);
  }

  /** One public client: open LOCAL, send the PROXY header if asked, relay, log one access line. */
  private async serveClient(stream: MuxStream, open: OpenInfo): Promise<void> {
    const { logger } = this.opts;
    const id = stream.id;
    const who = formatHostPort(open.client.address, open.client.port);
    const started = Date.now();
    logger.opened({ id, client: who, text: ` → ${this.localLabel}`, fields: { target: this.localLabel } });
    let local: Duplex;
    try {
      local = (await connectAddress(this.opts.local, { timeoutMs: this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS })).stream;
    } catch (err) {
      // LOCAL refused: the public client is reset (RST on the stream), as if LOCAL itself had refused it.
      stream.destroy();
      const why = (err as Error).message;
      logger.warn('upstream', `${who}: ${why}`, { client: who, id, error: why });
      logger.closed({ id, client: who, text: ` → ${this.localLabel}`, bytesIn: 0, bytesOut: 0, durationMs: Date.now() - started, reason: 'refused upstream', fields: { target: this.localLabel } });
      return;
    }
    if (this.closedWith || stream.destroyed) {
      resetStream(local);
      stream.destroy();
      return;
    }
    this.locals.add(local);
    let counted: CountedConnection | undefined;
    try {
      if (this.opts.proxyProtocol) local.write(encodeProxyHeader(this.opts.proxyProtocol, open.client, open.server));
      // --metrics: counted on the connection to LOCAL (what it is written is `in`), after the PROXY header.
      counted = this.opts.metrics?.tunnelConnectionOpened(this.name, local, { towardsService: true });
      stream.relayWith(local);
      // The stream's FIN is in-band and ordered after its data: an EOF from it is a real end. A
      // reset (RST frame, or the relay lost) reaches LOCAL as a reset.
      const result = await relay(stream, local, {
        propagateReset: true,
        resetOnFailure: { b: true },
        closeWait: { a: this.opts.closeWaitMs ?? Infinity, b: Infinity },
        // With -v, as forward: who half-closed first, the public client (through the relay) or LOCAL.
        onEof: (side) =>
          side === 'a'
            ? logger.halfClosed('client', `${who} closed its side`, { client: who, id })
            : logger.halfClosed('upstream', `${this.localLabel} closed its side (for ${who})`, { client: who, id, target: this.localLabel }),
      });
      logger.closed({
        id,
        client: who,
        text: ` → ${this.localLabel}`,
        bytesIn: result.aToB,
        bytesOut: result.bToA,
        durationMs: result.durationMs,
        reason: result.reason,
        fields: { target: this.localLabel, error: result.error?.message },
      });
    } finally {
      this.locals.delete(local);
      if (counted) this.opts.metrics!.tunnelConnectionClosed(this.name, counted);
    }
  }
}
