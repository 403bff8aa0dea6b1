import type { Duplex } from 'node:stream';
import type { Address } from './address';

/** One end of a connection, as the user reads it in logs. */
export interface Peer {
  /** IP address (or socket path for unix sockets). */
  address: string;
  /** Port, absent for unix sockets. */
  port?: number;
  /** "127.0.0.1:5555", "[::1]:5555" or "unix:/tmp/s". */
  label: string;
}

/** An accepted or established byte-stream connection. */
export interface Connection {
  stream: Duplex;
  remote: Peer;
  local: Peer;
}

/** A listening endpoint; it hands over each accepted connection to the callback given at open. */
export interface Listener {
  /** The address actually bound (with the real port when 0 was asked for). */
  address: Address;
  /** How to show it: "127.0.0.1:9090". */
  label: string;
  /** Stops accepting; live connections are not touched. */
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Give up connecting after this many milliseconds (0 or undefined: the system's own timeout). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Transport-level notes (e.g. the warning that --insecure skips verification). */
  log?: TransportLog;
}

/** Where a transport reports what happens below the connections (TLS handshakes, certificates). */
export interface TransportLog {
  /** Shown with -v (e.g. a failed handshake). */
  event(event: string, text: string, fields?: Record<string, string | number | boolean | null | undefined>): void;
  /** Always shown (e.g. the fingerprint of an ephemeral certificate). */
  warn(event: string, text: string, fields?: Record<string, string | number | boolean | null | undefined>): void;
}

export interface ListenOptions {
  /** Called for every accepted connection. */
  onConnection: (conn: Connection) => void;
  /** Called when accepting fails (e.g. out of file descriptors); the listener keeps going. */
  onAcceptError?: (err: Error) => void;
  /** Listen backlog. */
  backlog?: number;
  /**
   * Bind a socket of our own with SO_REUSEPORT (TCP and TLS): several processes then listen on
   * the same port and the kernel spreads connections among them by a hash of the addresses
   * (forward --workers). Needs Node >= 22.12; ignored, as a shared socket, on older ones.
   */
  reusePort?: boolean;
  /** Transport-level events (handshake failures, certificate notes). */
  log?: TransportLog;
}

/**
 * A transport: one address scheme, its syntax and help, and how to open it.
 * Each lives in its own file and registers itself in ./registry.ts.
 */
export interface Transport<A extends Address = Address> {
  scheme: A['scheme'];
  /** Other prefixes that select this transport (e.g. "tcp4"). */
  aliases?: string[];
  /** Byte stream or datagrams. */
  kind: 'stream' | 'datagram';
  /** One-line description and an example, shown in --help. */
  help: string;
  example: string;
  /** Parses what follows "scheme:". */
  parse(rest: string, role: 'listen' | 'connect', original: string): A;
  /** Human form of an address of this transport. */
  format(addr: A): string;
  connect?(addr: A, opts: ConnectOptions): Promise<Connection>;
  listen?(addr: A, opts: ListenOptions): Promise<Listener>;
}
