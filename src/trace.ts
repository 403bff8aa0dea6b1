/**
 * --trace: one stderr line per step of each socket's life, with the time since start and, where
 * the TCP state changes, the state `ss -tn` (or `netstat -tn`) shows at that moment — so a
 * student can follow the handshake, the data, the FINs and the resets beside Wireshark:
 *
 *   sockcat:    0.9 ms  listening on 127.0.0.1:9090 (bind, then listen with a backlog of 4096): loopback only, other machines cannot connect  [ss: LISTEN]
 *   sockcat:   12.4 ms  #1 accepted 127.0.0.1:53888 → 127.0.0.1:9090: a new socket for this client  [ss: ESTAB]
 *   sockcat:   12.6 ms  #1 read 12 bytes
 *   sockcat:   12.7 ms  #1 peer sent FIN: the other side has finished sending; we can still send  [ss: CLOSE-WAIT]
 *
 * It subscribes to the lifecycle events (./lifecycle.ts) of every transport, so every mode has it
 * without code of its own. With --log-format json each step is one object.
 */
import type { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { flushLifecycle, onLifecycle, type LifecycleEvent } from './lifecycle';
import type { LogFormat } from './log';
import { isLoopbackHost, isWildcardHost } from './endpoints/address';

export interface TraceOptions {
  stderr: Writable;
  format?: LogFormat;
  /** Milliseconds since the start, for the timestamps (tests pass their own clock). */
  now?: () => number;
}

/** Starts tracing every socket from now on; returns the function that stops it. */
export function startTrace(opts: TraceOptions): () => void {
  const t0 = performance.now();
  const now = opts.now ?? (() => performance.now() - t0);
  const stop = onLifecycle((e) => {
    const step = describeStep(e);
    if (!step) return;
    const ms = now();
    if (opts.format === 'json') {
      const { type, ...fields } = e;
      opts.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'trace', event: type, t_ms: Math.round(ms * 10) / 10, ...fields, ...(step.state ? { state: step.state } : {}), message: step.text }) + '\n');
    } else {
      opts.stderr.write(`sockcat: ${ms.toFixed(1).padStart(8)} ms  ${step.text}${step.state ? `  [${step.unix ? 'ss -x' : step.udp ? 'ss -u' : 'ss'}: ${step.state}]` : ''}\n`);
    }
  });
  return () => {
    flushLifecycle();
    stop();
  };
}

/** The words for one step, and the `ss` state it leads to (when it changes one). */
export function describeStep(e: LifecycleEvent): { text: string; state?: string; /** The state as ss -x shows it (unix sockets). */ unix?: boolean; /** As ss -un shows it. */ udp?: boolean } | undefined {
  const c = 'id' in e ? `#${e.id} ` : '';
  switch (e.type) {
    case 'listen': {
      const backlog = e.backlog !== undefined ? ` with a backlog of ${e.backlog}` : '';
      const reach = e.path !== undefined ? 'a socket file: only processes on this machine can connect' : reachability(e.host ?? '');
      return { text: `listening on ${e.address} (bind, then listen${backlog}): ${reach}`, state: 'LISTEN', unix: e.path !== undefined };
    }
    case 'listen-error':
      return { text: `cannot listen on ${e.address}: ${e.code ?? e.message}` };
    case 'listener-closed':
      return { text: `stopped listening on ${e.address}: new clients are refused (the port is free again)` };
    case 'resolved':
      return { text: `${c}resolved ${e.host} → ${e.address} (IPv${e.family})` };
    case 'resolve-error':
      return { text: `${c}cannot resolve ${e.host}: ${e.code ?? 'name not found'}` };
    case 'syn-sent':
      if (e.unix) {
        unixIds.add(e.id);
        return { text: `${c}connecting to unix:${e.address} (a socket file: no SYN, the kernel joins the two ends at once)` };
      }
      return { text: `${c}connecting to ${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}: SYN sent`, state: 'SYN-SENT' };
    case 'attempt-failed':
      return { text: `${c}no connection to ${e.address}:${e.port} (${e.code ?? 'failed'}); trying the next address` };
    case 'established':
      if (e.unix) {
        unixIds.add(e.id);
        return { text: `${c}connected to ${e.remote}`, state: 'ESTAB', unix: true };
      }
      return { text: `${c}established ${e.local} → ${e.remote}: SYN, SYN-ACK, ACK done`, state: 'ESTAB' };
    case 'accepted':
      if (e.unix) {
        unixIds.add(e.id);
        return { text: `${c}accepted ${e.remote} on ${e.local}: a new socket for this client (the listening one keeps listening)`, state: 'ESTAB', unix: true };
      }
      return { text: `${c}accepted ${e.remote} → ${e.local}: a new socket for this client (the listening one keeps listening)`, state: 'ESTAB' };
    case 'tls':
      return { text: `${c}TLS handshake done: ${e.protocol}, ${e.cipher}${e.role === 'client' ? (e.verified ? ', certificate verified' : ', certificate NOT verified') : e.verified ? ', client certificate verified' : ''}` };
    case 'read':
      return { text: `${c}read ${bytes(e.bytes)}` };
    case 'write':
      return { text: `${c}wrote ${bytes(e.bytes)}` };
    case 'peer-fin':
      if (unixIds.has(e.id)) return { text: `${c}peer shut down its sending side (EOF): it has finished sending; we can still send` };
      return e.id !== undefined && finState.get(e.id) === 'us'
        ? { text: `${c}peer sent FIN: both sides have finished sending`, state: 'TIME-WAIT' }
        : (finState.set(e.id, 'peer'), { text: `${c}peer sent FIN: the other side has finished sending; we can still send`, state: 'CLOSE-WAIT' });
    case 'our-fin':
      if (unixIds.has(e.id)) return { text: `${c}we shut down our sending side (EOF): we have finished sending; the peer can still send` };
      return finState.get(e.id) === 'peer'
        ? { text: `${c}we sent FIN: we have finished sending too`, state: 'LAST-ACK' }
        : (finState.set(e.id, 'us'), { text: `${c}we sent FIN: we have finished sending; the peer can still send`, state: 'FIN-WAIT-1' });
    case 'reset-received':
      return { text: `${c}reset received (RST): the peer aborted the connection; what was in flight is lost`, state: 'CLOSED' };
    case 'reset-sent':
      return { text: `${c}we sent a reset (RST): connection aborted, not closed normally`, state: 'CLOSED' };
    case 'refused':
      return { text: `${c}connection refused: ${e.address} answered the SYN with a reset (nothing listens there)`, state: 'CLOSED' };
    case 'error':
      return { text: `${c}error: ${e.code ?? e.message}` };
    case 'udp-bound':
      return { text: `${c}UDP socket bound to ${e.address} (no listen and no handshake: datagrams for this port come to it): ${reachability(e.host)}`, state: 'UNCONN', udp: true };
    case 'udp-connected':
      return { text: `${c}UDP peer fixed to ${e.remote} (connect() on UDP sends nothing; only its datagrams are accepted now)`, state: 'ESTAB', udp: true };
    case 'datagram-in':
      return { text: `${c}received a datagram of ${bytes(e.bytes)} from ${e.from}` };
    case 'datagram-out':
      return { text: `${c}sent a datagram of ${bytes(e.bytes)}${e.to ? ` to ${e.to}` : ''}` };
    case 'udp-error':
      return { text: `${c}${e.code === 'ECONNREFUSED' ? 'ICMP port unreachable: nothing listens at the peer (the last datagram was refused)' : `error: ${e.code ?? e.message}`}` };
    case 'udp-closed':
      return { text: `${c}UDP socket closed: ${e.datagramsIn} datagram${e.datagramsIn === 1 ? '' : 's'} in, ${e.datagramsOut} out` };
    case 'closed': {
      finState.delete(e.id);
      unixIds.delete(e.id);
      const who = e.reset === 'received' ? 'the peer reset it' : e.reset === 'sent' ? 'we reset it' : e.firstFin === 'peer' ? 'the peer closed first' : e.firstFin === 'us' ? 'we closed first' : 'closed before either side finished sending';
      return { text: `${c}closed (${who}): ${bytes(e.bytesIn)} in, ${bytes(e.bytesOut)} out` };
    }
  }
}

/** Connections over unix sockets: no SYN, no FIN states (ss -x shows them ESTAB until closed). */
const unixIds = new Set<number>();

const bytes = (n: number) => `${n} byte${n === 1 ? '' : 's'}`;

/** Who sent the first FIN on each live connection, for the state the second FIN leads to. */
const finState = new Map<number, 'peer' | 'us'>();

function reachability(host: string): string {
  if (host === '' || isWildcardHost(host)) return 'all interfaces, reachable from the network';
  if (isLoopbackHost(host)) return 'loopback only, other machines cannot connect';
  return `only on ${host}, reachable by whoever can reach that address`;
}
