/**
 * The agent side of a tunnel (`sockcat expose LOCAL --via RELAY`): connects out to the relay,
 * proves its token, keeps a few data connections parked at the relay, and for each public client
 * the relay hands over on one of them, opens LOCAL and joins the two with the shared relay.
 *
 * - Heartbeats both ways; a relay silent for 3 heartbeats is dead. The agent then resets every
 *   connection to LOCAL it carried (their transfer was cut) and reconnects with exponential
 *   backoff and jitter, capped at 30 s, asking for the port it had.
 * - A data connection's EOF is passed on to LOCAL only once the relay confirmed it on the control
 *   channel (`fin`): the FIN of a killed relay is a reset for LOCAL.
 * - The access log names the public client (its real address), bytes each way and session time.
 */
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { connectAddress, formatAddress, type Address } from '../endpoints/index';
import { connectTcpSocket } from '../endpoints/tcp';
import { formatHostPort } from '../endpoints/address';
import { describeTlsError } from '../endpoints/tls';
import { relay, resetStream } from '../relay';
import { encodeProxyHeader, type ProxyVersion } from '../proxy-protocol';
import { formatDuration, type Logger } from '../log';
import { NetError, describeError } from '../errors';
import { Channel } from './channel';
import { proveToken, ProtocolError, PROTOCOL_VERSION, type Message } from './protocol';
import type { CountedConnection, Metrics } from '../metrics';

export const DEFAULT_HEARTBEAT_MS = 5000;
/** Data connections kept parked at the relay, ready for the next public clients. */
export const POOL_SIZE = 8;
/** Data connections being opened at once, at most (a burst of clients asks for more). */
const MAX_OPENING = 64;
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

/** Opens a stream to the relay: TLS verified by fingerprint, CA or the system's CAs; or plain TCP. */
export async function connectRelay(target: RelayTarget, signal?: AbortSignal, resume?: TlsResumption): Promise<Duplex> {
  const where = formatHostPort(target.host, target.port);
  const raw = await connectTcpSocket({ host: target.host, port: target.port, hostGiven: true }, { timeoutMs: CONNECT_TIMEOUT_MS, signal });
  raw.setKeepAlive(true, 30_000);
  if (!target.tls) return raw;
  const t = target.tls;
  const servername = t.servername ?? target.host;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: raw,
      // Data connections resume the control connection's TLS session: no certificate signed and
      // checked again for every pooled connection (the session itself came from a checked one).
      session: resume?.session,
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
      const words = describeTlsError(err, `the relay ${where}`);
      if (words && /certificate|TLS/.test(words) && !/closed the connection/.test(words)) {
        const hint = words.replace(/pass --ca FILE to trust it or --insecure/, 'pin the fingerprint the relay printed with --fingerprint, or trust its certificate with --ca');
        return reject(new FatalTunnelError(hint));
      }
      if (words) return reject(new NetError(words.includes('closed') ? `${words.replace(/ \(does it speak TLS.*$/, '')}: is the relay started with --insecure (then give the agent --insecure too)?` : words));
      reject(new NetError(describeError(err, { action: 'connect', address: where })));
    };
    socket.once('error', fail);
    if (resume) socket.on('session', (session: Buffer) => (resume.session = session));
    socket.once('secureConnect', () => {
      if (t.fingerprint && !socket.isSessionReused()) {
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

/** The latest TLS session ticket from the relay, shared by one agent session's connections. */
export interface TlsResumption {
  session?: Buffer;
}

/** What the relay said on a connection's first exchange. */
async function greet(channel: Channel, where: string): Promise<string> {
  channel.send({ type: 'hello', version: PROTOCOL_VERSION });
  let m: Message;
  try {
    m = await channel.next(HANDSHAKE_TIMEOUT_MS, 'challenge from the relay');
  } catch (err) {
    throw new NetError(`the relay ${where} did not answer the handshake: ${describeProtocolFailure(err as Error)}`);
  }
  if (m.type === 'error') throw refusal(m, where);
  if (m.type !== 'challenge') throw new NetError(`the relay ${where} sent '${m.type}' instead of a challenge`);
  return m.nonce;
}

function describeProtocolFailure(err: Error): string {
  if (/closed/.test(err.message)) return `${err.message} (a TLS relay? then drop --insecure and pin --fingerprint)`;
  return err.message;
}

function refusal(m: Extract<Message, { type: 'error' }>, where: string): Error {
  const text = `the relay ${where} refused the tunnel: ${m.message}`;
  return m.retry ? new NetError(text) : new FatalTunnelError(text);
}

/** Connection ids the relay spoke of before their `open` arrived (a fin can overtake it), bounded. */
class EarlyVerdicts {
  private readonly map = new Map<number, 'fin' | 'reset'>();
  set(id: number, v: 'fin' | 'reset'): void {
    if (this.map.size >= 4096) this.map.delete(this.map.keys().next().value!);
    this.map.set(id, v);
  }
  take(id: number): 'fin' | 'reset' | undefined {
    const v = this.map.get(id);
    this.map.delete(id);
    return v;
  }
}

const toldReset = (c: { verdict?: 'fin' | 'reset' }) => c.verdict === 'reset';

interface LiveConn {
  local?: Duplex;
  data: Duplex;
  verdict?: 'fin' | 'reset';
  wake?: () => void;
}

/** One connection to the relay: its control channel, data pool and live connections. */
class AgentSession {
  private readonly live = new Map<number, LiveConn>();
  private readonly early = new EarlyVerdicts();
  private idle = 0;
  private opening = 0;
  private closedWith: string | undefined;
  private wakeRun: ((reason: string) => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly where: string;
  private readonly heartbeatMs: number;
  private readonly localLabel: string;
  private readonly dataStreams = new Set<Duplex>();

  private constructor(
    private readonly opts: AgentOptions,
    private readonly control: Channel,
    readonly sessionId: string,
    readonly port: number,
    readonly name: string,
    private readonly resume: TlsResumption,
  ) {
    this.where = formatHostPort(opts.relay.host, opts.relay.port);
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.localLabel = formatAddress(opts.local);
  }

  /** Connects, authenticates and registers; rejects with a NetError (retry) or FatalTunnelError. */
  static async open(opts: AgentOptions, port: number | undefined): Promise<AgentSession> {
    const where = formatHostPort(opts.relay.host, opts.relay.port);
    opts.logger.event('connecting', `connecting to the relay ${where}`, { relay: where });
    const resume: TlsResumption = {};
    const stream = await connectRelay(opts.relay, opts.signal, resume);
    const channel = new Channel(stream);
    try {
      const nonce = await greet(channel, where);
      channel.send({ type: 'auth', mac: proveToken(opts.token, 'control', nonce), port, heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, allow: opts.allow, name: opts.name, httpAuth: opts.httpAuth });
      let m: Message;
      try {
        m = await channel.next(HANDSHAKE_TIMEOUT_MS, 'answer from the relay');
      } catch (err) {
        throw new NetError(`the relay ${where} did not answer: ${(err as Error).message}`);
      }
      if (m.type === 'error') throw refusal(m, where);
      if (m.type !== 'ready') throw new NetError(`the relay ${where} sent '${m.type}' instead of ready`);
      const session = new AgentSession(opts, channel, m.session, m.port, m.name, resume);
      opts.logger.warn('public', `public: ${formatHostPort(opts.relay.host, m.port)}`, { relay: where, host: opts.relay.host, port: m.port, agent: m.name });
      for (const url of m.urls ?? []) opts.logger.warn('public', `public: ${url}`, { relay: where, url, agent: m.name });
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
      const onAbort = () => this.stop('stopping');
      this.opts.signal.addEventListener('abort', onAbort, { once: true });
      this.control.setHandler((m) => this.onControlMessage(m));
      this.control.onClosed((reason) => this.stop(describeProtocolFailure(reason)));
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.control.lastSeen > 3 * this.heartbeatMs) return this.stop(`no heartbeat for ${formatDuration(3 * this.heartbeatMs)}`);
        this.control.send({ type: 'ping' });
      }, this.heartbeatMs);
      this.fillPool();
    });
  }

  private stop(reason: string): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    clearInterval(this.heartbeat);
    this.control.close(new ProtocolError(reason));
    // Every connection to LOCAL this session carried was cut: LOCAL must see a reset, not an end.
    for (const c of this.live.values()) {
      c.verdict ??= 'reset';
      if (c.local) resetStream(c.local);
      c.data.destroy();
      c.wake?.();
    }
    for (const d of this.dataStreams) d.destroy();
    this.wakeRun?.(reason);
  }

  private onControlMessage(m: Message): void {
    switch (m.type) {
      case 'ping':
        this.control.send({ type: 'pong' });
        return;
      case 'pong':
        return;
      case 'need': {
        const want = Math.min(m.count, MAX_OPENING) - this.opening;
        for (let i = 0; i < want; i++) this.openData();
        return;
      }
      case 'fin':
      case 'reset': {
        const c = this.live.get(m.id);
        if (!c) return this.early.set(m.id, m.type);
        c.verdict ??= m.type;
        if (m.type === 'reset' && c.local) resetStream(c.local);
        c.wake?.();
        return;
      }
      default:
        this.control.close(new ProtocolError(`unexpected '${m.type}' from the relay`));
    }
  }

  private fillPool(): void {
    while (!this.closedWith && this.idle + this.opening < POOL_SIZE) this.openData();
  }

  /** Opens one data connection and parks it at the relay until a public client takes it. */
  private openData(): void {
    if (this.closedWith) return;
    this.opening++;
    void (async () => {
      let channel: Channel | undefined;
      let state: 'opening' | 'idle' | 'used' = 'opening';
      try {
        // No abort signal here: stop() destroys every data stream, and dozens of connects at once
        // would each hang a listener on the one signal.
        const stream = await connectRelay(this.opts.relay, undefined, this.resume);
        this.dataStreams.add(stream);
        stream.once('close', () => this.dataStreams.delete(stream));
        if (this.closedWith) return void stream.destroy();
        channel = new Channel(stream);
        const nonce = await greet(channel, this.where);
        channel.rawAfterNext();
        channel.send({ type: 'data', session: this.sessionId, mac: proveToken(this.opts.token, 'data', nonce, this.sessionId) });
        this.opening--;
        this.idle++;
        state = 'idle';
        const m = await channel.next(2 ** 31 - 1, 'client');
        this.idle--;
        state = 'used';
        if (m.type !== 'open') throw new ProtocolError(m.type === 'error' ? m.message : `unexpected '${m.type}' on a data connection`);
        const data = channel.detach();
        this.fillPool();
        await this.serveClient(data, m);
      } catch (err) {
        if (state === 'opening') this.opening--;
        else if (state === 'idle') this.idle--;
        channel?.close(err as Error);
        if (!this.closedWith && state !== 'used') {
          this.opts.logger.event('data-failed', `a data connection to the relay ${this.where} failed: ${(err as Error).message}`, { relay: this.where });
          // Keep the pool full, without spinning if the relay keeps refusing.
          setTimeout(() => this.fillPool(), Math.min(1000, this.heartbeatMs)).unref();
        }
      }
    })();
  }

  /** One public client: open LOCAL, send the PROXY header if asked, relay, log one access line. */
  private async serveClient(data: Duplex, open: Extract<Message, { type: 'open' }>): Promise<void> {
    const { logger } = this.opts;
    const who = formatHostPort(open.client.address, open.client.port);
    const live: LiveConn = { data, verdict: this.early.take(open.id) };
    this.live.set(open.id, live);
    const started = Date.now();
    let counted: CountedConnection | undefined;
    logger.event('open', `connection from ${who} → ${this.localLabel}`, { client: who, id: open.id, target: this.localLabel });
    try {
      let local: Duplex;
      try {
        local = (await connectAddress(this.opts.local, { timeoutMs: this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS })).stream;
      } catch (err) {
        // LOCAL refused: the public client is reset, as if LOCAL itself had refused it.
        this.control.send({ type: 'reset', id: open.id });
        data.destroy();
        logger.warn('upstream', `${who}: ${(err as Error).message}`, { client: who, id: open.id, error: (err as Error).message });
        logger.event('close', `closed ${who} → ${this.localLabel}: 0 bytes in, 0 bytes out, ${formatDuration(Date.now() - started)} (refused upstream)`, {
          client: who,
          id: open.id,
          bytes_in: 0,
          bytes_out: 0,
          duration_ms: Date.now() - started,
          reason: 'refused upstream',
        });
        return;
      }
      live.local = local;
      if (this.closedWith || live.verdict === 'reset') {
        resetStream(local);
        data.destroy();
        return;
      }
      if (this.opts.proxyProtocol) local.write(encodeProxyHeader(this.opts.proxyProtocol, open.client, open.server));
      // --metrics: counted on the connection to LOCAL (what it is written is `in`), after the PROXY header.
      counted = this.opts.metrics?.tunnelConnectionOpened(this.name, local, { towardsService: true });
      const result = await relay(data, local, {
        propagateReset: true,
        resetOnFailure: { b: true },
        closeWait: { a: this.opts.closeWaitMs ?? Infinity, b: Infinity },
        onEof: (from) => {
          if (from === 'b') this.control.send({ type: 'fin', id: open.id });
        },
        eofGate: { a: () => this.verdict(live) },
      });
      // The relay learns at once that this connection failed here (a data connection's close says nothing).
      if (result.reason !== 'eof' && !toldReset(live)) this.control.send({ type: 'reset', id: open.id });
      const ms = result.durationMs;
      logger.event(
        'close',
        `closed ${who} → ${this.localLabel}: ${result.aToB} bytes in, ${result.bToA} bytes out, ${formatDuration(ms)} (${result.reason})`,
        { client: who, id: open.id, target: this.localLabel, bytes_in: result.aToB, bytes_out: result.bToA, duration_ms: ms, reason: result.reason, error: result.error?.message },
      );
    } finally {
      this.live.delete(open.id);
      if (counted) this.opts.metrics!.tunnelConnectionClosed(this.name, counted);
    }
  }

  private verdict(live: LiveConn): Promise<boolean> {
    if (live.verdict) return Promise.resolve(live.verdict === 'fin');
    if (this.closedWith) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        live.wake = undefined;
        resolve(false);
      }, 3 * this.heartbeatMs);
      live.wake = () => {
        clearTimeout(timer);
        live.wake = undefined;
        resolve(live.verdict === 'fin');
      };
    });
  }
}
