/**
 * The connection events: one vocabulary for every mode, written by Logger.opened/refused/closed
 * (log.ts) from the few places that see connections begin and end: the listener runtime, the
 * datagram peer table, connect's sessions (TCP and UDP) and the tunnel agent. The wording of the
 * "connection from", "refused" and "closed …: N bytes in, M bytes out" lines lives there only.
 */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** A connection (or datagram peer) opened. */
export interface OpenedEvent {
  id?: number;
  /** "127.0.0.1:5555". */
  client: string;
  /** A datagram peer rather than a stream connection. */
  datagrams?: boolean;
  /** Extra words after the peer in the text line (" (via 10.0.0.1:4000)", " → 127.0.0.1:22"). */
  text?: string;
  fields?: LogFields;
}

/** A client turned away: `event` names the check (denied, limit, pre-step…); `text` says why, after "refused CLIENT: ". */
export interface RefusedEvent {
  event: string;
  client: string;
  text: string;
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
