/**
 * The same behaviours over every stream transport, through the real CLI: what works over TCP
 * must work over TLS and unix sockets with no per-mode code.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCli, type RunningCli } from '../helpers/cli';
import { makeTestCerts, type TestCerts } from '../helpers/tls';
import { randomBytes, sha256, waitFor } from '../helpers/net';
import { listenAddress, parseAddress, type Address } from '../../src/endpoints/index';
import { applyTransportOptions } from '../../src/commands/options';

let certs: TestCerts;
let sockDir: string;
let socketCount = 0;

beforeAll(async () => {
  certs = await makeTestCerts();
  sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-unix-'));
});
afterAll(() => {
  fs.rmSync(certs.dir, { recursive: true, force: true });
  fs.rmSync(sockDir, { recursive: true, force: true });
});

type Kind = 'tcp' | 'tls' | 'unix';

/** How to listen on a fresh address of this transport, and how a client reaches it once listening. */
function endpoint(kind: Kind) {
  const sock = path.join(sockDir, `s${++socketCount}.sock`);
  return {
    listen: (): string[] => {
      if (kind === 'tcp') return ['0'];
      if (kind === 'tls') return ['--tls', '--cert', certs.cert, '--key', certs.key, '0'];
      return [`unix:${sock}`];
    },
    target: async (server: RunningCli): Promise<string[]> => {
      if (kind === 'unix') {
        await server.waitForStderr(/listening on unix:/);
        return [`unix:${sock}`];
      }
      const port = await server.listeningPort();
      return kind === 'tls' ? ['--ca', certs.cert, `tls:localhost:${port}`] : [`127.0.0.1:${port}`];
    },
  };
}

/** The address `listen ARGS` would open, built the way the CLI builds it. */
function listenAddressOf(kind: Kind, args: string[]): Address {
  const text = args[args.length - 1];
  const argv = kind === 'tls' ? { tls: true, cert: certs.cert, key: certs.key } : {};
  return applyTransportOptions(parseAddress(text, 'listen'), argv, 'listen');
}

const portOf = (a: Address) => ('port' in a ? a.port : 0);

describe.each(['tcp', 'tls', 'unix'] as Kind[])('over %s', (kind) => {
  it('one-shot listen/connect: each side gets the other one\'s bytes and both exit 0', async () => {
    const ep = endpoint(kind);
    const server = startCli(['listen', '-v', ...ep.listen()]);
    const client = startCli(['connect', ...(await ep.target(server))]);
    client.child.stdin!.write('hello from the client\n');
    await waitFor(() => server.stdout().toString() === 'hello from the client\n', 10_000, 'the client\'s line at the server');
    // The server answers and ends; the client prints the answer and exits on the server's EOF.
    server.child.stdin!.end('hello from the server\n');
    const [s, c] = await Promise.all([server.exited, client.exited]);
    expect(c.stdout.toString()).toBe('hello from the server\n');
    expect([s.code, c.code]).toEqual([0, 0]);
  });

  it('half-close: a reply written after the client\'s EOF still arrives (transport listener + connect client)', async () => {
    // The server is the transport's own listener, in-process: it answers only after the client's EOF.
    const ep = endpoint(kind);
    const address = listenAddressOf(kind, ep.listen());
    let sawEof = false;
    const listener = await listenAddress(address, {
      onConnection: (conn) => {
        const got: Buffer[] = [];
        conn.stream.on('data', (c: Buffer) => got.push(c));
        conn.stream.on('end', () => {
          sawEof = true;
          setTimeout(() => conn.stream.end(`answer to ${Buffer.concat(got)}`), 100);
        });
      },
    });
    const target = await ep.target({ listeningPort: async () => portOf(listener.address), waitForStderr: async () => [] } as unknown as RunningCli);
    const c = await startCli(['connect', ...target], { stdin: 'question' }).exited;
    expect(sawEof).toBe(true);
    expect(c.stdout.toString()).toBe('answer to question');
    expect(c.code).toBe(0);
    await listener.close();
  });

  it('moves 1 MiB through an echo server intact', async () => {
    const ep = endpoint(kind);
    const server = startCli(['listen', '--echo', '-v', ...ep.listen()]);
    const payload = randomBytes(1 << 20);
    const client = startCli(['connect', ...(await ep.target(server))], { stdin: payload });
    const c = await client.exited;
    expect(c.stdout.length).toBe(payload.length);
    expect(sha256(c.stdout)).toBe(sha256(payload));
    expect(c.code).toBe(0);
    server.kill();
    await server.exited;
  });

  it('echo serves several clients at once, each getting its own bytes back', async () => {
    const ep = endpoint(kind);
    const server = startCli(['listen', '--echo', '-v', ...ep.listen()]);
    const target = await ep.target(server);
    const payloads = [0, 1, 2, 3].map((i) => `client ${i}: ${randomBytes(2000).toString('hex')}\n`);
    const results = await Promise.all(payloads.map((p) => startCli(['connect', ...target], { stdin: p }).exited));
    results.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(payloads[i]);
      expect(r.code).toBe(0);
    });
    server.kill();
    expect((await server.exited).code).toBe(0);
  });
});
