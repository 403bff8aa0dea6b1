/** AccessControl: allow/deny rules, the prefix table, and the live-reloaded --allow-file, unit and through the CLI. */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import ipaddr from 'ipaddr.js';
import { AccessControl, PrefixTable, parseRule } from '../src/access';
import { waitFor, exchange, readAll } from './helpers/net';
import { cliStartedPerTest, runCli, sockcatCommand } from './helpers/cli';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-access-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Resolves with what the server sent before closing, and whether it closed at all. */
async function triesToEcho(port: number): Promise<string> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  const got = readAll(s);
  s.end('ping');
  return (await got).toString();
}

describe('AccessControl --allow-file', () => {
  it('notices a change made right after it started, before its first look at the file', async () => {
    const file = path.join(tempDir(), 'allow.txt');
    fs.writeFileSync(file, '10.0.0.0/8\n');
    const access = new AccessControl({ allowFile: file, pollMs: 50 });
    try {
      // Same tick as the start: a watcher whose baseline is taken later would never see this change.
      fs.writeFileSync(file, '10.0.0.0/8\n127.0.0.1\n');
      await access.ready;
      await waitFor(() => access.check('127.0.0.1').ok, 5000, 'the reload');
    } finally {
      access.close();
    }
  });

  it('lets nobody in before the file has been read', () => {
    const file = path.join(tempDir(), 'allow.txt');
    fs.writeFileSync(file, '127.0.0.1\n');
    const access = new AccessControl({ allowFile: file });
    expect(access.check('127.0.0.1').ok).toBe(false);
    access.close();
  });
});

describe('the prefix table', () => {
  const table = (rules: string[]) => {
    const t = new PrefixTable();
    for (const r of rules) t.add(parseRule(r));
    return t;
  };
  const find = (t: PrefixTable, ip: string) => t.find(ipaddr.process(ip));

  it('matches addresses and ranges of every length, IPv4 and IPv6, and IPv4-mapped forms', () => {
    const t = table(['10.0.0.0/8', '192.168.1.7', '0.0.0.0/0', '2001:db8::/32', '::1', '::ffff:172.16.0.0/108', '10.1.2.3/8']);
    expect(find(t, '10.255.1.1')).toBe('10.0.0.0/8');
    expect(find(t, '192.168.1.7')).toBe('192.168.1.7');
    expect(find(t, '8.8.8.8')).toBe('0.0.0.0/0');
    expect(find(t, '2001:db8:ffff::1')).toBe('2001:db8::/32');
    expect(find(t, '2001:db9::1')).toBeUndefined();
    expect(find(t, '::1')).toBe('::1');
    expect(find(t, '::ffff:10.9.9.9')).toBe('10.0.0.0/8');
    expect(find(t, '172.16.5.5')).toBe('::ffff:172.16.0.0/108');
    expect(find(t, '255.255.255.255')).toBe('0.0.0.0/0');
    const v4only = table(['128.0.0.0/1', '255.255.255.255']);
    expect(find(v4only, '200.1.1.1')).toBe('128.0.0.0/1');
    expect(find(v4only, '127.255.255.255')).toBeUndefined();
    expect(find(v4only, '255.255.255.255')).toBe('255.255.255.255');
  });

  it('refuses legacy and malformed forms', () => {
    for (const bad of ['10.1', '1.2.3', '010.0.0.1', '256.0.0.1', '10.0.0.0/33', '::1/129', 'host', '1.2.3.4/']) {
      expect(() => parseRule(bad), bad).toThrow(/is not an IP address or CIDR range/);
    }
  });
});

describe('access control through the CLI', () => {
  const start = cliStartedPerTest();

  it.each([
    [['--allow=']],
    [['--allow=,']],
    [['--allow', '127.0.0.1,']],
    [['--deny=']],
    [['--allow-file=']],
    [['--allow-file', '  ']],
  ])('an empty rule or file name (%j, e.g. an unset $TRUSTED) is a usage error, not an open door', async (flags) => {
    const r = await runCli(['listen', '--echo', ...flags, '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: --(allow|deny|allow-file) got an empty (rule|file name)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('an allow file that holds no address lets nobody in, and says so at start-up without -v', async () => {
    const file = path.join(tempDir(), 'allow.txt');
    fs.writeFileSync(file, '# nobody yet\n\n');
    const srv = start(['listen', '--echo', '--allow-file', file, '0']);
    await srv.waitForStderr(/allow file .*allow\.txt holds no address: nobody is let in until it does/);
    const port = Number((await srv.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/).catch(() => null))?.[1] ?? 0) || undefined;
    if (port) expect(await triesToEcho(port)).toBe('');
  });

  it('an empty allow file refuses a real client (checked from the client side)', async () => {
    const file = path.join(tempDir(), 'allow.txt');
    fs.writeFileSync(file, '');
    const srv = start(['listen', '--echo', '-v', '--allow-file', file, '0']);
    const port = await srv.listeningPort();
    expect(await triesToEcho(port)).toBe('');
    await srv.waitForStderr(/refused 127\.0\.0\.1:\d+: not in the allow list/);
  });

  it('a FIFO as allow file is refused at start-up with exit 2 and plain words (it used to hang, deaf to Ctrl-C)', async () => {
    const fifo = path.join(tempDir(), 'allow.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await runCli(['listen', '--echo', '--allow-file', fifo, '0'], { timeoutMs: 8000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: --allow-file:? .*allow\.fifo is a named pipe \(FIFO\), not a regular file/);
  });

  it('a directory as allow file is refused with exit 2 and plain words, not EISDIR', async () => {
    const r = await runCli(['forward', '--allow-file', tempDir(), '0', '127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: --allow-file:? .* is a directory, not a regular file/);
    expect(r.stderr).not.toMatch(/EISDIR/);
  });

  it('an unreadable allow file is refused with exit 2 and plain words, not EACCES', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'allow.txt');
    fs.writeFileSync(file, '127.0.0.1\n');
    fs.chmodSync(file, 0o000);
    // As root every file is readable: run sockcat as nobody to meet the permission check.
    const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    const [sc, scArgs] = sockcatCommand();
    const [cmd, ...pre] = [...asNobody, sc, ...scArgs];
    const srv = start(['listen', '--echo', '--allow-file', file, '0'], { command: [cmd, pre] });
    const r = await srv.exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: --allow-file:? .*allow\.txt: permission denied/);
    expect(r.stderr).not.toMatch(/EACCES/);
  });

  it('an allow file swapped for a FIFO at run time is refused and the last list kept: traffic goes on', async () => {
    const file = path.join(tempDir(), 'allow.txt');
    fs.writeFileSync(file, '127.0.0.1\n');
    const srv = start(['listen', '--echo', '-v', '--allow-file', file, '0']);
    const port = await srv.listeningPort();
    expect((await exchange(port, 'before')).toString()).toBe('before');
    fs.rmSync(file);
    execFileSync('mkfifo', [file]);
    await srv.waitForStderr(/could not re-read the allow file, keeping the previous list: .*allow\.txt is a named pipe \(FIFO\)/);
    // The old code blocked in readFileSync on the FIFO here: no client was served any more.
    expect((await exchange(port, 'during')).toString()).toBe('during');
    fs.rmSync(file);
    fs.writeFileSync(file, '10.0.0.0/8\n');
    await waitFor(() => (srv.stderr().match(/allow file loaded: 1 entry/g) ?? []).length >= 2, 5000, 'the reload of the regular file');
    expect(await triesToEcho(port)).toBe('');
  });

  it('a 200,000-line allow file loads in bounded memory and the client on its last line is let in', async () => {
    const file = path.join(tempDir(), 'allow.txt');
    const lines: string[] = [];
    for (let i = 0; i < 200_000; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    lines.push('127.0.0.1');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const srv = start(['listen', '--echo', '-v', '--allow-file', file, '0']);
    const port = await srv.listeningPort(60_000);
    await srv.waitForStderr(/allow file loaded: 200001 entries/);
    expect((await exchange(port, 'in')).toString()).toBe('in');
    // The rule list of ipaddr.js objects held ~1 KiB per line (533 MB for 500k); the prefix table holds a few dozen bytes.
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${srv.child.pid}/status`, 'utf8'))![1]);
    expect(rssKiB).toBeLessThan(160 * 1024);
    // A reload of the same file keeps the door as it was.
    fs.appendFileSync(file, '# touched\n');
    await waitFor(() => (srv.stderr().match(/allow file loaded: 200001 entries/g) ?? []).length >= 2, 60_000, 'the reload');
    expect((await exchange(port, 'again')).toString()).toBe('again');
  }, 90_000);

  it('keeps --allow working next to --deny (deny wins)', async () => {
    const srv = start(['listen', '--echo', '-v', '--allow', '127.0.0.0/8', '--deny', '127.0.0.1', '0']);
    const port = await srv.listeningPort();
    expect(await triesToEcho(port)).toBe('');
    await srv.waitForStderr(/refused 127\.0\.0\.1:\d+: denied by --deny 127\.0\.0\.1/);
  });
});

