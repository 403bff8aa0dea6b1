/**
 * What a transport is: one module per address scheme (tcp, tls, unix, udp, socks5…), describing
 * itself — its syntax, flags, help, kind and error wording — and how to open it. Modes never
 * import a transport: they go through ./registry.ts with an Address.
 */
import type { Duplex } from 'node:stream';
import type { ErrorSide } from '../errors';

/** Whether an address will be listened on or connected to: it decides the default host and whether port 0 is allowed. */
export type Role = 'listen' | 'connect';

/**
 * What every address has. Each transport extends it with its own fields (host and port, a path,
 * TLS settings…); settings travel inside the address, so modes pass addresses around without
 * knowing about TLS or unix modes.
 */
export interface AddressBase {
  scheme: string;
  /** Proxy hops to go through first, in order (--via): socks5:…, http-connect:… addresses. */
  via?: AddressBase[];
}

/**
 * The address type of each transport, by scheme. Open: each transport file adds its own entry
 * (`declare module './types' { interface AddressMap { tls: TlsAddress } }`), so no central list
 * is edited to add one.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface AddressMap {}

/** Any address of a registered transport: narrowed by its scheme (a.scheme === 'tls' && a.tls). */
export type Address = AddressMap[keyof AddressMap];

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
  /**
   * The overlay step of an overlay transport (TLS), when the caller asked to apply it itself
   * (BindOptions.deferOverlay): the listener runtime runs it after access control.
   */
  overlay?: Acceptor;
  /** Stops accepting; live connections are not touched. */
  close(): Promise<void>;
}

/** Where a transport reports what happens below the connections (TLS handshakes, certificates). */
export interface TransportLog {
  /** Shown with -v (e.g. a failed handshake). */
  event(event: string, text: string, fields?: Record<string, string | number | boolean | null | undefined>): void;
  /** Shown without -v, silenced by -q (e.g. the fingerprint of an ephemeral certificate); warn() where absent. */
  notice?(event: string, text: string, fields?: Record<string, string | number | boolean | null | undefined>): void;
  /** Always shown (e.g. the warning that --insecure skips verification). */
  warn(event: string, text: string, fields?: Record<string, string | number | boolean | null | undefined>): void;
}

export interface DialOptions {
  /** Give up connecting after this many milliseconds (0 or undefined: the system's own timeout). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Transport-level notes (e.g. the warning that --insecure skips verification). */
  log?: TransportLog;
}

export interface WrapOptions extends DialOptions {
  /** For a proxy hop: where the hop is asked to connect (the next hop, or the final address). */
  destination?: { host: string; port: number };
  /** For a proxy hop: its place in the chain, from 1, for messages ("hop 2 (sas1:1080): …"). */
  hop?: number;
}

export interface BindOptions {
  /** Called for every accepted connection. */
  onConnection: (conn: Connection) => void;
  /** Called when accepting fails (e.g. out of file descriptors); the listener keeps going. */
  onAcceptError?: (err: Error) => void;
  /**
   * Bind a socket of our own with SO_REUSEPORT (TCP and TLS): several processes then listen on
   * the same port and the kernel spreads connections among them by a hash of the addresses
   * (forward --workers). Needs Node >= 22.12; ignored, as a shared socket, on older ones.
   */
  reusePort?: boolean;
  /** Transport-level events (handshake failures, certificate notes). */
  log?: TransportLog;
  /**
   * Hand over connections before an overlay (TLS) runs, and return the overlay as
   * Listener.overlay: the listener runtime applies access control and limits first.
   */
  deferOverlay?: boolean;
}

/** The server side of an overlay, prepared once per listener (certificates loaded). */
export interface Acceptor {
  /** Runs the overlay on an accepted connection (a TLS handshake); rejects with one worded line. */
  accept(conn: Connection, signal: AbortSignal): Promise<Connection>;
}

/**
 * A flag a transport adds to every command that can use it. `role` says which address it means
 * something for: one listened on, one connected to, or either. A flag given to a command where
 * no address uses it is refused (exit 2), and hidden from the help of modes that never could.
 */
export interface TransportFlag {
  /** As typed, without dashes: 'client-cert'. */
  name: string;
  alias?: string;
  type: 'string' | 'boolean';
  help: string;
  role: Role | 'both';
}

/** Parsed flag values as yargs hands them over (camelCase keys: clientCert). */
export type FlagValues = Record<string, unknown>;

/** Where an address sits in its command: its role, and whether it is the command's main address. */
export interface AddressSlot {
  role: Role;
  /** The address --tls/-u shorthands refer to (listen's, connect's, forward's LISTEN). */
  primary: boolean;
}

/**
 * A transport: one address scheme, its syntax, flags and help, and how to open it.
 * Each lives in its own file and registers itself in ./registry.ts.
 */
export interface Transport<A extends AddressBase = any> {
  scheme: string;
  /** Other prefixes that select this transport (e.g. "tcp4"). */
  aliases?: string[];
  /** Byte stream or datagrams. */
  kind: 'stream' | 'datagram';
  /** A proxy hop (socks5:, http-connect:): only meaningful in --via, not as an address of its own. */
  hop?: boolean;
  /** One-line description and an example, shown in --help. */
  help: string;
  example: string;
  /** Its command-line flags. */
  flags?: TransportFlag[];
  /** Parses what follows "scheme:". */
  parse(rest: string, role: Role, original: string): A;
  /** Human form of an address of this transport. */
  format(addr: A): string;
  /**
   * Takes over an address of another transport when its flags say so (--tls or --cert turn a
   * TCP address into TLS, -u into UDP); returns undefined to leave it alone. Throws a
   * UsageError for contradictions (--tls on a unix: address).
   */
  adopt?(addr: AddressBase, flags: FlagValues, slot: AddressSlot): A | undefined;
  /** Fills an address's settings from the flags (reads PEM files now: a typo is a usage error). */
  configure?(addr: A, flags: FlagValues, role: Role): A;
  /**
   * Why its flags `names` mean nothing here (no address of this transport takes them), in the
   * user's words; undefined for the generic sentence.
   */
  unusedFlags?(names: string[], roles: Role[]): string | undefined;
  /** Words for its own errors (TLS alerts); undefined when the error is not one of its own. */
  describeError?(err: unknown, label: string, side: ErrorSide): string | undefined;
  /** Opens an outgoing connection (base transports). */
  connect?(addr: A, opts: DialOptions): Promise<Connection>;
  /** Opens a listener (base transports). */
  listen?(addr: A, opts: BindOptions): Promise<Listener>;
  /** Overlay: the address of the stream it rides on (tls:h:p → tcp:h:p; socks5:h:p → tcp:h:p). */
  carrier?(addr: A): AddressBase;
  /** Overlay, client side: runs over an established carrier stream (TLS handshake, proxy request). */
  wrap?(inner: Connection, addr: A, opts: WrapOptions): Promise<Connection>;
  /** Overlay, server side: prepared once per listener (certificates), applied to each accepted stream. */
  acceptor?(addr: A, opts: { log?: TransportLog }): Promise<Acceptor>;
}
