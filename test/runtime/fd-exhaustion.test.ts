/**
 * The open-file limit reached on a listener (issue 16 #5): the system then turns new clients
 * away before sockcat sees them (libuv accepts and closes them at EMFILE). The runtime says so
 * in one line, not one per attempt, and the listener serves again once descriptors are free.
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
  it('listen -k --echo: one clear line for two waves of 150 clients, and serving again after', async () => {
    const p = underLimit(['listen', '-k', '--echo', '-v', '127.0.0.1:0']);
    const port = await p.listeningPort();
    for (let wave = 0; wave < 2; wave++) {
      const socks = await flood(port, 150);
      await waitFor(() => /open-file limit 64 reached/.test(p.stderr()), 10_000, 'the fd-limit line');
      await sleep(300);
      for (const s of socks) s.destroy();
      await sleep(500);
    }
    const lines = p.stderr().split('\n').filter((l) => /open-file limit/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} open-file limit 64 reached \(\d+ in use, \d+ clients\): new clients are turned away until some leave; raise it with ulimit -n$/);
    expect(p.stderr()).not.toMatch(/EMFILE|accept failed/);
    // Descriptors are free again: a new client is served.
    expect((await exchange(port, 'still here\n')).toString()).toBe('still here\n');
  });
});
