/** The executable's entry point: runs the command line. (cli.ts only defines it, so tests can import main().) */
// First: answers a lone --version before the rest of the bundle is evaluated (see version-early.ts).
import './version-early';
import { runAsProgram } from './cli';

runAsProgram();
