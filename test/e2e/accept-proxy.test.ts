import { describe, it, expect } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { cliStartedPerTest, runCli } from '../helpers/cli';
import { connect, readAll, tcpServer } from '../helpers/net';
import { decodeProxyHeader, encodeProxyV1, encodeProxyV2 } from '../../src/proxy-protocol';
import { startAgent, startRelay } from '../helpers/tunnel';

const sockcat = cliStartedPerTest();

const client = { address: '203.0.113.5', port: 44321 };
const front = { address: '198.51.100.1', port: 443 };

/** A backend that reads the PROXY header forward sends on, then echoes the rest. */
async function headerBackend() {
  const headers: ReturnType<typeof decodeProxyHeader>[] = [];
  const srv = await tcpServer((s) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const r = decodeProxyHeader(buf);
      if (r.status === 'incomplete') return;
      headers.push(r);
      s.off('data', onData);
      if (r.status === 'done') {
        s.write(buf.subarray(r.length));
        s.pipe(s);
      } else s.destroy();
    };
    s.on('data', onData);
  });
  return { ...srv, headers };
}

/** Sends a header then `text`, half-closes, resolves with the reply (empty when closed). */
async function through(port: number, header: Buffer, text: string): Promise<string> {
  const s = await connect(port);
  s.on('error', () => {});
  const got = readAll(s).catch(() => Buffer.alloc(0));
  s.end(Buffer.concat([header, Buffer.from(text)]));
  return (await got).toString();
}

describe('--accept-proxy-protocol (CLI)', () => {
  it.each(['v1', 'v2'] as const)('forward takes the client from a %s header: logs it and sends it on in its own --proxy-protocol header', async (v) => {
    const backend = await headerBackend();
    const fwd = sockcat(['forward', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '--proxy-protocol', 'v2', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    const header = v === 'v1' ? encodeProxyV1(client, front) : encodeProxyV2(client, front);
    expect(await through(port, header, 'hello')).toBe('hello');
    expect(backend.headers).toEqual([{ status: 'done', length: 28, header: { version: 2, command: 'proxy', source: client, destination: front } }]);
    await fwd.waitForStderr(/connection from 203\.0\.113\.5:44321 \(via 127\.0\.0\.1:\d+\)/);
    await fwd.waitForStderr(/closed 203\.0\.113\.5:44321 → .*5 bytes in, 5 bytes out/);
    await backend.close();
  });

  it('--allow and --deny act on the address from the header, not the proxy\'s', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const fwd = sockcat(['forward', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.0/8', '--allow', '203.0.113.0/24', '--deny', '203.0.113.66', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    expect(await through(port, encodeProxyV1(client, front), 'in')).toBe('in');
    expect(await through(port, encodeProxyV1({ address: '192.0.2.1', port: 1 }, front), 'out')).toBe('');
    await fwd.waitForStderr(/refused 192\.0\.2\.1:1: not in the allow list/);
    expect(await through(port, encodeProxyV2({ address: '203.0.113.66', port: 2 }, front), 'out')).toBe('');
    await fwd.waitForStderr(/refused 203\.0\.113\.66:2: denied by --deny/);
    await backend.close();
  });

  it('closes and logs a connection from an untrusted source, one without a header, and one whose header is too slow', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const untrusting = sockcat(['forward', '-v', '--accept-proxy-protocol', '--trusted-proxy', '10.1.2.3', '0', `127.0.0.1:${backend.port}`]);
    const p1 = await untrusting.listeningPort();
    expect(await through(p1, encodeProxyV1(client, front), 'x')).toBe('');
    await untrusting.waitForStderr(/refused 127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+ is not a --trusted-proxy/);

    const fwd = sockcat(['forward', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '0', `127.0.0.1:${backend.port}`]);
    const p2 = await fwd.listeningPort();
    expect(await through(p2, Buffer.alloc(0), 'no header here\r\n')).toBe('');
    await fwd.waitForStderr(/bad PROXY header from 127\.0\.0\.1:\d+: no PROXY header/);
    const slow = await connect(p2);
    slow.write('PROXY TCP4 ');
    slow.on('error', () => {});
    // Closed by sockcat: the client reads EOF (or a reset) without having sent the rest.
    expect((await readAll(slow).catch(() => Buffer.alloc(0))).length).toBe(0);
    await fwd.waitForStderr(/no complete PROXY header within 3 s/);
    // The relay keeps serving well-behaved proxies.
    expect(await through(p2, encodeProxyV1(client, front), 'still')).toBe('still');
    await backend.close();
  });

  it('exec hands the header\'s address to the program as SOCKCAT_PEER_ADDR/PORT', async () => {
    const ex = sockcat(['exec', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '0', '--sh', 'echo "$SOCKCAT_PEER_ADDR $SOCKCAT_PEER_PORT"']);
    const port = await ex.listeningPort();
    expect(await through(port, encodeProxyV2({ address: '2001:db8::5', port: 999 }, { address: '2001:db8::1', port: 22 }), '')).toBe('2001:db8::5 999\n');
  });

  it('broadcast shows the header\'s address in the room', async () => {
    const room = sockcat(['broadcast', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '0']);
    const port = await room.listeningPort();
    const a = await connect(port);
    a.write(encodeProxyV1({ address: '192.0.2.10', port: 5000 }, front));
    const b = await connect(port);
    b.write(encodeProxyV1({ address: '192.0.2.11', port: 6000 }, front));
    await room.waitForStderr(/192\.0\.2\.10:5000/);
    await room.waitForStderr(/192\.0\.2\.11:6000/);
    a.destroy();
    b.destroy();
  });

  it('listen -k --echo answers through the header too', async () => {
    const l = sockcat(['listen', '-k', '--echo', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '0']);
    const port = await l.listeningPort();
    expect(await through(port, encodeProxyV1(client, front), 'echo me')).toBe('echo me');
    await l.waitForStderr(/connection from 203\.0\.113\.5:44321/);
  });

  it('relay: the client a header names is the one the agent logs, --deny checks and LOCAL is told of', async () => {
    const backend = await headerBackend();
    const r = await startRelay(sockcat, ['--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '--deny', '203.0.113.66']);
    const agent = await startAgent(sockcat, backend.port, r, ['--proxy-protocol', 'v1']);
    for (const v of ['v1', 'v2'] as const) {
      const header = v === 'v1' ? encodeProxyV1(client, front) : encodeProxyV2(client, front);
      expect(await through(agent.publicPort, header, `hello ${v}`)).toBe(`hello ${v}`);
    }
    // LOCAL's own header, from the agent, names the client the balancer named.
    expect(backend.headers.map((h) => (h.status === 'done' && h.header.command === 'proxy' ? `${h.header.source.address}:${h.header.source.port}` : h.status))).toEqual(['203.0.113.5:44321', '203.0.113.5:44321']);
    await agent.cli.waitForStderr(/connection from 203\.0\.113\.5:44321/);
    // --deny acts on the named client; a source that is not a trusted proxy is closed.
    expect(await through(agent.publicPort, encodeProxyV1({ address: '203.0.113.66', port: 1 }, front), 'no')).toBe('');
    await r.cli.waitForStderr(/refused 203\.0\.113\.66:1: denied by --deny/);
    const direct = net.connect({ port: agent.publicPort, host: '127.0.0.1', localAddress: '127.0.0.2' });
    direct.on('error', () => {});
    const closed = readAll(direct).catch(() => Buffer.alloc(0));
    direct.end(encodeProxyV1(client, front));
    expect((await closed).length).toBe(0);
    await r.cli.waitForStderr(/127\.0\.0\.2:\d+ is not a --trusted-proxy/);
    expect(backend.headers).toHaveLength(2);
  });

  it.each([false, true])('under --tls: the header comes first, then the TLS handshake (header and ClientHello in one segment: %s)', async (together) => {
    const l = sockcat(['listen', '-k', '--echo', '--tls', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '--allow', '203.0.113.0/24', '0']);
    const port = await l.listeningPort();
    const raw = await connect(port);
    const header = encodeProxyV2(client, front);
    let secure: tls.TLSSocket;
    if (together) {
      // A duplex in front of the socket: the ClientHello leaves in the same write as the header,
      // so sockcat reads both at once and must hand the ClientHello back to the TLS layer.
      let first = true;
      const joined = new Duplex({
        write(chunk: Buffer, _enc, cb) {
          raw.write(first ? Buffer.concat([header, chunk]) : chunk, cb);
          first = false;
        },
        final(cb) {
          raw.end(cb);
        },
        read() {
          raw.resume();
        },
      });
      raw.on('data', (d) => joined.push(d));
      raw.on('end', () => joined.push(null));
      secure = tls.connect({ socket: joined, rejectUnauthorized: false });
    } else {
      raw.write(header);
      secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    }
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const got = new Promise<string>((resolve) => {
      let text = '';
      secure.on('data', (d) => (text += d));
      secure.on('end', () => resolve(text));
    });
    secure.end('over tls');
    expect(await got).toBe('over tls');
    await l.waitForStderr(/connection from 203\.0\.113\.5:44321 \(via 127\.0\.0\.1:\d+\)/);
  });

  it.each([
    [['forward', '--accept-proxy-protocol', '0', '127.0.0.1:1'], /needs --trusted-proxy/],
    [['forward', '--trusted-proxy', '10.0.0.1', '0', '127.0.0.1:1'], /add --accept-proxy-protocol/],
    [['forward', '--accept-proxy-protocol', '--trusted-proxy', '10.0.0.300', '0', '127.0.0.1:1'], /--trusted-proxy: '10\.0\.0\.300' is not an IP address/],
    [['forward', '--accept-proxy-protocol', '--trusted-proxy', '10.0.0.1', 'udp:0', 'udp:127.0.0.1:1'], /applies to TCP listeners, not to UDP/],
    [['listen', '-u', '-k', '--accept-proxy-protocol', '--trusted-proxy', '10.0.0.1', '0'], /applies to TCP listeners, not to UDP/],
    [['listen', '-k', '--accept-proxy-protocol', '--trusted-proxy', '10.0.0.1', 'unix:/tmp/sockcat-never.sock'], /works on TCP and TLS listeners/],
  ])('refuses %j with exit 2 and one line', async (args, message) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

void net;
