// runBroadcast in-process: real sockets on 127.0.0.1 port 0, PassThrough streams for stdio.
import { describe, it, expect, afterEach } from 'vitest';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { runBroadcast, type BroadcastOptions } from '../../src/modes/broadcast';
import { parseAddress } from '../../src/endpoints/index';
import { waitFor } from '../helpers/net';
import { joinRoom, type RoomClient } from '../helpers/room';

interface TestRoom {
  port: number;
  stdin: PassThrough;
  stdout: PassThrough;
  out(): string;
  err(): string;
  stop(): Promise<number>;
}

const rooms: TestRoom[] = [];
const clients: RoomClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  for (const r of rooms.splice(0)) await r.stop();
});

async function startRoom(opts: Partial<BroadcastOptions> = {}, readStdout = true): Promise<TestRoom> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  if (readStdout) stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const controller = new AbortController();
  let port = 0;
  const done = runBroadcast(
    { address: parseAddress('127.0.0.1:0', 'listen'), verbose: true, ...opts, onListening: (l) => (port = (l.address as { port: number }).port) },
    { stdin, stdout, stderr, signal: controller.signal },
  );
  await waitFor(() => port !== 0, 5000, 'listening');
  let stopped: Promise<number> | undefined;
  const room: TestRoom = {
    port,
    stdin,
    stdout,
    out: () => out,
    err: () => err,
    stop: () => {
      if (!stopped) {
        controller.abort();
        stopped = done;
      }
      return stopped;
    },
  };
  rooms.push(room);
  return room;
}

async function join(room: TestRoom): Promise<RoomClient> {
  const c = await joinRoom(room.port);
  clients.push(c);
  await c.waitFor(/^\* commands: .*\n/m);
  return c;
}

describe('runBroadcast', () => {
  it('/quit says bye, closes that client and tells the others', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    a.say('/quit');
    a.say('this is never sent');
    await a.closed;
    expect(a.text()).toMatch(/^\* bye$/m);
    await b.waitFor(/^\* user1 left$/m);
    await waitFor(() => /closed 127\.0\.0\.1:\d+ \(user1\): .* \(quit\)/.test(room.err()), 5000, 'the closed line');
    expect(b.text()).not.toContain('never sent');
  });

  it('answers /help and unknown commands to the sender only; // sends a line that starts with /', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    a.say('/frobnicate now');
    await a.waitFor(/^\* unknown command \/frobnicate; commands: \/nick NAME, \/who, \/quit, \/help$/m);
    a.say('/help');
    await a.waitFor(/^\* \/nick NAME renames you \(1 to 32 letters, digits, _ or -\)/m);
    a.say('//shrug');
    await b.waitFor(/^<user1> \/shrug$/m);
    expect(b.text()).not.toMatch(/unknown command|renames you/);
  });

  it('keeps the order of lines and commands sent in one chunk, and escapes inside a chunk', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    a.socket.write('one\n/nick zed\ntwo\nthree\x1b[0m\nfour\n');
    await b.waitFor(/^<zed> four$/m);
    expect(b.text()).toMatch(/^<user1> one\n\* user1 is now zed\n<zed> two\n<zed> three\^\[\[0m\n<zed> four\n/m);
    await waitFor(() => /<zed> four/.test(room.out()), 5000, 'the log');
    expect(room.out()).toMatch(/\] <user1> one\n.*\* user1 is now zed\n.*\] <zed> two\n.*\] <zed> three\^\[\[0m\n.*\] <zed> four\n/);
    // Plain lines in one chunk take the bulk path: same result, line by line.
    a.socket.write('five\nsix\n\nseven\n');
    await b.waitFor(/<zed> seven\n/);
    expect(b.text()).toMatch(/<zed> four\n<zed> five\n<zed> six\n<zed> \n<zed> seven\n$/);
    await waitFor(() => /<zed> seven/.test(room.out()), 5000, 'the log');
    expect(room.out()).toMatch(/\[\d\d:\d\d:\d\d\] <zed> five\n\[\d\d:\d\d:\d\d\] <zed> six\n\[\d\d:\d\d:\d\d\] <zed> \n\[\d\d:\d\d:\d\d\] <zed> seven\n$/);
  });

  it('names may use letters of any language, unique whatever their case or Unicode form; format characters are refused', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    a.say('/nick Élodie');
    await a.waitFor(/^\* you are now Élodie$/m);
    await b.waitFor(/^\* user1 is now Élodie$/m);
    b.say('/nick élodie');
    await b.waitFor(/^\* Élodie is already taken$/m);
    b.say('/nick E\u0301lodie'); // the same name, decomposed: E + combining acute accent
    await b.waitFor(/^\* Élodie is already taken\n\* Élodie is already taken$/m);
    b.say('/nick ab\u202ecd'); // a right-to-left override would let a name pose as another
    // The refusal quotes it escaped, so it cannot reorder the notice either.
    await b.waitFor(/^\* cannot use 'ab\\u202ecd' as a name/m);
    b.say('/nick 李雷');
    await b.waitFor(/^\* you are now 李雷$/m);
    expect(room.out()).toMatch(/\* user1 is now Élodie\n/);
  });

  it('default names skip names already taken', async () => {
    const room = await startRoom();
    const a = await join(room);
    a.say('/nick user2');
    await a.waitFor(/you are now user2/);
    const b = await join(room);
    expect(b.text()).toMatch(/^\* welcome! you are user3$/m);
    expect(b.text()).toMatch(/^\* here: user2$/m);
  });

  it('server stdin: /who lists clients with their addresses on stdout, /kick sends one away', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    a.say('/nick alice');
    await b.waitFor(/user1 is now alice/);
    room.stdin.write('/who\n');
    await waitFor(() => /\* here: alice \(127\.0\.0\.1:\d+\), user2 \(127\.0\.0\.1:\d+\)/.test(room.out()), 5000, '/who on stdout');
    room.stdin.write('/kick nobody\n');
    await waitFor(() => /nobody called 'nobody' is here/.test(room.out()), 5000, 'kick of nobody');
    room.stdin.write('/kick ALICE\n');
    await a.closed;
    expect(a.text()).toMatch(/^\* you were kicked by the server$/m);
    await b.waitFor(/^\* alice left \(kicked by the server\)$/m);
  });

  it('--idle-timeout sends a silent client away', async () => {
    const room = await startRoom({ idleTimeoutMs: 300 });
    const a = await join(room);
    const b = await join(room);
    // b keeps talking; a says nothing and the room is quiet towards it only briefly.
    await a.closed;
    await waitFor(() => /user1 left \(idle\)/.test(room.out()), 5000, 'the idle leave in the log');
    b.socket.destroy();
  });

  it('--max-conns refuses clients past the limit; the room is unchanged', async () => {
    const room = await startRoom({ maxConns: 1 });
    const a = await join(room);
    const extra = await joinRoom(room.port);
    clients.push(extra);
    await extra.closed;
    expect(extra.text()).toBe('');
    await waitFor(() => /refused 127\.0\.0\.1:\d+: 1 connections already open \(--max-conns\)/.test(room.err()), 5000, 'the refusal');
    a.say('/who');
    await a.waitFor(/^\* here: user1 \(you\)$/m);
  });

  it('a client that resets is announced as gone', async () => {
    const room = await startRoom();
    const a = await join(room);
    const b = await join(room);
    b.socket.resetAndDestroy();
    await a.waitFor(/^\* user2 left$/m);
  });

  it('a client that resets mid-line: what it sent still reaches the others, then they hear it left', async () => {
    const room = await startRoom();
    const a = await join(room);
    // Node cannot send an RST on demand; python3 can (SO_LINGER 0, then close).
    const script = [
      'import socket, struct, sys',
      's = socket.create_connection(("127.0.0.1", int(sys.argv[1])))',
      'got = b""',
      'while b"commands" not in got and len(got) < 4096: got += s.recv(4096)',
      's.sendall(b"whole line\\nhalf a li")',
      'sys.stdin.readline()',
      's.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))',
      's.close()',
    ].join('\n');
    const py = spawn('python3', ['-c', script, String(room.port)], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((resolve) => py.once('exit', resolve));
    try {
      // The server has read the whole chunk (sent in one segment) before the RST comes.
      await a.waitFor(/^<user2> whole line$/m);
      py.stdin.end('reset now\n');
      await exited;
    } finally {
      py.kill();
    }
    await a.waitFor(/^\* user2 left$/m);
    await waitFor(() => /closed 127\.0\.0\.1:\d+ \(user2\)/.test(room.err()), 5000, 'the closed line');
    expect(room.err()).toMatch(/closed 127\.0\.0\.1:\d+ \(user2\): 20 bytes in, .* \(reset\)/);
    expect(a.text()).toMatch(/^<user2> whole line\n<user2> half a li\n\* user2 left\n/m);
    expect(room.out()).toMatch(/<user2> half a li\n/);
  });

  it('disconnects a client that does not read once its queue passes --max-queue, and the room goes on', async () => {
    const room = await startRoom({ maxQueue: 64 * 1024 });
    const stuck = await join(room);
    stuck.socket.pause();
    const a = await join(room);
    const b = await join(room);
    const line = 'x'.repeat(1000);
    let sent = 0;
    // Enough to fill the kernel's buffers towards the stuck client and then its queue.
    for (let i = 0; i < 20_000 && !/disconnecting/.test(room.err()); i++) {
      if (!a.socket.write(`${i} ${line}\n`)) await new Promise((r) => a.socket.once('drain', r));
      sent = i;
    }
    await waitFor(() => /disconnecting 127\.0\.0\.1:\d+ \(user1\): not reading, \d+ bytes queued \(--max-queue 65536\)/.test(room.err()), 10_000, 'the disconnect');
    a.say('after');
    await b.waitFor(/^<user2> after$/m, 20_000);
    await b.waitFor(/^\* user1 left \(disconnected: not reading fast enough\)$/m);
    expect(b.text()).toContain(`<user2> ${sent} ${line}\n`);
  });

  it('stdout that nobody reads never stalls the room: the log is dropped past the cap, with a warning', async () => {
    const room = await startRoom({ maxQueue: 64 * 1024 }, false);
    const a = await join(room);
    const b = await join(room);
    const count = 2000;
    for (let i = 0; i < count; i++) a.say(`${i} ${'y'.repeat(200)}`);
    await b.waitFor(new RegExp(`^<user1> ${count - 1} y+$`, 'm'), 20_000);
    await waitFor(() => /stdout is not keeping up/.test(room.err()), 5000, 'the warning');
    expect(room.stdout.writableLength).toBeLessThan(256 * 1024);
  });

  it('stops on abort: everyone hears it and gets EOF, and it resolves with 0', async () => {
    const room = await startRoom();
    const a = await join(room);
    room.stdin.end(); // stdin's EOF alone does not stop the room
    a.say('still open');
    await waitFor(() => /<user1> still open/.test(room.out()), 5000, 'the line in the log');
    const code = room.stop();
    await a.closed;
    a.socket.end();
    expect(a.text()).toMatch(/^\* the server is shutting down$/m);
    expect(await code).toBe(0);
  });


  it('on stop, a client that is behind still gets everything queued for it and the notice (default --drain-timeout)', async () => {
    // A cap big enough that the reader who is behind stays in the room with megabytes queued.
    const room = await startRoom({ maxQueue: 32 * 1024 * 1024 });
    const behind = await join(room);
    behind.socket.pause();
    const a = await join(room);
    const count = 40_000;
    const line = 'z'.repeat(150);
    for (let i = 0; i < count; i++) {
      if (!a.socket.write(`${i} ${line}\n`)) await new Promise((r) => a.socket.once('drain', r));
    }
    await waitFor(() => room.out().includes(`<user2> ${count - 1} ${line}\n`), 20_000, 'the last line in the log');
    const code = room.stop();
    behind.socket.resume();
    await behind.closed;
    expect(behind.text().slice(-300)).toMatch(new RegExp(`<user2> ${count - 1} z+\\n\\* the server is shutting down\\n$`));
    expect(await code).toBe(0);
  });
  it('with --drain-timeout 0 a client that is behind is cut off at once, and the log does not count what was still queued', async () => {
    const room = await startRoom({ maxQueue: 32 * 1024 * 1024, drainTimeoutMs: 0 });
    const behind = await join(room);
    behind.socket.pause();
    const a = await join(room);
    const count = 40_000;
    for (let i = 0; i < count; i++) {
      if (!a.socket.write(`${i} ${'q'.repeat(150)}\n`)) await new Promise((r) => a.socket.once('drain', r));
    }
    await waitFor(() => room.out().includes(`<user2> ${count - 1} `), 20_000, 'the last line in the log');
    const code = room.stop();
    behind.socket.resume();
    await behind.closed;
    expect(await code).toBe(0);
    const logged = /closed 127\.0\.0\.1:\d+ \(user1\): 0 bytes in, (\d+) bytes out/.exec(room.err());
    expect(behind.bytes().length).toBeLessThan(count * 150);
    // Never more than arrived (a write half taken by the kernel counts as not sent: at most that much less).
    expect(Number(logged?.[1])).toBeGreaterThan(0);
    expect(Number(logged?.[1])).toBeLessThanOrEqual(behind.bytes().length);
  });

  it('--raw: stdin bytes go to every client, client bytes to stdout, and no announcements at all', async () => {
    const room = await startRoom({ raw: true });
    const a = await joinRoom(room.port);
    const b = await joinRoom(room.port);
    clients.push(a, b);
    await waitFor(() => (room.err().match(/connection from/g) ?? []).length === 2, 5000, 'both connected');
    room.stdin.write('to all\n');
    await a.waitFor(/to all/);
    await b.waitFor(/to all/);
    a.socket.write('from a');
    await b.waitFor(/to all\nfrom a$/);
    await waitFor(() => room.out() === 'from a', 5000, 'stdout');
    a.socket.end();
    await a.closed;
    b.socket.write('!');
    await waitFor(() => room.out() === 'from a!', 5000, 'stdout');
    expect(a.text()).toBe('to all\n');
    expect(b.text()).toBe('to all\nfrom a');
  });
});
