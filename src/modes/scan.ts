/**
 * `sockcat scan HOST PORTS`: which ports answer, like nc -z.
 * - TCP (default): a connect scan. The handshake completes → open (then we close at once with a
 *   FIN); the host answers with a reset → closed; nothing comes back within --timeout → filtered
 *   (a firewall drops the SYN, or the host is down).
 * - UDP (-u): one empty datagram per port. An ICMP "port unreachable" → closed; a reply → open;
 *   silence → open|filtered, which is a guess: a UDP service may stay silent, and so does a firewall.
 * Results go to stdout in port order (open ports only unless -v); at most --concurrency probes are
 * in flight. Exit 0 if any port is open, 1 if none.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import { formatDuration, createLogger, type LogOptions } from '../log';
import { NetError, describeError } from '../errors';
import type { ModeIO } from '../io';

export const DEFAULT_SCAN_CONCURRENCY = 50;
export const DEFAULT_SCAN_TIMEOUT_MS = 2000;

export type PortState = 'open' | 'closed' | 'filtered' | 'open|filtered';

export interface ScanOptions extends LogOptions {
  host: string;
  /** Ascending distinct ports (see parsePortList). */
  ports: number[];
  udp?: boolean;
  /** -4/-6: probe that IP version's addresses of the host only. */
  family?: 4 | 6;
  /** How long one probe waits for an answer. */
  timeoutMs?: number;
  /** Probes in flight at once. */
  concurrency?: number;
}

/** One port's outcome. */
export interface PortResult {
  port: number;
  state: PortState;
  /** The address that answered (or the first one tried). */
  address: string;
  /** Why, in words: "connection refused", "no answer within 2 s", … */
  reason: string;
}

/** Runs the scan; resolves with 0 if a port is open, 1 if none. A name that does not resolve rejects with a NetError. */
export async function runScan(opts: ScanOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  const proto = opts.udp ? 'udp' : 'tcp';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS;
  const addresses = await resolveHost(opts.host, opts.family);
  const services = serviceNames(proto);
  const started = Date.now();
  logger.event('scan', `scanning ${opts.ports.length} ${proto.toUpperCase()} port${opts.ports.length === 1 ? '' : 's'} on ${opts.host}${addresses.join(', ') === opts.host ? '' : ` (${addresses.join(', ')})`}`, {
    host: opts.host,
    addresses: addresses.join(','),
    ports: opts.ports.length,
    proto,
  });
  if (opts.udp) {
    logger.warn('udp-guess', 'UDP: a port that stays silent is shown open|filtered, a guess: the service may just not answer an empty datagram, or a firewall may drop it');
  }
  const counts: Record<PortState, number> = { open: 0, closed: 0, filtered: 0, 'open|filtered': 0 };

  // Results are printed in port order: each waits for the ones before it.
  const results: Array<PortResult | undefined> = new Array(opts.ports.length);
  let printed = 0;
  const printReady = () => {
    while (printed < results.length && results[printed]) {
      const r = results[printed++]!;
      counts[r.state]++;
      if (r.state === 'open' || opts.verbose) printResult(r, proto, opts, services, io);
    }
  };

  // One abort listener for the whole scan (not one per probe): Ctrl-C ends every probe in flight.
  const inFlight = new Set<() => void>();
  const stopAll = () => inFlight.forEach((cancel) => cancel());
  io.signal.addEventListener('abort', stopAll, { once: true });
  const probe = (port: number) => probeEachAddress(opts.udp ? probeUdp : probeTcp, addresses, port, timeoutMs, inFlight);
  let next = 0;
  const worker = async () => {
    while (next < opts.ports.length && !io.signal.aborted) {
      const i = next++;
      results[i] = await probe(opts.ports[i]);
      printReady();
    }
  };
  const concurrency = Math.min(opts.concurrency ?? DEFAULT_SCAN_CONCURRENCY, opts.ports.length);
  await Promise.all(Array.from({ length: concurrency }, worker));
  io.signal.removeEventListener('abort', stopAll);

  const parts = (Object.keys(counts) as PortState[]).filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`);
  const scanned = printed;
  const summary = `scanned ${scanned} port${scanned === 1 ? '' : 's'} on ${opts.host} in ${formatDuration(Date.now() - started)}: ${parts.join(', ') || 'none'}${io.signal.aborted ? ' (interrupted)' : ''}`;
  if (counts.open > 0) {
    logger.event('scan-done', summary, { host: opts.host, ...counts, duration_ms: Date.now() - started });
    return 0;
  }
  // Without -v nothing was printed: say so, or a student sees silence and wonders.
  logger.warn('scan-done', `no open port: ${summary}${opts.verbose ? '' : ' (-v lists every port)'}`, { host: opts.host, ...counts, duration_ms: Date.now() - started });
  return 1;
}

function printResult(r: PortResult, proto: string, opts: ScanOptions, services: Map<number, string>, io: ModeIO): void {
  const service = services.get(r.port);
  if (opts.logFormat === 'json') {
    io.stdout.write(JSON.stringify({ host: opts.host, address: r.address, port: r.port, proto, state: r.state, service: service ?? null, reason: r.reason }) + '\n');
    return;
  }
  const name = `${r.port}/${proto}`.padEnd(11);
  const state = r.state.padEnd(13);
  io.stdout.write(`${opts.host} ${name} ${state} ${(service ?? '').padEnd(12)} ${r.reason}`.trimEnd() + '\n');
}

/** Every address of the host, IPv4 and IPv6, in the system's order; an IP literal is itself. */
async function resolveHost(host: string, family?: 4 | 6): Promise<string[]> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (net.isIP(bare)) return [bare];
  try {
    const found = await dns.lookup(bare, { all: true, family: family ?? 0 });
    return [...new Set(found.map((a) => a.address))];
  } catch (err) {
    throw new NetError(describeError(err, { action: 'connect', address: bare, host: bare, family }));
  }
}

type Probe = (address: string, port: number, timeoutMs: number, inFlight: Set<() => void>) => Promise<PortResult>;

/**
 * A port is open if any address of the host answers (nc tries each address the same way:
 * `localhost` may be ::1 first while the server listens on 127.0.0.1).
 */
async function probeEachAddress(probe: Probe, addresses: string[], port: number, timeoutMs: number, inFlight: Set<() => void>): Promise<PortResult> {
  let first: PortResult | undefined;
  for (const address of addresses) {
    const r = await probe(address, port, timeoutMs, inFlight);
    if (r.state === 'open') return r;
    first ??= r;
  }
  return first!;
}

/**
 * Settles one probe exactly once: by what the socket says (the returned `done`), by the timeout,
 * or by Ctrl-C (`inFlight` holds the aborts of the probes running). Silence counts as `silent`.
 */
function probeSettler(
  address: string,
  port: number,
  timeoutMs: number,
  inFlight: Set<() => void>,
  silent: { state: PortState; reason: string },
  close: () => void,
  resolve: (r: PortResult) => void,
): (state: PortState, reason: string) => void {
  let finished = false;
  const done = (state: PortState, reason: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    inFlight.delete(onAbort);
    close();
    resolve({ port, state, address, reason });
  };
  const onAbort = () => done(silent.state, 'scan interrupted');
  const timer = setTimeout(() => done(silent.state, silent.reason), timeoutMs);
  inFlight.add(onAbort);
  return done;
}

function probeTcp(address: string, port: number, timeoutMs: number, inFlight: Set<() => void>): Promise<PortResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    // Open: end with a FIN, as nc -z does, so the server sees an ordinary (empty) connection.
    const silent = { state: 'filtered' as const, reason: `no answer within ${formatDuration(timeoutMs)}` };
    const done = probeSettler(address, port, timeoutMs, inFlight, silent, () => socket.destroy(), resolve);
    socket.once('connect', () => done('open', 'handshake completed'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('closed', 'connection refused (reset)');
      else done('filtered', describeError(err, { action: 'connect', address: `${address}:${port}`, port }));
    });
  });
}

/** On a connected UDP socket, Linux reports the ICMP port unreachable as ECONNREFUSED. */
function probeUdp(address: string, port: number, timeoutMs: number, inFlight: Set<() => void>): Promise<PortResult> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const silent = { state: 'open|filtered' as const, reason: `no answer within ${formatDuration(timeoutMs)} (open, or dropped by a firewall)` };
    const done = probeSettler(address, port, timeoutMs, inFlight, silent, () => socket.close(), resolve);
    socket.on('message', (msg) => done('open', `answered with ${msg.length} byte${msg.length === 1 ? '' : 's'}`));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('closed', 'ICMP port unreachable');
      else done('open|filtered', describeError(err, { action: 'connect', address: `${address}:${port}`, port }));
    });
    socket.connect(port, address, () => socket.send(Buffer.alloc(0)));
  });
}

/** Port → service name from /etc/services ("22" → "ssh"), when the file is there. */
function serviceNames(proto: string): Map<number, string> {
  const names = new Map<number, string>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/services', 'utf8');
  } catch {
    return names;
  }
  for (const line of text.split('\n')) {
    const m = /^([\w.+-]+)\s+(\d+)\/(\w+)/.exec(line);
    if (m && m[3] === proto && !names.has(Number(m[2]))) names.set(Number(m[2]), m[1]);
  }
  return names;
}
