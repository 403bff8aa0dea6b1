/** The executable's entry point: runs the command line. (cli.ts only defines it, so tests can import main().) */
import { runAsProgram } from './cli';

runAsProgram();
