/**
 * The open-file limit on a listener (issue 16 #5): at EMFILE the system would turn new clients
 * away before sockcat sees them (libuv accepts and closes them), silently. Every listening mode
 * fits --max-conns to the limit at start-up and says so once, so clients past it are refused by
 * the runtime, logged, and the listener serves again once some leave. (FdExhaustionWatch stays as
 * the backstop for descriptors used outside that count: its line is tested in fdlimit.test.ts.)
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { startCli, sockcatCommand, type RunningCli } from '../helpers/cli';
import { exchange, sleep, waitFor } from '../helpers/net';

const running: RunningCli[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.kill();
    await r.exited;
  }
});

/** `ulimit -n 64; exec sockcat ARGS`, as a user types it. */
function underLimit(args: string[]): RunningCli {
  const [cmd, pre] = sockcatCommand();
  const p = startCli([], { command: ['/bin/sh', ['-c', 'ulimit -n 64; exec "$0" "$@"', cmd, ...pre, ...args]] });
  running.push(p);
  return p;
}

/** Opens `n` connections at once; returns them once each has connected or failed. */
async function flood(port: number, n: number): Promise<net.Socket[]> {
  return Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => resolve(s));
      s.on('connect', () => resolve(s));
    })),
  );
}

describe('listener at the open-file limit', () => {
  // (A TLS listener does not get there from one source: its 17th pending handshake is refused.)
  it('listen -k --echo under ulimit -n 64: --max-conns fitted to the limit and said once at start-up, clients past it refused and logged, never an EMFILE, and serving again after', async () => {
    const p = underLimit(['listen', '-k', '--echo', '-v', '127.0.0.1:0']);
    const port = await p.listeningPort();
    const fitted = /open-file limit is 64: at most ~(\d+) clients; raise it with ulimit -n/.exec(p.stderr());
    expect(fitted).not.toBeNull();
    const capacity = Number(fitted![1]);
    expect(capacity).toBeGreaterThan(0);
    expect(capacity).toBeLessThan(64);
    for (let wave = 0; wave < 2; wave++) {
      const socks = await flood(port, 150);
      await waitFor(() => new RegExp(`refused 127\\.0\\.0\\.1:\\d+: ${capacity} connections already open \\(--max-conns\\)`).test(p.stderr()), 10_000, 'the refusals');
      await sleep(300);
      for (const s of socks) s.destroy();
      await sleep(500);
    }
    expect(p.stderr().split('\n').filter((l) => /open-file limit/.test(l))).toHaveLength(1);
    expect(p.stderr()).not.toMatch(/EMFILE|accept failed|open-file limit 64 reached/);
    // Descriptors are free again: a new client is served.
    expect((await exchange(port, 'still here\n')).toString()).toBe('still here\n');
  });
});
