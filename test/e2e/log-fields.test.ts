/** JSON log fields name the ends of a connection (client, server), never the relay's internal a/b. */
import { describe, it, expect } from 'vitest';
import { runCli } from '../helpers/cli';
import { tcpServer } from '../helpers/net';

describe('--log-format json', () => {
  it("connect's eof events say which end closed: server or client", async () => {
    const srv = await tcpServer((s) => {
      s.on('data', () => {});
      s.on('end', () => s.end('bye\n'));
    });
    const r = await runCli(['connect', '--log-format', 'json', `127.0.0.1:${srv.port}`], { stdin: 'hi\n' });
    await srv.close();
    expect(r.code).toBe(0);
    const eofs = r.stderr.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'eof');
    expect(eofs.map((e) => e.side)).toEqual(['client', 'server']);
  });
});
