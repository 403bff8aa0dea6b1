import { UsageError } from '../errors';
import { bundledExamples } from '../examples';
import { closestMode } from './habits';
import { examplesEpilog } from './options';
import { COMMAND_MARK, helpWidth, layoutHelp } from './help-layout';
import type { CommandFactory } from './types';

/** `sockcat examples [NAME]`: lists the course scripts bundled in sockcat, or prints one. */
export const examplesCommand: CommandFactory = (env) => ({
  command: 'examples [name]',
  describe: 'List the course scripts bundled in sockcat, or print one (to run it, or save it)',
  builder: (y) =>
    y.positional('name', { type: 'string', describe: 'The example to print (as listed), e.g. repond' }).epilog(
      examplesEpilog([
        ['$0 examples', 'the list, with what each one does'],
        ['$0 exec 9090 --sh "$($0 examples repond)"', 'serve one without saving it'],
        ['$0 examples repond > repond.sh && chmod +x repond.sh', 'save one, then: sockcat exec 9090 -- ./repond.sh'],
      ]),
    ),
  handler: (argv) => {
    const all = bundledExamples();
    const { stdout } = env.io;
    if (argv.name === undefined) {
      const width = Math.max(...all.map((e) => e.name.length));
      const lines = [
        'Examples bundled with sockcat (print one: sockcat examples NAME):',
        ...all.map((e) => `  ${e.name.padEnd(width)}  ${e.summary}`),
        '',
        `${COMMAND_MARK}Serve one: sockcat exec 9090 --sh "$(sockcat examples NAME)"`,
        `${COMMAND_MARK}Save one:  sockcat examples NAME > NAME.sh && chmod +x NAME.sh`,
      ];
      stdout.write(layoutHelp(lines.join('\n'), helpWidth(stdout as { isTTY?: boolean; columns?: number })) + '\n');
      return;
    }
    const wanted = String(argv.name);
    const found = all.find((e) => e.name === wanted || e.file === wanted);
    if (!found) {
      const names = all.map((e) => e.name);
      const guess = closestMode(wanted, names);
      throw new UsageError(`no example '${wanted}'${guess ? `: did you mean '${guess}'?` : ''} (examples: ${names.join(', ')})`);
    }
    stdout.write(found.content);
  },
});
