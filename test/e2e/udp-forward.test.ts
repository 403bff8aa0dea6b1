// UDP forward under a small open-file limit: each peer holds one upstream socket, so the peer
// table is fitted to the limit and, when full, forgets the peer silent the longest. 1,000 source
// ports used to exhaust the descriptors and leave a real client unanswered until --udp-idle.
import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import { cliStartedPerTest, sockcatCommand } from '../helpers/cli';
import { waitFor } from '../helpers/net';

const start = cliStartedPerTest();
const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

async function udpSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

/** Sends `text` from `s` to port and resolves with the first reply (rejects after timeoutMs). */
function ask(s: dgram.Socket, port: number, text: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${text} within ${timeoutMs} ms`)), timeoutMs);
    s.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.toString());
    });
    s.send(text, port, '127.0.0.1');
  });
}

describe('forward udp: under a small open-file limit', () => {
  it('fits its peers to the limit, forgets silent ones for newcomers, and a real client is answered', async () => {
    const echo = await udpSocket();
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    const echoPort = echo.address().port;
    const [cmd, pre] = sockcatCommand();
    // ulimit -n 200 as a user would type it; no re-run with a higher limit (as without CAP_SYS_RESOURCE).
    const fwd = start(['forward', '-v', 'udp:127.0.0.1:0', `udp:127.0.0.1:${echoPort}`], {
      command: ['sh', ['-c', 'ulimit -n 200 && exec "$@"', 'sh', cmd, ...pre]],
      env: { SOCKCAT_FDLIMIT_RELAUNCHED: '1' },
    });
    const port = Number((await fwd.waitForStderr(/listening on (?:udp:)?127\.0\.0\.1:(\d+)/))[1]);
    await fwd.waitForStderr(/open-file limit is 200: at most ~\d+ UDP peers/);
    // 1,000 source ports, one datagram each, as a scan or a spoofing flood would.
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => udpSocket()));
      for (const s of batch) s.send('x', port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 20));
      for (const s of batch) {
        s.close();
        sockets.splice(sockets.indexOf(s), 1);
      }
    }
    await waitFor(() => /peers at most|none silent/.test(fwd.stderr()), 10_000, 'the table to fill');
    // Past the 1 s of silence that makes a peer evictable, a real client gets its answer at once,
    // not after --udp-idle (60 s).
    await new Promise((r) => setTimeout(r, 1200));
    const client = await udpSocket();
    expect(await ask(client, port, 'are you there?', 5000)).toBe('are you there?');
    expect(fwd.stderr()).toMatch(/forgetting 127\.0\.0\.1:\d+ \(silent for \d+ ms\) to make room for 127\.0\.0\.1:\d+/);
    expect(fwd.stderr()).not.toMatch(/EMFILE|too many open files/i);
  }, 60_000);
});
