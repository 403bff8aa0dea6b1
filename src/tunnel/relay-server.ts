/**
 * The relay side of a tunnel (`sockcat relay`): accepts agents on the control address, checks
 * their token, opens one public listener per agent, and carries every public client as a stream
 * multiplexed over the agent's control connection (mux.ts), joined with the shared relay.
 *
 * - An agent that goes (its control connection closes, or 3 heartbeats pass in silence) has its
 *   public listener closed at once, its clients reset (RST: their transfer was cut) and its
 *   port remembered for its token name, so the same agent reconnecting gets it back.
 * - A stream's EOF is its FIN frame, ordered after its data: a killed agent ends the connection,
 *   which resets every stream, so its clients are reset, never ended.
 * - Anything a stranger sends to the control port is a handshake that fails with a logged reason:
 *   one bad peer never disturbs the agents being served.
 */
import { listenAddress, formatAddress, type Acceptor, type Address, type Connection, type Listener } from '../endpoints/index';
import { HandshakeReader } from '../endpoints/handshake-reader';
import { relay, resetStream } from '../relay';
import { announceListening, serve, listenerParts, DEFAULT_MAX_CONNS, type ConnectionSummary } from '../runtime/listener';
import { createAccessControl, type AccessControl, type AccessOptions } from '../access';
import type { ProxyAcceptor } from '../accept-proxy';
import { formatDuration, type Logger } from '../log';
import { NetError } from '../errors';
import { Channel } from './channel';
import { checkProof, encodeFrame, newNonce, newSessionId, ProtocolError, PROTOCOL_VERSION, type Message } from './protocol';
import { Mux, type MuxStream } from './mux';
import { formatPortSet, portInSet, type PortSet, type TokenEntry } from './tokens';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../endpoints/address';
import { formatHostPort } from '../endpoints/address';
import { routeConnection, type NamedRoute } from './http-router';
import { generateName } from './names';
import type { Metrics } from '../metrics';
import type { AcceptProxyOptions } from '../accept-proxy';
import type { AllowLinks, AllowLinkOptions } from '../allow-link';

/** How long a connection to the control port may take to prove itself. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Unauthenticated connections to the control port at once; more are dropped at accept. */
const MAX_PENDING_HANDSHAKES = 512;
/** The first byte of a TLS handshake record (a ClientHello). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** Heartbeat bounds the relay accepts from an agent. */
const MIN_HEARTBEAT_MS = 100;
const MAX_HEARTBEAT_MS = 600_000;

/** A refusal the handshake has already logged in its own words (a wrong token is a warning, shown without -v): not logged again. */
class RefusalLogged extends ProtocolError {}

export interface TunnelRelayOptions {
  /** Where agents connect (tls: with cert/key, or tcp: with --insecure). */
  control: Address;
  /** Host public listeners bind. */
  publicHost: string;
  /** --ports: the ports tunnels may use; undefined: any ≥ 1024 asked for, else one the system picks. */
  ports?: PortSet;
  /** The agents, read again at each handshake (the token file is re-read live). */
  tokens: () => TokenEntry[];
  logger: Logger;
  signal: AbortSignal;
  /** Public side access control and limit, for every tunnel. */
  access?: AccessOptions;
  maxConns?: number;
  onControlListening?: (listener: Listener) => void;
  /** --http: the shared port where plain HTTP is routed by Host to NAME.domain. */
  http?: HostPort;
  /** --https: the shared port where TLS is terminated and routed by SNI (needs tls). */
  https?: HostPort;
  /** --domain: the names' parent domain. */
  domain?: string;
  /** --cert/--key, for --https and --public-tls. */
  tls?: { cert: Buffer; key: Buffer };
  /** --public-tls: each tunnel's public port speaks TLS, terminated here. */
  publicTls?: boolean;
  /** Told when the --http/--https ports are bound. */
  onRouterListening?: (proto: 'http' | 'https', listener: Listener) => void;
  /** Told each tunnel that opens (tests read the public port here). */
  onTunnel?: (info: { name: string; port: number }) => void;
  /** --metrics: public clients through serve(), and per tunnel (token name) here. */
  metrics?: Metrics;
  /** --accept-proxy-protocol: the public listeners read a PROXY header from a --trusted-proxy first. */
  acceptProxy?: AcceptProxyOptions;
  /** --allow-link: visitors of a link join the public side's allow list (--allow-file). */
  allowLink?: AllowLinkOptions & { trustedProxies?: string[] };
}

/** One public client being carried: its socket and its stream to the agent. */
interface LiveConn {
  client: Duplex;
  stream: MuxStream;
}

/** Runs the relay until the signal aborts. Rejects if the control address cannot be opened. */
export async function runTunnelRelay(opts: TunnelRelayOptions): Promise<void> {
  const relayServer = new TunnelRelay(opts);
  await relayServer.run();
}

class TunnelRelay {
  private readonly sessions = new Map<string, Session>();
  private readonly byName = new Map<string, Session>();
  /** Port each token name last had, to give it back when the agent reconnects. */
  readonly portByName = new Map<string, number>();
  /** Route name → the token name that holds it (for the relay's lifetime, so it comes back to its owner). */
  private readonly routeOwner = new Map<string, string>();
  /** Token name → its route name. */
  private readonly routeByToken = new Map<string, string>();
  /** Route name → the live session serving it. */
  private readonly byRoute = new Map<string, Session>();
  /** "http://*.example.org:8080" and the like, once the router ports are bound. */
  private readonly routerBases: Array<{ proto: 'http' | 'https'; port: number }> = [];
  private pendingHandshakes = 0;
  /** The control port's TLS step, run by onControlCarrier (undefined for a plain relay, --insecure). */
  private controlOverlay: Acceptor | undefined;
  private readonly logger: Logger;
  /** Public connections across all tunnels (--max-conns counts them all). */
  liveClients = 0;
  readonly access: AccessControl | undefined;
  /** The PROXY pre-step of every public listener: the client it names is the one agents are told of. */
  readonly proxy: ProxyAcceptor | undefined;
  /** The allow-link endpoint, feeding `access` (one for every tunnel). */
  private readonly allowLinks: AllowLinks | undefined;

  constructor(readonly opts: TunnelRelayOptions) {
    this.logger = opts.logger;
    // The same parts as every listening mode's, shared by all the tunnels' public listeners.
    const parts = listenerParts({ access: opts.access, acceptProxy: opts.acceptProxy, allowLink: opts.allowLink }, opts.logger, 'relay');
    this.access = parts.access;
    this.proxy = parts.proxy;
    this.allowLinks = parts.allowLinks;
  }

  async run(): Promise<void> {
    // A bad allow file stops us here (exit 2), before any agent is let in.
    await this.access?.ready;
    const listener = await listenAddress(this.opts.control, {
      onConnection: (conn) => this.onControlCarrier(conn),
      onAcceptError: (err) => this.logger.error('accept-error', `${formatAddress(this.opts.control)}: accept failed: ${err.message}`),
      log: this.logger,
      // The TLS handshake runs here, after a look at the first byte (onControlCarrier).
      deferOverlay: true,
    });
    this.controlOverlay = listener.overlay;
    announceListening(this.logger, listener, 'relay control channel (agents connect here)');
    const stopRouters = new AbortController();
    const routers: Array<Promise<unknown>> = [];
    try {
      for (const proto of ['http', 'https'] as const) {
        const where = this.opts[proto];
        if (where) routers.push((await this.openRouter(proto, where, stopRouters.signal)).done);
      }
      await this.allowLinks?.start();
    } catch (err) {
      stopRouters.abort();
      await listener.close();
      await Promise.all(routers);
      await this.allowLinks?.close();
      this.access?.close();
      throw err;
    }
    this.opts.onControlListening?.(listener);
    await new Promise<void>((resolve) => {
      if (this.opts.signal.aborted) return resolve();
      this.opts.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    stopRouters.abort();
    await listener.close();
    await Promise.all(routers);
    await this.allowLinks?.close();
    this.access?.close();
    await Promise.all([...this.sessions.values()].map((s) => s.end('the relay is stopping')));
  }

  /** Opens the --http or --https port; resolves once bound, with the promise of its end. */
  private openRouter(proto: 'http' | 'https', where: HostPort, signal: AbortSignal): Promise<{ done: Promise<unknown> }> {
    const domain = this.opts.domain!;
    return new Promise((resolve, reject) => {
      const served = serve({
        address: { scheme: 'tcp', ...where },
        logger: this.logger,
        signal,
        access: this.access,
        sharedAccess: true,
        proxy: this.proxy,
        maxConns: this.opts.maxConns ?? DEFAULT_MAX_CONNS,
        metrics: this.opts.metrics && { metrics: this.opts.metrics },
        announce: `named tunnels over ${proto}`,
        onListening: (l) => {
          const port = (l.address as HostPort).port;
          this.routerBases.push({ proto, port });
          this.logger.notice('router', `relay: named tunnels on ${routeUrl(proto, '*', domain, port)} (${l.label}, routed by ${proto === 'http' ? 'Host' : 'SNI'})`, { proto, address: l.label, domain });
          this.opts.onRouterListening?.(proto, l);
          // Wrapped: resolving with the promise itself would wait for the router to stop.
          resolve({ done: served });
        },
        handle: (conn, ctx) => routeConnection(conn, { domain, lookup: (name) => this.byRoute.get(name), tls: proto === 'https' ? this.opts.tls : undefined, id: ctx.id }),
      }).catch((err: Error) => reject(err));
    });
  }

  /** The route name for an agent: the one it asks for, else the one it had, else a new word-word-NNNN. */
  private routeName(entry: TokenEntry, asked: string | undefined): string {
    if (asked !== undefined) {
      const owner = this.routeOwner.get(asked);
      if (owner !== undefined && owner !== entry.name) throw new ProtocolError(`the name ${asked} is taken by another agent`);
      return asked;
    }
    const had = this.routeByToken.get(entry.name);
    if (had !== undefined) return had;
    for (;;) {
      const name = generateName();
      if (!this.routeOwner.has(name)) return name;
    }
  }

  /**
   * A connection to the control port, before TLS: a TLS relay tells a plain agent (--insecure)
   * what is wrong in its own framing, instead of failing the handshake on its hello, which the
   * agent could only take for a network failure and retry forever. A tunnel frame starts with
   * 0x00 (its length is under 16 MiB), a TLS handshake record with 0x16.
   */
  private onControlCarrier(conn: Connection): void {
    const overlay = this.controlOverlay;
    if (!overlay) return this.onControlConnection(conn);
    const who = conn.remote.label;
    conn.stream.on('error', () => {});
    const reader = new HandshakeReader(conn.stream, { timeoutMs: HANDSHAKE_TIMEOUT_MS, signal: this.opts.signal });
    reader
      .read(1)
      .then(async (first) => {
        reader.unshift(first);
        reader.release();
        if (first[0] === TLS_HANDSHAKE_RECORD) return this.onControlConnection(await overlay.accept(conn, this.opts.signal));
        if (first[0] !== 0x00) throw new Error('neither TLS nor the tunnel protocol');
        const channel = new Channel(conn.stream);
        refuse(channel, 'this relay speaks TLS: drop --insecure and pin the relay with --fingerprint (or trust its certificate with --ca)');
        this.logger.refused({ event: 'refused', client: who, text: 'plain text on the TLS control port (an agent with --insecure?)', fields: { reason: 'plain text on a TLS port' } });
        channel.close(new ProtocolError('plain text on the TLS control port'));
      })
      .catch((err: Error) => {
        reader.release();
        this.logger.event('overlay-error', err.message, { client: who });
        conn.stream.destroy();
      });
  }

  private onControlConnection(conn: Connection): void {
    const who = conn.remote.label;
    conn.stream.on('error', () => {});
    if (this.pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      this.logger.refused({ event: 'limit', client: who, text: `${MAX_PENDING_HANDSHAKES} handshakes already in progress` });
      conn.stream.destroy();
      return;
    }
    this.pendingHandshakes++;
    const channel = new Channel(conn.stream);
    this.handshake(channel, conn)
      .catch((err: Error) => {
        const why = err instanceof ProtocolError || err instanceof NetError ? err.message : `handshake failed: ${err.message}`;
        if (!(err instanceof RefusalLogged)) this.logger.refused({ event: 'refused', client: who, text: why, fields: { reason: why } });
        channel.close(err);
      })
      .finally(() => this.pendingHandshakes--);
  }

  private async handshake(channel: Channel, conn: Connection): Promise<void> {
    const who = conn.remote.label;
    const hello = await channel.next(HANDSHAKE_TIMEOUT_MS, 'hello');
    if (hello.type !== 'hello') throw new ProtocolError(`expected hello, got '${hello.type}'`);
    if (hello.version !== PROTOCOL_VERSION) {
      refuse(channel, `this relay speaks tunnel protocol v${PROTOCOL_VERSION}, the agent v${hello.version}: use the same sockcat version on both sides`);
      throw new ProtocolError(`protocol version ${hello.version}`);
    }
    const nonce = newNonce();
    // Past the proof the connection carries multiplexed streams (mux.ts), not messages.
    channel.rawAfterNext();
    channel.send({ type: 'challenge', nonce });
    const msg = await channel.next(HANDSHAKE_TIMEOUT_MS, 'proof of the token');
    if (msg.type !== 'auth') throw new ProtocolError(`expected auth, got '${msg.type}'`);
    let entries: TokenEntry[];
    try {
      entries = this.opts.tokens();
    } catch (err) {
      this.logger.error('token-file', `cannot read the tokens: ${(err as Error).message}`);
      refuse(channel, 'the relay cannot read its token file right now', true);
      throw new ProtocolError('token file unreadable');
    }
    // Every entry is tried, each compared in constant time: which one matched takes no longer to find.
    let entry: TokenEntry | undefined;
    for (const e of entries) if (checkProof(msg.mac, e.token, 'control', nonce) && !entry) entry = e;
    if (!entry) {
      this.opts.metrics?.tunnelAuthFailed();
      refuse(channel, 'wrong token: the relay knows no agent with this token');
      this.logger.warn('refused', `refused agent ${who}: wrong token`, { client: who, reason: 'wrong token' });
      throw new RefusalLogged('wrong token');
    }
    await this.startSession(channel, conn, entry, msg as Extract<Message, { type: 'auth' }>);
  }

  private async startSession(channel: Channel, conn: Connection, entry: TokenEntry, auth: Extract<Message, { type: 'auth' }>): Promise<void> {
    const who = conn.remote.label;
    const asked = auth.port;
    const remembered = this.portByName.get(entry.name);
    const candidates = this.portCandidates(entry, asked ?? remembered);
    if (typeof candidates === 'string') {
      refuse(channel, candidates);
      throw new ProtocolError(candidates);
    }
    // One tunnel per token name. A second agent with the same token waits (retrying) rather than
    // taking over, or two copies would knock each other out forever; an agent that restarted
    // after losing its connection gets in once its old session is seen gone (3 heartbeats at most).
    const old = this.byName.get(entry.name);
    if (old) {
      const why = `agent ${entry.name} is already connected (from ${old.who}); retrying until that session ends`;
      refuse(channel, why, true);
      throw new ProtocolError(`agent ${entry.name} already connected`);
    }
    let allow: AccessControl | undefined;
    if (auth.allow?.length) {
      try {
        allow = createAccessControl({ allow: auth.allow, deny: [] }, this.logger);
      } catch (err) {
        refuse(channel, `bad --allow: ${(err as Error).message}`);
        throw err;
      }
    }
    let route: string | undefined;
    if (this.opts.http || this.opts.https) {
      try {
        route = this.routeName(entry, auth.name);
      } catch (err) {
        refuse(channel, (err as Error).message);
        throw err;
      }
    } else if (auth.name !== undefined || auth.httpAuth !== undefined) {
      const why = `--name and --http-auth need a relay started with --http or --https and --domain`;
      refuse(channel, why);
      throw new ProtocolError(why);
    }
    const session = new Session(this, channel, entry, who, newSessionId(), Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, auth.heartbeatMs)), allow, route, auth.httpAuth);
    let port: number | undefined;
    let lastError = '';
    for (const p of candidates) {
      try {
        port = await session.openPublic(p);
        break;
      } catch (err) {
        lastError = (err as Error).message;
        // The port the agent asked for by name is busy: say so rather than giving another.
        if (asked !== undefined) break;
      }
    }
    if (port === undefined) {
      const why = asked !== undefined ? `port ${asked} is not available: ${lastError}` : `no free port${this.opts.ports ? ` in ${formatPortSet(this.opts.ports)}` : ''}: ${lastError}`;
      refuse(channel, why, true);
      throw new ProtocolError(why);
    }
    this.sessions.set(session.id, session);
    this.byName.set(entry.name, session);
    this.portByName.set(entry.name, port);
    const urls: string[] = [];
    if (route !== undefined) {
      this.routeOwner.set(route, entry.name);
      this.routeByToken.set(entry.name, route);
      this.byRoute.set(route, session);
      for (const b of this.routerBases) urls.push(routeUrl(b.proto, route, this.opts.domain!, b.port));
    }
    channel.send({ type: 'ready', session: session.id, port, name: entry.name, urls: urls.length ? urls : undefined });
    this.logger.warn('tunnel', `agent ${entry.name} (${who}) connected: public ${session.publicLabel}${urls.length ? ` and ${urls.join(' ')}` : ''}`, { agent: entry.name, client: who, port, address: session.publicLabel, urls: urls.join(' ') || undefined });
    session.start();
    this.opts.onTunnel?.({ name: entry.name, port });
  }

  /** The ports to try, in order, or why none may be given. */
  private portCandidates(entry: TokenEntry, wanted: number | undefined): number[] | string {
    const range = this.opts.ports;
    const allowed = (p: number) => portInSet(p, range) && portInSet(p, entry.ports) && (range !== undefined || entry.ports !== undefined || p >= 1024);
    if (wanted !== undefined && wanted !== 0) {
      if (allowed(wanted)) return [wanted];
      if (wanted !== this.portByName.get(entry.name)) {
        const limits = [range ? `the relay's --ports ${formatPortSet(range)}` : 'ports ≥ 1024', entry.ports ? `agent ${entry.name}'s ${formatPortSet(entry.ports)}` : ''].filter(Boolean).join(' and ');
        return `port ${wanted} is not allowed here (allowed: ${limits})`;
      }
    }
    const set = entry.ports ?? range;
    if (!set) return [0];
    const ports: number[] = [];
    for (const [l, h] of set) for (let p = l; p <= h && ports.length < 4096; p++) if (allowed(p)) ports.push(p);
    if (ports.length === 0) return `no port is both in the relay's --ports and in agent ${entry.name}'s ports`;
    // Start at a random place so two agents do not race for the same port.
    const start = Math.floor(Math.random() * ports.length);
    return [...ports.slice(start), ...ports.slice(0, start)].slice(0, 64);
  }

  forget(session: Session): void {
    this.sessions.delete(session.id);
    if (session.route !== undefined && this.byRoute.get(session.route) === session) this.byRoute.delete(session.route);
    if (this.byName.get(session.entry.name) === session) this.byName.delete(session.entry.name);
  }
}

/** "http://NAME.example.org:8080/", without the port when it is the protocol's own. */
function routeUrl(proto: 'http' | 'https', name: string, domain: string, port: number): string {
  const own = (proto === 'http' && port === 80) || (proto === 'https' && port === 443);
  return `${proto}://${name}.${domain}${own ? '' : `:${port}`}/`;
}

/** Tells the agent why it is refused, then closes (after the frame is flushed). */
function refuse(channel: Channel, message: string, retry = false): void {
  if (channel.closed) return;
  channel.stream.end(encodeFrame({ type: 'error', message, retry }));
}

/** One connected agent: its multiplexed control connection, public listener and live clients. */
class Session implements NamedRoute {
  private readonly live = new Set<LiveConn>();
  private mux: Mux | undefined;
  private readonly stopPublic = new AbortController();
  private served: Promise<unknown> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private ended: Promise<void> | undefined;
  private readonly logger: Logger;
  publicLabel = '';
  private readonly started = Date.now();

  constructor(
    private readonly relayServer: TunnelRelay,
    private readonly control: Channel,
    readonly entry: TokenEntry,
    readonly who: string,
    readonly id: string,
    private readonly heartbeatMs: number,
    private readonly allow: AccessControl | undefined,
    /** Its name under --domain, when the relay routes names. */
    readonly route: string | undefined,
    /** --http-auth "user:pass". */
    readonly httpAuth: string | undefined,
  ) {
    this.logger = relayServer.opts.logger;
    this.name = route ?? entry.name;
  }

  readonly name: string;

  /** A request routed here by --http/--https (NamedRoute). */
  handle(conn: Connection, stream: Duplex, head: Buffer, id?: number): Promise<ConnectionSummary> {
    return this.handlePublic(conn, stream, head, id);
  }

  /** Opens the public listener on `port` (0: any); resolves with the bound port. */
  openPublic(port: number): Promise<number> {
    const opts = this.relayServer.opts;
    return new Promise<number>((resolve, reject) => {
      this.served = serve({
        address: opts.publicTls
          ? { scheme: 'tls', host: opts.publicHost, port, hostGiven: true, tls: { cert: { path: '--cert', pem: opts.tls!.cert }, key: { path: '--key', pem: opts.tls!.key } } }
          : { scheme: 'tcp', host: opts.publicHost, port, hostGiven: true },
        logger: this.logger,
        signal: this.stopPublic.signal,
        access: this.relayServer.access,
        sharedAccess: true,
        proxy: this.relayServer.proxy,
        maxConns: opts.maxConns ?? DEFAULT_MAX_CONNS,
        metrics: opts.metrics && { metrics: opts.metrics },
        announce: `public port of tunnel ${this.name}`,
        onListening: (l) => {
          this.publicLabel = l.label;
          resolve((l.address as { port: number }).port);
        },
        handle: (conn, ctx) => this.handlePublic(conn, conn.stream, undefined, ctx.id),
      }).catch((err: Error) => reject(err));
    });
  }

  /** After `ready` was sent: the control connection carries streams from now on. */
  start(): void {
    this.relayServer.opts.metrics?.tunnelUp(this.entry.name, true);
    const mux = new Mux(this.control.detach(), { role: 'relay', onClose: (reason) => void this.end(`control connection lost (${reason.message})`) });
    this.mux = mux;
    this.heartbeat = setInterval(() => {
      if (Date.now() - mux.lastSeen > 3 * this.heartbeatMs) {
        void this.end(`no heartbeat for ${formatDuration(3 * this.heartbeatMs)}`);
        return;
      }
      if (this.revoked()) {
        void this.end('its token was removed from the token file');
        return;
      }
      mux.ping();
    }, this.heartbeatMs);
  }

  /** Whether the token file no longer has this agent's token (a file that cannot be read revokes nobody). */
  private revoked(): boolean {
    try {
      return !this.relayServer.opts.tokens().some((e) => e.name === this.entry.name && e.token === this.entry.token);
    } catch {
      return false;
    }
  }

  /**
   * One public client (`stream`: its socket, or the TLS socket over it), `head` sent ahead of its
   * bytes; `id` is its connection number in the log of the listener it came in on (the tunnel's
   * public port, or the --http/--https router).
   */
  private async handlePublic(conn: Connection, client: Duplex, head?: Buffer, id?: number): Promise<ConnectionSummary> {
    const opts = this.relayServer.opts;
    if (this.allow) {
      const verdict = conn.remote.port !== undefined ? this.allow.check(conn.remote.address) : { ok: false as const, reason: 'no IP address' };
      if (!verdict.ok) {
        resetStream(client);
        return { received: 0, sent: 0, reason: `refused by the agent's --allow` };
      }
    }
    const max = opts.maxConns ?? DEFAULT_MAX_CONNS;
    if (this.relayServer.liveClients >= max) {
      resetStream(client);
      return { received: 0, sent: 0, reason: `${max} connections already open across all tunnels (--max-conns)` };
    }
    if (this.ended || !this.mux || this.mux.closed) {
      resetStream(client);
      return { received: 0, sent: 0, reason: 'no tunnel', fields: { error: 'the agent is gone' } };
    }
    this.relayServer.liveClients++;
    const stream = this.mux.open({ client: wire(conn.remote), server: wire(conn.local) });
    const live: LiveConn = { client, stream };
    this.live.add(live);
    let counted: ReturnType<NonNullable<typeof opts.metrics>['tunnelConnectionOpened']> | undefined;
    try {
      if (head) stream.write(head);
      stream.relayWith(client);
      // --metrics: the client's bytes, read from its socket at each scrape, from its first byte
      // (the request head --http read to route it included, as the client sent it).
      counted = opts.metrics?.tunnelConnectionOpened(this.entry.name, client, { fromStart: true });
      // The agent's EOF is a FIN frame ordered after its data; a reset (RST frame, the agent
      // gone) destroys the stream with ECONNRESET, and the client is reset too.
      const who = conn.remote.label;
      const result = await relay(client, stream, {
        propagateReset: true,
        resetOnFailure: { a: true },
        // With -v, as forward: who half-closed first (the agent's side is its LOCAL's EOF, carried as a FIN frame).
        onEof: (side) =>
          side === 'a'
            ? this.logger.halfClosed('client', `${who} closed its side`, { client: who, id, agent: this.entry.name })
            : this.logger.halfClosed('upstream', `tunnel ${this.entry.name} closed its side (for ${who})`, { client: who, id, agent: this.entry.name }),
      });
      return { received: result.aToB, sent: result.bToA, reason: result.reason, text: ` (tunnel ${this.entry.name})`, fields: { agent: this.entry.name } };
    } finally {
      this.live.delete(live);
      if (counted) opts.metrics!.tunnelConnectionClosed(this.entry.name, counted);
      this.relayServer.liveClients--;
    }
  }

  /** Ends the tunnel: frees the public port at once and resets every client it carried. */
  end(reason: string): Promise<void> {
    if (this.ended) return this.ended;
    let resolveEnded!: () => void;
    // Set before anything below runs: closing the connection calls end() again.
    this.ended = new Promise<void>((r) => (resolveEnded = r));
    void (async () => {
      clearInterval(this.heartbeat);
      this.relayServer.forget(this);
      if (this.heartbeat) this.relayServer.opts.metrics?.tunnelUp(this.entry.name, false);
      // Reset first: serve()'s own stop would close the clients with a FIN, a cut that looks complete.
      for (const c of this.live) resetStream(c.client);
      if (this.mux) this.mux.close(new ProtocolError(reason));
      else this.control.close(new ProtocolError(reason));
      this.stopPublic.abort();
      await this.served?.catch(() => {});
      if (this.publicLabel) {
        this.logger.warn('tunnel-closed', `agent ${this.entry.name} (${this.who}) gone after ${formatDuration(Date.now() - this.started)}: ${reason}; public ${this.publicLabel} closed`, {
          agent: this.entry.name,
          client: this.who,
          address: this.publicLabel,
          reason,
        });
      }
    })().finally(resolveEnded);
    return this.ended;
  }
}

const wire = (p: { address: string; port?: number }) => ({ address: p.address.slice(0, 64), port: p.port ?? 0 });
