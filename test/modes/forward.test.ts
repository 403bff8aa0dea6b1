import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import { runForward, type ForwardOptions } from '../../src/modes/forward';
import { parseAddress } from '../../src/endpoints/index';
import { connect, readAll, tcpServer, randomBytes, sha256, sleep, waitFor } from '../helpers/net';

interface Running {
  port: number;
  log(): string;
  stop(): Promise<number>;
}

const running = new Set<Running>();
afterEach(async () => {
  for (const r of running) await r.stop();
  running.clear();
});

/** Starts forward in this process on 127.0.0.1:0 → 127.0.0.1:targetPort (or `host`), with -v. */
async function startForward(targetPort: number, extra: Partial<ForwardOptions> = {}, host = '127.0.0.1'): Promise<Running> {
  const stderr = new PassThrough();
  let log = '';
  stderr.on('data', (c) => (log += c));
  const controller = new AbortController();
  let port = 0;
  const done = runForward(
    {
      listen: parseAddress(host.includes(':') ? `[${host}]:0` : `${host}:0`, 'listen'),
      target: parseAddress(host.includes(':') ? `[${host}]:${targetPort}` : `${host}:${targetPort}`, 'connect'),
      verbose: true,
      drainTimeoutMs: 0,
      onListening: (l) => (port = (l.address as { port: number }).port),
      ...extra,
    },
    { stdin: new PassThrough(), stdout: new PassThrough(), stderr, signal: controller.signal, endStdout: true },
  );
  await waitFor(() => port !== 0, 5000, 'forward to listen');
  let stopped: Promise<number> | undefined;
  const r: Running = {
    port,
    log: () => log,
    stop: () => {
      controller.abort();
      return (stopped ??= done);
    },
  };
  running.add(r);
  return r;
}

/** A port on which nothing listens (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = await tcpServer(() => {});
  await srv.close();
  return srv.port;
}

/** Resolves with what a socket received until it ended (EOF or close), and the error code if it was reset. */
function outcome(s: net.Socket): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), error: e.code }));
    // The helpers' sockets are half-open: EOF alone does not close them.
    s.once('end', () => resolve({ data: Buffer.concat(chunks) }));
    s.once('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}

describe('forward (in process)', () => {
  it('moves 16 MiB intact each way at once', async () => {
    const down = randomBytes(16 << 20);
    let backendGot!: Promise<Buffer>;
    const backend = await tcpServer((s) => {
      backendGot = readAll(s, 30_000);
      s.end(down);
    });
    const fwd = await startForward(backend.port);
    const up = randomBytes(16 << 20);
    const client = await connect(fwd.port);
    const clientGot = readAll(client, 30_000);
    client.end(up);
    expect(sha256(await clientGot)).toBe(sha256(down));
    await waitFor(() => backendGot !== undefined);
    expect(sha256(await backendGot)).toBe(sha256(up));
    await waitFor(() => /closed 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: 16777216 bytes in, 16777216 bytes out, .* \(eof\)/.test(fwd.log()), 5000, 'close line');
    await backend.close();
  });

  it('passes the client FIN on and still delivers the reply sent after it', async () => {
    const backend = await tcpServer(async (s) => {
      const q = await readAll(s); // the client's FIN reached the backend as EOF
      await sleep(100);
      s.end(`answer to ${q}`);
    });
    const fwd = await startForward(backend.port);
    const client = await connect(fwd.port);
    const got = readAll(client);
    client.end('question');
    expect((await got).toString()).toBe('answer to question');
    await backend.close();
    expect(fwd.port).toBeGreaterThan(0);
  });

  it('passes the backend FIN on while the client keeps sending', async () => {
    let backendGot!: Promise<Buffer>;
    const backend = await tcpServer((s) => {
      backendGot = readAll(s);
      s.end('banner\n');
    });
    const fwd = await startForward(backend.port);
    const client = await connect(fwd.port);
    const clientGot = readAll(client);
    expect((await clientGot).toString()).toBe('banner\n');
    client.end('sent after the backend closed its side');
    await waitFor(() => backendGot !== undefined);
    expect((await backendGot).toString()).toBe('sent after the backend closed its side');
    await backend.close();
    expect(fwd.log()).toMatch(/\(eof\)/);
  });

  it('passes a backend reset on to the client as a reset', async () => {
    const backend = await tcpServer((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const fwd = await startForward(backend.port);
    const client = await connect(fwd.port);
    const end = outcome(client);
    client.write('hello');
    expect((await end).error).toBe('ECONNRESET');
    await waitFor(() => /\(reset\)/.test(fwd.log()), 5000, 'reset logged');
    await backend.close();
  });

  it('passes a client reset on to the backend as a reset', async () => {
    let backendEnd!: Promise<{ data: Buffer; error?: string }>;
    const backend = await tcpServer((s) => (backendEnd = outcome(s)));
    const fwd = await startForward(backend.port);
    const client = await connect(fwd.port);
    client.write('x');
    await waitFor(() => backendEnd !== undefined);
    await sleep(50);
    client.resetAndDestroy();
    expect((await backendEnd).error).toBe('ECONNRESET');
    await backend.close();
    expect(fwd.log()).toMatch(/\(reset\)/);
  });

  it('resets a client at once when the upstream refuses, and keeps serving', async () => {
    const port = await closedPort();
    const fwd = await startForward(port);
    for (let i = 0; i < 3; i++) {
      const client = await connect(fwd.port);
      expect((await outcome(client)).error).toBe('ECONNRESET');
    }
    expect(fwd.log().match(/\(refused upstream\)/g)?.length).toBe(3);
    // The upstream comes back on the same port: the next client goes through.
    // The client leaves with a destroy(), which forward passes on to this backend as a reset.
    const backend = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => {}).end('up again'));
    await new Promise<void>((resolve) => backend.listen(port, '127.0.0.1', () => resolve()));
    const client = await connect(fwd.port);
    expect((await readAll(client)).toString()).toBe('up again');
    client.destroy();
    backend.close();
  });

  it('sends a PROXY v1 line before the client bytes', async () => {
    let got!: Promise<Buffer>;
    const backend = await tcpServer((s) => (got = readAll(s)));
    const fwd = await startForward(backend.port, { proxyProtocol: 'v1' });
    const client = await connect(fwd.port);
    client.end('payload');
    await waitFor(() => got !== undefined);
    const text = (await got).toString('latin1');
    expect(text).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${client.localPort} ${fwd.port}\r\npayload`);
    await backend.close();
  });

  it('sends a PROXY v2 header a backend can parse', async () => {
    let got!: Promise<Buffer>;
    const backend = await tcpServer((s) => (got = readAll(s)));
    const fwd = await startForward(backend.port, { proxyProtocol: 'v2' });
    const client = await connect(fwd.port);
    client.end('payload');
    await waitFor(() => got !== undefined);
    const parsed = parseProxyV2(await got);
    expect(parsed).toEqual({ src: '127.0.0.1', dst: '127.0.0.1', sport: client.localPort, dport: fwd.port, rest: 'payload' });
    await backend.close();
  });

  it('refuses clients past --max-conns and frees the slot when one leaves', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const fwd = await startForward(backend.port, { maxConns: 2 });
    const a = await connect(fwd.port);
    const b = await connect(fwd.port);
    await waitFor(() => (fwd.log().match(/connection from/g) ?? []).length === 2);
    const c = await connect(fwd.port);
    expect((await outcome(c)).data.length).toBe(0);
    expect(fwd.log()).toMatch(/refused 127\.0\.0\.1:\d+: 2 connections already open \(--max-conns\)/);
    const aGone = outcome(a);
    a.end();
    await aGone;
    await waitFor(() => /closed .*\(eof\)/.test(fwd.log()), 5000, 'a closed');
    const d = await connect(fwd.port);
    const dGot = readAll(d);
    d.end('echo me');
    expect((await dGot).toString()).toBe('echo me');
    b.destroy();
    await backend.close();
  });

  it('applies --deny and a live-reloaded --allow-file', async () => {
    const backend = await tcpServer((s) => s.end('welcome'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-fwd-'));
    const file = path.join(dir, 'allow.txt');
    fs.writeFileSync(file, '# trusted\n10.0.0.0/8\n');
    const fwd = await startForward(backend.port, { access: { allowFile: file } });
    const first = await connect(fwd.port);
    expect((await outcome(first)).data.length).toBe(0);
    expect(fwd.log()).toMatch(/refused 127\.0\.0\.1:\d+: not in the allow list/);
    fs.writeFileSync(file, '# trusted\n10.0.0.0/8\n127.0.0.1\n');
    await waitFor(() => /allow file loaded: 2 entries/.test(fwd.log()), 8_000, 'allow file reload').catch((e) => { throw new Error(e.message + fwd.log()); });
    const second = await connect(fwd.port);
    expect((await readAll(second)).toString()).toBe('welcome');
    await fwd.stop();

    const denying = await startForward(backend.port, { access: { allow: ['127.0.0.0/8'], deny: ['127.0.0.1'] } });
    const third = await connect(denying.port);
    expect((await outcome(third)).data.length).toBe(0);
    expect(denying.log()).toMatch(/refused 127\.0\.0\.1:\d+: denied by --deny 127\.0\.0\.1/);
    fs.rmSync(dir, { recursive: true });
    await backend.close();
  });

  it('resets the client when the upstream does not answer within --connect-timeout', async () => {
    // A listener whose accept queue is full (backlog 0, never accepting) drops new SYNs: connect hangs.
    const script = [
      'import socket, time',
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
      'port = s.getsockname()[1]; fill = []',
      'for i in range(3):',
      '    c = socket.socket(); c.setblocking(False)',
      "    try: c.connect(('127.0.0.1', port))",
      '    except BlockingIOError: pass',
      '    fill.append(c)',
      'time.sleep(0.3); print(port, flush=True); time.sleep(20)',
    ].join('\n');
    const py = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve) => py.stdout.once('data', (c) => resolve(Number(String(c).trim()))));
      const fwd = await startForward(port, { connectTimeoutMs: 300 });
      const client = await connect(fwd.port);
      expect((await outcome(client)).error).toBe('ECONNRESET');
      await waitFor(() => /\(upstream timeout\)/.test(fwd.log()), 5000, 'timeout logged');
      expect(fwd.log()).toMatch(/timed out after 0\.3 s/);
    } finally {
      py.kill();
    }
  });

  it('forwards over IPv6 and sends TCP6 in the PROXY header', async () => {
    const got: Buffer[] = [];
    const backend = await tcpServer((s) => readAll(s).then((b) => got.push(b)), '::1');
    for (const version of ['v1', 'v2'] as const) {
      const fwd = await startForward(backend.port, { proxyProtocol: version }, '::1');
      const client = await connect(fwd.port, '::1');
      client.end('six');
      await waitFor(() => got.length > (version === 'v1' ? 0 : 1));
      const data = got[got.length - 1];
      if (version === 'v1') {
        expect(data.toString()).toBe(`PROXY TCP6 ::1 ::1 ${client.localPort} ${fwd.port}\r\nsix`);
      } else {
        expect(data[13]).toBe(0x21);
        expect(data.readUInt16BE(14)).toBe(36);
        expect(data.subarray(16, 32).toString('hex')).toBe('00000000000000000000000000000001');
        expect(data.readUInt16BE(48)).toBe(client.localPort);
        expect(data.readUInt16BE(50)).toBe(fwd.port);
        expect(data.subarray(52).toString()).toBe('six');
      }
      await fwd.stop();
    }
    await backend.close();
  });

  it('hex-dumps both directions with -x', async () => {
    const backend = await tcpServer((s) => s.end('OK'));
    const fwd = await startForward(backend.port, { hex: true });
    const client = await connect(fwd.port);
    const got = readAll(client);
    client.end('hi');
    expect((await got).toString()).toBe('OK');
    await waitFor(() => /4f 4b/.test(fwd.log()) && /68 69/.test(fwd.log()), 5000, 'hex dump');
    expect(fwd.log()).toMatch(/< 127\.0\.0\.1:\d+ 00000000  68 69 .*\|hi\|/);
    expect(fwd.log()).toMatch(/> 127\.0\.0\.1:\d+ 00000000  4f 4b .*\|OK\|/);
    await backend.close();
  });

  it('closes a silent connection after --idle-timeout', async () => {
    const backend = await tcpServer(() => {});
    const fwd = await startForward(backend.port, { idleTimeoutMs: 200 });
    const client = await connect(fwd.port);
    await outcome(client);
    await waitFor(() => /\(idle\)/.test(fwd.log()), 5000, 'idle logged');
    await backend.close();
  });
});

/** A minimal PROXY v2 parser, written from the specification, as a backend would. */
function parseProxyV2(buf: Buffer) {
  expect(buf.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a');
  expect(buf[12] >> 4).toBe(2);
  expect(buf[12] & 0xf).toBe(1);
  expect(buf[13]).toBe(0x11);
  const len = buf.readUInt16BE(14);
  const block = buf.subarray(16, 16 + len);
  return {
    src: [...block.subarray(0, 4)].join('.'),
    dst: [...block.subarray(4, 8)].join('.'),
    sport: block.readUInt16BE(8),
    dport: block.readUInt16BE(10),
    rest: buf.subarray(16 + len).toString(),
  };
}
