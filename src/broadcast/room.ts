/**
 * The room behind `sockcat broadcast`: who is in it, and the fan-out of messages to them.
 *
 * - Each message is one Buffer, written as is to every recipient: nothing is formatted or
 *   copied per recipient. Messages queued within one turn of the event loop are joined into
 *   one Buffer per run of same-sender messages, so a burst of lines costs one write per client.
 * - Every client has a bounded outgoing queue: its stream's writableLength is checked against
 *   maxQueue before each write. Past it the client is disconnected, or with `drop` the messages
 *   for it are dropped (and counted) until it has caught up to half the cap.
 * - The room never waits long on a reader that does not read. A sender is paused while one of
 *   its recipients has half its cap queued, so readers that keep up all get everything. But
 *   a recipient that reads nothing for NO_PROGRESS_MS (or is still behind after STALL_MS) is
 *   marked lagging: nobody waits for it any more, its queue grows to the cap and it is cut off
 *   (or dropped). It is waited for again once it has caught up. (ncat's broker waits forever.)
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import type { Logger } from '../log';
import type { LeaveReason } from './protocol';

/** Something the room writes to and may wait for: a client, or the server's stdout. */
export interface Reader {
  readonly stream: Writable;
  /** Its address (or "stdout"), for the server's log only. */
  readonly label: string;
  /** Its name in the chat (line mode). */
  name: string;
  /** True while what is meant for it is being dropped. */
  dropping: boolean;
  /** Bytes handed to its stream. */
  sent: number;
  /** True while senders no longer wait for it (it did not read when they did). */
  lagging?: boolean;
  /** When it began holding senders back; how much of what it was sent had left its queue then, and when that last grew. */
  blockedSince?: number;
  flushed?: number;
  progressAt?: number;
}

/** One connected client. */
export interface Member extends Reader {
  readonly id: number;
  readonly stream: Duplex;
  /** Bytes read from it. */
  received: number;
  /** Messages not delivered to it because its queue was full (--drop), in total. */
  dropped: number;
  /** Messages dropped since the current dropping spell began. */
  droppedNow: number;
  /** False once it has left (or was sent away); nothing more is delivered to it then. */
  inRoom: boolean;
  /** Set once it is leaving (or was sent away), with why. */
  leaving?: LeaveReason;
  /** Called on every delivery (idle timer). */
  touch?: () => void;
  /** Takes it out of the room and closes its connection: the one way a client is sent away. */
  sendAway(reason: LeaveReason): void;
}

/** A member's state as it joins: no name yet, nothing sent, received or dropped, in the room. */
export function freshMemberState(): Pick<Member, 'name' | 'received' | 'sent' | 'dropped' | 'dropping' | 'droppedNow' | 'inRoom'> {
  return { name: '', received: 0, sent: 0, dropped: 0, dropping: false, droppedNow: 0, inRoom: true };
}

export interface RoomOptions {
  /** Cap on a client's outgoing queue, in bytes. */
  maxQueue: number;
  /** Past the cap, drop that client's messages instead of disconnecting it. */
  drop: boolean;
  /** Also send a sender's messages back to it. */
  echoSelf: boolean;
  /** Where the room log (line mode) or the clients' bytes (raw mode) go. */
  stdout: Writable;
  logger: Logger;
  /** Builds the notice a client gets after messages to it were dropped (none in raw mode). */
  dropNotice?: (count: number) => Buffer | undefined;
  /** Told each time messages are dropped for a slow client (for --metrics). */
  onDropped?: (count: number) => void;
}

/** Messages that go to the same recipients, in order. */
interface Batch {
  /** Only to this client… */
  to?: Member;
  /** …or to everyone but this one (undefined: everyone). */
  except?: Member;
  parts: Buffer[];
  bytes: number;
  count: number;
}

/** What a reader the room still waits for may hold above the cap (see overCap). */
const IN_FLIGHT_SLACK = 256 * 1024;
/** How often recipients that hold senders back are checked for progress. */
const STALL_CHECK_MS = 100;
/** How long a recipient that holds senders back may read nothing before nobody waits for it. */
export const NO_PROGRESS_MS = 500;
/** How long a recipient that reads, but slowly, may hold senders back in one go. */
export const STALL_MS = 2000;
/**
 * Queued bytes that are flushed at once rather than at the end of the event loop's turn: one
 * turn can read megabytes from a fast sender, and senders are paced at each flush.
 */
const FLUSH_MARK = 64 * 1024;

/** The members of one room and the fan-out to them (see the top of this file). */
export class Room {
  readonly members = new Set<Member>();
  private batches: Batch[] = [];
  private logParts: Buffer[] = [];
  private logLines = 0;
  private scheduled = false;
  private pendingBytes = 0;
  private flushing = false;
  /** Streams that sent in this turn, and the member each belongs to (none for stdin). */
  private readonly sources = new Map<Readable, Member | undefined>();
  private lastSource: Readable | undefined;
  private readonly paused = new Set<Readable>();
  private readonly paceMark: number;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly stdoutReader: Reader;
  private logDropped = 0;
  private readonly flushSoon = () => {
    this.scheduled = false;
    this.flush();
  };
  private readonly resumeSenders = () => {
    for (const s of this.paused) s.resume();
    this.paused.clear();
  };

  constructor(private readonly opts: RoomOptions) {
    // Half the cap: well above what a reader that keeps up holds, so a burst into a client that
    // never reads is absorbed by its queue (and the kernel's buffers) before anyone waits for it.
    this.paceMark = Math.max(1, Math.floor(opts.maxQueue / 2));
    this.stdoutReader = { stream: opts.stdout, label: 'stdout', name: '', dropping: false, sent: 0 };
    opts.stdout.on('drain', this.resumeSenders);
  }

  /** Adds a client; its 'drain' may let a paused sender go on. */
  add(member: Member): void {
    this.members.add(member);
    member.stream.on('drain', this.resumeSenders);
    // A new reader may be faster than everyone who held senders back.
    this.resumeSenders();
  }

  /** Removes a client: nothing more is broadcast to it (messages queued only for it still go). */
  remove(member: Member): void {
    if (!member.inRoom) return;
    member.inRoom = false;
    this.members.delete(member);
    member.stream.off('drain', this.resumeSenders);
    this.resumeSenders();
  }

  /**
   * Queues `buf` for everyone but `from` (everyone with echoSelf); `source` is the stream it
   * was read from, paused if the recipients fall behind.
   */
  broadcast(from: Member | undefined, buf: Buffer, source?: Readable, count = 1): void {
    // Lines come in runs from one sender: remember it once per run, not once per line.
    if (source && source !== this.lastSource) {
      this.sources.set(source, from);
      this.lastSource = source;
    }
    this.queueForAllBut(this.opts.echoSelf ? undefined : from, buf, count);
  }

  /** Queues `buf` for everyone but `about` (announcements are never echoed to their subject). */
  announce(about: Member | undefined, buf: Buffer): void {
    this.queueForAllBut(about, buf);
  }

  /** Queues `buf` for one client only (replies, welcome, errors). */
  sendTo(member: Member, buf: Buffer): void {
    const last = this.batches[this.batches.length - 1];
    if (last && last.to === member) this.append(last, buf);
    else this.batches.push({ to: member, parts: [buf], bytes: buf.length, count: 1 });
    this.schedule(buf.length);
  }

  /** Queues `lines` ready-made lines (or one chunk) for the server's stdout. */
  logText(buf: Buffer, lines = 1): void {
    this.logParts.push(buf);
    this.logLines += lines;
    this.schedule(buf.length);
  }

  /** Queues pieces of one line (or chunk) for the server's stdout. */
  log(...parts: Buffer[]): void {
    let bytes = 0;
    for (const p of parts) {
      this.logParts.push(p);
      bytes += p.length;
    }
    this.logLines++;
    this.schedule(bytes);
  }

  /** Delivers everything queued now (also called before a client's stream is ended). */
  flush(): void {
    // A client sent away during a flush (too slow) must not reorder what this flush delivers.
    if (this.flushing) return this.schedule();
    this.flushing = true;
    try {
      this.deliverQueued();
    } finally {
      this.flushing = false;
    }
  }

  private deliverQueued(): void {
    const batches = this.batches;
    this.batches = [];
    this.pendingBytes = 0;
    for (const b of batches) {
      const buf = b.parts.length === 1 ? b.parts[0] : Buffer.concat(b.parts, b.bytes);
      if (b.to) this.deliver(b.to, buf, b.count);
      else for (const m of this.members) if (m !== b.except) this.deliver(m, buf, b.count);
    }
    if (this.logParts.length > 0) {
      const out = this.logParts.length === 1 ? this.logParts[0] : Buffer.concat(this.logParts);
      const lines = this.logLines;
      this.logParts = [];
      this.logLines = 0;
      this.writeLog(out, lines);
    }
    if (this.sources.size > 0) this.pace();
  }

  /** Stops listening to stdout and lets paused senders go (the room is closing). */
  close(): void {
    this.flush();
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.opts.stdout.off('drain', this.resumeSenders);
    this.resumeSenders();
  }

  /** How many log lines were not written to stdout because it was not keeping up. */
  get stdoutDropped(): number {
    return this.logDropped;
  }

  private queueForAllBut(except: Member | undefined, buf: Buffer, count = 1): void {
    const last = this.batches[this.batches.length - 1];
    if (last && !last.to && last.except === except) this.append(last, buf, count);
    else this.batches.push({ except, parts: [buf], bytes: buf.length, count });
    this.schedule(buf.length);
  }

  private append(batch: Batch, buf: Buffer, count = 1): void {
    batch.parts.push(buf);
    batch.bytes += buf.length;
    batch.count += count;
  }

  private schedule(bytes = 0): void {
    this.pendingBytes += bytes;
    if (this.pendingBytes >= FLUSH_MARK && !this.flushing) return this.flush();
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushSoon);
  }

  /** Writes to one client unless its queue is over the cap. */
  private deliver(m: Member, buf: Buffer, count: number): void {
    const stream = m.stream;
    if (!stream.writable) return;
    const { maxQueue, logger } = this.opts;
    const queued = stream.writableLength;
    if (m.dropping) {
      // Hysteresis: resume only once half the cap is free, so a client hovering at the cap
      // gets long stretches of the conversation rather than every other line.
      if (queued > maxQueue / 2) {
        m.dropped += count;
        m.droppedNow += count;
        this.opts.onDropped?.(count);
        return;
      }
      logger.event('caught-up', `${who(m)} is reading again: ${m.droppedNow} message(s) were dropped for it`, {
        client: m.label,
        name: m.name,
        dropped: m.droppedNow,
      });
      const notice = this.opts.dropNotice?.(m.droppedNow);
      m.dropping = false;
      m.droppedNow = 0;
      if (notice) this.write(m, notice);
    }
    if (this.overCap(m, queued, buf.length)) {
      if (this.opts.drop) {
        m.dropping = true;
        m.dropped += count;
        m.droppedNow = count;
        this.opts.onDropped?.(count);
        logger.warn('dropping', `${who(m)} is not reading: ${queued} bytes queued (--max-queue ${maxQueue}); dropping its messages until it catches up`, {
          client: m.label,
          name: m.name,
          queued,
        });
        return;
      }
      logger.warn('too-slow', `disconnecting ${who(m)}: not reading, ${queued} bytes queued (--max-queue ${maxQueue})`, {
        client: m.label,
        name: m.name,
        queued,
      });
      m.sendAway('slow');
      return;
    }
    this.write(m, buf);
  }

  /**
   * Whether `len` more bytes would take `r` past its cap. An empty queue always takes the
   * message, so a reading client gets even a burst larger than the cap. A reader the room still
   * waits for gets IN_FLIGHT_SLACK more: its senders are paused, but what they had already sent
   * in the same turn is still arriving.
   */
  private overCap(r: Reader, queued: number, len: number): boolean {
    const cap = r.lagging ? this.opts.maxQueue : this.opts.maxQueue + IN_FLIGHT_SLACK;
    return queued > 0 && queued + len > cap;
  }

  private write(m: Member, buf: Buffer): void {
    m.stream.write(buf);
    m.sent += buf.length;
    m.touch?.();
  }

  /** stdout has the same cap as a client: a log nobody reads is dropped, never hoarded. */
  private writeLog(buf: Buffer, lines: number): void {
    const out = this.opts.stdout;
    const { maxQueue, logger } = this.opts;
    const queued = out.writableLength;
    if (this.stdoutReader.dropping) {
      if (queued > maxQueue / 2) {
        this.logDropped += lines;
        return;
      }
      this.stdoutReader.dropping = false;
      logger.event('stdout', `stdout is keeping up again (${this.logDropped} line(s) or chunk(s) dropped so far)`, { dropped: this.logDropped });
    }
    if (this.overCap(this.stdoutReader, queued, buf.length)) {
      this.stdoutReader.dropping = true;
      this.logDropped += lines;
      logger.warn('stdout', `stdout is not keeping up (${queued} bytes pending); dropping the room log until it does`, { queued });
      return;
    }
    if (!out.writable) return;
    out.write(buf);
    this.stdoutReader.sent += buf.length;
  }

  /**
   * Pauses the senders of this flush while a reader they wait for (a client or stdout) has
   * half its cap queued. A 'drain', a join, a leave or the stall check lets them go again.
   */
  private pace(): void {
    const blockers: Reader[] = [];
    for (const m of this.members) if (this.holdsBack(m)) blockers.push(m);
    if (this.holdsBack(this.stdoutReader)) blockers.push(this.stdoutReader);
    // Nobody to wait for (any more): senders paused earlier go on.
    if (blockers.length === 0) this.resumeSenders();
    else {
      for (const [source, from] of this.sources) {
        if (source.destroyed || !blockers.some((b) => b !== from)) continue;
        source.pause();
        this.paused.add(source);
      }
      if (this.paused.size > 0 && !this.stallTimer) this.stallTimer = setTimeout(this.checkStalls, STALL_CHECK_MS);
    }
    this.sources.clear();
    this.lastSource = undefined;
  }

  /** Whether senders should wait for `r` now; notes since when it holds them back. */
  private holdsBack(r: Reader): boolean {
    const q = r.stream.writableLength;
    if (r.lagging && q < this.paceMark) r.lagging = false;
    // Only a stream that will say 'drain' may hold a sender back, or the sender would wait forever.
    if (r.lagging || r.dropping || q < this.paceMark || !r.stream.writableNeedDrain) {
      r.blockedSince = undefined;
      return false;
    }
    if (r.blockedSince === undefined) {
      r.blockedSince = r.progressAt = Date.now();
      r.flushed = r.sent - q;
    }
    return true;
  }

  /** Recipients that held senders back without reading stop being waited for. */
  private readonly checkStalls = () => {
    this.stallTimer = undefined;
    const now = Date.now();
    let changed = false;
    let waiting = false;
    for (const r of [...this.members, this.stdoutReader]) {
      if (r.blockedSince === undefined) continue;
      const q = r.stream.writableLength;
      if (q < this.paceMark || !r.stream.writableNeedDrain) {
        r.blockedSince = undefined;
        changed = true;
        continue;
      }
      // Progress is what left its queue, which new messages for it do not hide.
      const flushed = r.sent - q;
      if (flushed > (r.flushed ?? 0)) {
        r.flushed = flushed;
        r.progressAt = now;
      }
      if (now - (r.progressAt ?? now) >= NO_PROGRESS_MS || now - r.blockedSince >= STALL_MS) {
        r.blockedSince = undefined;
        r.lagging = true;
        changed = true;
        this.opts.logger.event('lagging', `${who(r)} is not keeping up (${q} bytes queued): the room goes on without waiting for it`, {
          client: r.label,
          name: r.name,
          queued: q,
        });
      } else waiting = true;
    }
    if (changed || !waiting) this.resumeSenders();
    else if (this.paused.size > 0) this.stallTimer = setTimeout(this.checkStalls, STALL_CHECK_MS);
  };
}

/** "127.0.0.1:5555 (alice)", or the address alone in raw mode. */
function who(m: Reader): string {
  return m.name ? `${m.label} (${m.name})` : m.label;
}
