/**
 * The datagram side of the runtime in process: StdioDatagrams, the pump between stdio and a UDP
 * socket that listen -u and connect -u share (one stdin read at a time, a bounded stdout), and
 * PeerTable's admission (the limit, eviction of the peer silent the longest).
 */
import { describe, it, expect } from 'vitest';
import { PassThrough, Writable } from 'node:stream';
import type { RemoteInfo } from 'node:dgram';
import { Logger } from '../../src/log';
import { PeerTable, StdioDatagrams, STDOUT_BACKLOG_LIMIT } from '../../src/runtime/datagram';
import { sleep, waitFor } from '../helpers/net';

function logSink(): { logger: Logger; log: () => string } {
  const stderr = new PassThrough();
  let log = '';
  stderr.on('data', (c) => (log += c));
  return { logger: new Logger({ stderr, verbose: true }), log: () => log };
}

/** A stdout that takes writes but never flushes them: what a terminal paused with Ctrl-S looks like. */
function stuckStdout(): Writable {
  return new Writable({ highWaterMark: 1024, write: () => {} });
}

const rinfo = (port: number, address = '127.0.0.1'): RemoteInfo => ({ address, port, family: 'IPv4', size: 0 });

describe('StdioDatagrams', () => {
  it('reads stdin one chunk at a time: the next read waits until the last one was sent', async () => {
    const stdin = new PassThrough();
    const { logger } = logSink();
    const sent: string[] = [];
    let inFlight = 0;
    let most = 0;
    const pump = new StdioDatagrams({
      stdin,
      stdout: new PassThrough(),
      logger,
      async send(chunk) {
        inFlight++;
        most = Math.max(most, inFlight);
        await sleep(5);
        sent.push(chunk.toString());
        inFlight--;
        return true;
      },
      onEnd: () => {},
    });
    pump.read();
    for (let i = 0; i < 20; i++) stdin.write(`line ${i}\n`);
    await waitFor(() => sent.join('').split('\n').length > 20, 5000, 'every line sent');
    expect(sent.join('')).toBe(Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(''));
    expect(most).toBe(1);
    pump.stop();
  });

  it('does not read before read() (listen -u has no one to send to before a peer speaks)', async () => {
    const stdin = new PassThrough();
    const { logger } = logSink();
    const sent: Buffer[] = [];
    const pump = new StdioDatagrams({ stdin, stdout: new PassThrough(), logger, send: async (c) => (sent.push(c), true), onEnd: () => {} });
    stdin.write('early\n');
    await sleep(50);
    expect(sent).toHaveLength(0);
    pump.read();
    await waitFor(() => sent.length === 1, 5000, 'the early line, once read() is called');
    expect(sent[0].toString()).toBe('early\n');
    pump.stop();
  });

  it('stops reading when send says so, and reports stdin EOF once', async () => {
    const stdin = new PassThrough();
    const { logger } = logSink();
    let calls = 0;
    let ends = 0;
    const pump = new StdioDatagrams({ stdin, stdout: new PassThrough(), logger, send: async () => (calls++, false), onEnd: () => ends++ });
    pump.read();
    stdin.write('one');
    await waitFor(() => calls === 1, 5000, 'the first send');
    stdin.write('two');
    stdin.end();
    await sleep(50);
    expect(calls).toBe(1);
    expect(ends).toBe(0);

    const stdin2 = new PassThrough();
    const pump2 = new StdioDatagrams({ stdin: stdin2, stdout: new PassThrough(), logger, send: async () => true, onEnd: () => ends++ });
    pump2.read();
    stdin2.end('last');
    await waitFor(() => ends === 1, 5000, 'the end of stdin');
    pump.stop();
    pump2.stop();
  });

  it('-C: LF becomes CRLF', async () => {
    const stdin = new PassThrough();
    const { logger } = logSink();
    const sent: string[] = [];
    const pump = new StdioDatagrams({ stdin, stdout: new PassThrough(), logger, crlf: true, send: async (c) => (sent.push(c.toString()), true), onEnd: () => {} });
    pump.read();
    stdin.write('INVITE\n');
    await waitFor(() => sent.join('') === 'INVITE\r\n', 5000, 'the CRLF line');
    pump.stop();
  });

  it('a stdout that does not drain: datagrams past the backlog limit are dropped, memory stays bounded, one warning and a total', () => {
    const stdout = stuckStdout();
    const { logger, log } = logSink();
    const pump = new StdioDatagrams({ stdin: new PassThrough(), stdout, logger, send: async () => true, onEnd: () => {} });
    const datagram = Buffer.alloc(60_000, 0x61);
    let delivered = 0;
    const n = Math.ceil((2 * STDOUT_BACKLOG_LIMIT) / datagram.length);
    for (let i = 0; i < n; i++) if (pump.deliver(datagram)) delivered++;
    expect(stdout.writableLength).toBeLessThanOrEqual(STDOUT_BACKLOG_LIMIT + datagram.length);
    expect(delivered).toBeLessThan(n);
    expect(pump.dropped).toBe(n - delivered);
    pump.stop();
    expect(log().match(/stdout is not keeping up/g)).toHaveLength(1);
    expect(log()).toContain(`${n - delivered} datagram(s) dropped`);
  });
});

describe('PeerTable', () => {
  it('refuses a newcomer when full, once per address; with eviction, forgets the peer silent the longest', async () => {
    const { logger, log } = logSink();
    const released: string[] = [];
    const full = new PeerTable<null>({ logger, maxPeers: 2, create: () => null, release: (p) => released.push(p.label) });
    expect(full.admit(rinfo(1))).toBeDefined();
    expect(full.admit(rinfo(2))).toBeDefined();
    expect(full.admit(rinfo(3))).toBeUndefined();
    expect(full.admit(rinfo(3))).toBeUndefined();
    expect(log().match(/refused 127\.0\.0\.1:3/g)).toHaveLength(1);
    full.close();
    expect(released.sort()).toEqual(['127.0.0.1:1', '127.0.0.1:2']);

    const evicting = new PeerTable<null>({ logger, maxPeers: 2, evictSilentAfterMs: 20, create: () => null });
    evicting.admit(rinfo(1));
    evicting.admit(rinfo(2));
    await sleep(40);
    evicting.admit(rinfo(1)); // 1 spoke again: 2 is now the one silent the longest
    expect(evicting.admit(rinfo(3))).toBeDefined();
    expect([...evicting.peers.keys()].sort()).toEqual(['127.0.0.1:1', '127.0.0.1:3']);
    expect(log()).toMatch(/forgetting 127\.0\.0\.1:2 .* to make room for 127\.0\.0\.1:3/);
    evicting.close();
  });
});
