/**
 * Finding the program `sockcat exec` runs, once, before listening: a typo is reported at
 * start-up (exit 2), not as a failure on every connection.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors';

/** Where a shell is expected for --sh (socat's SYSTEM: and ncat's --sh-exec use it too). */
export const SHELL = '/bin/sh';

/** The path to run for `name`: a path as given (relative to `cwd`), or the first executable match in PATH. */
export function resolveProgram(name: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (name === '') throw new UsageError('the program name is empty');
  if (name.includes('/')) {
    const file = path.resolve(cwd, name);
    const problem = whyNotRunnable(file);
    if (problem === 'missing') throw new UsageError(`program '${name}' not found`);
    if (problem === 'directory') throw new UsageError(`program '${name}' is a directory`);
    if (problem === 'not-executable') throw new UsageError(`program '${name}' is not executable (chmod +x ${name}, or run it through its interpreter: -- sh ${name})`);
    return file;
  }
  let notExecutable: string | undefined;
  // An empty PATH entry means the current directory, as for execvp.
  const dirs = (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const dir of dirs) {
    const file = path.resolve(cwd, dir || '.', name);
    const problem = whyNotRunnable(file);
    if (problem === undefined) return file;
    if (problem === 'not-executable') notExecutable ??= file;
  }
  if (notExecutable) throw new UsageError(`program '${name}' found at ${notExecutable} but it is not executable`);
  throw new UsageError(`program '${name}' not found in PATH${notFoundHint(name, cwd)}`);
}

/**
 * What the user most likely meant: a whole command line in one word (`exec 9090 'cat -n'`), or a
 * script in the current directory, which a shell too only finds as ./server.sh.
 */
function notFoundHint(name: string, cwd: string): string {
  if (/\s/.test(name.trim())) {
    const words = name.trim().split(/\s+/);
    return `: to run the command line '${name}', use --sh '${name.replace(/'/g, `'\\''`)}' (through /bin/sh), or give the program and its arguments as separate words: -- ${words.join(' ')}`;
  }
  const here = whyNotRunnable(path.resolve(cwd, name));
  if (here === undefined) return `; there is one in this directory: write ./${name}`;
  if (here === 'not-executable') return `; there is one in this directory, not executable: chmod +x ${name} and write ./${name}, or run it with -- sh ${name}`;
  return '';
}

/** Checks that the shell --sh needs is there. */
export function resolveShell(): string {
  if (whyNotRunnable(SHELL) !== undefined) throw new UsageError(`--sh needs ${SHELL}, which is missing or not executable here`);
  return SHELL;
}

type Problem = 'missing' | 'directory' | 'not-executable';

function whyNotRunnable(file: string): Problem | undefined {
  try {
    if (statSync(file).isDirectory()) return 'directory';
  } catch {
    return 'missing';
  }
  try {
    accessSync(file, constants.X_OK);
    return undefined;
  } catch {
    return 'not-executable';
  }
}
