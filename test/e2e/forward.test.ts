import { describe, it, expect } from 'vitest';
import net from 'node:net';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { cliStartedPerTest, runCli, sockcatCommand, type RunningCli } from '../helpers/cli';
import { connect, connectionOutcome, readAll, tcpServer, randomBytes, sha256, sleep, waitFor } from '../helpers/net';

// Each test's sockcat processes are SIGKILLed after it.
const sockcat = cliStartedPerTest();

/** An echo backend on 127.0.0.1:0. */
const echoBackend = () => tcpServer((s) => s.pipe(s));

describe('sockcat forward (CLI)', () => {
  it('relays through a chain of two forwards to an echo service, the two-hop ssh -L way', async () => {
    const echo = sockcat(['listen', '--echo', '-v', '0']);
    const echoPort = await echo.listeningPort();
    const hop2 = sockcat(['forward', '-v', '0', `127.0.0.1:${echoPort}`]);
    const hop2Port = await hop2.listeningPort();
    const hop1 = sockcat(['forward', '-v', '0', `127.0.0.1:${hop2Port}`]);
    const hop1Port = await hop1.listeningPort();
    const payload = randomBytes(4 << 20);
    const client = await connect(hop1Port);
    const got = readAll(client, 20_000);
    client.end(payload);
    expect(sha256(await got)).toBe(sha256(payload));
    await hop1.waitForStderr(new RegExp(`closed 127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${hop2Port}: 4194304 bytes in, 4194304 bytes out, .* \\(eof\\)`));
    await hop2.waitForStderr(/4194304 bytes in, 4194304 bytes out/);
  });

  it('writes one JSON object per event with client, target and byte counts', async () => {
    const backend = await tcpServer((s) => s.end('pong'));
    const fwd = sockcat(['forward', '--log-format', 'json', '0', `127.0.0.1:${backend.port}`]);
    const m = await fwd.waitForStderr(/"event":"listening".*"address":"127\.0\.0\.1:(\d+)"/);
    const client = await connect(Number(m[1]));
    const clientPort = client.localPort;
    const got = readAll(client);
    client.end('ping');
    expect((await got).toString()).toBe('pong');
    await fwd.waitForStderr(/"event":"close"/);
    fwd.kill('SIGTERM');
    const result = await fwd.exited;
    expect(result.code).toBe(0);
    const events = result.stderr.trim().split('\n').map((l) => JSON.parse(l));
    const close = events.find((e) => e.event === 'close');
    expect(close).toMatchObject({ level: 'info', client: `127.0.0.1:${clientPort}`, target: `127.0.0.1:${backend.port}`, upstream: `127.0.0.1:${backend.port}`, bytes_in: 4, bytes_out: 4, reason: 'eof' });
    expect(typeof close.duration_ms).toBe('number');
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['listening', 'forwarding', 'open', 'close']));
    await backend.close();
  });

  it('logs a refused upstream, resets the client and keeps serving', async () => {
    const gone = await tcpServer(() => {});
    await gone.close();
    const fwd = sockcat(['forward', '-v', '0', `127.0.0.1:${gone.port}`]);
    const port = await fwd.listeningPort();
    for (let i = 0; i < 2; i++) expect(await connectionOutcome(port)).toBe('ECONNRESET');
    await fwd.waitForStderr(/closed 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: 0 bytes in, 0 bytes out, .* \(refused upstream\)[^]*refused upstream/);
    expect(fwd.child.exitCode).toBeNull();
  });

  it('on SIGTERM stops accepting and lets a transfer in flight finish', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '-v', '--drain-timeout', '20', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    const client = await connect(port);
    const got = readAll(client, 20_000);
    const first = randomBytes(1 << 20);
    const second = randomBytes(1 << 20);
    client.write(first);
    await waitFor(() => client.bytesRead > 0, 10_000, 'echo to start');
    fwd.kill('SIGTERM');
    await fwd.waitForStderr(/stopping: waiting up to 20\.0 s for 1 connection/);
    // New clients are turned away while the old one finishes.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    client.end(second);
    expect(sha256(await got)).toBe(sha256(Buffer.concat([first, second])));
    const result = await fwd.exited;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/2097152 bytes in, 2097152 bytes out, .* \(eof\)/);
    await backend.close();
  });

  it('closes connections still open when --drain-timeout runs out', async () => {
    const backend = await tcpServer(() => {});
    const fwd = sockcat(['forward', '-v', '--drain-timeout', '0.3', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    const client = await connect(port);
    const ended = readAll(client);
    await fwd.waitForStderr(/connection from/);
    fwd.kill('SIGINT');
    await ended;
    const result = await fwd.exited;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/\(drain timeout\)/);
    await backend.close();
  });

  it('serves 1,000 concurrent clients, each getting its own bytes back', async () => {
    const backend = await echoBackend();
    const fwd = sockcat(['forward', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    // The clients run in a child process so that their descriptors do not count against ours.
    const script = `
      const net = require('net');
      const N = 1000; let ok = 0, bad = 0, open = 0;
      const sockets = [];
      const finish = () => { if (ok + bad === N) { console.log(JSON.stringify({ ok, bad })); process.exit(0); } };
      for (let i = 0; i < N; i++) {
        const s = net.connect({ port: ${port}, host: '127.0.0.1', allowHalfOpen: true });
        const msg = 'client ' + i + ' ' + 'x'.repeat(i % 200);
        let got = '';
        s.setEncoding('utf8');
        s.on('connect', () => { open++; sockets.push(s); if (open === N) for (const t of sockets) t.end(t.msg); });
        s.msg = msg;
        s.on('data', (c) => (got += c));
        s.on('end', () => { got === msg ? ok++ : bad++; s.destroy(); finish(); });
        s.on('error', () => { bad++; finish(); });
      }
      setTimeout(() => { console.log(JSON.stringify({ ok, bad, timeout: true })); process.exit(1); }, 50000);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await new Promise((resolve) => child.once('exit', resolve));
    expect(JSON.parse(out)).toEqual({ ok: 1000, bad: 0 });
    await waitFor(() => (fwd.stderr().match(/\(eof\)/g) ?? []).length === 1000, 20_000, '1000 close lines');
    expect(fwd.stderr()).not.toMatch(/error|refused/);
    await backend.close();
  }, 60_000);

  it('works with OpenBSD nc as the client: the reply after its FIN arrives', async () => {
    const backend = await tcpServer(async (s) => {
      const q = await readAll(s);
      await sleep(100);
      s.end(q.toString().toUpperCase());
    });
    const fwd = sockcat(['forward', '-v', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    const nc = spawn('nc', ['-N', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    nc.stdout.on('data', (c) => (out += c));
    nc.stdin.end('hello from nc\n');
    const code = await new Promise((resolve) => nc.once('exit', resolve));
    expect(code).toBe(0);
    expect(out).toBe('HELLO FROM NC\n');
    await backend.close();
  });

  it('works with socat as the backend', async () => {
    // socat picks no port by itself: take a free one from the system, then let socat bind it.
    const probe = await tcpServer(() => {});
    await probe.close();
    const socat = spawn('socat', [`TCP-LISTEN:${probe.port},bind=127.0.0.1,reuseaddr`, 'SYSTEM:tr a-z A-Z'], { stdio: 'ignore' });
    try {
      await waitFor(() => {
        const s = net.connect(probe.port, '127.0.0.1');
        s.on('error', () => {});
        s.destroy();
        return socat.exitCode === null;
      });
      await sleep(200);
      const fwd = sockcat(['forward', '-v', '0', `127.0.0.1:${probe.port}`]);
      const port = await fwd.listeningPort();
      const client = await connect(port);
      const got = readAll(client);
      client.end('through socat\n');
      expect((await got).toString()).toBe('THROUGH SOCAT\n');
    } finally {
      socat.kill();
    }
  });

  it('relays UDP when both addresses are udp:', async () => {
    const echo = sockcat(['listen', '-u', '--echo', '-v', 'udp:127.0.0.1:0']);
    const echoPort = await echo.listeningPort();
    const fwd = sockcat(['forward', '-v', 'udp:127.0.0.1:0', `udp:127.0.0.1:${echoPort}`]);
    const port = await fwd.listeningPort();
    const sock = dgram.createSocket('udp4');
    try {
      const reply = new Promise<string>((resolve) => sock.once('message', (m) => resolve(m.toString())));
      sock.send('datagram', port, '127.0.0.1');
      expect(await reply).toBe('datagram');
    } finally {
      sock.close();
    }
  });

  it.each([
    [['forward'], /^sockcat: missing LISTEN address/],
    [['forward', '9000'], /^sockcat: missing TARGET address/],
    [['forward', '0', '127.0.0.1:0'], /cannot connect to port 0/],
    [['forward', '0', 'udp:127.0.0.1:53'], /^sockcat: forwarding UDP needs udp: on both sides/],
    [['forward', 'udp:0', 'udp:127.0.0.1:53', '--proxy-protocol', 'v1'], /^sockcat: --proxy-protocol applies to TCP streams, not to UDP/],
    [['forward', '0', '127.0.0.1:22', '--proxy-protocol', 'v3'], /^sockcat: --proxy-protocol takes one of v1, v2, not 'v3'/],
    [['forward', '0', '127.0.0.1:22', '--allow', '10.1'], /^sockcat: --allow: '10\.1' is not an IP address or CIDR range/],
    [['forward', '0', '127.0.0.1:22', '--max-conns', '0'], /^sockcat: --max-conns takes a whole number/],
    [['forward', '0', '127.0.0.1:22', '--connect-timeout', 'soon'], /^sockcat: --connect-timeout takes a number of seconds/],
    [['forward', '0', '127.0.0.1:22', '--allow-file', '/nonexistent/allow.txt'], /^sockcat: --allow-file:? \/nonexistent\/allow\.txt: no such file/],
  ])('refuses %j with exit 2 and one line', async (args, message) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('says in one line when LISTEN cannot be opened (exit 1)', async () => {
    const busy = await tcpServer(() => {});
    const r = await runCli(['forward', `127.0.0.1:${busy.port}`, '127.0.0.1:22']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} address already in use: 127\.0\.0\.1:\d+/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    await busy.close();
  });
});

describe('open-file limit (CLI)', () => {
  // Node raises its soft limit to the hard one by itself, so sockcat only re-runs itself when it
  // may raise the hard limit (root with CAP_SYS_RESOURCE, which this test machine lacks); the
  // re-run itself is tested in test/fdlimit.test.ts.
  it('says clearly when the hard limit is too low', async () => {
    const backend = await echoBackend();
    const p = underLimit('-n 300', ['forward', '--max-conns', '1000', '0', `127.0.0.1:${backend.port}`]);
    const m = await p.waitForStderr(/^sockcat: \d\d:\d\d:\d\d\.\d{3} open-file limit is 300: at most ~(\d+) clients \(not 1000\); raise it with ulimit -n$/m);
    expect(Number(m[1])).toBeGreaterThan(100);
    expect(Number(m[1])).toBeLessThan(150);
    p.kill('SIGTERM');
    await p.exited;
    await backend.close();
  });
});

/** Runs sockcat through a shell that first sets its open-file limit: `ulimit SETTINGS; exec sockcat ARGS`. */
function underLimit(settings: string, args: string[]): RunningCli {
  const [cmd, pre] = sockcatCommand();
  return sockcat([], { command: ['/bin/sh', ['-c', `ulimit ${settings}; exec "$0" "$@"`, cmd, ...pre, ...args]] });
}
