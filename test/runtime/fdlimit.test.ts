import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { readFdLimits, clientCapacity, fdsNeeded, ensureFdLimit, selfCommand, runWithFdLimit, FdExhaustionWatch, openFdCount } from '../../src/runtime/fdlimit';
import { Logger } from '../../src/log';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             unlimited            unlimited            processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

function logger(verbose = false) {
  const err = new PassThrough();
  let text = '';
  err.on('data', (c) => (text += c));
  return { logger: new Logger({ stderr: err, verbose }), text: () => text };
}

describe('open-file limit', () => {
  it('reads the soft and hard limit from /proc/self/limits', () => {
    expect(readFdLimits(LIMITS)).toEqual({ soft: 1024, hard: 524288 });
    expect(readFdLimits(LIMITS.replace('524288 ', 'unlimited'))).toEqual({ soft: 1024, hard: Infinity });
    expect(readFdLimits('nothing here')).toBeUndefined();
    const own = readFdLimits();
    expect(own?.soft).toBeGreaterThan(0);
  });

  it('counts two descriptors per forwarded client, plus what is in use and a reserve', () => {
    expect(clientCapacity(1024, 2, 10)).toBe(Math.floor((1024 - 10 - 32) / 2));
    expect(clientCapacity(20, 2, 10)).toBe(0);
    expect(fdsNeeded(10_000, 2, 10)).toBe(20_042);
    expect(clientCapacity(Infinity, 2)).toBe(Infinity);
  });

  it('keeps --max-conns when the limit holds it', async () => {
    const log = logger();
    const r = await ensureFdLimit({ maxConns: 100, defaultMaxConns: 10_000, fdsPerClient: 2, logger: log.logger, relaunch: false, limits: { soft: 5000, hard: 5000 } });
    expect(r).toEqual({ relaunched: false, maxConns: 100 });
    expect(log.text()).toBe('');
  });

  it('caps the client count and warns in one line when the limit is too low', async () => {
    const log = logger();
    const r = await ensureFdLimit({ maxConns: undefined, defaultMaxConns: 10_000, fdsPerClient: 2, logger: log.logger, relaunch: false, limits: { soft: 1024, hard: 1024 } });
    expect(r.relaunched).toBe(false);
    const max = (r as { maxConns: number }).maxConns;
    expect(max).toBeGreaterThan(400);
    expect(max).toBeLessThan(500);
    expect(log.text()).toMatch(new RegExp(`^sockcat: \\d\\d:\\d\\d:\\d\\d\\.\\d{3} open-file limit is 1024: at most ~${max} clients; raise it with ulimit -n\\n$`));
  });

  it('says nothing, even with -v, when the limit only trims the default by a few clients', async () => {
    const log = logger(true);
    const r = await ensureFdLimit({ maxConns: undefined, defaultMaxConns: 10_000, fdsPerClient: 2, logger: log.logger, relaunch: false, limits: { soft: 20_000, hard: 20_000 } });
    expect((r as { maxConns: number }).maxConns).toBeLessThan(10_000);
    expect(log.text()).toBe('');
  });

  it('tells a default cut by half on a generous limit only with -v (exec: 4 descriptors per client)', async () => {
    const opts = { maxConns: undefined, defaultMaxConns: 10_000, fdsPerClient: 4, relaunch: false, limits: { soft: 20_000, hard: 20_000 } };
    const quiet = logger();
    const r = await ensureFdLimit({ ...opts, logger: quiet.logger });
    expect((r as { maxConns: number }).maxConns).toBeLessThan(5000);
    expect(quiet.text()).toBe('');
    const verbose = logger(true);
    await ensureFdLimit({ ...opts, logger: verbose.logger });
    expect(verbose.text()).toMatch(/open-file limit is 20000: at most ~\d+ clients; raise it with ulimit -n\n$/);
  });

  it('names an explicit --max-conns it cannot honour', async () => {
    const log = logger();
    await ensureFdLimit({ maxConns: 5000, defaultMaxConns: 10_000, fdsPerClient: 2, logger: log.logger, relaunch: false, limits: { soft: 4096, hard: 4096 } });
    expect(log.text()).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} open-file limit is 4096: at most ~\d+ clients \(not 5000\); raise it with ulimit -n\n$/);
  });

  it('re-runs sockcat as node plus its script when not a standalone binary', () => {
    const cmd = selfCommand();
    expect(cmd.file).toBe(process.execPath);
    expect(cmd.args).toContain(process.argv[1]);
  });

  it('runs a command under the limit it was given and returns its exit code', async () => {
    // Lowering is always allowed, so this checks the shell, the exec and the exit code here.
    const check = "const m = require('fs').readFileSync('/proc/self/limits', 'utf8').match(/Max open files\\s+(\\d+)/); process.exit(m[1] === '500' ? 7 : 3)";
    expect(await runWithFdLimit(500, 500, { file: process.execPath, args: ['-e', check] })).toBe(7);
  });

  it('passes SIGTERM on to the command it runs', async () => {
    const done = runWithFdLimit(500, 500, { file: process.execPath, args: ['-e', 'setTimeout(() => process.exit(0), 20000)'] });
    await new Promise((r) => setTimeout(r, 300));
    process.emit('SIGTERM', 'SIGTERM');
    expect(await done).toBe(143);
  });
});

describe('FdExhaustionWatch (the backstop for descriptors outside --max-conns\'s count)', () => {
  it('says once per interval that the limit is reached, and nothing while there is room', async () => {
    const said: string[] = [];
    // A soft limit just above what this process holds: it is "reached".
    const soft = openFdCount() + 2;
    const watch = new FdExhaustionWatch((text) => said.push(text), 200, soft);
    watch.check(1); // fewer clients than a quarter of the limit: not even looked at
    expect(said).toEqual([]);
    watch.check(soft);
    watch.check(soft);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(new RegExp(`^open-file limit ${soft} reached \\(\\d+ in use, ${soft} clients\\): new clients are turned away until some leave; raise it with ulimit -n$`));
    await new Promise((r) => setTimeout(r, 250));
    watch.check(soft);
    expect(said).toHaveLength(2);
    // Plenty of room: silent.
    const roomy = new FdExhaustionWatch((text) => said.push(text), 0, openFdCount() + 1000);
    roomy.check(900);
    expect(said).toHaveLength(2);
  });
});
