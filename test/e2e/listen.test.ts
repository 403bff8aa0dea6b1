import { describe, it, expect } from 'vitest';
import net from 'node:net';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { startCli } from '../helpers/cli';
import { closedHow, connect, exchange, readAll, randomBytes, sha256, waitFor, sleep } from '../helpers/net';

describe('sockcat listen (end to end)', () => {
  it('serves one client: client bytes to stdout, stdin to the client, exit 0 when the client is done', async () => {
    const srv = startCli(['listen', '-v', '0'], { stdin: 'from server\n' });
    const port = await srv.listeningPort();
    const reply = await exchange(port, 'from client\n');
    expect(reply.toString()).toBe('from server\n');
    const r = await srv.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('from client\n');
    expect(r.stderr).toMatch(/connection from 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/closed 127\.0\.0\.1:\d+: 12 bytes in, 12 bytes out/);
  });

  it('takes the course\'s nc -l -p PORT HOST form as typed, -l included', async () => {
    const srv = startCli(['listen', '-l', '-p', '0', '127.0.0.1', '-v'], { stdin: 'bonjour\n' });
    const port = await srv.listeningPort();
    expect((await exchange(port, 'salut\n')).toString()).toBe('bonjour\n');
    const r = await srv.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('salut\n');
  });

  it('sends a whole file from stdin to a client that half-closed at once (nc -l < file)', async () => {
    const file = randomBytes(4 << 20);
    const srv = startCli(['listen', '-v', '0'], { stdin: file });
    const port = await srv.listeningPort();
    const s = await connect(port);
    s.end(); // like `nc -N host port < /dev/null > copy`
    const got = await readAll(s, 20_000);
    expect(sha256(got)).toBe(sha256(file));
    expect((await srv.exited).code).toBe(0);
  });

  it('stops listening after the first client, like nc -l', async () => {
    const srv = startCli(['listen', '-v', '0']);
    const port = await srv.listeningPort();
    const first = await connect(port);
    await srv.waitForStderr(/connection from/);
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    first.end();
    srv.child.stdin!.end();
    expect((await srv.exited).code).toBe(0);
  });

  it('binds 127.0.0.1 by default, not every interface', async () => {
    const srv = startCli(['listen', '-v', '0']);
    const m = await srv.waitForStderr(/listening on (\S+):(\d+)/);
    expect(m[1]).toBe('127.0.0.1');
    srv.kill();
    await srv.exited;
  });

  it('says a wildcard listener is reachable from the network', async () => {
    const srv = startCli(['listen', '-v', '0.0.0.0:0']);
    await srv.waitForStderr(/reachable from the network/);
    srv.kill();
    expect((await srv.exited).code).toBe(0);
  });

  it('listens on IPv6 loopback', async () => {
    const srv = startCli(['listen', '-v', '[::1]:0'], { stdin: 'v6 reply' });
    const port = Number((await srv.waitForStderr(/listening on \[::1\]:(\d+)/))[1]);
    const reply = await exchange(port, 'v6 hello', '::1');
    expect(reply.toString()).toBe('v6 reply');
    const r = await srv.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('v6 hello');
  });

  it('carries 1 MiB of random bytes intact both ways', async () => {
    const down = randomBytes(1 << 20);
    const up = randomBytes(1 << 20);
    const srv = startCli(['listen', '-v', '0'], { stdin: down });
    const port = await srv.listeningPort();
    const reply = await exchange(port, up);
    expect(sha256(reply)).toBe(sha256(down));
    const r = await srv.exited;
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(up));
  });

  it('exits 1 when the client resets the connection', async () => {
    const srv = startCli(['listen', '-v', '0']);
    const port = await srv.listeningPort();
    const s = await connect(port);
    await srv.waitForStderr(/connection from/);
    s.resetAndDestroy();
    const r = await srv.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/connection reset by 127\.0\.0\.1:\d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('stops cleanly on SIGTERM while waiting', async () => {
    const srv = startCli(['listen', '-v', '0']);
    await srv.listeningPort();
    srv.kill('SIGTERM');
    expect((await srv.exited).code).toBe(0);
  });
});

describe('sockcat listen -k (end to end)', () => {
  it('serves two clients at once: both reach stdout, stdin reaches both', async () => {
    const srv = startCli(['listen', '-k', '-v', '0']);
    const port = await srv.listeningPort();
    const a = await connect(port);
    const b = await connect(port);
    await waitFor(() => (srv.stderr().match(/connection from/g) ?? []).length === 2, 5000, 'two connections');
    const gotA: Buffer[] = [];
    const gotB: Buffer[] = [];
    a.on('data', (c) => gotA.push(c));
    b.on('data', (c) => gotB.push(c));
    a.write('alpha\n');
    b.write('beta\n');
    await waitFor(() => /alpha/.test(srv.stdout().toString()) && /beta/.test(srv.stdout().toString()), 5000, 'both on stdout');
    srv.child.stdin!.write('to everyone\n');
    await waitFor(() => Buffer.concat(gotA).toString() === 'to everyone\n' && Buffer.concat(gotB).toString() === 'to everyone\n', 5000, 'stdin at both');
    a.end();
    b.end();
    srv.kill();
    expect((await srv.exited).code).toBe(0);
  });

  it('keeps serving after stdin EOF, shutting down the write side of every client', async () => {
    const srv = startCli(['listen', '-k', '-v', '0']);
    const port = await srv.listeningPort();
    const a = await connect(port);
    await srv.waitForStderr(/connection from/);
    const aDone = readAll(a);
    srv.child.stdin!.end('bye\n');
    expect((await aDone).toString()).toBe('bye\n');
    // Still serving: a new client gets EOF at once but its bytes still reach stdout.
    const b = await connect(port);
    const bDone = readAll(b);
    b.write('late client\n');
    expect((await bDone).toString()).toBe('');
    await waitFor(() => /late client/.test(srv.stdout().toString()), 5000, 'late client on stdout');
    a.destroy();
    b.end();
    srv.kill();
    expect((await srv.exited).code).toBe(0);
  });
});

describe('sockcat listen -k: a client that never reads (end to end)', () => {
  it('is cut off with a reset past --max-queue while a reading client gets all of stdin, in bounded memory', async () => {
    const srv = startCli(['listen', '-k', '-v', '--max-queue', '256K', '0']);
    const port = await srv.listeningPort();
    // The stuck client: connected, never reads (its kernel buffers fill, then sockcat's queue).
    const stuck = await connect(port);
    stuck.pause();
    const reader = await connect(port);
    await waitFor(() => (srv.stderr().match(/connection from/g) ?? []).length === 2, 5000, 'two connections');
    let got = 0;
    const hash = createHash('sha256');
    reader.on('data', (c: Buffer) => {
      got += c.length;
      hash.update(c);
    });
    const readerDone = new Promise<void>((resolve) => reader.once('end', () => resolve()));
    // 24 MiB through stdin, written as fast as sockcat takes it: the reader sets the pace.
    const total = 24 << 20;
    const chunk = randomBytes(64 << 10);
    const sent = createHash('sha256');
    const stdin = srv.child.stdin!;
    for (let n = 0; n < total; n += chunk.length) {
      sent.update(chunk);
      if (!stdin.write(chunk)) await new Promise((r) => stdin.once('drain', r));
    }
    stdin.end();
    await readerDone;
    expect(got).toBe(total);
    expect(hash.digest('hex')).toBe(sent.digest('hex'));
    await srv.waitForStderr(/disconnecting 127\.0\.0\.1:\d+: not reading, more than 262144 bytes of stdin queued for it \(--max-queue\)/);
    // From the stuck client's side: what was owed was never sent, so it is a reset, not a FIN.
    expect((await closedHow(stuck)).how).toBe('reset');
    // Memory: the old fan-out queued all 24 MiB (and without end) for the stuck client.
    const hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${srv.child.pid}/status`, 'utf8'))![1]);
    expect(hwmKiB).toBeLessThan(120 * 1024);
    srv.kill();
    expect((await srv.exited).code).toBe(0);
  }, 60_000);

  it('a lone slow client is waited for, not cut off: stdin pauses while every client is full', async () => {
    const srv = startCli(['listen', '-k', '-v', '--max-queue', '64K', '0']);
    const port = await srv.listeningPort();
    const slow = await connect(port);
    slow.pause();
    await srv.waitForStderr(/connection from/);
    const stdin = srv.child.stdin!;
    const chunk = Buffer.alloc(64 << 10, 0x61);
    for (let i = 0; i < 64; i++) if (!stdin.write(chunk)) break;
    await sleep(500);
    const all = readAll(slow, 20_000);
    slow.resume();
    stdin.end();
    const out = await all;
    expect(out.length).toBeGreaterThan(0);
    expect(srv.stderr()).not.toMatch(/disconnecting/);
    srv.kill();
    await srv.exited;
  }, 30_000);

  it('--max-queue means nothing without -k: refused', async () => {
    const r = startCli(['listen', '--max-queue', '1M', '0'], { stdin: null });
    const res = await r.exited;
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^sockcat: --max-queue caps the stdin queued for each client of listen -k/);
  });
});

describe('sockcat listen --echo (end to end)', () => {
  it('echoes to 20 concurrent clients, each getting exactly its own bytes', async () => {
    const srv = startCli(['listen', '--echo', '-v', '0']);
    const port = await srv.listeningPort();
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(50_000 + i * 1000));
    const sockets = await Promise.all(payloads.map(() => connect(port)));
    // All connected before anyone finishes: they are served concurrently.
    const replies = sockets.map((s) => readAll(s));
    sockets.forEach((s, i) => s.end(payloads[i]));
    const got = await Promise.all(replies);
    got.forEach((g, i) => expect(sha256(g)).toBe(sha256(payloads[i])));
    srv.kill();
    expect((await srv.exited).code).toBe(0);
  });

  it('does not stall other clients behind one that never reads', async () => {
    const srv = startCli(['listen', '--echo', '-v', '0']);
    const port = await srv.listeningPort();
    const stuck = await connect(port);
    stuck.pause();
    stuck.write(Buffer.alloc(8 << 20));
    await sleep(200);
    const reply = await exchange(port, 'still here');
    expect(reply.toString()).toBe('still here');
    stuck.destroy();
    srv.kill();
    await srv.exited;
  });

  it('refuses clients outside --allow and says so with -v', async () => {
    const srv = startCli(['listen', '--echo', '-v', '--allow', '10.0.0.0/8', '0']);
    const port = await srv.listeningPort();
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    const got = await readAll(s);
    expect(got.length).toBe(0);
    await srv.waitForStderr(/refused 127\.0\.0\.1:\d+: not in the allow list/);
    srv.kill();
    await srv.exited;
  });
});
