/**
 * --help as a user sees it: in a real terminal (a pseudo-terminal made by script(1), resized with
 * stty) it fits the terminal's width; piped, it is laid out for 80 columns. No word is cut.
 * (Every width from 60 to 200 is covered in process by test/commands/help-layout.test.ts.)
 */
import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { runCli, sockcatCommand } from '../helpers/cli';

/** Runs `sockcat ARGS` on a pseudo-terminal `columns` wide; resolves with what the terminal shows. */
function inTerminal(args: string[], columns: number): Promise<string> {
  const [cmd, pre] = sockcatCommand();
  const quoted = [cmd, ...pre, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const env = { ...process.env };
  delete env.COLUMNS;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', `stty cols ${columns} rows 50; exec ${quoted}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`script exited ${code}: ${out}`));
      else resolve(out.replace(/\r\n/g, '\n'));
    });
  });
}

const lineLengths = (text: string) => text.split('\n').map((l) => [...l].length);

describe('--help width', () => {
  it('fits a 67-column terminal, example commands continued with \\', async () => {
    const text = await inTerminal(['exec', '--help'], 67);
    expect(Math.max(...lineLengths(text))).toBeLessThanOrEqual(67);
    expect(text).toContain('  sockcat exec 9090 --sh \\\n');
    expect(text).toContain(`'while read M; do echo "le serveur répond : $M"; done'`);
    // yargs used to cut "an e" / "cho server" and "IPv" / "6".
    expect(text).toMatch(/IPv6\)/);
  });

  it('uses a wide terminal: 150 columns', async () => {
    const text = await inTerminal(['listen', '--help'], 150);
    const widest = Math.max(...lineLengths(text));
    expect(widest).toBeLessThanOrEqual(150);
    expect(widest).toBeGreaterThan(110);
  });

  it('piped: 80 columns, no word cut', async () => {
    const env = { ...process.env, COLUMNS: '' };
    const r = await runCli(['--help'], { env });
    expect(r.code).toBe(0);
    const text = r.stdout.toString();
    expect(Math.max(...lineLengths(text))).toBeLessThanOrEqual(80);
    expect(Math.max(...lineLengths(text))).toBeGreaterThan(70);
    // The same words as the help laid out for a very wide terminal: none was cut.
    const wide = (await runCli(['--help'], { env: { ...process.env, COLUMNS: '100000' } })).stdout.toString();
    const words = (t: string) => t.split(/\s+/).filter(Boolean);
    expect(words(text)).toEqual(words(wide));
  });
});

describe("a mode's help", () => {
  it.each(['connect', 'listen', 'forward', 'exec', 'wait'])('%s --help: its arguments (Positionals) before any option group', async (mode) => {
    const r = await runCli([mode, '--help']);
    expect(r.code).toBe(0);
    const headers = r.stdout.toString().split('\n').filter((l) => /^[A-Z][A-Za-z ]*:$/.test(l));
    expect(headers[0]).toBe('Positionals:');
    expect(headers).toContain('Options:');
  });
});
