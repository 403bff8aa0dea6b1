/**
 * The accept loop shared by every listening mode (listen -k, --echo, forward, exec, broadcast):
 * opens the listener, applies access control and the connection limit, tracks live connections,
 * logs each event once, and on stop closes the listener and drains live connections.
 */
import { formatAddress, listenAddress } from './endpoints/index';
import { isWildcardHost, type Address } from './endpoints/address';
import type { Connection, Listener } from './endpoints/types';
import { formatDuration, type Logger, type LogFields } from './log';
import { createAccessControl, type AccessControl, type AccessOptions } from './access';

/** What a connection handler reports when its connection is over, for the "closed" log line. */
export interface ConnectionSummary {
  /** Bytes received from the client. */
  received: number;
  /** Bytes sent to the client. */
  sent: number;
  /** How it ended: eof, reset, idle, close-wait, refused upstream… */
  reason: string;
  /** Extra words for the text log, e.g. " → 127.0.0.1:22". */
  text?: string;
  /** Extra fields for the JSON log. */
  fields?: LogFields;
}

export interface ConnectionContext {
  /** Sequential number of this connection, from 1. */
  id: number;
  /** Aborted when the server gives up draining: the handler must close its connection then. */
  signal: AbortSignal;
}

/** Options every listening mode takes and hands on to serve(). */
export interface ListenerModeOptions {
  /** --allow, --deny, --allow-file. */
  access?: AccessOptions;
  /** --max-conns. */
  maxConns?: number;
  /** --drain-timeout, in ms. */
  drainTimeoutMs?: number;
  /** Told the real bound address (port 0 → the port the system picked). */
  onListening?: (listener: Listener) => void;
}

/**
 * serve()'s options as a listening mode's own options give them: the address, the access
 * control built from --allow/--deny/--allow-file, the limits and the listening callback.
 */
export function listenerServeOptions(opts: ListenerModeOptions & { address: Address }, logger: Logger, signal: AbortSignal) {
  return {
    address: opts.address,
    logger,
    signal,
    access: createAccessControl(opts.access, logger),
    maxConns: opts.maxConns,
    drainTimeoutMs: opts.drainTimeoutMs,
    onListening: opts.onListening,
  };
}

export interface ServeOptions {
  address: Address;
  logger: Logger;
  /** Stop accepting and drain when aborted. */
  signal: AbortSignal;
  access?: AccessControl;
  /** Refuse clients past this many live ones (default 10000). */
  maxConns?: number;
  /** After stop, how long live connections may take to finish before they are closed (ms, default 0). */
  drainTimeoutMs?: number;
  /** Serves one client; resolves when its connection is over. */
  handle: (conn: Connection, ctx: ConnectionContext) => Promise<ConnectionSummary | void>;
  /** Told once the listener is bound (tests and callers read the real port here). */
  onListening?: (listener: Listener) => void;
  /** Stop after this many connections have been accepted and served (listen without -k uses 1). */
  maxAccepts?: number;
  /** Listen with SO_REUSEPORT (see ListenOptions.reusePort). */
  reusePort?: boolean;
}

export const DEFAULT_MAX_CONNS = 10000;

/**
 * Runs a server until `signal` is aborted (or maxAccepts clients were served) and every live
 * connection is over. Rejects only if the listener cannot be opened.
 */
export async function serve(opts: ServeOptions): Promise<{ accepted: number }> {
  const { logger } = opts;
  const maxConns = opts.maxConns ?? DEFAULT_MAX_CONNS;
  const live = new Map<number, { abort: AbortController; done: Promise<void> }>();
  let nextId = 1;
  let accepted = 0;
  let stopping = false;
  let listener: Listener | undefined;
  let wakeWhenServed: (() => void) | undefined;

  const stopAccepting = async () => {
    if (stopping) return;
    stopping = true;
    await listener?.close();
    opts.access?.close();
  };

  function onConnection(conn: Connection) {
    const who = conn.remote.label;
    const baseFields: LogFields = { client: who };
    if (stopping) {
      conn.stream.destroy();
      return;
    }
    if (opts.access) {
      // Unix-socket peers have no IP: --deny cannot match them, an allow list cannot include them.
      const verdict =
        conn.remote.port !== undefined
          ? opts.access.check(conn.remote.address)
          : opts.access.hasAllowRules
            ? { ok: false as const, reason: 'unix-socket clients have no IP address to match --allow' }
            : { ok: true as const };
      if (!verdict.ok) {
        logger.event('denied', `refused ${who}: ${verdict.reason}`, { ...baseFields, reason: verdict.reason });
        conn.stream.destroy();
        return;
      }
    }
    if (live.size >= maxConns) {
      logger.event('limit', `refused ${who}: ${maxConns} connections already open (--max-conns)`, { ...baseFields, reason: 'limit', max_conns: maxConns });
      conn.stream.destroy();
      return;
    }
    const id = nextId++;
    accepted++;
    if (opts.maxAccepts !== undefined && accepted >= opts.maxAccepts) void stopAccepting();
    logger.event('open', `connection from ${who}`, { ...baseFields, id });
    const abort = new AbortController();
    const started = Date.now();
    // A stream error before the handler attaches its own listeners must not crash the process.
    conn.stream.on('error', () => {});
    const done = Promise.resolve()
      .then(() => opts.handle(conn, { id, signal: abort.signal }))
      .then(
        (summary) => {
          const ms = Date.now() - started;
          if (summary) {
            logger.event(
              'close',
              `closed ${who}${summary.text ?? ''}: ${summary.received} bytes in, ${summary.sent} bytes out, ${formatDuration(ms)} (${summary.reason})`,
              { ...baseFields, id, ...summary.fields, bytes_in: summary.received, bytes_out: summary.sent, duration_ms: ms, reason: summary.reason },
            );
          } else {
            logger.event('close', `closed ${who} after ${formatDuration(ms)}`, { ...baseFields, id, duration_ms: ms });
          }
        },
        (err: Error) => {
          logger.error('error', `${who}: ${err.message}`, { ...baseFields, id, error: err.message });
          conn.stream.destroy();
        },
      )
      .finally(() => {
        live.delete(id);
        wakeWhenServed?.();
      });
    live.set(id, { abort, done });
  }

  // Nobody is accepted before the allow file has been read (a bad one stops us here, exit 2).
  await opts.access?.ready;
  listener = await listenAddress(opts.address, {
    onConnection,
    onAcceptError: (err) => logger.error('accept-error', `${formatAddress(opts.address)}: accept failed: ${err.message}`),
    log: logger,
    reusePort: opts.reusePort,
  });
  const addr = listener.address;
  logger.event('listening', `listening on ${listener.label}`, { address: listener.label });
  if ('host' in addr && isWildcardHost(addr.host)) {
    logger.event('exposed', `${listener.label} is reachable from the network, not only from this machine`, { address: listener.label });
  }
  opts.onListening?.(listener);

  // Run until stopped: by the signal, or once maxAccepts clients have been served.
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
    wakeWhenServed = () => {
      if (opts.maxAccepts !== undefined && accepted >= opts.maxAccepts && live.size === 0) resolve();
    };
  });
  await stopAccepting();

  if (live.size > 0) {
    const drainMs = opts.drainTimeoutMs ?? 0;
    if (drainMs > 0) {
      logger.event('drain', `stopping: waiting up to ${formatDuration(drainMs)} for ${live.size} connection(s) to finish`, { live: live.size });
      const timer = new Promise<void>((resolve) => setTimeout(resolve, drainMs).unref());
      await Promise.race([Promise.all([...live.values()].map((c) => c.done)), timer]);
    }
    for (const c of live.values()) c.abort.abort();
    await Promise.all([...live.values()].map((c) => c.done));
  }
  return { accepted };
}
