import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import type net from 'node:net';
import { cliStartedPerTest, runCli, type RunningCli } from '../helpers/cli';
import { childPids } from '../helpers/proc';
import { connect, readAll, tcpServer, randomBytes, sha256, sleep, waitFor } from '../helpers/net';

// Each test's sockcat processes are SIGKILLed after it (workers end on their own when the primary dies).
const sockcat = cliStartedPerTest();

/** Whether a PID is a live process (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Connects, retrying a refused connect for up to 10 s (workers being replaced). */
async function connectRetrying(port: number): Promise<net.Socket> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await connect(port);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

const echoBackend = () => tcpServer((s) => s.pipe(s));

describe('sockcat forward --workers (CLI)', () => {
  it('serves 200 concurrent clients with 2 workers, every byte intact both ways, one listening line', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '--workers', '2', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    await waitFor(() => childPids(fwd.child.pid!).length === 2, 10_000, 'two workers');
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const payload = randomBytes(32 << 10);
        const client = await connect(port);
        const got = readAll(client, 30_000);
        client.end(payload);
        return sha256(await got) === sha256(payload);
      }),
    );
    expect(results.filter(Boolean).length).toBe(200);
    await waitFor(() => (fwd.stderr().match(/\(eof\)/g) ?? []).length === 200, 10_000, '200 close lines');
    expect(fwd.stderr().match(/listening on/g)).toHaveLength(1);
    expect(fwd.stderr().match(/forwarding /g)).toHaveLength(1);
    await backend.close();
  });

  it('gives each worker its own listening socket (SO_REUSEPORT): clients arriving together spread over both', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '--workers', '2', '--log-format', 'json', '-v', '0', `127.0.0.1:${backend.port}`]);
    const m = await fwd.waitForStderr(/"event":"listening".*"address":"127\.0\.0\.1:(\d+)"/);
    const port = Number(m[1]);
    const listeners = () =>
      fs
        .readFileSync('/proc/net/tcp', 'utf8')
        .split('\n')
        .filter((l) => l.split(/\s+/)[4] === '0A' && l.split(/\s+/)[2]?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, '0')}`)).length;
    await waitFor(() => listeners() === 2, 10_000, 'two listening sockets on the port');
    // 40 clients at once: the kernel hashes each to one socket; all 40 on one worker would be a
    // 1 in 2^39 chance.
    const clients = await Promise.all(Array.from({ length: 40 }, () => connect(port)));
    await Promise.all(clients.map(async (c) => {
      const got = readAll(c, 20_000);
      c.end('x');
      expect((await got).toString()).toBe('x');
    }));
    await waitFor(() => (fwd.stderr().match(/"event":"close"/g) ?? []).length === 40, 10_000, '40 close events');
    const workers = new Set(fwd.stderr().split('\n').filter((l) => l.includes('"event":"close"')).map((l) => JSON.parse(l).worker));
    expect(workers.size).toBe(2);
    await backend.close();
  });

  it('writes whole JSON lines from every worker, each event naming its worker', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '--workers', '2', '--log-format', 'json', '0', `127.0.0.1:${backend.port}`]);
    const m = await fwd.waitForStderr(/"event":"listening".*"address":"127\.0\.0\.1:(\d+)"/);
    await waitFor(() => childPids(fwd.child.pid!).length === 2, 10_000, 'two workers');
    const workers = childPids(fwd.child.pid!);
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const client = await connect(Number(m[1]));
        const got = readAll(client);
        client.end(`n${i}`);
        expect((await got).toString()).toBe(`n${i}`);
      }),
    );
    await waitFor(() => (fwd.stderr().match(/"event":"close"/g) ?? []).length === 40, 10_000, '40 close events');
    const events = fwd.stderr().trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'listening')).toHaveLength(1);
    for (const e of events.filter((ev) => ev.event === 'close')) expect(workers).toContain(e.worker);
    await backend.close();
  });

  it("passes the client's half-close on and still delivers the reply", async () => {
    // The backend answers only after the client's FIN has reached it through the relay.
    const backend = await tcpServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
    });
    const fwd = sockcat(['forward', '--workers', '2', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    for (let i = 0; i < 4; i++) {
      const client = await connect(port);
      const got = readAll(client);
      client.end(randomBytes(100_000));
      expect((await got).toString()).toBe('got 100000 bytes');
    }
    await backend.close();
  });

  it('on SIGTERM lets a transfer in flight finish, exits 0 and leaves no worker behind', async () => {
    let upstream: net.Socket | undefined;
    const backend = await tcpServer((s) => {
      upstream = s;
      s.on('data', () => {});
    });
    const fwd = sockcat(['forward', '--workers', '2', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    await waitFor(() => childPids(fwd.child.pid!).length === 2, 10_000, 'two workers');
    const workers = childPids(fwd.child.pid!);
    const client = await connect(port);
    const got = readAll(client, 20_000);
    client.write('start');
    await waitFor(() => upstream !== undefined, 5000, 'the upstream connection');
    fwd.kill('SIGTERM');
    // The worker serving the client drains; the other one has nothing to wait for.
    await fwd.waitForStderr(/stopping: waiting up to 10\.0 s for 1 connection/);
    const payload = randomBytes(2 << 20);
    upstream!.end(payload);
    client.end();
    expect(sha256(await got)).toBe(sha256(payload));
    const result = await fwd.exited;
    expect(result.code).toBe(0);
    expect(workers.filter(alive)).toEqual([]);
    await backend.close();
  });

  it('replaces workers that die, says so, and keeps serving on the same port (even port 0)', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '--workers', '2', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    await waitFor(() => childPids(fwd.child.pid!).length === 2, 10_000, 'two workers');
    // Both at once: the shared socket closes with its last worker, and the new ones must bind the same port again.
    const victims = childPids(fwd.child.pid!);
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    for (const pid of victims) await fwd.waitForStderr(new RegExp(`worker ${pid} died \\(killed by SIGKILL\\); starting a new one`));
    await waitFor(() => childPids(fwd.child.pid!).filter((p) => !victims.includes(p)).length === 2, 10_000, 'two new workers');
    for (let i = 0; i < 10; i++) {
      // A new worker may still be starting: retry a refused connect, within bounds.
      const client = await connectRetrying(port);
      const got = readAll(client);
      client.end(`hello ${i}`);
      expect((await got).toString()).toBe(`hello ${i}`);
    }
    await backend.close();
  });

  it('leaves no worker behind when the primary is killed outright', async () => {
    const fwd = sockcat(['forward', '--workers', '2', '-v', '0', '127.0.0.1:1']);
    await fwd.listeningPort();
    await waitFor(() => childPids(fwd.child.pid!).length === 2, 10_000, 'two workers');
    const workers = childPids(fwd.child.pid!);
    fwd.kill('SIGKILL');
    await fwd.exited;
    await waitFor(() => workers.filter(alive).length === 0, 10_000, 'the workers to end');
  });

  it('exits 1 with one line when LISTEN is already in use', async () => {
    const taken = await tcpServer(() => {});
    const result = await runCli(['forward', '--workers', '2', String(taken.port), '127.0.0.1:1']);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/address already in use: 127\.0\.0\.1:\d+/);
    await taken.close();
  });

  it.each(['0', 'abc', '1.5', '65'])('refuses --workers %s with exit 2', async (value) => {
    const result = await runCli(['forward', '--workers', value, '0', '127.0.0.1:1']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([`sockcat: --workers takes a number of processes from 1 to 64, or auto, not '${value}' (see 'sockcat --help')`]);
  });

  it('refuses --workers with a UDP forward (exit 2)', async () => {
    const result = await runCli(['forward', '--workers', '2', 'udp:0', 'udp:127.0.0.1:1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--workers applies to TCP forwards, not to UDP/);
  });
});
