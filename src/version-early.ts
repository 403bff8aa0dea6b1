/**
 * The start-up fast path: `sockcat --version` answered before the CLI is loaded.
 *
 * It is what scripts and the start-up benchmark run, and it needs none of the CLI. bin.ts
 * imports this module first, so ES module order evaluates it before the rest of the bundle
 * (yargs, the modes, the transports): a lone `--version` is answered with one write and no
 * stream, half the instructions of a full start (bench/RESULTS.md, start-up). Anything else,
 * or a write that fails in a way not handled here, goes on to the CLI as usual, which prints
 * the same line through yargs. Only bin.ts imports it: importing it runs it.
 */
import { writeSync } from 'node:fs';
import { versionText } from './version';

/** Prints the version and exits when the arguments are exactly `--version`; otherwise returns. */
function answerVersionEarly(args: string[]): void {
  if (args.length !== 1 || args[0] !== '--version') return;
  try {
    writeSync(1, `${versionText()}\n`);
  } catch (err) {
    // A reader that went away (sockcat --version | true) is no error, as for every mode.
    // Anything else (EAGAIN on a non-blocking pipe…): let the CLI write it through its stream.
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') return;
  }
  process.exit(0);
}

answerVersionEarly(process.argv.slice(2));
