import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, encodeOpen, FrameParser, FrameType, Mux, MuxError, MuxStream, ownsItsBuffer, parseOpen, releaseReadBuffer, WINDOW_BYTES, MAX_DATA_PAYLOAD, FRAME_HEADER_BYTES, type OpenInfo } from '../../src/tunnel/mux';

type Seen = Array<[number, number, string]>;

function collect(): { parser: FrameParser; seen: Seen } {
  const seen: Seen = [];
  const parser = new FrameParser({
    data: (id, chunk) => {
      const last = seen[seen.length - 1];
      // Pieces of one DATA frame are joined back for comparison.
      if (last && last[0] === FrameType.DATA && last[1] === id && (last as unknown as { open?: boolean }).open) last[2] += chunk.toString('hex');
      else seen.push(Object.assign([FrameType.DATA, id, chunk.toString('hex')] as [number, number, string], { open: true }));
    },
    frame: (type, id, payload) => {
      const last = seen[seen.length - 1];
      if (last) delete (last as unknown as { open?: boolean }).open;
      seen.push([type, id, payload.toString('hex')]);
    },
  });
  return { parser, seen };
}

const info: OpenInfo = { client: { address: '2001:db8::1', port: 40000 }, server: { address: '127.0.0.1', port: 7000 } };

describe('mux frames', () => {
  it('every frame survives encoding and parsing, whatever the chunking', () => {
    const frames: Array<[FrameType, number, Buffer]> = [
      [FrameType.OPEN, 1, encodeOpen(info)],
      [FrameType.DATA, 1, randomBytes(100)],
      [FrameType.WINDOW, 1, Buffer.from([0, 1, 0, 0])],
      [FrameType.PING, 0, Buffer.alloc(0)],
      [FrameType.FIN, 1, Buffer.alloc(0)],
      [FrameType.DATA, 7, randomBytes(MAX_DATA_PAYLOAD)],
      [FrameType.RST, 7, Buffer.alloc(0)],
      [FrameType.PONG, 0, Buffer.alloc(0)],
    ];
    const wire = Buffer.concat(frames.map(([t, id, p]) => encodeFrame(t, id, p)));
    for (const size of [1, 2, 9, 10, 1000, wire.length]) {
      const { parser, seen } = collect();
      for (let i = 0; i < wire.length; i += size) parser.push(wire.subarray(i, i + size));
      expect(seen.map(([t, id, hex]) => [t, id, hex])).toEqual(frames.map(([t, id, p]) => [t, id, p.toString('hex')]));
    }
    expect(parseOpen(encodeOpen(info))).toEqual(info);
  });

  it('refuses a bad header as soon as it is read, before any payload is buffered', () => {
    const bad = [
      encodeFrame(FrameType.DATA, 1, Buffer.alloc(0)), // empty DATA
      Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])]), // 4 GiB DATA
      Buffer.from([0, 0, 0, 0, 1, 0, 1, 0, 1]), // 64 KiB + 1
      encodeFrame(FrameType.PING, 3), // heartbeat on a stream
      encodeFrame(FrameType.FIN, 0), // stream frame on stream 0
      encodeFrame(FrameType.WINDOW, 1, Buffer.alloc(3)),
      Buffer.from([9, 0, 0, 0, 1, 0, 0, 0, 0]), // unknown type
      Buffer.from('GET / HTTP/1.1\r\n'),
    ];
    for (const b of bad) {
      const { parser } = collect();
      expect(() => parser.push(b.subarray(0, FRAME_HEADER_BYTES)), b.toString('hex')).toThrow(MuxError);
    }
    expect(() => parseOpen(Buffer.from([70, 1, 2, 3, 4, 5, 6]))).toThrow(MuxError);
    expect(() => parseOpen(Buffer.concat([encodeOpen(info), Buffer.from([0])]))).toThrow(MuxError);
  });

  it('fuzz: 5,000 random, truncated, mutated and oversized inputs only yield frames or a MuxError, memory bounded', () => {
    const valid = Buffer.concat([
      encodeFrame(FrameType.OPEN, 1, encodeOpen(info)),
      encodeFrame(FrameType.DATA, 1, randomBytes(300)),
      encodeFrame(FrameType.WINDOW, 1, Buffer.from([0, 0, 1, 0])),
      encodeFrame(FrameType.FIN, 1),
    ]);
    const before = process.memoryUsage().heapUsed;
    let frames = 0;
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      let input: Buffer;
      const kind = i % 4;
      if (kind === 0) input = randomBytes(1 + Math.floor(Math.random() * 200));
      else if (kind === 1) input = valid.subarray(0, Math.floor(Math.random() * valid.length));
      else if (kind === 2) {
        input = Buffer.from(valid);
        for (let k = 0; k < 1 + (i % 5); k++) input[Math.floor(Math.random() * input.length)] = Math.floor(Math.random() * 256);
      } else {
        input = Buffer.concat([frameHeaderBytes(Math.floor(Math.random() * 8), Math.floor(Math.random() * 3), 2 ** 20 + Math.floor(Math.random() * 2 ** 31)), randomBytes(64)]);
      }
      const parser = new FrameParser({
        data: (_id, c) => {
          expect(c.length).toBeGreaterThan(0);
          expect(c.length).toBeLessThanOrEqual(MAX_DATA_PAYLOAD);
        },
        frame: (type, _id, payload) => {
          frames++;
          if (type === FrameType.OPEN) {
            try {
              parseOpen(payload);
            } catch (err) {
              expect(err).toBeInstanceOf(MuxError);
            }
          }
        },
      });
      try {
        for (let off = 0; off < input.length; off += 7) parser.push(input.subarray(off, off + 7));
      } catch (err) {
        expect(err).toBeInstanceOf(MuxError);
        errors++;
      }
    }
    expect(frames).toBeGreaterThan(0);
    expect(errors).toBeGreaterThan(1000);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
  });
});

function frameHeaderBytes(type: number, id: number, len: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h[0] = type;
  h.writeUInt32BE(id, 1);
  h.writeUInt32BE(len >>> 0, 5);
  return h;
}

/** A relay-side and an agent-side Mux over a real loopback TCP connection. */
async function muxPair(): Promise<{ relay: Mux; agent: Mux; opened: Array<{ stream: MuxStream; info: OpenInfo }>; server: net.Server; relaySock: net.Socket; agentSock: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const relaySock = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const agentSock = await accepted;
  await new Promise((r) => relaySock.once('connect', r));
  const opened: Array<{ stream: MuxStream; info: OpenInfo }> = [];
  const relay = new Mux(relaySock, { role: 'relay' });
  const agent = new Mux(agentSock, { role: 'agent', onStream: (stream, i) => opened.push({ stream, info: i }) });
  cleanups.push(() => {
    relay.close(new Error('test over'));
    agent.close(new Error('test over'));
    server.close();
  });
  return { relay, agent, opened, server, relaySock, agentSock };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function until<T>(f: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Reads a stream to its end; resolves with its SHA-256 and length. */
function digest(s: MuxStream): Promise<{ sha: string; n: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    s.once('end', () => resolve({ sha: h.digest('hex'), n }));
    s.once('error', reject);
  });
}

function writeAll(s: MuxStream, data: Buffer, end = true): Promise<void> {
  return new Promise((resolve) => {
    let off = 0;
    const step = () => {
      while (off < data.length) {
        const piece = data.subarray(off, off + 100_000);
        off += piece.length;
        if (!s.write(piece)) return void s.once('drain', step);
      }
      if (end) s.end(() => resolve());
      else resolve();
    };
    step();
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('read buffers', () => {
  it('only a buffer a read filled alone is its own; releasing it empties every view of it (Node ≥ 21)', () => {
    const whole = Buffer.allocUnsafeSlow(64 * 1024);
    expect(ownsItsBuffer(whole)).toBe(true);
    expect(ownsItsBuffer(whole.subarray(0, 1000))).toBe(false); // the rest may be another read's
    expect(ownsItsBuffer(whole.subarray(1))).toBe(false);
    expect(ownsItsBuffer(Buffer.from('from the shared pool'))).toBe(false);
    expect(ownsItsBuffer(Buffer.allocUnsafeSlow(4096))).toBe(false);
    const view = whole.subarray(100, 200);
    releaseReadBuffer(whole.buffer);
    const canRelease = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
    expect([whole.length, view.length]).toEqual(canRelease ? [0, 0] : [64 * 1024, 100]);
  });
});

describe('mux streams over a real connection', () => {
  it('carries 8 MiB each way with SHA-256 intact; a reply written after the FIN arrives (half-close)', async () => {
    const { relay, opened } = await muxPair();
    const up = randomBytes(8 * 1024 * 1024);
    const down = randomBytes(8 * 1024 * 1024);
    const r = relay.open(info);
    const a = (await until(() => opened[0])).stream;
    expect(opened[0].info).toEqual(info);
    const agentGot = digest(a);
    await writeAll(r, up);
    expect(await agentGot).toEqual({ sha: sha(up), n: up.length });
    // The relay side has sent its FIN; the agent replies after it.
    const relayGot = digest(r);
    await writeAll(a, down);
    expect(await relayGot).toEqual({ sha: sha(down), n: down.length });
    await until(() => r.destroyed && a.destroyed);
    expect(relay.size + opened.length - 1).toBe(0);
  });

  it('a stream whose reader stops holds at most its window, and never stalls another stream', async () => {
    const { relay, agent, opened } = await muxPair();
    const slow = relay.open(info);
    const fast = relay.open(info);
    await until(() => opened.length === 2 && opened);
    const slowAgent = opened[0].stream;
    slowAgent.pause();
    // Write far more than a window into the paused stream: the writes stay pending.
    let writtenSlow = 0;
    const big = randomBytes(256 * 1024);
    for (let i = 0; i < 32; i++) if (slow.write(big, () => (writtenSlow += big.length)) === false && i > 8) break;
    const data = randomBytes(4 * 1024 * 1024);
    const fastGot = digest(opened[1].stream);
    await writeAll(fast, data);
    expect(await fastGot).toEqual({ sha: sha(data), n: data.length });
    expect(slowAgent.readableLength).toBeLessThanOrEqual(WINDOW_BYTES);
    expect(writtenSlow).toBeLessThanOrEqual(WINDOW_BYTES + 2 * big.length);
    // Reading again lets the rest through.
    const rest = digest(slowAgent);
    slow.end();
    slowAgent.resume();
    expect((await rest).n).toBeGreaterThan(0);
    expect(agent.closed).toBe(false);
  });

  it('destroy before the end resets the far side (ECONNRESET); a lost connection resets every stream', async () => {
    const { relay, opened, relaySock } = await muxPair();
    const one = relay.open(info);
    const a1 = (await until(() => opened[0])).stream;
    const reset1 = new Promise<NodeJS.ErrnoException>((r) => a1.once('error', r));
    one.write('partial');
    one.destroy();
    expect((await reset1).code).toBe('ECONNRESET');

    const two = relay.open(info);
    const three = relay.open(info);
    await until(() => opened.length === 3 && opened);
    const errs = [two, three, opened[1].stream, opened[2].stream].map((s) => new Promise<NodeJS.ErrnoException>((r) => s.once('error', r)));
    relaySock.destroy();
    for (const e of await Promise.all(errs)) expect(e.code).toBe('ECONNRESET');
  });

  it('a peer that breaks the protocol after the handshake is cut off, and its streams reset', async () => {
    const { agent, opened, relaySock, relay } = await muxPair();
    const s = relay.open(info);
    await until(() => opened[0]);
    const err = new Promise<NodeJS.ErrnoException>((r) => opened[0].stream.once('error', r));
    // Straight onto the socket: DATA beyond the window the agent gave.
    for (let i = 0; i <= WINDOW_BYTES / MAX_DATA_PAYLOAD; i++) relaySock.write(encodeFrame(FrameType.DATA, s.id, randomBytes(MAX_DATA_PAYLOAD)));
    expect((await err).code).toBe('ECONNRESET');
    await until(() => agent.closed);
  });
});
