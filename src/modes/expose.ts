/**
 * `sockcat expose LOCAL --via RELAY`: the half of a tunnel behind NAT (what bore local,
 * rathole's client or mysocketctl connect do). It connects out to the relay, prints the public
 * address, and brings every public client home to LOCAL; see src/tunnel/agent.ts.
 */
import { createLogger, type LogOptions } from '../log';
import type { ModeIO } from '../io';
import { runAgent, type AgentOptions } from '../tunnel/agent';
import { Metrics, serveMetrics } from '../metrics';
import type { TcpAddress } from '../endpoints/index';

export interface ExposeOptions extends LogOptions, Omit<AgentOptions, 'logger' | 'signal' | 'metrics'> {
  /** --insecure: the relay's control port is plain text (warned). */
  insecure?: boolean;
  /** --metrics: where to serve Prometheus metrics (the tunnel, its clients and bytes). */
  metrics?: TcpAddress;
}

/** Runs the agent until stopped (0) or refused for good (1). */
export async function runExpose(opts: ExposeOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  if (opts.insecure) {
    logger.warn('insecure', '--insecure: talking to the relay in plain text; anyone in the path can read the tunnelled bytes', {});
  }
  const metrics = opts.metrics ? new Metrics('expose') : undefined;
  const served = metrics ? await serveMetrics(metrics, opts.metrics!, logger) : undefined;
  try {
    return await runAgent({ ...opts, metrics, logger, signal: io.signal });
  } finally {
    await served?.close();
  }
}
