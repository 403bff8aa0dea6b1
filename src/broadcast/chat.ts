/**
 * The chat spoken in `broadcast`'s line mode. Each line a client sends goes to the others as
 * `<name> line`; lines starting with / are commands (/nick, /who, /quit, /help); the room's
 * own announcements start with `* `. The server's stdout gets the whole room with timestamps,
 * and lines typed on its stdin go to everyone as `<server> line`.
 */
import { isAscii } from 'node:buffer';
import type { Readable } from 'node:stream';
import type { Logger } from '../log';
import { escapeControls, LineReader, timestamp } from './lines';
import type { LeaveReason, RoomProtocol } from './protocol';
import type { Member, Room } from './room';
import type { ChatStrings } from './lang/index';
import { SERVER_NAME, nameRefusal, nameSkeleton } from './names';
/** Lines joined by LF that hold a control character to escape or a command (a line starting with /). */
const NEEDS_CARE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|(?:^|\n)\//;
/**
 * NEEDS_CARE's character class for text known to be ASCII: C0 controls but TAB and LF, and DEL
 * (CR too: a run sent with CRLF goes line by line). Twice as fast as NEEDS_CARE.
 */
const ASCII_NEEDS_CARE = /[\x00-\x08\x0b-\x1f\x7f]/;

/** One `* text` line. */
export function notice(text: string): Buffer {
  return Buffer.from(`* ${text}\n`);
}

export interface ChatOptions {
  room: Room;
  logger: Logger;
  /** Longest line a client may send, in bytes; longer ones are cut. */
  maxLine: number;
  /** What the room says, in the class's language (see ./lang). */
  strings: ChatStrings;
  /** How newcomers are named: user1, user2… or by their address (127.0.0.1:51234). */
  names: ChatNaming;
  /**
   * Format runs of plain lines straight from their bytes (default). false sends every line
   * through split2 and clientLines: the reference the byte path is tested against.
   */
  wholeLines?: boolean;
}

/** `user`: user1, user2…; `peer`: the client's address, to see who is who (the course's fifo script). */
export type ChatNaming = 'user' | 'peer';

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
    member.name = this.opts.names === 'peer' ? member.label : this.freshName();
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
        this.opts.wholeLines === false ? undefined : (run, count) => this.wholeLines(member, run, count),
      ),
    );
    const others = this.namesExcept(member);
    const say = this.opts.strings;
    room.sendTo(member, notice(say.welcome(member.name)));
    room.sendTo(member, notice(others.length ? say.here(others) : say.nobodyElse));
    room.sendTo(member, notice(say.welcomeCommands));
    this.announce(member, say.joined(member.name), this.whereFrom(member));
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
    if (reason !== 'stopping') this.announce(member, this.opts.strings.left(member.name, reason), this.whereFrom(member));
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
    room.announce(undefined, notice(this.opts.strings.shuttingDown));
    room.log(timestamp(), notice(this.opts.strings.shuttingDown));
  }

  /**
   * The whole lines of one chunk from a client, as bytes (see LineReader). Plain text — no
   * command, nothing to escape, no CR — is formatted straight from them: one decode, one test,
   * one string and one Buffer per copy, however many lines; no string per line. Anything else
   * is declined (false) and comes back through clientLines, line by line.
   */
  private wholeLines(member: Member, run: Buffer, count: number): boolean {
    // An ASCII run decodes as latin1 (a plain copy), and needs only the short test.
    const ascii = isAscii(run);
    const text = run.toString(ascii ? 'latin1' : 'utf8', 0, run.length - 1);
    const care = ascii ? ASCII_NEEDS_CARE.test(text) || text.charCodeAt(0) === 0x2f || text.includes('\n/') : NEEDS_CARE.test(text);
    if (care) return false;
    this.plainLines(member, text, count, ascii);
    return true;
  }

  /**
   * The lines of one chunk from a client. The common case — plain text, no command, nothing to
   * escape — is formatted in one go for the whole chunk: one string, one Buffer, however many
   * lines. Anything else goes line by line.
   */
  private clientLines(member: Member, lines: string[]): void {
    const text = lines.join('\n');
    if (lines.length > 1 && !NEEDS_CARE.test(text)) return this.plainLines(member, text, lines.length);
    for (const line of lines) {
      // After /quit, the rest of what it sent is ignored.
      if (member.leaving) return;
      this.clientLine(member, line);
    }
  }

  /** `count` plain lines joined by LF (`ascii`: known to be ASCII), to the others and to the room log. */
  private plainLines(member: Member, text: string, count: number, ascii = false): void {
    const prefix = `<${member.name}> `;
    const { room } = this.opts;
    room.broadcast(member, prefixLines(prefix, text, ascii), member.stream, count);
    room.logText(prefixLines(timestamp().toString() + prefix, text, ascii), count);
  }

  private clientLine(member: Member, line: string): void {
    if (line.startsWith('/') && !line.startsWith('//')) return this.command(member, line);
    const text = line.startsWith('//') ? line.slice(1) : line;
    const msg = Buffer.from(`<${member.name}> ${escapeControls(text)}\n`);
    this.opts.room.broadcast(member, msg, member.stream);
    this.opts.room.log(timestamp(), msg);
  }

  private command(member: Member, line: string): void {
    const { room, strings: say } = this.opts;
    const [word] = line.slice(1).split(/\s/, 1);
    const arg = line.slice(1 + word.length).trim();
    switch (word.toLowerCase()) {
      case 'nick':
        return this.rename(member, arg);
      case 'who':
        return room.sendTo(member, notice(say.here([say.you(member.name), ...this.namesExcept(member)])));
      case 'quit':
        room.sendTo(member, notice(say.bye));
        return member.sendAway('quit');
      case 'help':
        room.sendTo(member, notice(say.helpCommands));
        room.sendTo(member, notice(say.helpDetails(say.nameRule)));
        return room.sendTo(member, notice(say.helpSlash));
      default:
        return room.sendTo(member, notice(say.unknownCommand(shown(word))));
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
    room.sendTo(member, notice(this.opts.strings.youAreNow(wanted)));
    this.announce(member, this.opts.strings.renamed(old, wanted));
  }

  /** Why `wanted` cannot be `member`'s new name, or undefined if it can. */
  private nameProblem(member: Member, wanted: string): string | undefined {
    const say = this.opts.strings;
    if (wanted === '') return say.nickUsage(say.nameRule);
    const refusal = nameRefusal(wanted, say);
    if (refusal) return say.badName(shown(wanted), refusal);
    if (wanted === member.name) return say.alreadyYou(wanted);
    const holder = this.names.get(nameSkeleton(wanted));
    if (holder && holder !== member) {
      if (holder.name.toLowerCase() === wanted.toLowerCase()) return say.taken(holder.name);
      // "Elodie" and "Ｅlodie" (fullwidth), "alice" and "аlice" (Cyrillic а): one look, one person.
      return say.badName(shown(wanted), say.looksLike(holder.name));
    }
    return undefined;
  }

  private lineCut(member: Member): void {
    this.opts.room.sendTo(member, notice(this.opts.strings.lineCut(this.opts.maxLine)));
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
    const { room, strings } = this.opts;
    const [word] = line.slice(1).split(/\s/, 1);
    const arg = line.slice(1 + word.length).trim();
    const say = (text: string) => room.log(timestamp(), notice(text));
    switch (word.toLowerCase()) {
      case 'who': {
        const all = [...room.members].map((m) => `${m.name}${this.whereFrom(m)}`);
        return say(all.length ? strings.serverWho(all) : strings.serverNobody);
      }
      case 'kick': {
        const target = this.names.get(nameSkeleton(arg));
        if (!target) return say(strings.serverNoSuchName(shown(arg)));
        room.sendTo(target, notice(strings.kicked));
        return target.sendAway('kicked');
      }
      case 'help':
        return say(strings.serverHelp);
      default:
        return say(strings.serverUnknownCommand(shown(word)));
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

  /** " (127.0.0.1:51234)" after a name in the server's log, unless the name already is the address. */
  private whereFrom(member: Member): string {
    return member.name === member.label ? '' : ` (${member.label})`;
  }

  /** An announcement to everyone but its subject, and to the server's log (with `logExtra`). */
  private announce(about: Member, text: string, logExtra = ''): void {
    this.opts.room.announce(about, notice(text));
    this.opts.room.log(timestamp(), notice(text + logExtra));
  }
}

/**
 * `prefix` before every line of `text` (lines joined by LF) and LF after each, as one Buffer.
 * Written into the Buffer piece by piece: `prefix + body + '\n'` would be flattened into one
 * more string as long as the output first (GC work for every chunk of a burst).
 */
function prefixLines(prefix: string, text: string, ascii: boolean): Buffer {
  const body = text.replaceAll('\n', '\n' + prefix);
  const prefixBytes = Buffer.byteLength(prefix);
  // An ASCII text behind an ASCII prefix is ASCII: one byte per character, copied as latin1.
  const bodyAscii = ascii && prefixBytes === prefix.length;
  const bodyBytes = bodyAscii ? body.length : Buffer.byteLength(body);
  const out = Buffer.allocUnsafe(prefixBytes + bodyBytes + 1);
  out.write(prefix, 0);
  out.write(body, prefixBytes, bodyAscii ? 'latin1' : 'utf8');
  out[out.length - 1] = 0x0a;
  return out;
}

/** Something a client typed, safe and short enough to quote back. */
function shown(text: string): string {
  const safe = escapeControls(text);
  return safe.length > 40 ? safe.slice(0, 40) + '…' : safe;
}
