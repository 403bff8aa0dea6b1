/**
 * The flags that watch a mode without changing it: --trace (every step of every socket),
 * --progress (a pv-style status line on a terminal) and --stats (a summary at exit, current
 * counters on SIGUSR1). All three read the socket lifecycle events (./lifecycle.ts), so no mode
 * has code for them; the CLI sets them up once, before the mode starts, and ends them after.
 */
import fs from 'node:fs';
import { UsageError } from './errors';
import { onLifecycle, flushLifecycle } from './lifecycle';
import { ProgressMeter, type TtyLike } from './progress';
import { TrafficStats } from './stats';
import { startTrace } from './trace';
import type { ModeIO } from './io';
import type { LogFormat } from './log';

/** The modes that move bytes through sockets (not scan, wait, completion). */
const TRAFFIC_MODES = new Set(['listen', 'connect', 'forward', 'exec', 'broadcast', 'proxy', 'relay', 'expose']);
/** --progress: the modes with one stdin and one peer, where "how far along" means something. */
const PROGRESS_MODES = new Set(['listen', 'connect']);

export interface ObserverFlags {
  mode: string;
  trace?: boolean;
  progress?: boolean;
  stats?: boolean;
  logFormat?: LogFormat;
  /** UDP is not counted (datagram sockets publish no lifecycle events). */
  udp: boolean;
}

export interface Observers {
  /** The io the mode should get (stderr goes above the progress line). */
  io: ModeIO;
  /** Ends them all: progress erased, stats summary printed, signal handler removed. */
  stop(): void;
}

/** Checks the flags against the mode (UsageError if they mean nothing there) and starts what they ask for. */
export function startObservers(flags: ObserverFlags, io: ModeIO): Observers {
  if (flags.trace && !TRAFFIC_MODES.has(flags.mode) && flags.mode !== 'scan' && flags.mode !== 'wait') {
    throw new UsageError(`--trace shows sockets, and ${flags.mode} opens none`);
  }
  if (flags.progress && !PROGRESS_MODES.has(flags.mode)) throw new UsageError(`--progress is for listen and connect (one peer, one stdin), not ${flags.mode}; --stats gives totals`);
  if (flags.stats && !TRAFFIC_MODES.has(flags.mode)) throw new UsageError(`--stats counts the bytes a mode relays; ${flags.mode} relays none`);
  if ((flags.progress || flags.stats) && flags.udp) throw new UsageError(`--${flags.progress ? 'progress' : 'stats'} counts stream connections (TCP, TLS, unix); UDP datagrams are not counted`);

  const stops: Array<() => void> = [];
  let modeIo = io;

  // Counting: the sockets facing the peers — accepted ones once we listen, else the ones we dialled.
  let counters: { accepted: TrafficStats; dialled: TrafficStats; listening: boolean } | undefined;
  if (flags.progress || flags.stats) {
    const c = { accepted: new TrafficStats(), dialled: new TrafficStats(), listening: false };
    counters = c;
    stops.push(
      onLifecycle((e) => {
        if (e.type === 'listen') c.listening = true;
        else if (e.type === 'read' || e.type === 'write') (e.role === 'accepted' ? c.accepted : c.dialled).add(e.type === 'read' ? 'in' : 'out', e.bytes);
        else if (e.type === 'accepted') c.accepted.opened();
        else if (e.type === 'established') c.dialled.opened();
        else if (e.type === 'closed') (e.role === 'accepted' ? c.accepted : c.dialled).closed();
      }),
    );
  }
  const current = () => (counters!.listening ? counters!.accepted : counters!.dialled);

  if (flags.progress) {
    const meter = new ProgressMeter({ tty: io.stderr as TtyLike, counts: () => ({ in: current().bytesIn, out: current().bytesOut }), total: stdinSize(io) });
    meter.start();
    modeIo = { ...modeIo, stderr: meter.stream };
    stops.push(() => meter.stop());
  }

  if (flags.trace) stops.push(startTrace({ stderr: modeIo.stderr, format: flags.logFormat }));

  if (flags.stats) {
    const print = (soFar: boolean) => {
      const s = current();
      if (flags.logFormat === 'json') modeIo.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', event: soFar ? 'stats-now' : 'stats', ...s.fields(), message: s.summary(soFar) }) + '\n');
      else modeIo.stderr.write(`sockcat: stats: ${s.summary(soFar)}\n`);
    };
    // SIGUSR1 (kill -USR1 PID) prints the counters so far; the traffic goes on untouched.
    const onUsr1 = () => print(true);
    process.on('SIGUSR1', onUsr1);
    stops.push(() => {
      process.off('SIGUSR1', onUsr1);
      flushLifecycle();
      print(false);
    });
  }

  return {
    io: modeIo,
    // In reverse order of start: the stats summary is written (above the status line), then the
    // trace ends, then the status line is erased, then counting stops.
    stop: () => {
      for (const stop of stops.reverse()) stop();
    },
  };
}

/** The size of what we will send, when stdin is a regular file (sockcat connect 9090 < file). */
function stdinSize(io: ModeIO): number | undefined {
  const fd = (io.stdin as { fd?: number }).fd;
  if (fd === undefined) return undefined;
  try {
    const st = fs.fstatSync(fd);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}
