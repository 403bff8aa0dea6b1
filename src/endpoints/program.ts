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
  throw new UsageError(`program '${name}' not found in PATH`);
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
