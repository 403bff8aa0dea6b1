/**
 * --help at every terminal width from 60 to 200 columns: no line wider than the terminal, and no
 * word cut (the words at each width are exactly those of the unwrapped help). Runs main() in
 * process with a terminal-like stdout of each width, for the top-level help and every mode's.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { Writable, PassThrough } from 'node:stream';
import { main } from '../../src/cli';
import { layoutHelp, shellWords, helpWidth, COMMAND_MARK } from '../../src/commands/help-layout';

/** Renders `args` (ending in --help) as a terminal of `columns` columns would get it. */
async function helpAt(args: string[], columns: number): Promise<string> {
  let out = '';
  const stdout = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    }),
    { isTTY: true, columns },
  );
  const stderr = new PassThrough();
  const code = await main(args, { stdin: new PassThrough(), stdout, stderr, signal: new AbortController().signal });
  expect(code).toBe(0);
  return out;
}

/** Words as a reader sees them; a shell continuation (a lone `\` ending a wrapped command) is layout, not a word. */
function words(text: string): string[] {
  return text
    .split('\n')
    .flatMap((line) => line.replace(/ \\$/, '').split(/\s+/))
    .filter((w) => w !== '');
}

describe('--help layout', () => {
  beforeAll(() => vi.stubEnv('COLUMNS', ''));
  afterAll(() => vi.unstubAllEnvs());

  it('wraps every help page on word boundaries at every width from 60 to 200', async () => {
    const top = await helpAt(['--help'], 100_000);
    const modes = [...top.matchAll(/^ {2}sockcat (\S+) /gm)].map((m) => m[1]);
    expect(modes).toEqual(expect.arrayContaining(['listen', 'connect', 'forward', 'exec', 'broadcast']));
    for (const page of [[], ...modes.map((m) => [m])]) {
      const args = [...page, '--help'];
      const reference = words(await helpAt(args, 100_000));
      for (let width = 60; width <= 200; width++) {
        // Let the worker breathe: main() resolves in microtasks, which would starve vitest's RPC.
        await new Promise((resolve) => setImmediate(resolve));
        const text = await helpAt(args, width);
        const long = text.split('\n').filter((l) => l.length > width);
        expect(long, `sockcat ${args.join(' ')} at ${width} columns`).toEqual([]);
        expect(words(text), `sockcat ${args.join(' ')} at ${width} columns`).toEqual(reference);
      }
    }
  }, 120_000);

  it('leaves shell completion candidates alone (zsh reads one "flag:description" per line)', async () => {
    vi.stubEnv('SHELL', '/bin/zsh');
    const out = await helpAt(['--get-yargs-completions', 'sockcat', 'listen', '--'], 60);
    vi.stubEnv('SHELL', process.env.SHELL ?? '');
    const lines = out.trim().split('\n');
    expect(lines.every((l) => l.startsWith('-'))).toBe(true);
    expect(lines).toContain('--tls:Use TLS on the listening address (connect: on the server address); same as writing tls:HOST:PORT');
  });

  it('uses the whole width: a long description fills lines close to it', async () => {
    const text = await helpAt(['listen', '--help'], 120);
    const widest = Math.max(...text.split('\n').map((l) => l.length));
    expect(widest).toBeGreaterThan(110);
    expect(widest).toBeLessThanOrEqual(120);
  });

  it('wraps an example command between shell words with \\ continuations, never inside quotes', () => {
    const cmd = `${COMMAND_MARK}  sockcat exec 9090 --sh 'while read M; do echo "le serveur répond : $M"; done'`;
    const lines = layoutHelp(cmd, 60).split('\n');
    expect(lines).toEqual(['  sockcat exec 9090 --sh \\', `      'while read M; do echo "le serveur répond : $M"; done'`]);
    // Pasted into a shell, the lines are the same words as the command.
    expect(shellWords(lines.map((l) => l.replace(/\\$/, '')).join(' '))).toEqual(shellWords(cmd.slice(COMMAND_MARK.length)));
  });

  it('splits shell words at spaces outside quotes only', () => {
    expect(shellWords(`a 'b c' "d \\" e" f\\ g`)).toEqual(['a', `'b c'`, `"d \\" e"`, 'f\\ g']);
  });

  it('a row too wide for its description puts the description under the flag', () => {
    const row = '  --a-very-long-option-name-indeed-yes  Text that follows the option name and is long';
    expect(layoutHelp(row, 60).split('\n')).toEqual([
      '  --a-very-long-option-name-indeed-yes',
      '      Text that follows the option name and is long',
    ]);
  });

  it('width: $COLUMNS, else the terminal, else 80 when piped', () => {
    expect(helpWidth({ isTTY: false }, {})).toBe(80);
    expect(helpWidth({ isTTY: true, columns: 133 }, {})).toBe(133);
    expect(helpWidth({ isTTY: true, columns: 133 }, { COLUMNS: '70' })).toBe(70);
    expect(helpWidth({ isTTY: false }, { COLUMNS: 'wide' })).toBe(80);
  });
});
