/**
 * Every stream transport, for in-process tests that run the same behaviour over each of them
 * (`describe.each(STREAM_KINDS)`): a listen address built the way the CLI builds it, and a plain
 * Node client (net or tls) that reaches what was bound, half-open like the helpers' sockets.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { parseAddress, type Address } from '../../src/endpoints/index';
import { applyTransportOptions } from '../../src/commands/options';
import { makeTestCerts, type TestCerts } from './tls';
import { resetStream } from '../../src/relay';
import { PassThrough } from 'node:stream';
import type { ModeIO } from '../../src/io';

export type StreamKind = 'tcp' | 'tls' | 'unix';
export const STREAM_KINDS: StreamKind[] = ['tcp', 'tls', 'unix'];

/** Certificates and a socket directory, made once per test file (call in beforeAll, drop in afterAll). */
export class StreamFixtures {
  certs!: TestCerts;
  private dir = '';
  private count = 0;

  async setUp(): Promise<void> {
    this.certs = await makeTestCerts();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-streams-'));
  }

  tearDown(): void {
    if (this.certs) fs.rmSync(this.certs.dir, { recursive: true, force: true });
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** A fresh address to listen on (port 0, or a new socket path), as `listen` settles it. */
  listenAddress(kind: StreamKind): Address {
    if (kind === 'unix') return applyTransportOptions(parseAddress(`unix:${path.join(this.dir, `s${++this.count}.sock`)}`, 'listen'), {}, 'listen');
    const argv = kind === 'tls' ? { tls: true, cert: this.certs.cert, key: this.certs.key } : {};
    return applyTransportOptions(parseAddress('127.0.0.1:0', 'listen'), argv, 'listen');
  }

  /** The address a sockcat client would be given to reach `bound` (verifying TLS against the test CA). */
  connectAddress(kind: StreamKind, bound: Address): Address {
    if (kind === 'unix') return applyTransportOptions(parseAddress(`unix:${(bound as { path: string }).path}`, 'connect'), {}, 'connect');
    const port = (bound as { port: number }).port;
    const text = kind === 'tls' ? `tls:localhost:${port}` : `127.0.0.1:${port}`;
    return applyTransportOptions(parseAddress(text, 'connect'), kind === 'tls' ? { ca: this.certs.cert } : {}, 'connect');
  }

  /** A plain client connected to `bound`; errors after connecting are swallowed (tests look at the outcome). */
  client(kind: StreamKind, bound: Address, localAddress?: string): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      let s: net.Socket;
      const ready = () => {
        s.off('error', reject);
        s.on('error', () => {});
        resolve(s);
      };
      if (kind === 'unix') s = net.connect({ path: (bound as { path: string }).path, allowHalfOpen: true }, ready);
      else if (kind === 'tls') {
        const port = (bound as { port: number }).port;
        // Over a TCP socket of our own, so that reset() can reset it.
        const raw = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
        raw.once('error', reject);
        s = tls.connect({ socket: raw, servername: 'localhost', ca: fs.readFileSync(this.certs.cert), allowHalfOpen: true } as tls.ConnectionOptions, ready);
      } else s = net.connect({ port: (bound as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true, localAddress }, ready);
      s.once('error', reject);
    });
  }

  /** Resets a socket these helpers made (for TLS: the TCP socket under it); unix sockets have no reset and just close. */
  reset(s: net.Socket): void {
    resetStream(s);
  }

  /** A server of this transport that the test drives (for client-side modes); closed by the caller. */
  server(kind: StreamKind, onSocket: (s: net.Socket) => void): Promise<{ address: Address; close(): Promise<void> }> {
    return new Promise((resolve, reject) => {
      const handler = (s: net.Socket) => {
        s.on('error', () => {});
        onSocket(s);
      };
      const srv: net.Server =
        kind === 'tls'
          ? tls.createServer({ cert: fs.readFileSync(this.certs.cert), key: fs.readFileSync(this.certs.key), allowHalfOpen: true }, handler)
          : net.createServer({ allowHalfOpen: true }, handler);
      const close = () =>
        new Promise<void>((r) => {
          srv.close(() => r());
          (srv as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
        });
      srv.once('error', reject);
      const done = () => {
        const a = srv.address();
        const address =
          typeof a === 'string'
            ? parseAddress(`unix:${a}`, 'listen')
            : parseAddress(`127.0.0.1:${(a as net.AddressInfo).port}`, 'listen');
        resolve({ address, close });
      };
      if (kind === 'unix') srv.listen(path.join(this.dir, `c${++this.count}.sock`), done);
      else srv.listen(0, '127.0.0.1', done);
    });
  }
}

/** A mode's stdio owned by the test: stdin to write to, what reached stdout and stderr, and the stop. */
export function testIO() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  let log = '';
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c) => (log += c));
  const controller = new AbortController();
  const io: ModeIO = { stdin, stdout, stderr, signal: controller.signal, endStdout: true };
  return { io, stdin, out: () => Buffer.concat(out), log: () => log, controller };
}
