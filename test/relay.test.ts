import { describe, it, expect } from 'vitest';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { relay } from '../src/relay';
import { closedHow, connect, readAll, tcpServer, randomBytes, sha256, sleep, waitFor } from './helpers/net';

/** A connected socket pair over loopback: [client side, server side]. */
async function socketPair(): Promise<[net.Socket, net.Socket, () => Promise<void>]> {
  let serverSide!: net.Socket;
  const srv = await tcpServer((s) => (serverSide = s));
  const client = await connect(srv.port);
  await waitFor(() => serverSide !== undefined);
  return [client, serverSide, srv.close];
}

/**
 * The two pairs most tests relay between: `client` talks to `x` and `y` to `backend`, the test
 * relays x ⇄ y; `close()` closes both pairs' servers.
 */
async function relayEnds(): Promise<{ client: net.Socket; x: net.Socket; y: net.Socket; backend: net.Socket; close: () => Promise<void> }> {
  const [client, x, close1] = await socketPair();
  const [y, backend, close2] = await socketPair();
  const close = async () => {
    await close1();
    await close2();
  };
  return { client, x, y, backend, close };
}

/** A connected unix socket pair: [client side, server side]. Unix sockets buffer ~200 KiB, TCP on loopback megabytes: a slow reader is felt at once. */
async function unixPair(): Promise<[net.Socket, net.Socket, () => Promise<void>]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-relay-'));
  const file = path.join(dir, 's.sock');
  let serverSide!: net.Socket;
  const srv = net.createServer({ allowHalfOpen: true }, (s) => (serverSide = s));
  await new Promise<void>((res) => srv.listen(file, res));
  const client = net.connect({ path: file, allowHalfOpen: true });
  await new Promise<void>((res, rej) => client.once('connect', res).once('error', rej));
  await waitFor(() => serverSide !== undefined);
  const close = () => new Promise<void>((res) => srv.close(() => (fs.rmSync(dir, { recursive: true, force: true }), res())));
  return [client, serverSide, close];
}

/**
 * The buffer a socket reads into when the relay switched it to its own reused read buffer (what
 * net.Socket's `onread` option keeps under a private symbol), or undefined: lets a test prove it
 * ran through that path rather than the default one.
 */
function ownReadBuffer(s: net.Socket): unknown {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'kBuffer');
  const b = sym ? (s as unknown as Record<symbol, unknown>)[sym] : undefined;
  return Buffer.isBuffer(b) ? b : undefined;
}

/** Reads everything from `s` until EOF, stopping for `stallMs` after every `every` bytes: a slow reader. */
function readSlowly(s: net.Socket, every: number, stallMs: number, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sinceStall = 0;
    const timer = setTimeout(() => reject(new Error(`readSlowly timed out after ${timeoutMs} ms`)), timeoutMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      sinceStall += c.length;
      if (sinceStall >= every) {
        sinceStall = 0;
        s.pause();
        setTimeout(() => s.resume(), stallMs);
      }
    });
    s.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

describe('relay', () => {
  it('passes half-close both ways: a reply sent after the client FIN still arrives', async () => {
    // client ⇄ (x relay y) ⇄ backend
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y);
    const backendGot = readAll(backend);
    const clientGot = readAll(client);
    client.end('question');
    expect((await backendGot).toString()).toBe('question');
    await sleep(100); // the backend answers well after the client's FIN
    backend.end('answer');
    expect((await clientGot).toString()).toBe('answer');
    const r = await done;
    expect(r).toMatchObject({ aToB: 8, bToA: 6, reason: 'eof', firstEof: 'a' });
    await close();
  });

  it('half-closes the other way too: the backend finishes first, the client keeps sending', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y);
    const clientGot = readAll(client);
    backend.end('banner');
    expect((await clientGot).toString()).toBe('banner');
    const backendGot = readAll(backend);
    client.end('late data');
    expect((await backendGot).toString()).toBe('late data');
    expect((await done).reason).toBe('eof');
    await close();
  });

  it('moves 8 MiB intact both ways at once', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y);
    const up = randomBytes(8 << 20);
    const down = randomBytes(8 << 20);
    const backendGot = readAll(backend, 20_000);
    const clientGot = readAll(client, 20_000);
    client.end(up);
    backend.end(down);
    expect(sha256(await backendGot)).toBe(sha256(up));
    expect(sha256(await clientGot)).toBe(sha256(down));
    expect(await done).toMatchObject({ aToB: up.length, bToA: down.length, reason: 'eof' });
    await close();
  });

  it('moves bulk data intact to a slow reader through the reused read buffer, both ways, with half-close', async () => {
    // Bulk reads switch each direction to one reused read buffer; a reader that keeps stalling
    // makes the relay's writes wait in user space, when reusing the buffer too early would
    // corrupt the bytes: the checksums catch that.
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y);
    const up = randomBytes(16 << 20);
    const down = randomBytes(8 << 20);
    const backendGot = readSlowly(backend, 1 << 20, 20);
    client.end(up);
    expect(sha256(await backendGot)).toBe(sha256(up));
    // The backend answers only after the client's FIN: the other direction still flows.
    const clientGot = readSlowly(client, 1 << 20, 20);
    backend.end(down);
    expect(sha256(await clientGot)).toBe(sha256(down));
    expect(await done).toMatchObject({ aToB: up.length, bToA: down.length, reason: 'eof', firstEof: 'a' });
    expect(ownReadBuffer(x)).toBeDefined();
    expect(ownReadBuffer(y)).toBeDefined();
    // What --metrics reads (ByteTally): the sockets' own counts still see every byte.
    expect([x.bytesRead, y.bytesRead]).toEqual([up.length, down.length]);
    await close();
  });

  it('passes on a reset that comes in the middle of a bulk transfer read into the reused buffer', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y, { propagateReset: true });
    const backendClosed = closedHow(backend);
    let got = 0;
    backend.on('data', (c: Buffer) => (got += c.length));
    client.write(randomBytes(8 << 20));
    await waitFor(() => got >= 1 << 20, 10_000, 'the first MiB at the backend');
    expect(ownReadBuffer(x)).toBeDefined();
    client.resetAndDestroy();
    const r = await done;
    expect(r.reason).toBe('reset');
    expect(r.errorSide).toBe('a');
    expect((await backendClosed).how).toBe('reset');
    await close();
  });

  it('keeps the default reads for a destination that may hold on to chunks (a PassThrough)', async () => {
    const [client, x, close1] = await socketPair();
    const done = relay(x, new PassThrough());
    const data = randomBytes(4 << 20);
    const got = readAll(client, 20_000);
    client.end(data);
    expect(sha256(await got)).toBe(sha256(data));
    expect((await done).reason).toBe('eof');
    expect(ownReadBuffer(x)).toBeUndefined();
    await close1();
  });

  it('applies backpressure: a reader that does not read keeps memory bounded', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    backend.pause(); // never reads
    const done = relay(x, y);
    // 32 MiB offered at once: far more than the socket buffers along the way can hold.
    client.write(Buffer.alloc(32 << 20, 1));
    await sleep(500);
    // What the relay holds in user space is bounded by the streams' buffers, not by what was sent.
    expect(y.writableLength).toBeLessThan(1 << 20);
    expect(x.readableLength).toBeLessThan(1 << 20);
    expect(x.isPaused()).toBe(true);
    client.destroy();
    backend.destroy();
    await done;
    await close();
  });

  it('tears down both sides on a reset and reports it once', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y);
    backend.resume();
    // The backend sees its side end (our destroy), so it is not left hanging.
    const backendClosed = new Promise((r) => backend.once('end', r));
    client.resetAndDestroy();
    const r = await done;
    expect(r.reason).toBe('reset');
    expect(r.errorSide).toBe('a');
    expect((r.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    await backendClosed;
    expect(x.destroyed && y.destroyed).toBe(true);
    await close();
  });

  it('gives up on the other direction after the close-wait', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const started = Date.now();
    const done = relay(x, y, { closeWait: 150 });
    client.end();
    // The backend never answers nor closes: the relay must not wait forever.
    const r = await done;
    expect(r.reason).toBe('close-wait');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(2000);
    backend.destroy();
    await close();
  });

  it('never cuts a direction that keeps moving during the close-wait', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const done = relay(x, y, { closeWait: 200 });
    const clientGot = readAll(client);
    client.end();
    // The backend streams its reply for 1 s after the client's FIN, a chunk every 50 ms.
    for (let i = 0; i < 20; i++) {
      backend.write(`chunk ${i}\n`);
      await sleep(50);
    }
    backend.end('last\n');
    const got = (await clientGot).toString();
    expect(got).toContain('chunk 19\n');
    expect(got.endsWith('last\n')).toBe(true);
    expect((await done).reason).toBe('eof');
    await close();
  });

  it('does not cut a reply to a slow reader after its FIN: a write still under way is not silence', async () => {
    // A write shows no progress until all of it is out: to this reader a 64 KiB or 128 KiB write
    // takes longer than the close-wait, so counting only reads and completed writes as traffic
    // ended the reply early, with a FIN, as if it were complete.
    const [client, x, close1] = await unixPair();
    const [y, backend, close2] = await socketPair();
    const done = relay(x, y, { closeWait: 150 });
    const reply = randomBytes(1 << 20);
    const clientGot = readSlowly(client, 64 * 1024, 300);
    client.end();
    backend.end(reply);
    expect(sha256(await clientGot)).toBe(sha256(reply));
    expect(await done).toMatchObject({ reason: 'eof', bToA: reply.length });
    await close1();
    await close2();
  });

  it('closes an idle session after the idle timeout', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const r = await relay(x, y, { idleTimeoutMs: 100 });
    expect(r.reason).toBe('idle');
    client.destroy();
    backend.destroy();
    await close();
  });

  it('is an echo when joined to a PassThrough', async () => {
    const [client, x, close1] = await socketPair();
    const done = relay(x, new PassThrough());
    const got = readAll(client);
    client.end('ping');
    expect((await got).toString()).toBe('ping');
    expect((await done).reason).toBe('eof');
    await close1();
  });
  it('passes on an EOF that came before the relay started (a client that connects and closes at once)', async () => {
    const { client, x, y, backend, close } = await relayEnds();
    const backendGot = readAll(backend);
    client.end();
    // The EOF is read and 'end' emitted while nobody relays yet (forward is still connecting upstream).
    x.resume();
    await new Promise((resolve) => x.once('end', resolve));
    const done = relay(x, y);
    expect((await backendGot).length).toBe(0);
    backend.end();
    const r = await done;
    expect(r).toMatchObject({ aToB: 0, bToA: 0, reason: 'eof', firstEof: 'a' });
    await close();
  });
});
