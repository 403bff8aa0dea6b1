/**
 * UDP: listen -u with several peers, connect -u waiting for replies after stdin EOF, and the UDP
 * forwarder keeping each client's replies apart. Peers are real dgram sockets on 127.0.0.1.
 */
import { describe, it, expect, afterAll } from 'vitest';
import dgram from 'node:dgram';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { startCli, runCli, type RunningCli } from '../helpers/cli';
import { waitFor } from '../helpers/net';
import { runUdpForward } from '../../src/modes/udp-forward';
import { parseAddress } from '../../src/endpoints/index';
import type { ModeIO } from '../../src/io';

const running: RunningCli[] = [];
const sockets: dgram.Socket[] = [];
afterAll(async () => {
  for (const r of running) r.kill();
  await Promise.all(running.map((r) => r.exited));
  for (const s of sockets) s.close();
});

/** A UDP peer on 127.0.0.1 that records what it receives. */
async function peer(onMessage?: (msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket) => void) {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  const got: string[] = [];
  socket.on('message', (msg, rinfo) => {
    got.push(msg.toString());
    onMessage?.(msg, rinfo, socket);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, got, port: socket.address().port, send: (text: string, port: number) => socket.send(text, port, '127.0.0.1') };
}

async function udpServer(args: string[]): Promise<{ server: RunningCli; port: number }> {
  const server = startCli(['listen', '-u', '-v', ...args, '0']);
  running.push(server);
  return { server, port: await server.listeningPort() };
}

describe('listen -u', () => {
  it('-k: two peers at once, each tracked; stdin goes to both', async () => {
    const { server, port } = await udpServer(['-k']);
    const a = await peer();
    const b = await peer();
    a.send('from A\n', port);
    b.send('from B\n', port);
    await waitFor(() => /from A\n/.test(server.stdout().toString()) && /from B\n/.test(server.stdout().toString()), 5000, 'both peers at the server');
    server.child.stdin!.write('to everyone\n');
    await waitFor(() => a.got.includes('to everyone\n') && b.got.includes('to everyone\n'), 5000, 'the line at both peers');
    await server.waitForStderr(new RegExp(`datagrams from 127\\.0\\.0\\.1:${b.port}`));
  });

  it('without -k, replies go to the peer that spoke last', async () => {
    const { server, port } = await udpServer([]);
    const a = await peer();
    const b = await peer();
    a.send('A speaks\n', port);
    await waitFor(() => server.stdout().toString().includes('A speaks\n'), 5000, 'A at the server');
    b.send('B speaks\n', port);
    await waitFor(() => server.stdout().toString().includes('B speaks\n'), 5000, 'B at the server');
    server.child.stdin!.write('for B\n');
    await waitFor(() => b.got.includes('for B\n'), 5000, 'the reply at B');
    a.send('A again\n', port);
    await waitFor(() => server.stdout().toString().includes('A again\n'), 5000, 'A again at the server');
    server.child.stdin!.write('for A\n');
    await waitFor(() => a.got.includes('for A\n'), 5000, 'the reply at A');
    // A never got what was meant for B: its first datagram is its own reply.
    expect(a.got).toEqual(['for A\n']);
    expect(b.got).toEqual(['for B\n']);
  });

  it('--echo answers socat (UDP interop)', async () => {
    const { port } = await udpServer(['--echo']);
    const out = await new Promise<string>((resolve) => {
      const child = spawn('socat', ['-t', '2', '-', `UDP:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'ignore'] });
      let got = '';
      child.stdout.on('data', (c: Buffer) => (got += c));
      child.on('close', () => resolve(got));
      child.stdin.end('hello from socat\n');
    });
    expect(out).toBe('hello from socat\n');
  });
});

describe('connect -u', () => {
  it('waits for a reply that comes after stdin EOF', async () => {
    // The server answers late, well after our stdin has ended.
    const server = await peer((msg, rinfo, socket) => setTimeout(() => socket.send(`pong: ${msg}`, rinfo.port, rinfo.address), 300));
    const r = await runCli(['connect', '-u', '--quit-after', '2', `127.0.0.1:${server.port}`], { stdin: 'ping\n' });
    expect(r.stdout.toString()).toBe('pong: ping\n');
    expect(r.code).toBe(0);
    expect(server.got).toEqual(['ping\n']);
  });

  it('talks to socat UDP-RECVFROM', async () => {
    const p = await peer();
    const port = p.port;
    p.socket.close();
    sockets.splice(sockets.indexOf(p.socket), 1);
    const child = spawn('socat', [`UDP-RECVFROM:${port},bind=127.0.0.1`, 'SYSTEM:tr a-z A-Z'], { stdio: 'ignore' });
    try {
      let r;
      // socat binds asynchronously: retry the exchange until it answers (bounded).
      for (let i = 0; i < 20; i++) {
        r = await runCli(['connect', '-u', '--quit-after', '1', `udp:127.0.0.1:${port}`], { stdin: 'shout\n' });
        if (r.stdout.length > 0) break;
      }
      expect(r!.stdout.toString()).toBe('SHOUT\n');
    } finally {
      child.kill();
    }
  });

  it('says so when nothing listens on the port: exit 1, one line', async () => {
    const p = await peer();
    const port = p.port;
    p.socket.close();
    sockets.splice(sockets.indexOf(p.socket), 1);
    const r = await runCli(['connect', '-u', `127.0.0.1:${port}`], { stdin: 'anyone?\n' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^sockcat: \\d\\d:\\d\\d:\\d\\d\\.\\d{3} udp:127\\.0\\.0\\.1:${port}: port unreachable — nothing listens on that UDP port\\n$`));
  });

  it('-u with --tls is a usage error', async () => {
    const r = await runCli(['connect', '-u', '--tls', '127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/-u and --tls cannot be combined/);
  });
});

describe('runUdpForward', () => {
  it('two clients at once: one upstream socket each, every reply back to its own client, idle peers forgotten', async () => {
    const upstreamPorts = new Set<number>();
    const target = await peer((msg, rinfo, socket) => {
      upstreamPorts.add(rinfo.port);
      socket.send(`reply to ${msg}`, rinfo.port, rinfo.address);
    });
    const stderr = new PassThrough();
    let log = '';
    stderr.on('data', (c: Buffer) => (log += c));
    const abort = new AbortController();
    const io: ModeIO = { stdin: new PassThrough(), stdout: new PassThrough(), stderr, signal: abort.signal };
    let port = 0;
    const done = runUdpForward(
      {
        listen: parseAddress('udp:127.0.0.1:0', 'listen'),
        target: parseAddress(`udp:127.0.0.1:${target.port}`, 'connect'),
        udpIdleMs: 300,
        verbose: true,
        onListening: (l) => (port = 'port' in l.address ? l.address.port : 0),
      },
      io,
    );
    await waitFor(() => port !== 0, 5000, 'the forwarder to listen');
    const a = await peer();
    const b = await peer();
    for (let i = 0; i < 5; i++) {
      a.send(`A${i}`, port);
      b.send(`B${i}`, port);
    }
    await waitFor(() => a.got.length === 5 && b.got.length === 5, 5000, 'five replies each');
    expect([...a.got].sort()).toEqual(['A0', 'A1', 'A2', 'A3', 'A4'].map((m) => `reply to ${m}`));
    expect([...b.got].sort()).toEqual(['B0', 'B1', 'B2', 'B3', 'B4'].map((m) => `reply to ${m}`));
    expect(upstreamPorts.size).toBe(2);
    await waitFor(() => (log.match(/\(idle\)/g) ?? []).length === 2, 5000, 'both peers forgotten after --udp-idle');
    // Worded like every other session's last line: counts, then how long, then why.
    expect(log).toMatch(new RegExp(`forgot 127\\.0\\.0\\.1:${a.port} → udp:127\\.0\\.0\\.1:${target.port}: 10 bytes in, \\d+ bytes out, [\\d.]+ m?s \\(idle\\)`));
    // A client that comes back after expiry gets a fresh upstream socket and still its replies.
    a.send('A again', port);
    await waitFor(() => a.got.includes('reply to A again'), 5000, 'the reply after expiry');
    expect(upstreamPorts.size).toBe(3);
    abort.abort();
    expect(await done).toBe(0);
  });
});

describe('--help', () => {
  it('lists every transport', async () => {
    const r = await runCli(['--help']);
    for (const scheme of ['tcp:', 'tls:', 'unix:', 'udp:']) expect(r.stdout.toString()).toContain(`  ${scheme}`);
  });
});
