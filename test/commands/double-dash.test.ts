// Arguments after `--`: only exec takes a program there. Other modes dropped them silently
// (`listen 9000 -- junk` ran, `connect -- 127.0.0.1:1` said "missing address"); now refused.
import { describe, it, expect } from 'vitest';
import { runCli, cliStartedPerTest } from '../helpers/cli';
import { exchange } from '../helpers/net';

describe('arguments after --', () => {
  it.each([
    [['connect', '--', '127.0.0.1:1'], /^sockcat: unexpected argument '127\.0\.0\.1:1' after -- \(only exec takes a program there; connect's own arguments go without --\)/],
    [['listen', '0', '--', 'junk'], /^sockcat: unexpected argument 'junk' after -- \(only exec takes a program there; listen's own arguments go without --\)/],
    [['forward', '0', '--', '127.0.0.1:1'], /^sockcat: unexpected argument '127\.0\.0\.1:1' after --/],
    [['broadcast', '0', '--', 'a', 'b'], /^sockcat: unexpected arguments 'a', 'b' after --/],
  ])('%j is refused with exit 2 and one line, not ignored', async (args, message) => {
    const r = await runCli(args, { timeoutMs: 8000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  const start = cliStartedPerTest();
  it('exec still runs the program given after --', async () => {
    const srv = start(['exec', '-v', '0', '--', 'cat']);
    const port = await srv.listeningPort();
    expect((await exchange(port, 'through cat')).toString()).toBe('through cat');
  });
});
