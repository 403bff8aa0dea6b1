// Seconds flags and Node's timer limit: a delay above 2,147,483 s used to fire after 1 ms (or,
// for timers that re-arm, every millisecond). Every seconds flag is settled in one place.
import { describe, it, expect } from 'vitest';
import { runCli, cliStartedPerTest } from '../helpers/cli';
import { exchange, sleep } from '../helpers/net';

describe('seconds flags past the timer limit', () => {
  it.each([
    [['connect', '-w', '2147484', '127.0.0.1:9']],
    [['connect', '--idle-timeout', '2147484', '127.0.0.1:9']],
    [['connect', '-u', '--quit-after', '1e7', '127.0.0.1:9']],
    [['listen', '--echo', '--drain-timeout', '3000000', '0']],
    [['forward', '--connect-timeout', '2147484', '0', '127.0.0.1:9']],
    [['forward', '--close-wait', '99999999', '0', '127.0.0.1:9']],
    [['forward', '-u', '--udp-idle', '2147484', 'udp:0', 'udp:127.0.0.1:9']],
    [['exec', '--idle-timeout', '2147484', '0', '--', 'cat']],
  ])('%j is refused with exit 2 and one line', async (args) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: --[a-z-]+ takes at most 2147483 seconds \(about 24\.8 days, the longest timer Node keeps\)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  const start = cliStartedPerTest();
  it('the largest accepted value waits, instead of firing at once', async () => {
    const srv = start(['listen', '--echo', '-v', '--idle-timeout', '2147483', '0']);
    const port = await srv.listeningPort();
    await sleep(300);
    expect((await exchange(port, 'still open')).toString()).toBe('still open');
    expect(srv.stderr()).not.toMatch(/idle|TimeoutOverflowWarning/);
  });
});
