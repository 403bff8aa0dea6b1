/**
 * The connection events: one vocabulary for every mode, produced in one place (the listener
 * runtime, the datagram peer table, connect's session) and delivered to every subscriber — the
 * logger (log.ts), and whatever else wants them (metrics, --trace) through subscribe().
 */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** A connection (or datagram peer) opened. */
export interface OpenedEvent {
  id?: number;
  /** "127.0.0.1:5555". */
  client: string;
  /** A datagram peer rather than a stream connection. */
  datagrams?: boolean;
  fields?: LogFields;
}

/** A client turned away: `reason` names the check (denied, limit, handshake, pre-step…); `message` is the sentence. */
export interface RefusedEvent {
  client: string;
  reason: string;
  message: string;
  fields?: LogFields;
}

/** A connection over. A server names its `client`; a client (connect) names the `server` it reached. */
export interface ClosedEvent {
  id?: number;
  client?: string;
  server?: string;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  reason: string;
  datagrams?: boolean;
  /** Extra words after the peer in the text line (" → 127.0.0.1:22"). */
  text?: string;
  fields?: LogFields;
}

/** Whoever wants connection events implements the ones it cares about. */
export interface ConnectionSubscriber {
  opened?(e: OpenedEvent): void;
  refused?(e: RefusedEvent): void;
  closed?(e: ClosedEvent): void;
}

/** The event stream of one server (or client session). */
export class ConnectionEvents {
  private readonly subscribers: ConnectionSubscriber[] = [];

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(s: ConnectionSubscriber): () => void {
    this.subscribers.push(s);
    return () => this.subscribers.splice(this.subscribers.indexOf(s) >>> 0, 1);
  }

  opened(e: OpenedEvent): void {
    for (const s of this.subscribers) s.opened?.(e);
  }

  refused(e: RefusedEvent): void {
    for (const s of this.subscribers) s.refused?.(e);
  }

  closed(e: ClosedEvent): void {
    for (const s of this.subscribers) s.closed?.(e);
  }
}
