/**
 * `listen` in process (runListen with test-owned stdio), over every stream transport: the
 * one-shot server, --echo, and -k's shared stdin (fan-out, half-close, a client that does not read).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type net from 'node:net';
import { runListen, type ListenOptions } from '../../src/modes/listen';
import type { Address } from '../../src/endpoints/index';
import { StreamFixtures, STREAM_KINDS, testIO, type StreamKind } from '../helpers/streams';
import { closedHow, randomBytes, readAll, sha256, waitFor } from '../helpers/net';

const fx = new StreamFixtures();
beforeAll(() => fx.setUp());
afterAll(() => fx.tearDown());

/** Starts listen on a fresh address of `kind` with test stdio; resolves once it is bound. */
async function startListen(kind: StreamKind, extra: Partial<ListenOptions> = {}) {
  const t = testIO();
  let bound: Address | undefined;
  const done = runListen({ address: fx.listenAddress(kind), verbose: true, onListening: (l) => (bound = l.address), ...extra }, t.io);
  done.catch(() => {});
  await waitFor(() => bound !== undefined, 5000, 'listen to bind');
  return { ...t, bound: bound!, done };
}

describe.each(['tcp', 'tls'] as const)('runListen over %s: resets (unix sockets have none)', (kind) => {
  it('one-shot: a client that resets makes it a failure (exit 1)', async () => {
    const l = await startListen(kind);
    const c = await fx.client(kind, l.bound);
    c.write('x');
    await waitFor(() => l.out().length === 1, 5000, 'the byte');
    fx.reset(c);
    expect(await l.done).toBe(1);
  });
});

describe.each(STREAM_KINDS)('runListen over %s', (kind) => {
  it('one-shot: the client\'s bytes go to stdout, stdin to the client, and both half-closes are honoured (exit 0)', async () => {
    const l = await startListen(kind);
    const c = await fx.client(kind, l.bound);
    const fromServer = readAll(c);
    c.end('from the client');
    await waitFor(() => l.out().toString() === 'from the client', 5000, 'the client\'s bytes on stdout');
    // The client has finished sending; the server may still answer.
    l.stdin.end('late answer');
    expect((await fromServer).toString()).toBe('late answer');
    expect(await l.done).toBe(0);
    // Nobody else is served after the first client.
    await expect(fx.client(kind, l.bound)).rejects.toThrow();
  });

  it('-k --max-queue smaller than one stdin read: clients that keep up are not cut off', async () => {
    const l = await startListen(kind, { keepOpen: true, maxQueue: 1024 });
    const c = await fx.client(kind, l.bound);
    await waitFor(() => /connection from/.test(l.log()), 5000, 'the client');
    const got = readAll(c, 20_000);
    const data = randomBytes(1 << 20);
    for (let at = 0; at < data.length; at += 64 << 10) l.stdin.write(data.subarray(at, at + (64 << 10)));
    l.stdin.end();
    expect(sha256(await got)).toBe(sha256(data));
    expect(l.log()).not.toMatch(/not reading/);
    l.controller.abort();
    expect(await l.done).toBe(0);
  });

  it('--echo: several clients at once, each gets its own bytes back', async () => {
    const l = await startListen(kind, { echo: true });
    const payloads = [0, 1, 2].map(() => randomBytes(256 << 10));
    const replies = await Promise.all(
      payloads.map(async (p) => {
        const c = await fx.client(kind, l.bound);
        const r = readAll(c, 20_000);
        c.end(p);
        return r;
      }),
    );
    replies.forEach((r, i) => expect(sha256(r)).toBe(sha256(payloads[i])));
    l.controller.abort();
    expect(await l.done).toBe(0);
  });

  it('-k: stdin goes to every client, stdin EOF half-closes each, and every client\'s bytes reach stdout', async () => {
    const l = await startListen(kind, { keepOpen: true });
    const a = await fx.client(kind, l.bound);
    const b = await fx.client(kind, l.bound);
    await waitFor(() => (l.log().match(/connection from/g) ?? []).length === 2, 5000, 'both clients');
    const ra = readAll(a);
    const rb = readAll(b);
    l.stdin.end('to everyone\n');
    expect((await ra).toString()).toBe('to everyone\n');
    expect((await rb).toString()).toBe('to everyone\n');
    a.end('A');
    b.end('B');
    await waitFor(() => l.out().length === 2, 5000, 'both clients\' bytes');
    expect(l.out().toString().split('').sort().join('')).toBe('AB');
    l.controller.abort();
    expect(await l.done).toBe(0);
  });

  it('-k: a client that does not read is cut off with a reset past --max-queue, the others get everything', async () => {
    const l = await startListen(kind, { keepOpen: true, maxQueue: 256 << 10 });
    const reader = await fx.client(kind, l.bound);
    const stuck = await fx.client(kind, l.bound);
    stuck.pause();
    await waitFor(() => (l.log().match(/connection from/g) ?? []).length === 2, 5000, 'both clients');
    const stuckEnd = closedHow(stuck as net.Socket, 30_000);
    stuck.pause();
    const got = readAll(reader, 30_000);
    const data = randomBytes(8 << 20);
    // In 64 KiB reads, as stdin from a pipe comes.
    for (let at = 0; at < data.length; at += 64 << 10) l.stdin.write(data.subarray(at, at + (64 << 10)));
    l.stdin.end();
    expect(sha256(await got)).toBe(sha256(data));
    await waitFor(() => /not reading, more than 262144 bytes of stdin queued/.test(l.log()), 10_000, 'the cut-off line');
    stuck.resume();
    expect((await stuckEnd).how).toBe('reset');
    l.controller.abort();
    expect(await l.done).toBe(0);
  });
});
