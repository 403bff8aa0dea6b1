/**
 * Every listening mode prints one line at start-up without -v (issue 15): where it listens and
 * who can reach it, so a server never starts on a blank screen; -q silences it, -q with -v is a
 * usage error, and --workers prints it once, not once per worker.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliStartedPerTest, runCli } from '../helpers/cli';
import { childPids } from '../helpers/proc';
import { exchange, tcpServer, waitFor } from '../helpers/net';
import { freePort, isRefused, startAgent, startRelay } from '../helpers/tunnel';

/** Waits until something accepts TCP connections on the port (bounded). */
async function untilListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!(await isRefused(port))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port} after 10 s`);
}

const sockcat = cliStartedPerTest();

/** The lines of a stderr with "listening on" in them. */
const listeningLines = (stderr: string) => stderr.split('\n').filter((l) => l.includes('listening on'));

/** A listener line, whatever time prefix the logger puts before it. */
const line = (rest: string) => new RegExp(`^sockcat: (?:\\d\\d:\\d\\d:\\d\\d\\.\\d{3} )?listening on ${rest}$`);

describe('the start-up line (no -v)', () => {
  it.each([
    ['listen', ['listen', '0']],
    ['listen -k', ['listen', '-k', '0']],
    ['listen --echo', ['listen', '--echo', '0']],
    ['forward', ['forward', '0', '127.0.0.1:9']],
    ['exec', ['exec', '0', '--', 'cat']],
    ['broadcast', ['broadcast', '0']],
    ['proxy', ['proxy', '0']],
  ])('%s: one line, "loopback only", and the port really listens', async (_name, args) => {
    const s = sockcat(args);
    const m = await s.waitForStderr(/listening on 127\.0\.0\.1:(\d+) \(loopback only\)\n/);
    expect(listeningLines(s.stderr())).toHaveLength(1);
    expect(listeningLines(s.stderr())[0]).toMatch(line(`127\\.0\\.0\\.1:${m[1]} \\(loopback only\\)`));
    // The port it names is the one it listens on.
    await exchange(Number(m[1]), '').catch(() => undefined);
    expect(s.stderr()).not.toMatch(/connection from/);
  });

  it('a wildcard address says it is reachable from the network', async () => {
    const s = sockcat(['listen', '-k', '0.0.0.0:0']);
    await s.waitForStderr(/\n/);
    expect(listeningLines(s.stderr())).toHaveLength(1);
    expect(listeningLines(s.stderr())[0]).toMatch(line('0\\.0\\.0\\.0:\\d+ \\(all interfaces: reachable from the network\\)'));
  });

  it('IPv6 loopback is loopback only', async () => {
    const s = sockcat(['listen', '--echo', '[::1]:0']);
    const m = await s.waitForStderr(/listening on \[::1\]:(\d+) \(loopback only\)/);
    expect((await exchange(Number(m[1]), 'six\n', '::1')).toString()).toBe('six\n');
  });

  it('a unix socket names its path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-startup-'));
    try {
      const s = sockcat(['listen', '--echo', `unix:${dir}/echo.sock`]);
      await s.waitForStderr(/\n/);
      expect(listeningLines(s.stderr())).toEqual([expect.stringMatching(line(`unix:${dir.replace(/[.]/g, '\\.')}/echo\\.sock`))]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('UDP: listen -u and forward udp: print it too', async () => {
    const l = sockcat(['listen', '-u', '0']);
    await l.waitForStderr(/listening on udp:127\.0\.0\.1:\d+ \(loopback only\)/);
    const f = sockcat(['forward', 'udp:0', 'udp:127.0.0.1:9']);
    await f.waitForStderr(/listening on udp:127\.0\.0\.1:\d+ \(loopback only\)/);
    expect(listeningLines(f.stderr())).toHaveLength(1);
  });

  it('forward --workers 2: printed once, not once per worker', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const s = sockcat(['forward', '--workers', '2', '0', `127.0.0.1:${backend.port}`]);
    const port = Number((await s.waitForStderr(/listening on 127\.0\.0\.1:(\d+) \(loopback only\)/))[1]);
    await waitFor(() => childPids(s.child.pid!).length === 2, 10_000, 'two workers');
    // Both workers are up and serving: still one line.
    expect((await exchange(port, 'w\n')).toString()).toBe('w\n');
    expect(listeningLines(s.stderr())).toHaveLength(1);
    await backend.close();
  });

  it('relay: its control port and each tunnel’s public port', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(sockcat);
    expect(relay.cli.stderr()).toMatch(new RegExp(`listening on tls:127\\.0\\.0\\.1:${relay.port} \\(loopback only\\): relay control channel`));
    const agent = await startAgent(sockcat, backend.port, relay);
    await relay.cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${agent.publicPort} \\(loopback only\\): public port of tunnel default`));
    await backend.close();
  });
});

describe('-q / --quiet', () => {
  it('listen -q: nothing on stderr, traffic as usual', async () => {
    // No line to read the port from: pick one, then give it to listen. An echo server, because
    // untilListening()'s probe is a client too: with -k it could take stdin's bytes first.
    const port = await freePort();
    const s = sockcat(['listen', '-q', '--echo', String(port)]);
    await untilListening(port);
    expect((await exchange(port, 'hello\n')).toString()).toBe('hello\n');
    s.kill('SIGTERM');
    const r = await s.exited;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('--quiet also silences the ephemeral-certificate note of a TLS listener', async () => {
    const plain = sockcat(['listen', '--tls', '--echo', '0']);
    await plain.waitForStderr(/listening on/);
    expect(plain.stderr()).toMatch(/ephemeral self-signed certificate/);
    // The note comes before the listener is bound: once it accepts, it would have been said.
    const port = await freePort();
    const s = sockcat(['listen', '--quiet', '--tls', '--echo', String(port)]);
    await untilListening(port);
    expect(s.stderr()).toBe('');
  });

  it('-q with -v is a usage error, in one line', async () => {
    const r = await runCli(['listen', '-q', '-v', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: -q \(--quiet\) and -v \(--verbose\) contradict each other[^\n]*\n$/);
  });
});
