/**
 * `connect` in process (runConnect with test-owned stdio), over every stream transport: half-close
 * both ways, exit codes from how the session ended, a signal's stop as a reset.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type net from 'node:net';
import { runConnect, type ConnectOptions } from '../../src/modes/connect';
import { StreamFixtures, STREAM_KINDS, testIO, type StreamKind } from '../helpers/streams';
import { closedHow, randomBytes, readAll, sha256, waitFor } from '../helpers/net';

const fx = new StreamFixtures();
beforeAll(() => fx.setUp());
afterAll(() => fx.tearDown());

/** Runs connect to `server` with test stdio; `stdin` is left open unless the test ends it. */
function connectTo(kind: StreamKind, server: { address: import('../../src/endpoints/index').Address }, extra: Partial<ConnectOptions> = {}) {
  const t = testIO();
  return { ...t, done: runConnect({ address: fx.connectAddress(kind, server.address), verbose: true, ...extra }, t.io) };
}

describe.each(['tcp', 'tls'] as const)('runConnect over %s: resets (unix sockets have none)', (kind) => {
  it('the server\'s reset is a failure: exit 1, with the reason on stderr', async () => {
    const server = await fx.server(kind, (s) => {
      s.once('data', () => fx.reset(s));
    });
    const c = connectTo(kind, server);
    c.stdin.write('hello');
    expect(await c.done).toBe(1);
    expect(c.log()).toMatch(/reset/);
    await server.close();
  });
});

describe.each(STREAM_KINDS)('runConnect over %s', (kind) => {
  it('stdin EOF half-closes, and the reply the server sends after it still reaches stdout (exit 0)', async () => {
    let serverSawEof = false;
    const server = await fx.server(kind, (s) => {
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      s.once('end', () => {
        serverSawEof = true;
        setTimeout(() => s.end(`answer to ${Buffer.concat(got)}`), 50);
      });
    });
    const c = connectTo(kind, server);
    c.stdin.end('question');
    expect(await c.done).toBe(0);
    expect(serverSawEof).toBe(true);
    expect(c.out().toString()).toBe('answer to question');
    expect(c.log()).toMatch(/closed .*: 18 bytes in, 8 bytes out, .*\(eof\)/);
    await server.close();
  });

  it('moves 4 MiB each way at once, intact', async () => {
    const up = randomBytes(4 << 20);
    const down = randomBytes(4 << 20);
    let got!: Promise<Buffer>;
    const server = await fx.server(kind, (s) => {
      got = readAll(s as net.Socket, 30_000);
      s.end(down);
    });
    const c = connectTo(kind, server);
    c.stdin.end(up);
    expect(await c.done).toBe(0);
    expect(sha256(await got)).toBe(sha256(up));
    expect(sha256(c.out())).toBe(sha256(down));
    await server.close();
  });

  it('stopped by SIGINT mid-session: exit 130, and the server sees a reset, not a clean end', async () => {
    let serverSide!: Promise<{ how: string }>;
    const server = await fx.server(kind, (s) => {
      serverSide = closedHow(s as net.Socket);
    });
    const c = connectTo(kind, server);
    c.stdin.write('partial');
    await waitFor(() => serverSide !== undefined, 5000, 'the server to accept');
    await new Promise((r) => setTimeout(r, 50));
    c.controller.abort('SIGINT');
    expect(await c.done).toBe(130);
    expect((await serverSide).how).toBe('reset');
    await server.close();
  });

  it('nobody there: the connection error rejects with one worded line', async () => {
    const server = await fx.server(kind, () => {});
    await server.close();
    const c = connectTo(kind, server, { connectTimeoutMs: 5000 });
    await expect(c.done).rejects.toThrow(/refused|no such|does not exist|ENOENT|not listening|nothing/i);
  });
});
