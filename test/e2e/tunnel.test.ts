/**
 * relay + expose through the real CLI: bytes, half-close, the real client address, failures
 * that must reset (never a clean-looking end), reconnection, authentication and hostile input.
 */
import { describe, expect, it, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { cliStartedPerTest } from '../helpers/cli';
import { closedHow, connect, exchange, readAll, sha256, tcpServer, waitFor } from '../helpers/net';
import { encodeFrame, FrameReader, PROTOCOL_VERSION, type Message } from '../../src/tunnel/protocol';
import { makeTestCerts } from '../helpers/tls';
import { freePort, isRefused, startAgent, startRelay, TOKEN, waitForNth } from '../helpers/tunnel';

const start = cliStartedPerTest();
const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function echoServer() {
  const s = await tcpServer((sock) => sock.pipe(sock));
  servers.push(s);
  return s;
}

/** Reads everything, then (after the client's FIN) answers sha256(received) ‖ R ‖ sha256(R) with R random. */
async function hashingServer(replyBytes: number) {
  const s = await tcpServer((sock) => {
    const h = createHash('sha256');
    sock.on('data', (c) => h.update(c));
    sock.on('error', () => {});
    sock.on('end', () => {
      const r = randomBytes(replyBytes);
      sock.write(h.digest());
      sock.write(r);
      sock.end(createHash('sha256').update(r).digest());
    });
  });
  servers.push(s);
  return s;
}

/** Errors a client socket saw, and whether it ended cleanly. */
function watch(sock: net.Socket) {
  const state = { error: undefined as NodeJS.ErrnoException | undefined, ended: false, bytes: 0 };
  sock.on('data', (c: Buffer) => (state.bytes += c.length));
  sock.on('error', (e) => (state.error = e));
  sock.on('end', () => (state.ended = true));
  return state;
}

describe('relay and expose', () => {
  it('carries bytes both ways and the agent logs the real client address, bytes and time', async () => {
    const echo = await echoServer();
    const relay = await startRelay(start);
    const agent = await startAgent(start, echo.port, relay);
    const sock = await connect(agent.publicPort);
    const clientPort = sock.localPort;
    const reply = readAll(sock);
    sock.end('hello through the tunnel\n');
    expect((await reply).toString()).toBe('hello through the tunnel\n');
    const m = await agent.cli.waitForStderr(/closed 127\.0\.0\.1:(\d+) → 127\.0\.0\.1:\d+: 25 bytes in, 25 bytes out, [\d.]+ m?s \(eof\)/);
    expect(Number(m[1])).toBe(clientPort);
    expect(agent.cli.stderr()).toMatch(new RegExp(`connection from 127\\.0\\.0\\.1:${clientPort}`));
  });

  it('with -v both ends say who half-closed first, as forward does: the client, then LOCAL (the echo answering the FIN)', async () => {
    const echo = await echoServer();
    const relay = await startRelay(start);
    const agent = await startAgent(start, echo.port, relay);
    const sock = await connect(agent.publicPort);
    const client = `127\\.0\\.0\\.1:${sock.localPort}`;
    const reply = readAll(sock);
    sock.end('half\n');
    expect((await reply).toString()).toBe('half\n');
    await agent.cli.waitForStderr(new RegExp(`${client} closed its side\\n[^]*127\\.0\\.0\\.1:${echo.port} closed its side \\(for ${client}\\)`));
    await relay.cli.waitForStderr(new RegExp(`${client} closed its side\\n[^]*tunnel \\S+ closed its side \\(for ${client}\\)`));
  });

  it('writes the access log as JSON with --log-format json', async () => {
    const echo = await echoServer();
    const relay = await startRelay(start);
    const agent = start(['expose', String(echo.port), '--via', `127.0.0.1:${relay.port}`, '--token', TOKEN, '--fingerprint', relay.fingerprint!, '--log-format', 'json']);
    const pub = Number((await agent.waitForStderr(/"event":"public".*"port":(\d+)/))[1]);
    expect((await exchange(pub, 'abc')).toString()).toBe('abc');
    const line = (await agent.waitForStderr(/\{[^\n]*"event":"close"[^\n]*\}/))[0];
    const ev = JSON.parse(line);
    expect(ev).toMatchObject({ client: expect.stringMatching(/^127\.0\.0\.1:\d+$/), bytes_in: 3, bytes_out: 3, reason: 'eof' });
    expect(typeof ev.duration_ms).toBe('number');
  });

  it('200 concurrent clients × 1 MiB each way, SHA-256 checked, replies sent after the client FIN', async () => {
    const MiB = 1 << 20;
    const backend = await hashingServer(MiB);
    const relay = await startRelay(start);
    // A loaded machine (two cores, many tests) can stall an event loop for seconds: the default 5 s heartbeat.
    const agent = await startAgent(start, backend.port, relay, ['--heartbeat', '5']);
    const one = async () => {
      const sock = await connect(agent.publicPort);
      const payload = randomBytes(MiB);
      const got = readAll(sock, 60_000);
      sock.end(payload);
      const reply = await got;
      sock.destroy();
      expect(reply.length).toBe(32 + MiB + 32);
      expect(reply.subarray(0, 32).toString('hex')).toBe(sha256(payload));
      expect(sha256(reply.subarray(32, 32 + MiB))).toBe(reply.subarray(32 + MiB).toString('hex'));
    };
    try {
      await Promise.all(Array.from({ length: 200 }, one));
    } catch (err) {
      const notes = (t: string) => t.split('\n').filter((l) => !/connection from|\(eof\)/.test(l)).slice(-15).join('\n');
      throw new Error(`${(err as Error).message}\nrelay: ${notes(relay.cli.stderr())}\nagent: ${notes(agent.cli.stderr())}`);
    }
  }, 120_000);

  it.each(['v1', 'v2'] as const)('--proxy-protocol %s tells LOCAL the public client address', async (version) => {
    // A PROXY test backend: parses the header, answers with the source address it carried.
    const backend = await tcpServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (version === 'v1') {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) return;
          const [, proto, src, , sport] = buf.subarray(0, eol).toString().split(' ');
          sock.end(`${proto} ${src} ${sport}`);
        } else {
          if (buf.length < 16) return;
          expect(buf.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a');
          expect(buf[12]).toBe(0x21);
          expect(buf[13]).toBe(0x11);
          const src = [...buf.subarray(16, 20)].join('.');
          sock.end(`TCP4 ${src} ${buf.readUInt16BE(24)}`);
        }
      });
    });
    servers.push(backend);
    const relay = await startRelay(start);
    const agent = await startAgent(start, backend.port, relay, ['--proxy-protocol', version]);
    const sock = await connect(agent.publicPort);
    const reply = await readAll(sock);
    expect(reply.toString()).toBe(`TCP4 127.0.0.1 ${sock.localPort}`);
  });

  it.each([false, true])('bulk data through readers that stall now and then arrives intact both ways (insecure=%s)', async (insecure) => {
    // Bulk reads fill whole 64 KiB buffers, which the tunnel frees as soon as their bytes are
    // sent or written out (mux.ts): a reader that stalls makes the other end hold pieces of
    // them instead, which must then be left alone.
    const MiB = 1 << 20;
    const size = 8 * MiB;
    /** Reads `s` to its end, stopping for 20 ms after every MiB; resolves with what came. */
    const stallingRead = (s: net.Socket) =>
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let n = 0;
        let nextStall = MiB;
        const timer = setTimeout(() => reject(new Error(`stalling read timed out with ${n} bytes`)), 60_000);
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          n += c.length;
          if (n >= nextStall) {
            nextStall += MiB;
            s.pause();
            setTimeout(() => s.resume(), 20);
          }
        });
        s.once('end', () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks));
        });
      });
    const backend = await tcpServer((sock) => {
      sock.on('error', () => {});
      void stallingRead(sock).then((got) => {
        const r = randomBytes(size);
        sock.write(`${sha256(got)} ${got.length}\n`);
        sock.write(r);
        sock.end(createHash('sha256').update(r).digest());
      });
    });
    servers.push(backend);
    const relay = await startRelay(start, insecure ? ['--insecure'] : []);
    const agent = await startAgent(start, backend.port, relay, ['--heartbeat', '5']);
    const one = async () => {
      const sock = await connect(agent.publicPort);
      const payload = randomBytes(size);
      const got = stallingRead(sock);
      sock.end(payload);
      const reply = await got;
      sock.destroy();
      const line = reply.indexOf(10);
      expect(reply.subarray(0, line).toString()).toBe(`${sha256(payload)} ${size}`);
      const data = reply.subarray(line + 1, reply.length - 32);
      expect(data.length).toBe(size);
      expect(sha256(data)).toBe(reply.subarray(reply.length - 32).toString('hex'));
    };
    await Promise.all([one(), one(), one()]);
  }, 120_000);

  it('kill -9 the agent mid-transfer: the public client is reset, not ended, and the port is freed within 3 heartbeats', async () => {
    // LOCAL streams forever: the transfer is cut in the middle.
    const streamer = await tcpServer((sock) => {
      sock.on('error', () => {});
      const tick = setInterval(() => sock.write(Buffer.alloc(16 * 1024)), 5);
      sock.on('close', () => clearInterval(tick));
    });
    servers.push(streamer);
    const relay = await startRelay(start);
    const agent = await startAgent(start, streamer.port, relay);
    const sock = await connect(agent.publicPort);
    const state = watch(sock);
    await waitFor(() => state.bytes > 100_000, 10_000, 'bytes through the tunnel');
    const killedAt = Date.now();
    agent.cli.kill('SIGKILL');
    await waitFor(() => state.error !== undefined || state.ended, 5000, 'the client to learn the tunnel broke');
    expect(state.ended).toBe(false);
    expect(state.error?.code).toBe('ECONNRESET');
    await waitFor(() => /agent default .* gone/.test(relay.cli.stderr()), 3000, 'the relay to drop the agent within 3 heartbeats of 1 s');
    expect(Date.now() - killedAt).toBeLessThan(3000);
    expect(await isRefused(agent.publicPort)).toBe(true);
  });

  it('kill -9 the relay mid-transfer: LOCAL is reset; the relay restarted with the same certificate gets the agent back on the same port', async () => {
    const certs = await makeTestCerts();
    let localState: { error?: NodeJS.ErrnoException; ended: boolean } | undefined;
    const streamer = await tcpServer((sock) => {
      const st = { error: undefined as NodeJS.ErrnoException | undefined, ended: false };
      localState ??= st;
      sock.on('error', (e) => (st.error = e));
      sock.on('end', () => (st.ended = true));
      sock.on('data', () => {});
      const tick = setInterval(() => sock.write(Buffer.alloc(16 * 1024)), 5);
      sock.on('close', () => clearInterval(tick));
    });
    servers.push(streamer);
    const controlPort = await freePort();
    const tlsArgs = ['--cert', certs.cert, '--key', certs.key];
    const relay = await startRelay(start, tlsArgs, controlPort);
    const agent = await startAgent(start, streamer.port, relay);
    const sock = await connect(agent.publicPort);
    const state = watch(sock);
    // Both directions busy: the client sends too.
    const sending = setInterval(() => sock.writable && sock.write(Buffer.alloc(8 * 1024)), 5);
    await waitFor(() => state.bytes > 100_000 && localState !== undefined, 10_000, 'bytes through the tunnel');
    relay.cli.kill('SIGKILL');
    await relay.cli.exited;
    clearInterval(sending);
    await waitFor(() => localState!.error !== undefined || localState!.ended, 5000, 'LOCAL to learn the tunnel broke');
    expect(localState!.ended).toBe(false);
    expect(localState!.error?.code).toBe('ECONNRESET');
    const restartedAt = Date.now();
    const relay2 = await startRelay(start, tlsArgs, controlPort);
    const again = await waitForNth(agent.cli, /public: 127\.0\.0\.1:(\d+)/, 2, 10_000);
    expect(Number(again[1])).toBe(agent.publicPort);
    expect(Date.now() - restartedAt).toBeLessThan(10_000);
    expect(agent.cli.stderr()).toMatch(/reconnecting to 127\.0\.0\.1:\d+ in [\d.]+ m?s \(attempt 1\)/);
    // A new client is served through the new relay (LOCAL streams to it at once).
    const fresh = await connect(agent.publicPort);
    const freshState = watch(fresh);
    await waitFor(() => freshState.bytes > 10_000, 10_000, 'bytes from LOCAL after the restart');
    fresh.destroy();
    expect(relay2.cli.stderr()).toMatch(/agent default .* connected/);
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }, 60_000);

  it('a TLS agent that loses a working relay is not told to drop --insecure', async () => {
    const certs = await makeTestCerts();
    const tlsArgs = ['--cert', certs.cert, '--key', certs.key];
    const echo = await echoServer();
    const relay = await startRelay(start, tlsArgs);
    const agent = await startAgent(start, echo.port, relay);
    relay.cli.kill('SIGTERM');
    await relay.cli.exited;
    const [lost] = await agent.cli.waitForStderr(/lost the relay 127\.0\.0\.1:\d+: [^\n]*\n/);
    expect(lost).toMatch(/the peer closed the connection/);
    expect(lost).not.toMatch(/--insecure|a TLS relay\?/);
    fs.rmSync(certs.dir, { recursive: true, force: true });
  });

  it('a tls: LOCAL with a self-signed certificate: the agent says which flags trust it, and --local-ca / --local-insecure do', async () => {
    const certs = await makeTestCerts();
    const open = new Set<net.Socket>();
    const tlsEcho = tls.createServer({ cert: fs.readFileSync(certs.cert), key: fs.readFileSync(certs.key), allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    tlsEcho.on('connection', (s: net.Socket) => (open.add(s), s.on('close', () => open.delete(s))));
    await new Promise<void>((res) => tlsEcho.listen(0, '127.0.0.1', res));
    servers.push({ close: () => new Promise<void>((res) => (tlsEcho.close(() => res()), open.forEach((s) => s.destroy()))) });
    const local = `tls:127.0.0.1:${(tlsEcho.address() as net.AddressInfo).port}`;
    const relay = await startRelay(start);
    // Untrusted: the client is reset, and the hint names expose's own flags (--ca and --insecure are the relay's here).
    const plain = await startAgent(start, local, relay);
    const refused = await connect(plain.publicPort);
    expect((await closedHow(refused)).how).toBe('reset');
    const [hint] = await plain.cli.waitForStderr(/self-signed[^\n]*\n/);
    expect(hint).toMatch(/--local-ca FILE/);
    expect(hint).toMatch(/--local-insecure/);
    plain.cli.kill('SIGTERM');
    await plain.cli.exited;
    for (const trust of [['--local-ca', certs.cert], ['--local-insecure']]) {
      const agent = await startAgent(start, local, relay, trust);
      expect((await exchange(agent.publicPort, 'through a trusted LOCAL\n')).toString()).toBe('through a trusted LOCAL\n');
      agent.cli.kill('SIGTERM');
      const { stderr } = await agent.cli.exited;
      // The warning names the flag the user typed, not the relay's --insecure.
      if (trust[0] === '--local-insecure') expect(stderr).toMatch(/--local-insecure: not verifying the certificate of tls:/);
    }
    // They make sense only for a tls: LOCAL: one line, exit 2.
    const wrong = await start(['expose', '9', '--via', `127.0.0.1:${relay.port}`, '--token', TOKEN, '--fingerprint', relay.fingerprint!, '--local-insecure']).exited;
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/--local-insecure .*tls:/);
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }, 30_000);

  it('LOCAL refusing a client resets that client, and the agent stays up', async () => {
    const closed = await freePort();
    const relay = await startRelay(start);
    const agent = await startAgent(start, closed, relay);
    const sock = await connect(agent.publicPort);
    const state = watch(sock);
    await waitFor(() => state.error !== undefined || state.ended, 5000, 'the client to be refused');
    expect(state.error?.code).toBe('ECONNRESET');
    await agent.cli.waitForStderr(/refused upstream/);
    expect(agent.cli.child.exitCode).toBe(null);
  });
});

describe('authentication and hostile peers', () => {
  it('a wrong token is refused with a clear reason on both sides; the agent exits 1', async () => {
    const relay = await startRelay(start);
    const agent = await startAgent(start, 9, relay, ['--token', 'not-the-right-token-at-all'], false);
    const r = await agent.cli.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused the tunnel: wrong token/);
    await relay.cli.waitForStderr(/refused agent 127\.0\.0\.1:\d+: wrong token/);
  });

  it('a wrong token is one refusal in the relay log, not two (one JSON "refused" event per agent turned away)', async () => {
    const relay = await startRelay(start, ['--log-format', 'json']);
    const r = await startAgent(start, 9, relay, ['--token', 'not-the-right-token-at-all'], false).then((a) => a.cli.exited);
    expect(r.code).toBe(1);
    // Everything the relay logged about it is out once it has stopped.
    relay.cli.kill('SIGTERM');
    const stopped = await relay.cli.exited;
    const refusals = stopped.stderr.split('\n').filter((l) => l.includes('"event":"refused"'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/"reason":"wrong token"/);
  });

  it('a refusal reaches the agent even when more bytes follow its proof: the reason, then a FIN, never a reset', async () => {
    // Unread bytes in the relay's receive buffer turn an immediate close into a reset, which can
    // destroy the refusal before the agent reads it (it then took the loss for a network blip and
    // tried again, a wrong token counted once per attempt).
    const relay = await startRelay(start, ['--insecure']);
    const sock = await connect(relay.port);
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    const how = closedHow(sock);
    sock.write(encodeFrame({ type: 'hello', version: PROTOCOL_VERSION }));
    await waitFor(() => got.length > 0, 5000, 'the challenge');
    sock.write(Buffer.concat([encodeFrame({ type: 'auth', mac: '00'.repeat(32), heartbeatMs: 5000 }), Buffer.alloc(256 * 1024, 0x41)]));
    expect((await how).how).toBe('eof');
    const reader = new FrameReader();
    reader.append(Buffer.concat(got));
    const messages: Message[] = [];
    for (let m = reader.next(); m; m = reader.next()) messages.push(m);
    expect(messages.map((m) => m.type)).toEqual(['challenge', 'error']);
    expect((messages[1] as Extract<Message, { type: 'error' }>).message).toMatch(/wrong token/);
    sock.destroy();
  });

  it('a wrong fingerprint is refused by the agent before it says anything', async () => {
    const relay = await startRelay(start);
    const agent = start(['expose', '9', '--via', `127.0.0.1:${relay.port}`, '--token', TOKEN, '--fingerprint', 'ab'.repeat(32)]);
    const r = await agent.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/presented a certificate with SHA-256 fingerprint .* not the --fingerprint AB:AB/);
    expect(relay.cli.stderr()).not.toMatch(/connected: public/);
  });

  it('an expired relay certificate trusted with --ca is refused in words', async () => {
    const certs = await makeTestCerts();
    const relay = await startRelay(start, ['--cert', certs.expiredCert, '--key', certs.expiredKey]);
    const r = await start(['expose', '9', '--via', `localhost:${relay.port}`, '--token', TOKEN, '--ca', certs.expiredCert]).exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/certificate of the relay localhost:\d+ has expired/);
    fs.rmSync(certs.dir, { recursive: true, force: true });
  });

  it('without --fingerprint or --ca the ephemeral certificate is refused with the way out', async () => {
    const relay = await startRelay(start);
    const r = await start(['expose', '9', '--via', `127.0.0.1:${relay.port}`, '--token', TOKEN]).exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/self-signed — pin the fingerprint the relay printed with --fingerprint/);
  });

  it('a plain agent facing a TLS relay, and a TLS agent facing a plain one, are told why', async () => {
    const tlsRelay = await startRelay(start);
    const plain = await start(['expose', '9', '--via', `127.0.0.1:${tlsRelay.port}`, '--token', TOKEN, '--insecure', '--once']).exited;
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/--insecure: talking to the relay in plain text/);
    expect(plain.stderr).toMatch(/drop --insecure/);
    const plainRelay = await startRelay(start, ['--insecure']);
    expect(plainRelay.cli.stderr()).toMatch(/--insecure: the control channel and every tunnelled byte travel in plain text/);
    const tlsAgent = await start(['expose', '9', '--via', `127.0.0.1:${plainRelay.port}`, '--token', TOKEN, '--fingerprint', 'ab'.repeat(32), '--once']).exited;
    expect(tlsAgent.code).toBe(1);
    expect(tlsAgent.stderr).toMatch(/closed the connection during the TLS handshake: is the relay started with --insecure \(then give the agent --insecure too\)\?/);
    await plainRelay.cli.waitForStderr(/refused 127\.0\.0\.1:\d+: the peer speaks TLS on a plain control channel/);
  });

  it('a plain agent facing a TLS relay stops by itself: the relay refuses it in the tunnel framing, so it is not retried as a network failure', async () => {
    const tlsRelay = await startRelay(start);
    // No --once: an agent retries what looks like a network failure forever.
    const plain = await start(['expose', '9', '--via', `127.0.0.1:${tlsRelay.port}`, '--token', TOKEN, '--insecure']).exited;
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/refused the tunnel: this relay speaks TLS: drop --insecure and pin the relay with --fingerprint/);
    expect(plain.stderr).not.toMatch(/retrying|reconnecting/i);
    await tlsRelay.cli.waitForStderr(/refused 127\.0\.0\.1:\d+: plain text on the TLS control port/);
    // A TLS agent on the same relay is still served.
    const echo = await echoServer();
    const agent = await startAgent(start, echo.port, tlsRelay);
    expect((await exchange(agent.publicPort, 'tls still works')).toString()).toBe('tls still works');
  });

  it.each([false, true])('1,000 random byte sequences on the control port (insecure=%s): no crash, agents still served', async (insecure) => {
    const echo = await echoServer();
    const relay = await startRelay(start, insecure ? ['--insecure'] : []);
    const agent = await startAgent(start, echo.port, relay);
    let next = 0;
    const worker = async () => {
      while (next < 1000) {
        const i = next++;
        await new Promise<void>((resolve) => {
          const s = net.connect({ port: relay.port, host: '127.0.0.1' }, () => {
            // Some start like our frames (a small length), most are noise.
            const junk = randomBytes(4 + (i % 200));
            if (i % 3 === 0) junk.writeUInt32BE(1 + (i % 64), 0);
            s.end(junk);
          });
          s.on('error', () => {});
          s.on('data', () => {});
          s.on('close', () => resolve());
          s.setTimeout(3000, () => s.destroy());
        });
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    expect(relay.cli.child.exitCode).toBe(null);
    expect((await exchange(agent.publicPort, 'still here')).toString()).toBe('still here');
    expect(relay.cli.stderr()).not.toMatch(/TypeError|RangeError|at .*\.js:\d+/);
  }, 60_000);
});

describe('tokens and ports', () => {
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-tunnel-'));

  it('refuses an agent token file others can read, with the chmod that fixes it', async () => {
    const dir = tmp();
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, TOKEN + '\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const r = await start(['expose', '9', '--via', '127.0.0.1:9', '--token-file', file]).exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`can be read by other users \\(mode 0644\\).*chmod 600 ${file}`));
    fs.rmSync(dir, { recursive: true });
  });

  it('a token file gives each agent its ports, and is re-read live: a line added later lets a new agent in', async () => {
    const echo = await echoServer();
    const dir = tmp();
    const tokens = path.join(dir, 'tokens');
    const lo = await freePort();
    fs.writeFileSync(tokens, `alice ${TOKEN} ${lo}\n`, { mode: 0o600 });
    const relay = await startRelay(start, ['--token-file', tokens]);
    const alice = await startAgent(start, echo.port, relay);
    expect(alice.publicPort).toBe(lo);
    const bobToken = 'bob-token-0123456789abcdef';
    const bobFile = path.join(dir, 'bob');
    fs.writeFileSync(bobFile, bobToken + '\n', { mode: 0o600 });
    const early = await startAgent(start, echo.port, relay, ['--token-file', bobFile], false);
    expect((await early.cli.exited).code).toBe(1);
    fs.appendFileSync(tokens, `bob ${bobToken}\n`);
    const bob = await startAgent(start, echo.port, relay, ['--token-file', bobFile]);
    expect((await exchange(bob.publicPort, 'bob')).toString()).toBe('bob');
    // Revoking bob's line ends his tunnel within a heartbeat, and his port closes.
    fs.writeFileSync(tokens, `alice ${TOKEN} ${lo}\n`);
    await relay.cli.waitForStderr(/agent bob .* gone after .*: its token was removed from the token file/, 10_000);
    expect(await isRefused(bob.publicPort)).toBe(true);
    // alice asking for a port outside hers is refused in words.
    const wrong = await startAgent(start, echo.port, relay, ['--remote-port', String(lo === 65535 ? lo - 1 : lo + 1)], false);
    const r = await wrong.cli.exited;
    expect(r.stderr).toMatch(/port \d+ is not allowed here \(allowed: .*alice's/);
    fs.rmSync(dir, { recursive: true });
  });

  it('refuses impossible command lines with exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['relay', '--control', '7000'], /needs --token T or --token-file/],
      [['relay', '--token', TOKEN], /missing --control/],
      [['relay', '--control', '7000', '--token', 'short'], /at least 16 characters/],
      [['relay', '--control', '7000', '--token', TOKEN, '--ports', '9000-8000'], /not a port or LOW-HIGH range/],
      [['expose', '8080', '--token', TOKEN], /missing --via/],
      [['expose', '8080', '--via', 'r:7000', '--token', TOKEN, '--fingerprint', 'xyz'], /--fingerprint takes the relay's SHA-256 fingerprint/],
      [['expose', '8080', '--via', 'r:7000', '--token', TOKEN, '--insecure', '--fingerprint', 'ab'.repeat(32)], /contradict/],
      [['expose', 'udp:127.0.0.1:53', '--via', 'r:7000', '--token', TOKEN], /UDP tunnels are not supported/],
      [['expose', '8080', '--via', 'r:7000', '--token', TOKEN, '--bogus'], /unknown option --bogus/],
    ];
    for (const [args, re] of cases) {
      const r = await start(args).exited;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

