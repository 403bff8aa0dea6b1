// `sockcat broadcast` run the way a user runs it: the bundled CLI as a child process, real
// sockets on 127.0.0.1 port 0, real nc as a chat client.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { startCli, runCli, type RunningCli } from '../helpers/cli';
import { connect, randomBytes, sha256, waitFor, sleep } from '../helpers/net';
import { joinRoom, type RoomClient } from '../helpers/room';

const running: RunningCli[] = [];
const clients: RoomClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  for (const r of running.splice(0)) {
    r.kill('SIGKILL');
    await r.exited;
  }
});

async function room(args: string[] = []): Promise<{ cli: RunningCli; port: number }> {
  const cli = startCli(['broadcast', '0', '-v', ...args]);
  running.push(cli);
  return { cli, port: await cli.listeningPort() };
}

async function join(port: number): Promise<RoomClient> {
  const c = await joinRoom(port);
  clients.push(c);
  await c.waitFor(/^\* commands: .*\n/m);
  return c;
}

/** Peak resident memory of a process, in bytes (Linux). */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('sockcat broadcast (line mode)', () => {
  it('welcomes, names, announces joins and leaves, relays lines to the others but not back, and logs the room with timestamps', async () => {
    const { cli, port } = await room();
    const a = await join(port);
    expect(a.text()).toMatch(/^\* welcome! you are user1\n\* nobody else is here yet\n\* commands: \/nick NAME, \/who, \/quit, \/help/);
    const b = await join(port);
    expect(b.text()).toMatch(/^\* welcome! you are user2\n\* here: user1\n/);
    await a.waitFor(/^\* user2 joined$/m);

    a.say('hello room');
    await b.waitFor(/^<user1> hello room$/m);
    b.say('hi user1');
    await a.waitFor(/^<user2> hi user1$/m);
    // a's own line never came back to it, although a later line from b did.
    expect(a.text()).not.toContain('<user1> hello room');

    b.say('/nick bob');
    await b.waitFor(/^\* you are now bob$/m);
    await a.waitFor(/^\* user2 is now bob$/m);
    b.socket.end();
    await a.waitFor(/^\* bob left$/m);
    await b.closed;

    const ts = String.raw`\[\d\d:\d\d:\d\d\] `;
    await waitFor(() => /bob left/.test(cli.stdout().toString()), 5000, 'the leave in the log');
    const log = cli.stdout().toString();
    expect(log).toMatch(new RegExp(`^${ts}\\* user1 joined \\(127\\.0\\.0\\.1:\\d+\\)$`, 'm'));
    expect(log).toMatch(new RegExp(`^${ts}<user1> hello room$`, 'm'));
    expect(log).toMatch(new RegExp(`^${ts}<user2> hi user1$`, 'm'));
    expect(log).toMatch(new RegExp(`^${ts}\\* user2 is now bob$`, 'm'));
    expect(log).toMatch(new RegExp(`^${ts}\\* bob left \\(127\\.0\\.0\\.1:\\d+\\)$`, 'm'));
    await cli.waitForStderr(/closed 127\.0\.0\.1:\d+ \(bob\): \d+ bytes in, \d+ bytes out, .* \(eof\)/);
  });

  it('serves IPv6 clients on [::1]', async () => {
    const cli = startCli(['broadcast', '[::1]:0', '-v']);
    running.push(cli);
    const port = await cli.listeningPort();
    const a = await joinRoom(port, '::1');
    const b = await joinRoom(port, '::1');
    clients.push(a, b);
    await a.waitFor(/^\* user2 joined$/m);
    b.say('over v6');
    await a.waitFor(/^<user2> over v6$/m);
    await waitFor(() => /\* user1 joined \(\[::1\]:\d+\)/.test(cli.stdout().toString()), 5000, 'the v6 address in the log');
  });

  it("sends lines typed on the server's stdin to everyone as <server>, and keeps running after stdin's EOF", async () => {
    const { cli, port } = await room();
    const a = await join(port);
    const b = await join(port);
    cli.child.stdin!.end('hello everyone\nno newline at the end');
    await a.waitFor(/^<server> hello everyone$/m);
    await b.waitFor(/^<server> no newline at the end$/m);
    await b.waitFor(/^<server> hello everyone$/m);
    await waitFor(() => /\] <server> hello everyone\n/.test(cli.stdout().toString()), 5000, 'the server line in the log');
    // stdin is closed now; the room goes on.
    const c = await join(port);
    c.say('still here');
    await a.waitFor(/^<user3> still here$/m);
    expect(cli.child.exitCode).toBe(null);
  });

  it('renames: names are unique whatever their case, validated, and /who lists who is here', async () => {
    const { port } = await room();
    const a = await join(port);
    const b = await join(port);
    a.say('/nick Alice');
    await a.waitFor(/^\* you are now Alice$/m);
    b.say('/nick alice');
    await b.waitFor(/^\* Alice is already taken$/m);
    b.say('/nick bad name!');
    await b.waitFor(/^\* cannot use 'bad name!' as a name: use 1 to 32 letters, digits, _ or -$/m);
    b.say(`/nick ${'x'.repeat(33)}`);
    await b.waitFor(/^\* cannot use 'x{33}' as a name/m);
    b.say('/nick Server');
    await b.waitFor(/^\* cannot use 'Server' as a name: 'server' and names that look like it are reserved for the server$/m);
    b.say('/nick');
    await b.waitFor(/^\* usage: \/nick NAME/m);
    b.say('/nick b_o-B9');
    await b.waitFor(/^\* you are now b_o-B9$/m);
    b.say('/who');
    await b.waitFor(/^\* here: b_o-B9 \(you\), Alice$/m);
    // Nobody else heard about the failed attempts.
    await a.waitFor(/^\* user2 is now b_o-B9$/m);
    expect(a.text()).not.toMatch(/taken|cannot use|reserved/);
  });

  it('names cannot impersonate: look-alike letters, fullwidth forms, blank fillers and server look-alikes are refused', async () => {
    const { port } = await room();
    const a = await join(port);
    const b = await join(port);
    a.say('/nick Elodie');
    await a.waitFor(/^\* you are now Elodie$/m);
    // Fullwidth E, Cyrillic е (U+0435): the same name to the eye.
    b.say('/nick \uff25lodie');
    await b.waitFor(/^\* cannot use 'Ｅlodie' as a name: it looks like Elodie, who is already here$/m);
    b.say('/nick \u0415lodie');
    await b.waitFor(/^\* cannot use 'Еlodie' as a name: it looks like Elodie, who is already here$/m);
    // Cyrillic ѕ (U+0455) and fullwidth forms of the reserved name.
    b.say('/nick \u0455erver');
    await b.waitFor(/^\* cannot use 'ѕerver' as a name: 'server' and names that look like it are reserved for the server$/m);
    b.say('/nick \uff53\uff45\uff52\uff56\uff45\uff52');
    await b.waitFor(/^\* cannot use 'ｓｅｒｖｅｒ' as a name: 'server' and names/m);
    // The Hangul filler U+3164 is a "letter" that prints as a blank: alone, or hidden in a name.
    b.say('/nick \u3164');
    await b.waitFor(/^\* cannot use '.' as a name: it holds an invisible or blank character \(U\+3164\)$/m);
    b.say('/nick Elodie\u3164');
    await b.waitFor(/^\* cannot use 'Elodie.' as a name: it holds an invisible or blank character \(U\+3164\)$/m);
    b.say('/nick Elo\u200ddie');
    await b.waitFor(/^\* cannot use 'Elo.die' as a name: it holds an invisible or blank character \(U\+200D\)$/m);
    // Letters of any script that look like nobody here still work.
    b.say('/nick François');
    await b.waitFor(/^\* you are now François$/m);
    b.say('/nick Élodie');
    await b.waitFor(/^\* you are now Élodie$/m);
    b.say('/who');
    await b.waitFor(/^\* here: Élodie \(you\), Elodie$/m);
    expect(a.text()).not.toMatch(/lodie\u3164|ѕerver|Ｅlodie/);
  });

  it('with --echo-self, a sender gets its own lines back too', async () => {
    const { port } = await room(['--echo-self']);
    const a = await join(port);
    const b = await join(port);
    a.say('echo me');
    await a.waitFor(/^<user1> echo me$/m);
    await b.waitFor(/^<user1> echo me$/m);
  });

  it("escapes control characters so nobody can garble the others' terminals; CRLF and LF both end lines", async () => {
    const { cli, port } = await room();
    const a = await join(port);
    const b = await join(port);
    a.socket.write('\x1b[2Jclear\tscreen\r\n');
    a.socket.write('bell\x07 back\x08 cr\rover del\x7f csi\u009b1m\n');
    await b.waitFor(/^<user1> \^\[\[2Jclear\tscreen$/m);
    await b.waitFor(/^<user1> bell\^G back\^H cr\^Mover del\^\? csi\\x9b1m$/m);
    await waitFor(() => /csi/.test(cli.stdout().toString()), 5000, 'the log');
    expect(cli.stdout().toString()).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(b.text()).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
  });

  it('cuts lines longer than --max-line, tells the sender, and goes on with the next line', async () => {
    const { port } = await room(['--max-line', '16']);
    const a = await join(port);
    const b = await join(port);
    a.socket.write('0123456789abcdefTHE REST IS CUT\nnext line\n');
    await b.waitFor(/^<user1> next line$/m);
    expect(b.text()).toMatch(/^<user1> 0123456789abcdef$/m);
    expect(b.text()).not.toContain('CUT');
    await a.waitFor(/^\* your line was longer than 16 bytes: the rest of it was dropped \(--max-line\)$/m);
  });

  it('a 100 MB line without a newline is cut, not buffered: memory stays bounded', async () => {
    const { cli, port } = await room();
    const a = await join(port);
    const b = await join(port);
    const block = Buffer.alloc(1 << 20, 'y');
    for (let i = 0; i < 100; i++) {
      if (!a.socket.write(block)) await new Promise((r) => a.socket.once('drain', r));
    }
    a.socket.write('\nafter the long line\n');
    await b.waitFor(/^<user1> after the long line$/m, 20_000);
    expect(b.text()).toMatch(new RegExp(`^<user1> y{4096}$`, 'm'));
    // Holding the line would take 100 MB (200 as a string); the room holds 4 KiB of it.
    expect(peakRss(cli.child.pid!)).toBeLessThan(150 << 20);
  });

  it('64 MiB of chat through the room past a client that never reads: the readers get every line, the stuck one is dropped and told', async () => {
    const { cli, port } = await room(['--drop']);
    const stuck = await join(port);
    stuck.socket.pause();
    const readers = [await join(port), await join(port)];
    const sender = await join(port);
    const line = 'z'.repeat(1000);
    const count = 64 * 1024 + 2; // 64 MiB of text, then a marker
    const expected = createHash('sha256');
    const received = readers.map(() => ({ hash: createHash('sha256'), lines: 0, partial: '' }));
    // Hash exactly the lines from the sender, in the order they arrive.
    readers.forEach((r, i) => {
      r.socket.removeAllListeners('data');
      r.socket.setEncoding('utf8');
      r.socket.on('data', (text: string) => {
        const st = received[i];
        const parts = (st.partial + text).split('\n');
        st.partial = parts.pop()!;
        for (const p of parts) {
          if (/^<user4> \d+ /.test(p)) {
            st.hash.update(p + '\n');
            st.lines++;
          }
        }
      });
    });
    const writeAll = async () => {
      for (let i = 0; i < count; i++) {
        const l = `<user4> ${i} ${line}\n`;
        expected.update(l);
        if (!sender.socket.write(l.slice(8))) await new Promise((r) => sender.socket.once('drain', r));
      }
    };
    await writeAll();
    await waitFor(() => received.every((r) => r.lines === count), 60_000, 'every line at both readers');
    const want = expected.digest('hex');
    for (const r of received) expect(r.hash.digest('hex')).toBe(want);
    await cli.waitForStderr(/is not reading: \d+ bytes queued \(--max-queue 1048576\); dropping its messages/);
    expect(peakRss(cli.child.pid!)).toBeLessThan(200 << 20);

    // The stuck client reads again: it gets whole lines, in order, and a notice of what it missed.
    stuck.socket.resume();
    // Lines sent while its backlog is still queued are dropped too: say it until one gets through.
    for (let k = 0; k < 100 && !/^<user4> wake up/m.test(stuck.text()); k++) {
      sender.say(`wake up ${k}`);
      await sleep(100);
    }
    await stuck.waitFor(/^<user4> wake up \d+$/m);
    const text = stuck.text();
    expect(text).toMatch(/^\* \d+ message\(s\) were dropped because you were not reading fast enough$/m);
    const seen = [...text.matchAll(/^<user4> (\d+) (z*)$/gm)];
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThan(count);
    let last = -1;
    for (const m of seen) {
      expect(m[2]).toBe(line);
      expect(Number(m[1])).toBeGreaterThan(last);
      last = Number(m[1]);
    }
  }, 90_000);

  it('allow and deny apply: a denied client is refused before it joins', async () => {
    const { cli, port } = await room(['--deny', '127.0.0.0/8']);
    const s = await connect(port);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    // allowHalfOpen: the server's FIN shows as 'end' (a reset as 'close').
    await new Promise((r) => {
      s.once('end', r);
      s.once('close', r);
    });
    s.destroy();
    expect(Buffer.concat(chunks).length).toBe(0);
    await cli.waitForStderr(/refused 127\.0\.0\.1:\d+: /);
    expect(cli.stdout().toString()).not.toContain('joined');

    const open = await room(['--allow', '127.0.0.1']);
    const ok = await join(open.port);
    expect(ok.text()).toMatch(/you are user1/);
  });

  it('works with OpenBSD nc as the chat client; nc -N leaves at its EOF and exits', async () => {
    const { port } = await room();
    const watcher = await join(port);
    const nc = spawn('nc', ['-N', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    nc.stdout.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((r) => nc.on('close', (code) => r(code)));
    await watcher.waitFor(/^\* user2 joined$/m);
    nc.stdin.write('/nick netcat\r\nhello from nc\n');
    await watcher.waitFor(/^<netcat> hello from nc$/m);
    watcher.say('hello nc');
    await waitFor(() => out.includes('<user1> hello nc\n'), 5000, 'the line at nc');
    nc.stdin.end();
    await watcher.waitFor(/^\* netcat left$/m);
    const timer = setTimeout(() => nc.kill('SIGKILL'), 5000);
    expect(await exited).toBe(0);
    clearTimeout(timer);
    expect(out).toMatch(/^\* welcome! you are user2$/m);
  });

  it('tells everyone when it stops, closes them, and exits 0 on SIGTERM', async () => {
    const { cli, port } = await room();
    const a = await join(port);
    cli.kill('SIGTERM');
    await a.closed;
    a.socket.end(); // close our half too, as nc does, so the server need not wait out its grace time
    expect(a.text()).toMatch(/^\* the server is shutting down$/m);
    expect((await cli.exited).code).toBe(0);
  });

  it('--help lists only the flags broadcast takes', async () => {
    const help = await runCli(['broadcast', '--help']);
    expect(help.code).toBe(0);
    const text = help.stdout.toString();
    for (const flag of ['--raw', '--max-queue', '--drop', '--max-line', '--echo-self', '--tls', '--cert', '--unix-mode', '--allow', '--max-conns', '--drain-timeout']) expect(text).toContain(flag);
    for (const refused of ['--hex', '--udp', '--insecure', '--servername', '--client-cert', '--client-key']) expect(text).not.toContain(refused);
  });

  it('refuses impossible options with one line and exit code 2', async () => {
    const r1 = await runCli(['broadcast', '--raw', '--max-line', '10', '0']);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/^sockcat: --max-line applies to line mode/);
    expect(r1.stderr.trim().split('\n')).toHaveLength(1);
    const r2 = await runCli(['broadcast', '--max-queue', '12x', '0']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/^sockcat: --max-queue takes a size in bytes ≥ 1024 \(e\.g\. 4096, 64K, 1M\), not '12x'/);
    const r3 = await runCli(['broadcast', '--tls', '--insecure', '0']);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/^sockcat: --insecure, --servername, --client-cert and --client-key are for TLS clients/);
  });
});

describe('sockcat broadcast --raw', () => {
  it('passes binary data verbatim to every other client and to stdout, never back to the sender', async () => {
    const { cli, port } = await room(['--raw']);
    const [a, b, c] = [await joinRoom(port), await joinRoom(port), await joinRoom(port)];
    clients.push(a, b, c);
    await cli.waitForStderr(/(connection from.*\n.*){3}/);
    const data = randomBytes(4 << 20);
    a.socket.write(data);
    await waitFor(() => b.bytes().length >= data.length && c.bytes().length >= data.length, 20_000, '4 MiB at b and c');
    expect(sha256(b.bytes())).toBe(sha256(data));
    expect(sha256(c.bytes())).toBe(sha256(data));
    await waitFor(() => cli.stdout().length >= data.length, 10_000, 'stdout');
    expect(sha256(cli.stdout())).toBe(sha256(data));
    // Nothing came back to a: b's bytes reach a, and they are the only ones.
    b.socket.write('pong');
    await a.waitFor(/pong/);
    expect(a.text()).toBe('pong');
    cli.child.stdin!.write(Buffer.from([0, 1, 2, 255]));
    await waitFor(() => c.bytes().length === data.length + 4 + 4, 5000, 'stdin bytes at c');
    expect(c.bytes().subarray(-4)).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it('64 MiB through the room past a client that never reads: the readers get it intact, the stuck one is disconnected, memory stays bounded', async () => {
    const { cli, port } = await room(['--raw']);
    const stuck = await joinRoom(port);
    stuck.socket.pause();
    const readers = [await joinRoom(port), await joinRoom(port)];
    const sender = await joinRoom(port);
    clients.push(stuck, ...readers, sender);
    await cli.waitForStderr(/(connection from.*\n.*){4}/);
    const hashes = readers.map((r) => {
      const h = { hash: createHash('sha256'), size: 0 };
      r.socket.removeAllListeners('data');
      r.socket.on('data', (c: Buffer) => {
        h.hash.update(c);
        h.size += c.length;
      });
      return h;
    });
    const data = randomBytes(64 << 20);
    sender.socket.write(data);
    await waitFor(() => hashes.every((h) => h.size >= data.length), 60_000, '64 MiB at both readers');
    for (const h of hashes) {
      expect(h.size).toBe(data.length);
      expect(h.hash.digest('hex')).toBe(sha256(data));
    }
    const m = await cli.waitForStderr(/disconnecting 127\.0\.0\.1:\d+: not reading, (\d+) bytes queued \(--max-queue 1048576\)/);
    expect(Number(m[1])).toBeLessThanOrEqual(1 << 20);
    await cli.waitForStderr(/closed 127\.0\.0\.1:\d+: 0 bytes in, \d+ bytes out, .* \(slow\)/);
    // Hoarding the stuck client's share would take 64 MiB more than this.
    expect(peakRss(cli.child.pid!)).toBeLessThan(150 << 20);
    await sleep(0);
  }, 90_000);
});

describe('broadcast for a French class: --lang fr, --names peer', () => {
  it('speaks French and names each client by its address, as the course\'s "echo à tous" does', async () => {
    const { cli, port } = await room(['--lang', 'fr', '--names', 'peer']);
    const a = await joinRoom(port);
    clients.push(a);
    const aName = `127.0.0.1:${a.socket.localPort}`;
    await a.waitFor(/^\* commandes : \/nick NOM, \/who, \/quit, \/help/m);
    expect(a.text()).toBe(
      `* bienvenue ! vous êtes ${aName}\n* personne d'autre n'est connecté pour l'instant\n* commandes : /nick NOM, /who, /quit, /help (une ligne qui commence par // en envoie une qui commence par /)\n`,
    );
    // A real nc as the second client, the way the course connects.
    const nc = spawn('nc', ['-N', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let ncOut = '';
    nc.stdout.on('data', (c) => (ncOut += c));
    // Listened for from the start: nc -N may be gone before the room has announced its leaving.
    const ncClosed = new Promise((resolve) => nc.once('close', resolve));
    await a.waitFor(/^\* 127\.0\.0\.1:\d+ est connecté$/m);
    const bName = /^\* (127\.0\.0\.1:\d+) est connecté$/m.exec(a.text())![1];
    await waitFor(() => ncOut.includes(`présents : ${aName}`), 5000, 'the list of who is here at nc');
    nc.stdin.write('bonjour\n/who\n/help\n');
    await a.waitFor(new RegExp(`^<${bName.replace(/\./g, '\\.')}> bonjour$`, 'm'));
    await waitFor(() => ncOut.includes('/nick NOM change votre nom'), 5000, '/help in French at nc');
    expect(ncOut).toContain(`* présents : ${bName} (vous), ${aName}\n`);
    nc.stdin.end();
    await a.waitFor(new RegExp(`^\\* ${bName.replace(/\./g, '\\.')} est parti$`, 'm'));
    await ncClosed;
    // The teacher's screen: the room log, in French, addresses not repeated after names that are addresses.
    await waitFor(() => cli.stdout().toString().includes('est parti'), 5000, 'the room log');
    const log = cli.stdout().toString();
    expect(log).toMatch(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] \\* ${bName.replace(/\./g, '\\.')} est connecté\\n`, 'm'));
    expect(log).not.toContain(`${bName} (${bName})`);
  });

  it('English stays the default; --lang en is the same room', async () => {
    const { port } = await room(['--lang', 'en']);
    const a = await join(port);
    expect(a.text()).toMatch(/^\* welcome! you are user1\n/);
  });

  it('refuses an unknown language and --lang/--names with --raw, exit 2', async () => {
    const de = await runCli(['broadcast', '--lang', 'de', '0']);
    expect(de.code).toBe(2);
    expect(de.stderr).toMatch(/^sockcat: --lang takes one of en, fr, not 'de'/);
    const raw = await runCli(['broadcast', '--raw', '--names', 'peer', '0']);
    expect(raw.code).toBe(2);
    expect(raw.stderr).toMatch(/^sockcat: --lang and --names apply to line mode/);
  });
});
