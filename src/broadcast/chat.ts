/**
 * The chat spoken in `broadcast`'s line mode. Each line a client sends goes to the others as
 * `<name> line`; lines starting with / are commands (/nick, /who, /quit, /help); the room's
 * own announcements start with `* `. The server's stdout gets the whole room with timestamps,
 * and lines typed on its stdin go to everyone as `<server> line`.
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../log';
import { escapeControls, LineReader, timestamp } from './lines';
import type { LeaveReason, RoomProtocol } from './protocol';
import type { Member, Room } from './room';
import { NAME_RULE, SERVER_NAME, nameRefusal, nameSkeleton } from './names';

const COMMANDS = '/nick NAME, /who, /quit, /help';
/** Lines joined by LF that hold a control character to escape or a command (a line starting with /). */
const NEEDS_CARE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|(?:^|\n)\//;

const LEAVE_WORDS: Record<LeaveReason, string> = {
  eof: 'left',
  quit: 'left',
  reset: 'left',
  error: 'left',
  stopping: 'left',
  kicked: 'left (kicked by the server)',
  slow: 'left (disconnected: not reading fast enough)',
  idle: 'left (idle)',
};

/** One `* text` line. */
export function notice(text: string): Buffer {
  return Buffer.from(`* ${text}\n`);
}

export interface ChatOptions {
  room: Room;
  logger: Logger;
  /** Longest line a client may send, in bytes; longer ones are cut. */
  maxLine: number;
}

/** The line-mode protocol: names, commands, announcements and the timestamped room log. */
export class Chat implements RoomProtocol {
  /** Every name in use, by its skeleton: names are unique without regard to case or look-alike letters. */
  private readonly names = new Map<string, Member>();
  private readonly readers = new Map<Member, LineReader>();
  private nextNumber = 1;
  private readonly stdinReader: LineReader;
  private stdinSource: Readable | undefined;

  constructor(private readonly opts: ChatOptions) {
    this.stdinReader = new LineReader(opts.maxLine, (lines) => lines.forEach((line) => this.serverLine(line)), () => {});
  }

  joined(member: Member): void {
    const { room } = this.opts;
    member.name = this.freshName();
    this.names.set(nameSkeleton(member.name), member);
    this.readers.set(
      member,
      new LineReader(
        this.opts.maxLine,
        (lines) => this.clientLines(member, lines),
        () => this.lineCut(member),
        (err) => {
          // A bug of ours, not the client's doing: say so once and let it go, the room goes on.
          this.opts.logger.error('error', `${member.label} (${member.name}): ${err.message}`, { client: member.label, error: err.message });
          member.sendAway('error');
        },
      ),
    );
    const others = this.namesExcept(member);
    room.sendTo(member, notice(`welcome! you are ${member.name}`));
    room.sendTo(member, notice(others.length ? `here: ${others.join(', ')}` : 'nobody else is here yet'));
    room.sendTo(member, notice(`commands: ${COMMANDS} (a line starting with // sends one starting with /)`));
    this.announce(member, `${member.name} joined`, ` (${member.label})`);
  }

  input(member: Member, chunk: Buffer): void {
    this.readers.get(member)?.write(chunk);
  }

  inputEnded(member: Member, done: () => void): void {
    const reader = this.readers.get(member);
    if (reader) reader.end(done);
    else done();
  }

  left(member: Member, reason: LeaveReason): void {
    this.readers.get(member)?.discard();
    this.readers.delete(member);
    if (this.names.get(nameSkeleton(member.name)) === member) this.names.delete(nameSkeleton(member.name));
    if (reason !== 'stopping') this.announce(member, `${member.name} ${LEAVE_WORDS[reason]}`, ` (${member.label})`);
  }

  stdin(chunk: Buffer, source: Readable): void {
    this.stdinSource = source;
    this.stdinReader.write(chunk);
  }

  stdinEnded(): void {
    // A last line typed without a newline still goes out.
    this.stdinReader.end(() => {});
  }

  stopping(): void {
    const { room } = this.opts;
    room.announce(undefined, notice('the server is shutting down'));
    room.log(timestamp(), notice('the server is shutting down'));
  }

  /**
   * The lines of one chunk from a client. The common case — plain text, no command, nothing to
   * escape — is formatted in one go for the whole chunk: one string, one Buffer, however many
   * lines. Anything else goes line by line.
   */
  private clientLines(member: Member, lines: string[]): void {
    const text = lines.join('\n');
    if (lines.length > 1 && !NEEDS_CARE.test(text)) {
      const prefix = `<${member.name}> `;
      const { room } = this.opts;
      room.broadcast(member, Buffer.from(prefix + text.replaceAll('\n', '\n' + prefix) + '\n'), member.stream, lines.length);
      const stamped = timestamp().toString() + prefix;
      room.logText(Buffer.from(stamped + text.replaceAll('\n', '\n' + stamped) + '\n'), lines.length);
      return;
    }
    for (const line of lines) {
      // After /quit, the rest of what it sent is ignored.
      if (member.leaving) return;
      this.clientLine(member, line);
    }
  }

  private clientLine(member: Member, line: string): void {
    if (line.startsWith('/') && !line.startsWith('//')) return this.command(member, line);
    const text = line.startsWith('//') ? line.slice(1) : line;
    const msg = Buffer.from(`<${member.name}> ${escapeControls(text)}\n`);
    this.opts.room.broadcast(member, msg, member.stream);
    this.opts.room.log(timestamp(), msg);
  }

  private command(member: Member, line: string): void {
    const { room } = this.opts;
    const [word] = line.slice(1).split(/\s/, 1);
    const arg = line.slice(1 + word.length).trim();
    switch (word.toLowerCase()) {
      case 'nick':
        return this.rename(member, arg);
      case 'who':
        return room.sendTo(member, notice(`here: ${[`${member.name} (you)`, ...this.namesExcept(member)].join(', ')}`));
      case 'quit':
        room.sendTo(member, notice('bye'));
        return member.sendAway('quit');
      case 'help':
        room.sendTo(member, notice(`commands: ${COMMANDS}`));
        room.sendTo(member, notice(`/nick NAME renames you (${NAME_RULE}); /who lists who is here; /quit leaves`));
        return room.sendTo(member, notice('a line starting with // sends one starting with /'));
      default:
        return room.sendTo(member, notice(`unknown command /${shown(word)}; commands: ${COMMANDS}`));
    }
  }

  private rename(member: Member, typed: string): void {
    const { room } = this.opts;
    // One spelling per name: É typed as one character or as E + combining accent is the same name.
    const wanted = typed.normalize('NFC');
    const problem = this.nameProblem(member, wanted);
    if (problem) return room.sendTo(member, notice(problem));
    const old = member.name;
    this.names.delete(nameSkeleton(old));
    this.names.set(nameSkeleton(wanted), member);
    member.name = wanted;
    room.sendTo(member, notice(`you are now ${wanted}`));
    this.announce(member, `${old} is now ${wanted}`);
  }

  /** Why `wanted` cannot be `member`'s new name, or undefined if it can. */
  private nameProblem(member: Member, wanted: string): string | undefined {
    if (wanted === '') return `usage: /nick NAME (${NAME_RULE})`;
    const refusal = nameRefusal(wanted);
    if (refusal) return `cannot use '${shown(wanted)}' as a name: ${refusal}`;
    if (wanted === member.name) return `you are already ${wanted}`;
    const holder = this.names.get(nameSkeleton(wanted));
    if (holder && holder !== member) {
      if (holder.name.toLowerCase() === wanted.toLowerCase()) return `${holder.name} is already taken`;
      // "Elodie" and "Ｅlodie" (fullwidth), "alice" and "аlice" (Cyrillic а): one look, one person.
      return `cannot use '${shown(wanted)}' as a name: it looks like ${holder.name}, who is already here`;
    }
    return undefined;
  }

  private lineCut(member: Member): void {
    this.opts.room.sendTo(member, notice(`your line was longer than ${this.opts.maxLine} bytes: the rest of it was dropped (--max-line)`));
    this.opts.logger.event('line-cut', `${member.label} (${member.name}) sent a line longer than ${this.opts.maxLine} bytes: cut`, {
      client: member.label,
      name: member.name,
    });
  }

  /** A line typed on the server's stdin: a message to everyone, or an operator command. */
  private serverLine(line: string): void {
    const { room } = this.opts;
    if (line.startsWith('/') && !line.startsWith('//')) return this.serverCommand(line);
    const text = line.startsWith('//') ? line.slice(1) : line;
    const msg = Buffer.from(`<${SERVER_NAME}> ${escapeControls(text)}\n`);
    room.broadcast(undefined, msg, this.stdinSource);
    room.log(timestamp(), msg);
  }

  private serverCommand(line: string): void {
    const { room } = this.opts;
    const [word] = line.slice(1).split(/\s/, 1);
    const arg = line.slice(1 + word.length).trim();
    const say = (text: string) => room.log(timestamp(), notice(text));
    switch (word.toLowerCase()) {
      case 'who': {
        const all = [...room.members].map((m) => `${m.name} (${m.label})`);
        return say(all.length ? `here: ${all.join(', ')}` : 'nobody is here');
      }
      case 'kick': {
        const target = this.names.get(nameSkeleton(arg));
        if (!target) return say(`nobody called '${shown(arg)}' is here (see /who)`);
        room.sendTo(target, notice('you were kicked by the server'));
        return target.sendAway('kicked');
      }
      case 'help':
        return say('server commands: /who, /kick NAME, /help; other lines go to everyone as <server>; // sends a line starting with /');
      default:
        return say(`unknown command /${shown(word)}; server commands: /who, /kick NAME, /help`);
    }
  }

  /** user1, user2, …: the next number whose name nobody holds. */
  private freshName(): string {
    for (;;) {
      const name = `user${this.nextNumber++}`;
      if (!this.names.has(nameSkeleton(name))) return name;
    }
  }

  private namesExcept(member: Member): string[] {
    const out: string[] = [];
    for (const m of this.opts.room.members) if (m !== member) out.push(m.name);
    return out;
  }

  /** An announcement to everyone but its subject, and to the server's log (with `logExtra`). */
  private announce(about: Member, text: string, logExtra = ''): void {
    this.opts.room.announce(about, notice(text));
    this.opts.room.log(timestamp(), notice(text + logExtra));
  }
}

/** Something a client typed, safe and short enough to quote back. */
function shown(text: string): string {
  const safe = escapeControls(text);
  return safe.length > 40 ? safe.slice(0, 40) + '…' : safe;
}
