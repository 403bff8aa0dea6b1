/**
 * A real terminal for tests: a tmux server on its own socket, one window running a command.
 * For what only happens on a TTY (completion on Tab, --progress redraws).
 */
import { execFileSync } from 'node:child_process';
import { onTestFinished } from 'vitest';

export interface Terminal {
  /** Types keys (tmux send-keys syntax: 'Tab', 'Enter', 'C-u' are keys; -l text is literal). */
  keys(...keys: string[]): void;
  /** Types text literally. */
  type(text: string): void;
  /** What the screen shows now. */
  screen(): string;
  /** Waits until the screen matches `re` (rejects after timeoutMs with the screen). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
}

export const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** One tmux server per call (inside a test), killed when the test ends. */
export function openTerminal(command: string, opts: { width?: number; height?: number } = {}): Terminal {
  const socket = `sockcat-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
  tmux('new-session', '-d', '-s', 't', '-x', String(opts.width ?? 120), '-y', String(opts.height ?? 30), command);
  onTestFinished(() => {
    try {
      tmux('kill-server');
    } catch {
      /* already gone */
    }
  });
  const screen = () => tmux('capture-pane', '-p', '-t', 't');
  return {
    keys: (...keys) => void tmux('send-keys', '-t', 't', ...keys),
    type: (text) => void tmux('send-keys', '-t', 't', '-l', '--', text),
    screen,
    waitFor: async (re, timeoutMs = 15_000) => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const s = screen();
        if (re.test(s)) return s;
        if (Date.now() > until) throw new Error(`terminal never showed ${re}; screen:\n${s}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
