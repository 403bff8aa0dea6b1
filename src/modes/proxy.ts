/**
 * `sockcat proxy [LISTEN]`: a SOCKS5 (with UDP ASSOCIATE), SOCKS4/4a and HTTP proxy on one
 * port, with logins, internal names (ShimmerCat's use: http://app.test/ in a browser reaches
 * 127.0.0.1:8000, no /etc/hosts edit), destination rules, and optional --via hops for every
 * upstream. The work per client is src/proxy/handler.ts; this file builds what all clients
 * share and runs the listener.
 */
import type { Address } from '../endpoints/index';
import { DEFAULT_CLOSE_WAIT_MS } from '../relay';
import { openServer, type ServerModeOptions } from '../runtime/server';
import { ProxyAuth, type AuthOptions } from '../proxy/auth';
import { NameMap, type NameMapOptions } from '../proxy/names';
import { DestRules } from '../proxy/dest-rules';
import { Dialer } from '../proxy/dialer';
import { formatHostPort } from '../endpoints/index';
import type { HopAddress } from '../endpoints/hop';
import { ProxyHandler, DEFAULT_HANDSHAKE_TIMEOUT_MS } from '../proxy/handler';
import type { ModeIO } from '../io';

/** Default --connect-timeout for upstream connections. */
export const DEFAULT_PROXY_CONNECT_TIMEOUT_MS = 10_000;
/** Default port: SOCKS's. */
export const DEFAULT_PROXY_PORT = 1080;
/** Descriptors per client: the client's socket and its upstream. */
const FDS_PER_CLIENT = 2;

export interface ProxyOptions extends ServerModeOptions {
  listen: Address;
  /** --auth, --auth-file. */
  auth: AuthOptions;
  /** --map, --map-file. */
  map: NameMapOptions;
  /** --only-mapped. */
  onlyMapped: boolean;
  /** --allow-dest, --deny-dest. */
  allowDest: string[];
  denyDest: string[];
  /** --via hops, in order. */
  via: HopAddress[];
  connectTimeoutMs: number;
  closeWaitMs: number;
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** How often --auth-file and --map-file are looked at (ms; tests make it short). */
  pollMs?: number;
}

/** Runs the proxy until stopped; resolves with the exit code. */
export async function runProxy(opts: ProxyOptions, io: ModeIO): Promise<number> {
  // With --workers each worker is this same proxy: it reads --auth-file and --map-file itself.
  const server = await openServer({ ...opts, address: opts.listen }, io, { mode: 'proxy', fdsPerClient: FDS_PER_CLIENT });
  if (server.role === 'done') return server.exitCode;
  const { logger, metrics } = server;

  const reloads =
    (what: string) =>
    ({ count, problems, error, first }: { count: number; problems: string[]; error?: string; first?: boolean }) => {
      for (const p of problems) logger.warn(what, `ignoring ${p}`);
      if (error) logger.warn(what, `could not re-read ${what}, keeping the previous contents: ${error}`);
      else logger.event(what, `${what} ${first ? 'loaded' : 'reloaded'}: ${count} entr${count === 1 ? 'y' : 'ies'}`, { count });
    };
  const auth = new ProxyAuth({ ...opts.auth, pollMs: opts.pollMs }, reloads('auth-file'));
  const map = new NameMap({ ...opts.map, pollMs: opts.pollMs }, reloads('map-file'));
  try {
    // A missing or bad file stops us here, before anything listens (exit 2).
    await Promise.all([auth.ready, map.ready]);
    const rules = new DestRules({ allow: opts.allowDest, deny: opts.denyDest });
    const dialer = new Dialer({
      metrics,
      map,
      onlyMapped: opts.onlyMapped,
      rules,
      hops: opts.via,
      connectTimeoutMs: opts.connectTimeoutMs,
    });
    const handler = new ProxyHandler({
      auth,
      dialer,
      logger,
      closeWaitMs: opts.closeWaitMs ?? DEFAULT_CLOSE_WAIT_MS,
      idleTimeoutMs: opts.idleTimeoutMs,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      metrics,
    });
    // Access control, --accept-proxy-protocol, --metrics and --allow-link come with the server, as for every listening mode.
    await server.serve({
      onListening: (listener) => {
        const hops = opts.via.map((h) => formatHostPort(h.host, h.port));
        const via = hops.length ? `, upstream via ${hops.join(' → ')}` : '';
        const login = auth.required ? ', login required' : '';
        logger.event('proxy', `SOCKS5/SOCKS4/HTTP proxy on ${listener.label}${login}${via}`, { address: listener.label, auth: auth.required, via: hops.join(',') || undefined });
      },
      handle: (conn, ctx) => handler.handle(conn, ctx),
    });
  } finally {
    auth.close();
    map.close();
  }
  return 0;
}
