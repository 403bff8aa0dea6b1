/**
 * sockcat scan against ports this test opens and closes, on an address of its own in 127/8 so
 * that other tests' servers on 127.0.0.1 cannot show up as open.
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { runCli } from '../helpers/cli';

const HOST = '127.45.67.89';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A TCP server on HOST that accepts and closes; its port. */
async function openPort(): Promise<number> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, HOST, r));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A port that was just open on HOST and is now closed: connecting there is refused. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * A port whose SYNs are dropped, the way a firewall drops them: a listener with a backlog of 0
 * that never accepts, its queue filled by one client. Linux drops SYNs for a full accept queue.
 */
async function droppedPort(): Promise<number> {
  const py = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.bind(('${HOST}', 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(2):
    c = socket.socket(); c.setblocking(False); c.connect_ex(('${HOST}', port)); fill.append(c)
time.sleep(0.3)
print(port, flush=True)
time.sleep(60)
`], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => py.kill('SIGKILL'));
  return Number(await firstLine(py));
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', () => reject(new Error('helper exited before printing its port')));
  });
}

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('sockcat scan (end to end)', () => {
  it('lists the open ports among a range, in order, and exits 0', async () => {
    const open = [await openPort(), await openPort()];
    const closed = [await closedPort(), await closedPort()];
    const ports = [...open, ...closed].sort((a, b) => a - b);
    const r = await runCli(['scan', HOST, ports.join(',')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lines(r.stdout.toString());
    expect(out.map((l) => Number(/ (\d+)\/tcp /.exec(l)![1]))).toEqual([...open].sort((a, b) => a - b));
    for (const l of out) expect(l).toMatch(/^127\.45\.67\.89 \d+\/tcp +open /);
  });

  it('with -v lists every port with its state: open, closed (refused) and filtered (no answer)', async () => {
    const open = await openPort();
    const closed = await closedPort();
    const dropped = await droppedPort();
    const r = await runCli(['scan', '-v', '--timeout', '0.5', HOST, [open, closed, dropped].join(',')]);
    expect(r.code).toBe(0);
    const byPort = new Map(lines(r.stdout.toString()).map((l) => [Number(/ (\d+)\/tcp /.exec(l)![1]), l]));
    expect(byPort.get(open)).toMatch(/ open .*handshake completed/);
    expect(byPort.get(closed)).toMatch(/ closed .*connection refused/);
    expect(byPort.get(dropped)).toMatch(/ filtered .*no answer within 500 ms/);
    expect(r.stderr).toMatch(/scanned 3 ports on 127\.45\.67\.89 in .*: 1 open, 1 closed, 1 filtered/);
  });

  it('exits 1 with one line on stderr when no port is open', async () => {
    const ports = [await closedPort(), await closedPort()];
    const r = await runCli(['scan', HOST, ports.join(',')]);
    expect(r.code).toBe(1);
    expect(r.stdout.toString()).toBe('');
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} no open port: scanned 2 ports on 127\.45\.67\.89 .*2 closed \(-v lists every port\)$/m);
  });

  it('scans a range wider than --concurrency and finds the one open port in it', async () => {
    const open = await openPort();
    const from = Math.max(1, open - 150);
    const r = await runCli(['scan', '--concurrency', '7', '--log-format', 'json', HOST, `${from}-${open + 50}`]);
    expect(r.code).toBe(0);
    const results = lines(r.stdout.toString()).map((l) => JSON.parse(l));
    expect(results).toContainEqual(expect.objectContaining({ host: HOST, port: open, proto: 'tcp', state: 'open' }));
    expect(results.every((x) => x.state === 'open')).toBe(true);
  });

  it('takes HOST:PORTS in one word and IPv6 addresses', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '::1', r));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const r = await runCli(['scan', `[::1]:${port}`]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(new RegExp(`^\\[::1\\] ${port}/tcp +open`));
    const r2 = await runCli(['scan', '::1', String(port)]);
    expect(r2.stdout.toString()).toMatch(new RegExp(`^::1 ${port}/tcp +open`));
  });

  it('-u: a port that answers is open, a refused one closed, a silent one open|filtered with the note', async () => {
    const answering = dgram.createSocket('udp4');
    answering.on('message', (_m, from) => answering.send('hi', from.port, from.address));
    const silent = dgram.createSocket('udp4');
    await Promise.all([answering, silent].map((s) => new Promise<void>((r) => s.bind(0, HOST, r))));
    cleanups.push(() => answering.close(), () => silent.close());
    const gone = dgram.createSocket('udp4');
    await new Promise<void>((r) => gone.bind(0, HOST, r));
    const closed = gone.address().port;
    gone.close();
    const ports = [answering.address().port, silent.address().port, closed];
    const r = await runCli(['scan', '-u', '-v', '-w', '0.5', HOST, ports.join(',')]);
    expect(r.code).toBe(0);
    const byPort = new Map(lines(r.stdout.toString()).map((l) => [Number(/ (\d+)\/udp /.exec(l)![1]), l]));
    expect(byPort.get(ports[0])).toMatch(/ open .*answered with 2 bytes/);
    expect(byPort.get(ports[1])).toMatch(/ open\|filtered /);
    expect(byPort.get(ports[2])).toMatch(/ closed .*ICMP port unreachable/);
    expect(r.stderr).toMatch(/open\|filtered, a guess/);
  });

  it('refuses bad ports and flags with one line and exit 2', { timeout: 90_000 }, async () => {
    const cases: Array<[string[], RegExp]> = [
      [['scan', HOST, '0'], /port 0/],
      [['scan', HOST, '1-65535,1-9'], /more than 65,536 ports/],
      [['scan', HOST, 'ssh'], /'ssh' is not a port/],
      [['scan', HOST], /missing ports/],
      [['scan'], /missing host and ports/],
      [['scan', '--concurrency', '0', HOST, '80'], /--concurrency takes a whole number/],
      [['scan', '--timeout', '0', HOST, '80'], /--timeout must be more than 0/],
      [['scan', '--tls', HOST, '80'], /unknown option --tls/],
    ];
    // Run side by side: each is a whole sockcat start-up.
    const results = await Promise.all(cases.map(([args]) => runCli(args, { timeoutMs: 80_000 })));
    results.forEach((r, i) => {
      expect({ args: cases[i][0], code: r.code, lines: lines(r.stderr).length }).toEqual({ args: cases[i][0], code: 2, lines: 1 });
      expect(r.stderr).toMatch(cases[i][1]);
    });
  });

  it('says so when the host name does not resolve (exit 1)', async () => {
    const r = await runCli(['scan', 'no-such-host.invalid', '80']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} name not found: no-such-host\.invalid/);
  });
});
