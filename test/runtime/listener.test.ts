/**
 * The listener runtime in process (serve()): what every listening mode gets from it — the closed
 * line with its byte counts, access control before any handshake, the connection limit, one-shot
 * accepting and drain — over every stream transport.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { serve, type ServeOptions } from '../../src/runtime/listener';
import type { Address } from '../../src/endpoints/index';
import { Logger } from '../../src/log';
import { AccessControl } from '../../src/access';
import { StreamFixtures, STREAM_KINDS } from '../helpers/streams';
import { closedHow, readAll, sleep, waitFor } from '../helpers/net';

const fx = new StreamFixtures();
beforeAll(() => fx.setUp());
afterAll(() => fx.tearDown());

interface Served {
  bound: Address;
  log(): string;
  stop(): void;
  done: Promise<{ accepted: number }>;
}

const running = new Set<Served>();
afterEach(async () => {
  for (const s of running) {
    s.stop();
    await s.done;
  }
  running.clear();
});

/** Runs serve() on a fresh address of `kind` with -v logging into a string. */
async function start(kind: (typeof STREAM_KINDS)[number], opts: Partial<ServeOptions> & Pick<ServeOptions, 'handle'>): Promise<Served> {
  const stderr = new PassThrough();
  let log = '';
  stderr.on('data', (c) => (log += c));
  const controller = new AbortController();
  let bound: Address | undefined;
  const done = serve({
    address: fx.listenAddress(kind),
    logger: new Logger({ stderr, verbose: true }),
    signal: controller.signal,
    onListening: (l) => (bound = l.address),
    ...opts,
  });
  done.catch(() => {});
  await waitFor(() => bound !== undefined, 5000, 'the listener');
  const s: Served = { bound: bound!, log: () => log, stop: () => controller.abort(), done };
  running.add(s);
  return s;
}

/** A handler that answers "got N" after the client's EOF, then ends. */
const answerAfterEof: ServeOptions['handle'] = (conn) =>
  new Promise((resolve) => {
    let n = 0;
    conn.stream.on('data', (c: Buffer) => (n += c.length));
    conn.stream.once('end', () => {
      const reply = `got ${n}`;
      conn.stream.end(reply, () => resolve({ received: n, sent: reply.length, reason: 'eof' }));
    });
  });

describe.each(STREAM_KINDS)('serve() over %s', (kind) => {
  it('hands each client to the handler and logs its open and closed lines with the byte counts', async () => {
    const s = await start(kind, { handle: answerAfterEof });
    const c = await fx.client(kind, s.bound);
    const reply = readAll(c);
    c.end('x'.repeat(1000));
    expect((await reply).toString()).toBe('got 1000');
    await waitFor(() => /closed .*1000 bytes in, 8 bytes out.*\(eof\)/.test(s.log()), 5000, 'the closed line');
    expect(s.log()).toMatch(/connection from /);
    expect(s.log()).toMatch(/listening on /);
  });

  it('--max-conns: a client past the limit is refused and logged, and a freed slot is used again', async () => {
    const release: Array<() => void> = [];
    const s = await start(kind, {
      maxConns: 1,
      handle: (conn, ctx) =>
        new Promise((resolve) => {
          conn.stream.resume();
          const end = () => {
            conn.stream.end();
            resolve({ received: 0, sent: 0, reason: 'done' });
          };
          release.push(end);
          ctx.signal.addEventListener('abort', end);
        }),
    });
    const first = await fx.client(kind, s.bound);
    await waitFor(() => release.length === 1, 5000, 'the first client in the handler');
    // The second one is closed by the runtime without reaching the handler.
    const second = fx.client(kind, s.bound).then((c) => readAll(c), () => Buffer.alloc(0));
    await second;
    await waitFor(() => /refused .*1 connections already open \(--max-conns\)/.test(s.log()), 5000, 'the refusal line');
    expect(release.length).toBe(1);
    release[0]();
    await readAll(first);
    await waitFor(() => /closed .*\(done\)/.test(s.log()), 5000, 'the first one closed');
    const third = await fx.client(kind, s.bound);
    await waitFor(() => release.length === 2, 5000, 'a third client served once the slot was free');
    release[1]();
    await readAll(third);
  });

  it('maxAccepts 1 (listen without -k): serve() returns once its one client is served', async () => {
    const s = await start(kind, { maxAccepts: 1, handle: answerAfterEof });
    const c = await fx.client(kind, s.bound);
    const reply = readAll(c);
    c.end('abc');
    expect((await reply).toString()).toBe('got 3');
    expect(await s.done).toEqual({ accepted: 1 });
    // Nothing listens any more.
    await expect(fx.client(kind, s.bound)).rejects.toThrow();
  });

  it('drain: on stop a live connection may finish within the drain timeout, and is aborted past it', async () => {
    const s = await start(kind, {
      drainTimeoutMs: 300,
      handle: (conn, ctx) =>
        new Promise((resolve) => {
          conn.stream.resume();
          // Never ends by itself: only the runtime's abort ends it.
          ctx.signal.addEventListener('abort', () => {
            conn.stream.destroy();
            resolve({ received: 0, sent: 0, reason: 'aborted' });
          });
        }),
    });
    const c = await fx.client(kind, s.bound);
    await waitFor(() => /connection from/.test(s.log()), 5000, 'the client in the handler');
    const t0 = Date.now();
    s.stop();
    await s.done;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(s.log()).toMatch(/waiting up to .* for 1 connection\(s\) to finish/);
    expect(s.log()).toMatch(/closed .*\(aborted\)/);
    c.destroy();
  });
});

describe.each(['tcp', 'tls'] as const)('serve() access control over %s', (kind) => {
  it('a denied client never reaches the handler, and over TLS not even the handshake', async () => {
    let handled = 0;
    let handshakes = 0;
    const s = await start(kind, {
      access: new AccessControl({ deny: ['127.0.0.2/32'] }),
      handle: (conn) => {
        handled++;
        return answerAfterEof(conn, { id: 0, signal: new AbortController().signal });
      },
    });
    if (kind === 'tls') {
      // A raw TLS client from the denied address: the server must close before any ServerHello.
      const port = (s.bound as { port: number }).port;
      const got = await new Promise<string>((resolve) => {
        const t = tls.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2', servername: 'localhost', ca: fs.readFileSync(fx.certs.cert) } as tls.ConnectionOptions);
        t.once('secureConnect', () => {
          handshakes++;
          resolve('handshake');
        });
        t.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        t.once('close', () => resolve('closed'));
      });
      expect(got).not.toBe('handshake');
    } else {
      const denied = net.connect({ port: (s.bound as { port: number }).port, host: '127.0.0.1', localAddress: '127.0.0.2', allowHalfOpen: true });
      denied.on('error', () => {});
      expect((await closedHow(denied)).how).toBeDefined();
    }
    await waitFor(() => /refused 127\.0\.0\.2:\d+: .*deny/.test(s.log()), 5000, 'the denied line');
    // Anyone else is served.
    const ok = await fx.client(kind, s.bound);
    const reply = readAll(ok);
    ok.end('hi');
    expect((await reply).toString()).toBe('got 2');
    expect(handled).toBe(1);
    expect(handshakes).toBe(0);
  });
});

describe('serve() access control over unix', () => {
  it('an allow list cannot include a unix-socket peer: it is refused, with the reason', async () => {
    let handled = 0;
    const s = await start('unix', {
      access: new AccessControl({ allow: ['127.0.0.1/32'] }),
      handle: async () => {
        handled++;
      },
    });
    const c = await fx.client('unix', s.bound);
    await readAll(c);
    await waitFor(() => /unix-socket clients have no IP address to match --allow/.test(s.log()), 5000, 'the refusal');
    await sleep(50);
    expect(handled).toBe(0);
  });
});
