/**
 * Lays out `--help` at the terminal's width without ever cutting a word. yargs renders the help
 * unwrapped (`.wrap(null)`: one line per option, its description after a run of spaces); this
 * wraps each long line on word boundaries with a hanging indent under the description, and wraps
 * example commands the way a shell reads them (` \` continuations, never inside quotes), so a
 * student who copies one still has a command that runs.
 */

/** Starts a help line that is a shell command (see examplesEpilog); removed from the output. */
export const COMMAND_MARK = '\u2063';

/** Help width when stdout is not a terminal (piped into less or a file). */
export const PIPED_HELP_WIDTH = 80;
/** Below this many columns for the text, a description goes under its flag instead of beside it. */
const MIN_TEXT_COLUMNS = 24;

/**
 * The width to lay help out at: $COLUMNS when exported (what `COLUMNS=100 sockcat --help` asks
 * for), else the terminal's width, else 80 when piped.
 */
export function helpWidth(stdout: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv >= 20) return fromEnv;
  if (stdout.isTTY && stdout.columns && stdout.columns >= 20) return stdout.columns;
  return PIPED_HELP_WIDTH;
}

/** Wraps every line of yargs' unwrapped help to `width` columns on word boundaries. */
export function layoutHelp(text: string, width: number): string {
  return positionalsFirst(text)
    .split('\n')
    .flatMap((line) => (line.startsWith(COMMAND_MARK) ? wrapCommand(line.slice(COMMAND_MARK.length), width) : wrapLine(line, width)))
    .join('\n');
}

/**
 * A mode's arguments before its options: yargs lists option groups in the order they were first
 * defined, and the transport options (added by every command before its positionals) came first.
 */
function positionalsFirst(text: string): string {
  const blocks = text.split('\n\n');
  const at = blocks.findIndex((b) => b.startsWith('Positionals:'));
  const firstGroup = blocks.findIndex((b) => /^[A-Z][A-Za-z ]*:\n/.test(b));
  if (at < 0 || firstGroup < 0 || firstGroup >= at) return text;
  const [positionals] = blocks.splice(at, 1);
  blocks.splice(firstGroup, 0, positionals);
  return blocks.join('\n\n');
}

/**
 * One line of prose or one row of a table ("  --flag, -f   Description  [type]"). A row keeps its
 * first column on the first line and continues under the description; prose continues under its
 * own indentation.
 */
function wrapLine(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const lead = /^ */.exec(line)![0].length;
  // A table row: text, then two or more spaces, then the description.
  const row = /^( *\S(?:.*?\S)??) {2,}(?=\S)/.exec(line);
  let head = ' '.repeat(lead);
  let hang = lead;
  let body = line.slice(lead);
  if (row) {
    head = row[0];
    body = line.slice(row[0].length);
    hang = row[0].length;
    if (width - hang < MIN_TEXT_COLUMNS) {
      // A narrow terminal: the first column on its own line, the description under it.
      return [row[1].trimEnd(), ...fill(proseWords(body), ' '.repeat(lead + 4), ' '.repeat(lead + 4), width)];
    }
  }
  return fill(proseWords(body), head, ' '.repeat(hang), width);
}

/** The words of a description; yargs' annotations such as `[default: false]` stay in one piece. */
function proseWords(text: string): string[] {
  const words: string[] = [];
  for (const word of text.split(/ +/)) {
    if (word === '') continue;
    const last = words[words.length - 1];
    // Inside an annotation opened by the previous word and not yet closed: glue.
    if (last !== undefined && /^\[[^\]]*$/.test(last) && text.includes(']', text.indexOf(last))) words[words.length - 1] = `${last} ${word}`;
    else words.push(word);
  }
  return words;
}

/** Greedy fill: as many words per line as fit; a word longer than a line gets a line of its own, whole. */
function fill(words: string[], firstPrefix: string, nextPrefix: string, width: number, suffix = ''): string[] {
  const lines: string[] = [];
  let current = firstPrefix;
  let empty = true;
  for (const word of words) {
    if (!empty && current.length + 1 + word.length + suffix.length > width) {
      lines.push(current + suffix);
      current = nextPrefix + word;
    } else {
      current += (empty ? '' : ' ') + word;
    }
    empty = false;
  }
  lines.push(current);
  return lines;
}

/**
 * An example command: broken between shell words, each broken line ending in ` \`, so that
 * pasting the lines into a shell runs the same command. Quoted strings are never split.
 */
function wrapCommand(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const lead = /^ */.exec(line)![0].length;
  return fill(shellWords(line.slice(lead)), ' '.repeat(lead), ' '.repeat(lead + 4), width, ' \\');
}

/** Splits a command line at the spaces outside quotes, keeping each word exactly as written. */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote) {
      word += c;
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) word += command[++i];
      continue;
    }
    if (c === ' ') {
      if (word !== '') words.push(word);
      word = '';
      continue;
    }
    word += c;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\' && i + 1 < command.length) word += command[++i];
  }
  if (word !== '') words.push(word);
  return words;
}
