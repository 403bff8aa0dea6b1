/**
 * The one entry of a stream listening mode into the runtime. A mode says what it needs (its name,
 * descriptors per client, defaults) and gets back either "done" — this process was the --workers
 * primary, or re-ran itself with a higher open-file limit, and has already finished — or a server
 * with its logger, signal and metrics, whose `serve(handle)` runs the accept loop with everything
 * built from the mode's listener options: access control, the PROXY pre-step, --max-conns fitted
 * to the open-file limit, --metrics, allow links, drain, the start-up line and the events. Modes
 * never touch cluster, rlimits or the access tables themselves.
 */
import type { Address, Listener } from '../endpoints/index';
import type { LogOptions } from '../log';
import type { Metrics } from '../metrics';
import type { ModeIO } from '../io';
import { listenerParts, serve, DEFAULT_MAX_CONNS, type ListenerModeOptions, type ServeOptions } from './listener';
import { listenerProcess, type ListenerProcess } from './workers';

/** The options every stream listening mode's options include. */
export interface ServerModeOptions extends ListenerModeOptions, LogOptions {
  /** --workers: processes listening on the port (default 1). */
  workers?: number;
  /** Run sockcat again with a higher open-file limit when --max-conns needs it (the CLI sets it where that is safe). */
  raiseFdLimit?: boolean;
}

/** What a mode tells the runtime about itself. */
export interface ServerSpec {
  /** The mode's name in metrics ("forward", "exec"…). */
  mode: string;
  /** Descriptors one client holds (its socket, an upstream, a child's pipes): fits --max-conns to the open-file limit. */
  fdsPerClient: number;
  /** --max-conns when not given (default 10000). */
  defaultMaxConns?: number;
}

/** What serve() is told per call: the handler and what differs between a mode's servers. */
export type ServeCall = Pick<ServeOptions, 'handle'> & Partial<Pick<ServeOptions, 'drainTimeoutMs' | 'maxAccepts' | 'announce'>> & {
  /** Said once the listener is up (after the start-up line), e.g. forward's "forwarding A → B". */
  onListening?: (listener: Listener) => void;
};

/** A process that serves, as listenerProcess() tells it (its logger and stop signal). */
type Serving = Extract<ListenerProcess, { role: 'alone' | 'worker' }>;

export type OpenedServer =
  | Extract<ListenerProcess, { role: 'done' }>
  | (Pick<Serving, 'role' | 'logger' | 'signal'> & {
      /** The mode's metrics when --metrics asks for them (a worker counts, the primary serves the sum). */
      metrics?: Metrics;
      /** Runs the accept loop until stopped and drained. */
      serve(call: ServeCall): Promise<{ accepted: number }>;
    });

/**
 * Opens a listening mode's server: --workers and the open-file limit first (a primary or a
 * re-run process returns 'done' with its exit code), then the listener parts from `opts`.
 * A one-shot server (`oneShot`: listen without -k) skips fitting --max-conns: it serves one client.
 */
export async function openServer(opts: ServerModeOptions & { address: Address }, io: ModeIO, spec: ServerSpec & { oneShot?: boolean }): Promise<OpenedServer> {
  const proc = await listenerProcess(
    {
      ...opts,
      listen: opts.address,
      workers: opts.workers ?? 1,
      maxConns: opts.maxConns,
      defaultMaxConns: spec.defaultMaxConns ?? DEFAULT_MAX_CONNS,
      fdsPerClient: spec.fdsPerClient,
      raiseFdLimit: opts.raiseFdLimit === true,
      fitFdLimit: !spec.oneShot,
    },
    io,
  );
  if (proc.role === 'done') return proc;
  const parts = listenerParts(opts, proc.logger, spec.mode);
  parts.metrics = proc.metrics(parts.metrics);
  return {
    role: proc.role,
    logger: proc.logger,
    signal: proc.signal,
    metrics: parts.metrics?.metrics,
    serve: (call) =>
      serve({
        address: proc.listen,
        logger: proc.logger,
        signal: proc.signal,
        ...parts,
        maxConns: proc.maxConns,
        drainTimeoutMs: call.drainTimeoutMs ?? opts.drainTimeoutMs,
        maxAccepts: call.maxAccepts,
        announce: call.announce,
        reusePort: proc.reusePort,
        handle: call.handle,
        onListening: (listener) => {
          proc.listening();
          call.onListening?.(listener);
          opts.onListening?.(listener);
        },
      }),
  };
}
