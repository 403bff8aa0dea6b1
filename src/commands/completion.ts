/**
 * `sockcat completion bash|zsh`: prints a completion script. The script asks sockcat itself for
 * the candidates (yargs answers `--get-yargs-completions`), so modes and flags can never drift
 * from the code. SHELL= is set on that call because yargs picks its answer format (plain words
 * for bash, "word:description" for zsh) from $SHELL, which is the login shell, not the running one.
 */
import { UsageError } from '../errors';
import { examplesEpilog } from './options';
import type { CommandFactory } from './types';

const SHELLS = ['bash', 'zsh'] as const;
type Shell = (typeof SHELLS)[number];

/** Completion scripts, adapted from yargs' own templates (completion-templates.js). */
export function completionScript(shell: Shell): string {
  if (shell === 'bash') {
    return `###-begin-sockcat-completions-###
# sockcat completion for bash. Install: sockcat completion bash >> ~/.bashrc
_sockcat_completions()
{
    local cur_word type_list
    cur_word="\${COMP_WORDS[COMP_CWORD]}"
    # Ask sockcat for the modes and flags that fit what is typed so far.
    type_list=$(SHELL=bash sockcat --get-yargs-completions "\${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)
    COMPREPLY=( $(compgen -W "\${type_list}" -- "\${cur_word}") )
    return 0
}
# Nothing matched (an address, a certificate file): bash falls back to file names.
complete -o bashdefault -o default -F _sockcat_completions sockcat
###-end-sockcat-completions-###
`;
  }
  return `#compdef sockcat
###-begin-sockcat-completions-###
# sockcat completion for zsh. Install: sockcat completion zsh >> ~/.zshrc (after compinit)
_sockcat_completions()
{
  local reply
  local si=$IFS
  # Ask sockcat for the modes and flags (with their descriptions) that fit what is typed so far.
  IFS=$'\\n' reply=($(SHELL=zsh sockcat --get-yargs-completions "\${words[@]:0:$CURRENT}" 2>/dev/null))
  IFS=$si
  if (( \${#reply} )); then
    _describe 'values' reply
  else
    _files
  fi
}
compdef _sockcat_completions sockcat
###-end-sockcat-completions-###
`;
}

export const completionCommand: CommandFactory = (env) => ({
  command: 'completion [shell]',
  describe: 'Print a shell completion script for bash or zsh (modes and flags complete with Tab)',
  builder: (y) =>
    y.positional('shell', { type: 'string', describe: 'bash or zsh' }).epilog(
      examplesEpilog([
        ['$0 completion bash >> ~/.bashrc', 'then open a new terminal: sockcat li<Tab> → sockcat listen'],
        ['$0 completion zsh >> ~/.zshrc', 'the same for zsh (after the compinit line), with each flag described'],
        ['source <($0 completion bash)', 'try it in the current bash only'],
      ]),
    ),
  handler: (argv) => {
    const shell = argv.shell as string | undefined;
    if (shell === undefined) throw new UsageError('missing shell: sockcat completion bash, or sockcat completion zsh');
    if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`no completion for '${shell}' (shells: ${SHELLS.join(', ')})`);
    env.io.stdout.write(completionScript(shell as Shell));
  },
});
