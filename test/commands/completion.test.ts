/** sockcat completion: the scripts, sourced in a real bash and a real interactive zsh, complete modes and flags. */
import { describe, it, expect } from 'vitest';
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runCli } from '../helpers/cli';
import { envWithSockcat, sockcatBinDir } from '../helpers/path';
import { openTerminal, hasTmux } from '../helpers/tmux';

const hasZsh = (() => {
  try {
    execFileSync('zsh', ['-c', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** What bash's completion function offers for the words typed so far (the last one being completed). */
async function bashComplete(words: string[]): Promise<string[]> {
  const script = `source <(sockcat completion bash)
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_sockcat_completions; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await promisify(execFile)('bash', ['-c', script], { env: envWithSockcat(), encoding: 'utf8' });
  return stdout.split('\n').filter(Boolean);
}

describe('sockcat completion', () => {
  it('bash: completes modes, a mode\'s flags and a flag\'s choices', { timeout: 90_000 }, async () => {
    // Side by side: each completion is a whole sockcat start-up.
    const [mode, modes, flag, choices, otherMode] = await Promise.all([
      bashComplete(['sockcat', 'sc']),
      bashComplete(['sockcat', '']),
      bashComplete(['sockcat', 'scan', '--con']),
      bashComplete(['sockcat', 'connect', '--log-format', '']),
      bashComplete(['sockcat', 'connect', '--ec']),
    ]);
    expect(mode).toEqual(['scan']);
    expect(modes).toEqual(expect.arrayContaining(['listen', 'connect', 'forward', 'exec', 'broadcast', 'scan', 'wait', 'completion']));
    expect(flag).toEqual(['--concurrency']);
    expect(choices).toEqual(['text', 'json']);
    // A flag of another mode is not offered.
    expect(otherMode).toEqual([]);
  });

  it.skipIf(!hasZsh || !hasTmux)('zsh: Tab in an interactive zsh completes a mode, then a flag', { timeout: 90_000 }, async () => {
    const term = openTerminal(`env -i HOME=/tmp TERM=xterm PATH=${sockcatBinDir()}:${process.env.PATH} zsh -f`);
    term.type('autoload -U compinit && compinit -u && source <(sockcat completion zsh) && echo SOURCED');
    term.keys('Enter');
    await term.waitFor(/^SOURCED$/m, 30_000);
    term.type('sockcat sc');
    term.keys('Tab');
    await term.waitFor(/sockcat scan *$/m, 30_000);
    term.type('--concur');
    term.keys('Tab');
    await term.waitFor(/sockcat scan --concurrency *$/m, 30_000);
  });

  it('refuses a shell it has no script for (exit 2)', async () => {
    const [fish, none] = await Promise.all([runCli(['completion', 'fish']), runCli(['completion'])]);
    expect(fish.code).toBe(2);
    expect(fish.stderr).toMatch(/no completion for 'fish' \(shells: bash, zsh\)/);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/missing shell/);
  });
});
