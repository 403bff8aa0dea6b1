/**
 * Every sentence the chat says — to clients and in the room log on the server's stdout — in
 * English, the reference table. Another language is one file like this one (typed as
 * ChatStrings, so none can be missing) and one line in ./index.ts. Commands (/nick, /who…) and
 * the log on stderr stay in English.
 */
import type { LeaveReason } from '../protocol';

const COMMANDS = '/nick NAME, /who, /quit, /help';

export const en = {
  /** What a name may be, as told to someone who picked a bad one. */
  nameRule: '1 to 32 letters, digits, _ or -',
  welcome: (name: string) => `welcome! you are ${name}`,
  here: (names: string[]) => `here: ${names.join(', ')}`,
  /** How /who marks the one who asked. */
  you: (name: string) => `${name} (you)`,
  nobodyElse: 'nobody else is here yet',
  welcomeCommands: `commands: ${COMMANDS} (a line starting with // sends one starting with /)`,
  helpCommands: `commands: ${COMMANDS}`,
  helpDetails: (nameRule: string) => `/nick NAME renames you (${nameRule}); /who lists who is here; /quit leaves`,
  helpSlash: 'a line starting with // sends one starting with /',
  unknownCommand: (word: string) => `unknown command /${word}; commands: ${COMMANDS}`,
  joined: (name: string) => `${name} joined`,
  left: (name: string, reason: LeaveReason) =>
    `${name} left${reason === 'kicked' ? ' (kicked by the server)' : reason === 'slow' ? ' (disconnected: not reading fast enough)' : reason === 'idle' ? ' (idle)' : ''}`,
  bye: 'bye',
  kicked: 'you were kicked by the server',
  shuttingDown: 'the server is shutting down',
  renamed: (old: string, name: string) => `${old} is now ${name}`,
  youAreNow: (name: string) => `you are now ${name}`,
  nickUsage: (nameRule: string) => `usage: /nick NAME (${nameRule})`,
  /** A refused /nick: `why` is one of the reasons below. */
  badName: (typed: string, why: string) => `cannot use '${typed}' as a name: ${why}`,
  useRule: (nameRule: string) => `use ${nameRule}`,
  invisibleChar: (codePoint: string) => `it holds an invisible or blank character (${codePoint})`,
  reservedName: (name: string) => `'${name}' and names that look like it are reserved for the server`,
  looksLike: (holder: string) => `it looks like ${holder}, who is already here`,
  alreadyYou: (name: string) => `you are already ${name}`,
  taken: (name: string) => `${name} is already taken`,
  lineCut: (maxLine: number) => `your line was longer than ${maxLine} bytes: the rest of it was dropped (--max-line)`,
  dropped: (count: number) => `${count} message(s) were dropped because you were not reading fast enough`,
  // The operator's console: the server's stdin and stdout.
  serverWho: (entries: string[]) => `here: ${entries.join(', ')}`,
  serverNobody: 'nobody is here',
  serverNoSuchName: (name: string) => `nobody called '${name}' is here (see /who)`,
  serverHelp: 'server commands: /who, /kick NAME, /help; other lines go to everyone as <server>; // sends a line starting with /',
  serverUnknownCommand: (word: string) => `unknown command /${word}; server commands: /who, /kick NAME, /help`,
};

/** The shape every language's table has. */
export type ChatStrings = typeof en;
