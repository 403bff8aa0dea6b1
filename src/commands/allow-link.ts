/**
 * `sockcat allow-link new LABEL --file F [--ttl D]`: makes an allow link (MySafeIP-style) for a
 * listening mode started with `--allow-link ADDR --allow-link-file F`. Prints the new ID; the owner
 * hands `http://ADDR/ID` to a friend and revokes it by deleting its line from F.
 */
import { UsageError } from '../errors';
import { appendNewLink } from '../allow-link';
import { examplesEpilog } from './options';
import type { CommandFactory } from './types';

export const allowLinkCommand: CommandFactory = (env) => ({
  command: 'allow-link <action> [label]',
  describe: 'Make a link that lets whoever opens it in (for --allow-link): allow-link new LABEL --file FILE',
  builder: (y) =>
    y
      .positional('action', { type: 'string', describe: 'new: make a link and print its ID' })
      .positional('label', { type: 'string', describe: 'Who the link is for, one word (shown in the logs and the allow file)' })
      .option('file', { type: 'string', describe: 'The link file (--allow-link-file): the new line is appended, the file made (mode 600) if missing' })
      .option('ttl', { type: 'string', describe: 'How long each visit lets the visitor in (12h, 30m, 2d); default --allow-link-ttl' })
      .epilog(
        examplesEpilog([
          ['$0 allow-link new grandma --file links.txt', 'prints an ID; send grandma http://YOUR-HOST:8088/ID'],
          ['$0 allow-link new bob-phone --file links.txt --ttl 2h', 'a link whose visits last 2 hours'],
        ], 'Revoke a link by deleting its line from the file: it stops working, and what it let in is closed again.'),
      ),
  handler: (argv) => {
    if (argv.action !== 'new') throw new UsageError(`unknown allow-link action '${argv.action}' (try: sockcat allow-link new LABEL --file FILE)`);
    if (argv.label === undefined || argv.label === '') throw new UsageError('missing LABEL: who the link is for, e.g. sockcat allow-link new grandma --file links.txt');
    if (argv.file === undefined || argv.file === '') throw new UsageError('missing --file FILE: the link file given to --allow-link-file');
    const id = appendNewLink(String(argv.file), String(argv.label), argv.ttl === undefined ? undefined : String(argv.ttl));
    env.io.stdout.write(`${id}\n`);
    env.io.stderr.write(`sockcat: added to ${argv.file}; the link is http://HOST:PORT/${id} (HOST:PORT of --allow-link)\n`);
  },
});
