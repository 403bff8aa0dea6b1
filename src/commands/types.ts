import type { CommandModule } from 'yargs';
import type { ModeIO } from '../io';

/** What every command gets: the process's streams and signal, and where to put its exit code. */
export interface CommandEnv {
  io: ModeIO;
  /** The command line as typed (after `sockcat`), for messages that quote it back corrected. */
  args: readonly string[];
  setExitCode(code: number): void;
}

/** A command file exports one of these; src/commands/index.ts lists them. */
export type CommandFactory = (env: CommandEnv) => CommandModule<any, any>;
