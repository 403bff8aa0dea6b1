/**
 * Logs a teacher can read (issue 15): text lines start with the local time, the server side of
 * -v says when the client half-closes as the client side says it of the server, and JSON events
 * name the ends (client, server, upstream, program), never the relay's internal a/b.
 */
import { describe, it, expect } from 'vitest';
import { cliStartedPerTest, runCli } from '../helpers/cli';
import { connect, connectionOutcome, readAll, tcpServer } from '../helpers/net';

const sockcat = cliStartedPerTest();

const TIME = /^sockcat: (\d\d:\d\d:\d\d\.\d{3}) /;
const clock = (d: Date) => [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':') + '.' + String(d.getMilliseconds()).padStart(3, '0');
const jsonLines = (stderr: string) =>
  stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('text log lines', () => {
  it('start with the local time (HH:MM:SS.mmm), every one of them', async () => {
    const before = clock(new Date());
    const srv = sockcat(['listen', '-v', '--echo', '0']);
    const port = await srv.listeningPort();
    const c = await connect(port);
    const got = readAll(c);
    c.end('tick\n');
    expect((await got).toString()).toBe('tick\n');
    await srv.waitForStderr(/closed 127\.0\.0\.1:\d+: 5 bytes in, 5 bytes out/);
    const after = clock(new Date());
    const lines = srv.stderr().trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const l of lines) {
      const m = TIME.exec(l);
      expect(m, l).not.toBeNull();
      // Local wall-clock time, between the test's own readings (unless midnight passed meanwhile).
      if (before <= after) {
        expect(m![1] >= before.slice(0, 8), l).toBe(true);
        expect(m![1] <= after, l).toBe(true);
      }
    }
  });

  it('a failure while running has the time; a usage error (exit 2), said before anything ran, does not', async () => {
    const gone = await tcpServer(() => {});
    await gone.close();
    const refused = await runCli(['connect', `127.0.0.1:${gone.port}`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^sockcat: \\d\\d:\\d\\d:\\d\\d\\.\\d{3} connection refused by 127\\.0\\.0\\.1:${gone.port}`));
    const usage = await runCli(['connect', 'localhost']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^sockcat: missing port/);
  });
});

describe('forward to a dead target', () => {
  it('without -v: every client is reset, and the reason is said once on stderr', async () => {
    const gone = await tcpServer(() => {});
    await gone.close();
    const fwd = sockcat(['forward', '0', `127.0.0.1:${gone.port}`]);
    const port = Number((await fwd.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    for (let i = 0; i < 3; i++) expect(await connectionOutcome(port)).toBe('ECONNRESET');
    await fwd.waitForStderr(/connection refused/);
    const lines = fwd.stderr().trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^sockcat: [\\d:.]+ connection refused by 127\\.0\\.0\\.1:${gone.port} — is a server listening there\\?$`));
    expect(fwd.child.exitCode).toBeNull();
  });
});

describe('the half-close, logged by both ends with -v', () => {
  it('listen -v says the client closed its side, as connect -v says it of the server', async () => {
    // The server answers only after the client's EOF: a reply that must still arrive.
    const srv = sockcat(['listen', '-v', '0'], { stdin: 'answer\n' });
    const port = await srv.listeningPort();
    const client = await runCli(['connect', '-v', `127.0.0.1:${port}`], { stdin: 'question\n' });
    expect(client.code).toBe(0);
    expect(client.stdout.toString()).toBe('answer\n');
    const server = await srv.exited;
    expect(server.code).toBe(0);
    expect(server.stdout.toString()).toBe('question\n');
    const clientPort = /connected to 127\.0\.0\.1:\d+ from 127\.0\.0\.1:(\d+)/.exec(client.stderr)![1];
    // Each end names the other when its FIN arrives, in the same words…
    expect(client.stderr).toMatch(new RegExp(`^sockcat: [\\d:.]+ 127\\.0\\.0\\.1:${port} closed its side$`, 'm'));
    expect(server.stderr).toMatch(new RegExp(`^sockcat: [\\d:.]+ 127\\.0\\.0\\.1:${clientPort} closed its side$`, 'm'));
    // …and says when it sends its own.
    expect(client.stderr).toMatch(/^sockcat: [\d:.]+ stdin closed; shutting down our write side$/m);
    expect(server.stderr).toMatch(new RegExp(`^sockcat: [\\d:.]+ stdin closed; shutting down our write side to 127\\.0\\.0\\.1:${clientPort}$`, 'm'));
  });

  it('forward -v names which end half-closed: the client, then the upstream', async () => {
    const upstream = await tcpServer((s) => {
      s.on('data', () => {});
      s.on('end', () => s.end('late reply\n'));
    });
    const fwd = sockcat(['forward', '-v', '0', `127.0.0.1:${upstream.port}`]);
    const port = await fwd.listeningPort();
    const c = await connect(port);
    const me = c.localPort;
    const got = readAll(c);
    c.end('hi\n');
    expect((await got).toString()).toBe('late reply\n');
    await fwd.waitForStderr(/\(eof\)/);
    const lines = fwd.stderr().split('\n');
    const clientEof = lines.findIndex((l) => new RegExp(`127\\.0\\.0\\.1:${me} closed its side$`).test(l));
    const upstreamEof = lines.findIndex((l) => new RegExp(`127\\.0\\.0\\.1:${upstream.port} closed its side \\(for 127\\.0\\.0\\.1:${me}\\)$`).test(l));
    expect(clientEof).toBeGreaterThan(-1);
    expect(upstreamEof).toBeGreaterThan(clientEof);
    await upstream.close();
  });
});

describe('JSON events name the ends', () => {
  it('listen: eof events say client or server; connect names the server it reached (no "remote")', async () => {
    const srv = sockcat(['listen', '--log-format', 'json', '0'], { stdin: 'bye\n' });
    const port = Number((await srv.waitForStderr(/"address":"127\.0\.0\.1:(\d+)"/))[1]);
    const client = await runCli(['connect', '--log-format', 'json', `127.0.0.1:${port}`], { stdin: 'hi\n' });
    expect(client.code).toBe(0);
    const server = await srv.exited;
    const sEvents = jsonLines(server.stderr);
    expect(sEvents.filter((e) => e.event === 'eof').map((e) => e.side).sort()).toEqual(['client', 'server']);
    for (const e of sEvents.filter((e) => e.event === 'eof')) expect(e.client).toMatch(/^127\.0\.0\.1:\d+$/);
    const cEvents = jsonLines(client.stderr);
    const closed = cEvents.find((e) => e.event === 'close')!;
    expect(closed.server).toBe(`127.0.0.1:${port}`);
    expect(cEvents.find((e) => e.event === 'connected')!.server).toBe(`127.0.0.1:${port}`);
    // Each half-close names the server too, as listen's name the client: a log reader can join them.
    const cEofs = cEvents.filter((e) => e.event === 'eof');
    expect(cEofs.map((e) => e.side).sort()).toEqual(['client', 'server']);
    for (const e of cEofs) expect(e.server).toBe(`127.0.0.1:${port}`);
    for (const e of [...sEvents, ...cEvents]) {
      expect(Object.keys(e)).not.toContain('remote');
      for (const v of Object.values(e)) expect(v === 'a' || v === 'b').toBe(false);
    }
  });

  it('connect -u: stdin\'s eof says side client and names the server, like connect over TCP', async () => {
    const echo = sockcat(['listen', '-u', '-k', '--echo', '--log-format', 'json', '0']);
    const port = Number((await echo.waitForStderr(/"address":"udp:127\.0\.0\.1:(\d+)"/))[1]);
    const client = await runCli(['connect', '-u', '--quit-after', '0.3', '--log-format', 'json', `127.0.0.1:${port}`], { stdin: 'hi\n' });
    expect(client.code).toBe(0);
    const events = jsonLines(client.stderr);
    const eof = events.find((e) => e.event === 'eof')!;
    expect(eof.side).toBe('client');
    expect(eof.server).toBe(`udp:127.0.0.1:${port}`);
    expect(events.find((e) => e.event === 'close')!.server).toBe(`udp:127.0.0.1:${port}`);
  });

  it('forward: eof sides are client and upstream; exec: client and program', async () => {
    const upstream = await tcpServer((s) => s.pipe(s));
    const fwd = sockcat(['forward', '--log-format', 'json', '0', `127.0.0.1:${upstream.port}`]);
    const fport = Number((await fwd.waitForStderr(/"address":"127\.0\.0\.1:(\d+)"/))[1]);
    const c = await connect(fport);
    const got = readAll(c);
    c.end('x');
    await got;
    await fwd.waitForStderr(/"event":"close"/);
    const fEvents = jsonLines(fwd.stderr());
    expect(fEvents.filter((e) => e.event === 'eof').map((e) => e.side)).toEqual(['client', 'upstream']);
    expect(fEvents.find((e) => e.event === 'close')!.first_eof).toBe('client');

    const ex = sockcat(['exec', '--log-format', 'json', '0', '--', 'cat']);
    const eport = Number((await ex.waitForStderr(/"address":"127\.0\.0\.1:(\d+)"/))[1]);
    const e = await connect(eport);
    const eGot = readAll(e);
    e.end('y');
    expect((await eGot).toString()).toBe('y');
    await ex.waitForStderr(/"event":"close"/);
    const exEvents = jsonLines(ex.stderr());
    expect(exEvents.filter((x) => x.event === 'eof').map((x) => x.side)).toEqual(['client', 'program']);
    // exec's half-closes carry the connection id, as listen's and forward's do.
    const exId = exEvents.find((x) => x.event === 'close')!.id;
    expect(exId).toBeTypeOf('number');
    for (const x of exEvents.filter((x) => x.event === 'eof')) expect(x.id).toBe(exId);
    await upstream.close();
  });
});
