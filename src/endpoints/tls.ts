/**
 * TLS: "tls:HOST:PORT" (and --tls on an address), an overlay over TCP. Everything TLS is here:
 * the address and its settings, the flags and how they are checked, the client handshake, the
 * server side the listener runtime runs on each accepted TCP stream, and the error wording.
 * - Clients verify the certificate and the host name unless --insecure (ncat does not verify by
 *   default; we do). --ca trusts a CA or a self-signed certificate; --servername sets SNI.
 * - Servers use --cert/--key, or an ephemeral self-signed certificate whose SHA-256 fingerprint
 *   is logged so clients can compare it. --require-client-cert --ca asks for mutual TLS.
 * - Sockets are allowHalfOpen: end() sends close_notify then FIN, and the other direction keeps
 *   flowing, so a reply after the client's EOF still arrives (checked with TLS 1.2 and 1.3).
 * - Server handshakes run only after the runtime's access control and connection limit; each has
 *   a timeout, ends at the client's FIN, and their number is bounded (in all and per source), so
 *   a stalled or hostile client never holds up the others.
 */
import fs from 'node:fs';
import path from 'node:path';
import type net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { NetError, UsageError, describeError, type ErrorSide } from '../errors';
import { formatHostPort, parseHostPort, type HostPortAddress } from './address';
import { registerTransport } from './registry';
import { publishSecureSocket } from '../lifecycle';
import type { Acceptor, AddressBase, Connection, FlagValues, Role, Transport, TransportFlag, TransportLog, WrapOptions } from './types';

/** A PEM file read when the command line was parsed (a missing file is a usage error, not a late failure). */
export interface PemFile {
  /** The path the user gave, for messages. */
  path: string;
  pem: Buffer;
}

/**
 * TLS settings, carried inside the address so modes never need to know about them.
 * Server side uses cert/key/ca/requireClientCert; client side ca/insecure/servername/clientCert/clientKey.
 */
export interface TlsSettings {
  /** Server certificate and key; without them a listener makes an ephemeral self-signed certificate. */
  cert?: PemFile;
  key?: PemFile;
  /** Client: CA (or self-signed certificate) to trust instead of the system list. Server: CA that signs client certificates. */
  ca?: PemFile;
  /** Client: do not verify the server's certificate or name. */
  insecure?: boolean;
  /** Client: name sent for SNI and checked against the certificate (default: the host). */
  servername?: string;
  /** Client certificate and key for mutual TLS. */
  clientCert?: PemFile;
  clientKey?: PemFile;
  /** Server: refuse clients without a certificate signed by `ca`. */
  requireClientCert?: boolean;
  /** Server without cert/key: write the ephemeral certificate (not its key) to this file. */
  saveCert?: string;
  /** Client: how the command names `ca` and `insecure` in its advice and warnings (default connect's --ca, --insecure). */
  flags?: TlsClientFlags;
}

/** The words a command uses for a TLS client's trust settings (expose's LOCAL: --local-ca, --local-insecure). */
export interface TlsClientFlags {
  ca: string;
  /** The flag that skips the certificate check. */
  insecure: string;
  /** The way to connect by another name than the host's. */
  servername: string;
  /** The way out for a certificate nobody vouches for, when it is not "pass CA FILE … or INSECURE" (expose's relay: pin its fingerprint). */
  untrusted?: string;
  /** The question to ask when the peer closes during the handshake (default: does it speak TLS? does it want a client certificate?). */
  closed?: string;
}

const CONNECT_FLAGS: TlsClientFlags = { ca: '--ca', insecure: '--insecure', servername: 'pass --servername NAME' };

export interface TlsAddress extends HostPortAddress {
  scheme: 'tls';
  tls?: TlsSettings;
}

/** How long a client may take to complete the handshake, on either side. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Server handshakes in progress at once, in all and from one source address: past these, new clients are refused. */
export const MAX_PENDING_HANDSHAKES = 256;
export const MAX_PENDING_HANDSHAKES_PER_SOURCE = 16;

const label = (a: { host: string; port: number }) => `tls:${formatHostPort(a.host, a.port)}`;

const FLAGS: TransportFlag[] = [
  { name: 'tls', type: 'boolean', role: 'both', help: 'Use TLS on the listening address (connect: on the server address); same as writing tls:HOST:PORT' },
  { name: 'cert', type: 'string', role: 'listen', help: 'TLS server: certificate PEM FILE (without it: an ephemeral self-signed one, fingerprint logged)' },
  { name: 'key', type: 'string', role: 'listen', help: 'TLS server: private key PEM FILE for --cert' },
  { name: 'save-cert', type: 'string', role: 'listen', help: 'TLS server without --cert: write the ephemeral certificate (not its key) to FILE, for curl --cacert FILE or connect --ca FILE' },
  { name: 'ca', type: 'string', role: 'both', help: 'TLS client: trust this CA or self-signed certificate PEM FILE; server: CA for client certificates' },
  { name: 'insecure', type: 'boolean', role: 'connect', help: 'TLS client: do not verify the certificate or host name (says so on stderr)' },
  { name: 'servername', type: 'string', role: 'connect', help: 'TLS client: NAME for SNI and the certificate check (default: the host)' },
  { name: 'client-cert', type: 'string', role: 'connect', help: 'TLS client: certificate PEM FILE for mutual TLS' },
  { name: 'client-key', type: 'string', role: 'connect', help: 'TLS client: private key PEM FILE for --client-cert' },
  { name: 'require-client-cert', type: 'boolean', role: 'listen', help: 'TLS server: refuse clients without a certificate signed by --ca (mutual TLS)' },
];

/** TLS flags as yargs hands them over. */
interface TlsFlags {
  tls?: boolean;
  udp?: boolean;
  cert?: string;
  key?: string;
  ca?: string;
  insecure?: boolean;
  servername?: string;
  clientCert?: string;
  clientKey?: string;
  requireClientCert?: boolean;
  saveCert?: string;
}

/** --tls on the command's main address, or a server certificate flag on a listening one, makes it TLS. */
function adoptTls(addr: AddressBase, flags: FlagValues, slot: { role: Role; primary: boolean }): TlsAddress | undefined {
  const f = flags as TlsFlags;
  if (f.udp && f.tls) throw new UsageError('-u and --tls cannot be combined (DTLS is not supported)');
  const serverFlags = f.cert !== undefined || f.key !== undefined || f.requireClientCert === true || f.saveCert !== undefined;
  const wanted = (f.tls === true && slot.primary) || (slot.role === 'listen' && serverFlags);
  if (!wanted || addr.scheme === 'tls') return undefined;
  if (addr.scheme !== 'tcp') throw new UsageError(`--tls works over TCP, not with ${addr.scheme}: addresses`);
  return { ...(addr as HostPortAddress), scheme: 'tls' };
}

function configureTls(addr: TlsAddress, flags: FlagValues, role: Role): TlsAddress {
  const f = flags as TlsFlags;
  return { ...addr, tls: role === 'listen' ? serverSettings(f) : clientSettings(f) };
}

function serverSettings(a: TlsFlags): TlsSettings {
  if ((a.cert === undefined) !== (a.key === undefined)) throw new UsageError('--cert and --key go together (the certificate and its private key)');
  if (a.requireClientCert && a.ca === undefined) throw new UsageError('--require-client-cert needs --ca FILE: the CA that signs the client certificates');
  const cert = a.cert === undefined ? undefined : readPem(a.cert, '--cert');
  const key = a.key === undefined ? undefined : readPem(a.key, '--key');
  if (cert && key) checkKeyPair(cert, key, '--cert', '--key');
  if (a.saveCert !== undefined && cert) throw new UsageError(`--save-cert writes the ephemeral certificate made without --cert; with --cert, ${cert.path} is already the file to give clients`);
  if (a.saveCert !== undefined) checkWritableFile(a.saveCert, '--save-cert');
  return { cert, key, ca: a.ca === undefined ? undefined : readPem(a.ca, '--ca'), requireClientCert: a.requireClientCert, saveCert: a.saveCert };
}

/** A file we will write: its directory must exist, so a typo is a usage error now, not a failure later. */
function checkWritableFile(file: string, flag: string): void {
  const dir = path.dirname(path.resolve(file));
  let isDir = false;
  try {
    isDir = fs.statSync(dir).isDirectory();
  } catch {
    throw new UsageError(`${flag} ${file}: no such directory ${dir}`);
  }
  if (!isDir) throw new UsageError(`${flag} ${file}: ${dir} is not a directory`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new UsageError(`${flag} ${file}: is a directory`);
}

/** --save-cert: the certificate only (public), readable by everyone like any certificate. */
function saveCertificate(file: string, pem: string): void {
  try {
    fs.writeFileSync(file, pem, { mode: 0o644 });
  } catch (err) {
    throw new NetError(`--save-cert ${file}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code);
  }
}

function clientSettings(a: TlsFlags): TlsSettings {
  if ((a.clientCert === undefined) !== (a.clientKey === undefined)) throw new UsageError('--client-cert and --client-key go together (the certificate and its private key)');
  if (a.insecure && a.ca !== undefined) throw new UsageError('--insecure and --ca contradict each other: --ca verifies with that CA, --insecure verifies nothing');
  const clientCert = a.clientCert === undefined ? undefined : readPem(a.clientCert, '--client-cert');
  const clientKey = a.clientKey === undefined ? undefined : readPem(a.clientKey, '--client-key');
  if (clientCert && clientKey) checkKeyPair(clientCert, clientKey, '--client-cert', '--client-key');
  return {
    ca: a.ca === undefined ? undefined : readPem(a.ca, '--ca'),
    insecure: a.insecure,
    servername: a.servername,
    clientCert,
    clientKey,
  };
}

/** Reads a PEM file now, so a typo is a usage error before anything listens or connects. */
export function readPem(path: string, flag: string): PemFile {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new UsageError(`${flag} ${path}: ${why}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new UsageError(`${flag} ${path}: not a PEM file (expected a -----BEGIN …----- block)`);
  return { path, pem };
}

/** A certificate with someone else's key fails every handshake: say so at start instead. */
export function checkKeyPair(cert: PemFile, key: PemFile, certFlag: string, keyFlag: string): void {
  // OpenSSL only says "PEM routines::no start line": name the usual cause, files given the wrong way round.
  if (!cert.pem.includes('-----BEGIN CERTIFICATE')) {
    const holds = /-----BEGIN [A-Z ]*PRIVATE KEY/.test(cert.pem.toString()) ? `holds a private key, not a certificate: swapped with ${keyFlag}?` : 'holds no certificate (-----BEGIN CERTIFICATE-----)';
    throw new UsageError(`${certFlag} ${cert.path} ${holds}`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY/.test(key.pem.toString())) throw new UsageError(`${keyFlag} ${key.path} holds no private key (-----BEGIN PRIVATE KEY-----)`);
  try {
    tls.createSecureContext({ cert: cert.pem, key: key.pem });
  } catch (err) {
    const msg = (err as Error).message;
    const why = /mismatch/i.test(msg) ? 'the key does not belong to the certificate' : msg;
    throw new UsageError(`${certFlag} ${cert.path} with ${keyFlag} ${key.path}: ${why}`);
  }
}

/** TLS flags given where no TLS address takes them: silently ignoring them would leave the user believing they act. */
function unusedTlsFlags(names: string[], roles: Role[]): string | undefined {
  const clientOnly = ['insecure', 'servername', 'client-cert', 'client-key'];
  const serverOnly = ['cert', 'key', 'require-client-cert', 'save-cert'];
  if (!roles.includes('connect') && names.some((n) => clientOnly.includes(n))) {
    return '--insecure, --servername, --client-cert and --client-key are for TLS clients, and this mode only listens (to ask clients for certificates: --require-client-cert --ca FILE)';
  }
  if (!roles.includes('listen') && names.some((n) => serverOnly.includes(n))) {
    if (names.includes('save-cert')) return '--save-cert is for a TLS listener (listen --tls, exec --tls…): connect makes no certificate; it trusts one with --ca FILE';
    return '--cert, --key and --require-client-cert are for TLS servers, and this mode only connects (its own certificate is --client-cert/--client-key)';
  }
  if (!roles.includes('listen')) return '--ca, --insecure, --servername and --client-cert apply to TLS: write tls:HOST:PORT or add --tls';
  if (!roles.includes('connect')) return '--ca applies to a TLS listener: add --tls (and --require-client-cert to ask clients for certificates)';
  return `${names.map((n) => `--${n}`).join(', ')} ${names.length > 1 ? 'apply' : 'applies'} to TLS, and the target is plain TCP: nothing would be verified (write the target as tls:HOST:PORT)`;
}

/** Logs to stderr directly when a caller gave no log: the --insecure warning must never be silent. */
const stderrLog: TransportLog = {
  event: () => {},
  warn: (_event, text) => process.stderr.write(`sockcat: ${text}\n`),
};

/** Addresses already warned about, so a forward opening many connections says it once. */
const insecureWarned = new Set<string>();

/** "AB:CD:…" SHA-256 fingerprint of a PEM certificate, computed from its DER bytes. */
export function certificateFingerprint(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/**
 * A throwaway self-signed certificate for localhost, 127.0.0.1 and ::1, valid 30 days.
 * EC P-256: generated in milliseconds, accepted by openssl, gnutls and curl.
 */
export async function generateEphemeralCertificate(): Promise<{ key: string; cert: string; fingerprint: string }> {
  // Loaded here, not at the top: selfsigned and its X.509 libraries are half of sockcat's
  // JavaScript, and evaluating them cost every start-up ~40 ms for the few runs that need a certificate.
  const { generate: generateSelfSigned } = await import('selfsigned');
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generateSelfSigned([{ name: 'commonName', value: 'sockcat ephemeral' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 30 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  return { key: pems.private, cert: pems.cert, fingerprint: certificateFingerprint(pems.cert) };
}

/** Client options from the address's settings. */
function clientOptions(addr: TlsAddress): tls.ConnectionOptions {
  const s: TlsSettings = addr.tls ?? {};
  const servername = s.servername ?? addr.host;
  return {
    // SNI carries names only; an IP literal is still checked against the certificate's IP entries.
    servername: isIpLiteral(servername) ? undefined : servername,
    ca: s.ca?.pem,
    cert: s.clientCert?.pem,
    key: s.clientKey?.pem,
    rejectUnauthorized: !s.insecure,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(servername, cert),
    // allowHalfOpen is inherited from the stream we wrap (TCP sockets are opened with it).
  };
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** The client side: a handshake over an established carrier stream; rejects with one worded line. */
async function wrapTls(inner: Connection, addr: TlsAddress, opts: WrapOptions): Promise<Connection> {
  const where = label(addr);
  const log = opts.log ?? stderrLog;
  if (addr.tls?.insecure && !insecureWarned.has(where)) {
    insecureWarned.add(where);
    log.warn('insecure', `${(addr.tls.flags ?? CONNECT_FLAGS).insecure}: not verifying the certificate of ${where}; anyone in the path can read and change the traffic`, { address: where });
  }
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect({ ...clientOptions(addr), socket: inner.stream });
    // --trace/--stats: the bytes now pass through this socket, not the carrier below it.
    publishSecureSocket({ socket, carrier: inner.stream as net.Socket, role: 'client' });
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      if (err instanceof NetError) return reject(err);
      // TLS words first: a reset during the handshake means "not TLS / wants a certificate", not just "reset".
      const code = String((err as NodeJS.ErrnoException)?.code ?? '');
      // An alert about a certificate, received while we presented ours: the server refused it
      // (TLS 1.2 refuses during the handshake; our own verification failures are not alerts).
      const refusedOurs = addr.tls?.clientCert && CERTIFICATE_ALERT.test(code) ? `${where}: the server rejected our client certificate (${code.replace(/^ERR_SSL_(TLSV1_)?ALERT_/, 'alert ').toLowerCase().replace(/_/g, ' ')}): is --client-cert signed by a CA it trusts?` : undefined;
      const words = refusedOurs ?? describeTlsError(err, where, 'client', addr.tls?.flags) ?? describeError(err, { action: 'connect', address: where });
      reject(new NetError(words, (err as NodeJS.ErrnoException)?.code));
    };
    const timer = setTimeout(() => fail(new NetError(`TLS handshake with ${where} timed out after ${TLS_HANDSHAKE_TIMEOUT_MS / 1000} s`, 'ETIMEDOUT')), TLS_HANDSHAKE_TIMEOUT_MS);
    const onAbort = () => fail(new NetError(`connect to ${where} aborted`));
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('error', fail);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      cleanup();
      resolve(socket);
    });
  });
  if (addr.tls?.insecure) {
    const cert = socket.getPeerX509Certificate();
    if (cert) log.event('certificate', `${where} presented a certificate with SHA-256 fingerprint ${cert.fingerprint256}`, { address: where, fingerprint: cert.fingerprint256 });
  }
  // The peers' addresses are the carrier's.
  return { stream: socket, remote: inner.remote, local: inner.local };
}

/** Alerts a server sends about the client certificate it was shown. */
export const CERTIFICATE_ALERT = /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)/;

/** Server key and certificate: the user's files, or an ephemeral pair announced with its fingerprint. */
async function serverCredentials(addr: TlsAddress, log: TransportLog | undefined): Promise<{ key: Buffer | string; cert: Buffer | string }> {
  const s = addr.tls ?? {};
  if (s.cert && s.key) {
    const fingerprint = certificateFingerprint(s.cert.pem);
    log?.event('certificate', `using certificate ${s.cert.path}, SHA-256 fingerprint ${fingerprint}`, { file: s.cert.path, fingerprint });
    return { key: s.key.pem, cert: s.cert.pem };
  }
  const eph = await generateEphemeralCertificate();
  if (s.saveCert !== undefined) saveCertificate(s.saveCert, eph.cert);
  const saved = s.saveCert === undefined ? '' : `; saved to ${s.saveCert} (clients: --ca ${s.saveCert}, curl --cacert ${s.saveCert})`;
  const l = log ?? stderrLog;
  (l.notice ?? l.warn).call(l,
    'certificate',
    `no --cert given: using an ephemeral self-signed certificate (localhost, 127.0.0.1, ::1), SHA-256 fingerprint ${eph.fingerprint}${saved}`,
    { fingerprint: eph.fingerprint, file: s.saveCert },
  );
  return eph;
}

/** A handshake in progress, found again by the TCP socket under its TLS socket. */
interface Pending {
  who: string;
  source: string;
  resolve(socket: tls.TLSSocket): void;
  reject(err: Error): void;
}
/** The TCP socket a server-side TLS socket was made from (Node keeps it as _parent). */
const carrierOf = (s: tls.TLSSocket): net.Socket | undefined => (s as unknown as { _parent?: net.Socket })._parent;

/**
 * The server side, prepared once per listener: a tls.Server that never listens, to which each
 * accepted TCP stream is handed (Node's own handshake, verification and timeout), bounded in
 * number, and dropped when the client sends FIN before the handshake is done.
 */
async function tlsAcceptor(addr: TlsAddress, opts: { log?: TransportLog }): Promise<Acceptor> {
  const s = addr.tls ?? {};
  const creds = await serverCredentials(addr, opts.log);
  const server = tls.createServer({
    ...creds,
    ca: s.ca?.pem,
    requestCert: s.requireClientCert ?? false,
    rejectUnauthorized: s.requireClientCert ?? false,
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
  });
  const pending = new Map<net.Socket, Pending>();
  const perSource = new Map<string, number>();
  if (s.requireClientCert) {
    // Node refuses an untrusted client certificate by closing the connection, with a FIN and no
    // alert: to a client whose stdin is already at EOF that looks like an exchange that simply
    // ended. Take that refusal over (refuseCertificate below). The first keylog line comes during
    // the handshake, before Node's verdict; a client sending no certificate at all is still
    // refused by OpenSSL itself, with its certificate_required alert.
    server.on('keylog', (_line: Buffer, socket: tls.TLSSocket) => {
      (socket as unknown as { _rejectUnauthorized?: boolean })._rejectUnauthorized = false;
    });
  }

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    publishSecureSocket({ socket, carrier: carrierOf(socket), role: 'server' });
    const p = pending.get(carrierOf(socket)!);
    if (!p) return void socket.destroy();
    if (s.requireClientCert && !socket.authorized) return refuseCertificate(socket, p);
    // From now on a FIN only ends the client's direction: a reply after it still gets through.
    socket.allowHalfOpen = true;
    // 'secureConnection' fires while Node is still decrypting the records that came with the
    // handshake; a handler that shuts down our side at once (stdin already at EOF, a program
    // that closed its stdout) would make Node drop the client's first bytes (Node 20). Hand
    // the connection over once that read is done.
    setImmediate(() => p.resolve(socket));
  });
  // One client's failed or stalled handshake is its own business: say why, keep serving the rest.
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    const p = pending.get(carrierOf(socket)!);
    socket.destroy();
    if (!p) return;
    // Node refuses an untrusted client certificate by closing, without an alert: say why here at least.
    const why = socket.authorizationError
      ? `refused ${p.who}: its client certificate is not trusted (${socket.authorizationError})`
      : ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? `client ${p.who} closed the connection during the TLS handshake` : undefined) ??
        describeTlsError(err, p.who, 'server') ??
        `TLS handshake with ${p.who} failed: ${err.message}`;
    p.reject(new NetError(why, String(socket.authorizationError ?? (err as NodeJS.ErrnoException).code)));
  });

  return {
    accept(conn: Connection, signal: AbortSignal): Promise<Connection> {
      const raw = conn.stream as net.Socket;
      const who = conn.remote.label;
      const source = conn.remote.address;
      if (pending.size >= MAX_PENDING_HANDSHAKES) return Promise.reject(new NetError(`refused ${who}: ${MAX_PENDING_HANDSHAKES} TLS handshakes already in progress`, 'EBUSY'));
      if ((perSource.get(source) ?? 0) >= MAX_PENDING_HANDSHAKES_PER_SOURCE) {
        return Promise.reject(new NetError(`refused ${who}: ${MAX_PENDING_HANDSHAKES_PER_SOURCE} TLS handshakes from ${source} already in progress`, 'EBUSY'));
      }
      if (raw.destroyed) return Promise.reject(new NetError(`client ${who} was gone before the TLS handshake`, 'ECONNRESET'));
      return new Promise<Connection>((resolve, reject) => {
        let settled = false;
        const done = () => {
          // Once: an abort (listener stopping) and a late verdict must not both count the source down.
          if (settled) return;
          settled = true;
          pending.delete(raw);
          const left = (perSource.get(source) ?? 1) - 1;
          if (left > 0) perSource.set(source, left);
          else perSource.delete(source);
          signal.removeEventListener('abort', onAbort);
        };
        const onAbort = () => {
          done();
          raw.destroy();
          reject(new NetError(`TLS handshake with ${who} aborted`));
        };
        pending.set(raw, {
          who,
          source,
          resolve: (socket) => {
            done();
            resolve({ stream: socket, remote: conn.remote, local: conn.local });
          },
          reject: (err) => {
            done();
            reject(err);
          },
        });
        perSource.set(source, (perSource.get(source) ?? 0) + 1);
        signal.addEventListener('abort', onAbort, { once: true });
        // Not half-open during the handshake: a client that sends FIN before finishing it closes
        // the TLS socket (tlsClientError) instead of holding it until the timeout.
        raw.allowHalfOpen = false;
        server.emit('connection', raw);
      });
    },
  };
}

/** The TLS alert for a client certificate refused for `reason` (an OpenSSL verify code). */
function alertFor(reason: string): number {
  if (reason === 'CERT_HAS_EXPIRED') return 45; // certificate_expired
  if (reason === 'CERT_REVOKED') return 44; // certificate_revoked
  if (/ISSUER|SELF_SIGNED|UNABLE_TO_VERIFY_LEAF|INVALID_CA|CERT_UNTRUSTED/.test(reason)) return 48; // unknown_ca
  return 42; // bad_certificate
}

/** How long a refused client may take to close after its refusal before we reset it anyway. */
const REFUSAL_LINGER_MS = 1000;

/**
 * Refuses a client whose certificate did not verify, so that the client sees a failure, never a
 * clean close. Under TLS 1.2 the handshake is not over for the client yet: a fatal alert
 * (unknown_ca…) tells it why. Under TLS 1.3 the client's handshake is already over and an alert
 * would have to be encrypted with keys Node does not let us use (sent in clear, clients report
 * "bad record type"), so a reset says it. The reset waits for the client's EOF, or
 * REFUSAL_LINGER_MS: a client that shuts down its side *after* our reset
 * arrived loses the error (its kernel reports it to that last write, whose failure Node ignores,
 * and then reads a plain EOF: the very "clean close" this avoids).
 */
function refuseCertificate(socket: tls.TLSSocket, p: Pending): void {
  const reason = String(socket.authorizationError ?? 'UNABLE_TO_GET_ISSUER_CERT');
  const raw = carrierOf(socket);
  socket.on('error', () => {});
  // A client whose stdin was already at EOF sent close_notify and FIN with its Finished: Node
  // would answer them with our own FIN.
  socket.allowHalfOpen = true;
  let done = false;
  const reset = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    // The TCP carrier first (destroying the TLS socket would close it with a FIN), then the
    // runtime is told, which destroys what is left.
    if (raw && !raw.destroyed) raw.resetAndDestroy();
    socket.destroy();
    p.reject(new NetError(`refused ${p.who}: its client certificate is not trusted (${reason})`, reason));
  };
  // Never from inside the TLS layer's own callbacks (closing its handle there crashes Node).
  const soon = () => setImmediate(reset);
  const timer = setTimeout(reset, REFUSAL_LINGER_MS);
  // What it sends meanwhile is read and dropped; its EOF is the cue.
  socket.on('data', () => {});
  socket.on('end', soon);
  socket.on('close', soon);
  // A fatal alert record (level 2) in clear: a TLS 1.2 client still waits for our Finished.
  if (raw && socket.getProtocol() !== 'TLSv1.3') raw.write(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alertFor(reason)]), () => {});
}

/** Certificate verification failures (client side): what is wrong with the certificate, and the way out. */
/** `untrusted`: nothing vouches for the certificate, so TlsClientFlags.untrusted, when set, is the way out. */
const VERIFY_FAILURES: Record<string, { what: string; hint: (f: TlsClientFlags) => string; untrusted?: true }> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: { what: 'is self-signed', hint: (f) => `pass ${f.ca} FILE to trust it or ${f.insecure}`, untrusted: true },
  SELF_SIGNED_CERT_IN_CHAIN: { what: 'is signed by an untrusted self-signed CA', hint: (f) => `pass ${f.ca} FILE with that CA or ${f.insecure}`, untrusted: true },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { what: 'is signed by an unknown authority', hint: (f) => `pass ${f.ca} FILE with the CA that signed it or ${f.insecure}`, untrusted: true },
  UNABLE_TO_GET_ISSUER_CERT: { what: 'is signed by an unknown authority', hint: (f) => `pass ${f.ca} FILE with the CA that signed it or ${f.insecure}`, untrusted: true },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: { what: 'is signed by an unknown authority', hint: (f) => `pass ${f.ca} FILE with the CA that signed it or ${f.insecure}`, untrusted: true },
  CERT_HAS_EXPIRED: { what: 'has expired', hint: (f) => `the server must renew it (${f.insecure} skips the check)` },
  CERT_NOT_YET_VALID: { what: 'is not valid yet', hint: (f) => `check this machine's clock (${f.insecure} skips the check)` },
  CERT_SIGNATURE_FAILURE: { what: 'has an invalid signature', hint: () => 'it may have been tampered with' },
  CERT_REVOKED: { what: 'has been revoked', hint: () => 'the server must get a new one' },
  INVALID_CA: { what: 'is signed by a certificate that is not a CA', hint: (f) => `pass ${f.ca} FILE with the real CA` },
  CERT_UNTRUSTED: { what: 'is not trusted', hint: (f) => `pass ${f.ca} FILE to trust it or ${f.insecure}`, untrusted: true },
};

/** Alerts the peer sent, or protocol mismatches, keyed by a fragment of the error code. */
const HANDSHAKE_FAILURES: [RegExp, (label: string, side: ErrorSide) => string][] = [
  [
    /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE|UNKNOWN_PROTOCOL|UNEXPECTED_MESSAGE/,
    (l, side) => (side === 'client' ? `${l} does not speak TLS (a plain TCP service? then use tcp: instead of tls:)` : `client ${l} does not speak TLS (plain text sent to this TLS port)`),
  ],
  [/HTTP_REQUEST/, (l, side) => (side === 'client' ? `${l}: plain HTTP was sent to a TLS port (use https://)` : `client ${l} sent plain HTTP to this TLS port (it should use https://)`)],
  [
    /ALERT_CERTIFICATE_REQUIRED|PEER_DID_NOT_RETURN_A_CERTIFICATE/,
    (l, side) => (side === 'client' ? `${l} requires a client certificate — pass --client-cert FILE --client-key FILE` : `refused client ${l}: it sent no client certificate (--require-client-cert)`),
  ],
  [/ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE_UNKNOWN/, (l) => `${l} rejected the certificate it was shown (not signed by a CA it trusts)`],
  [/ALERT_HANDSHAKE_FAILURE|NO_SHARED_CIPHER|ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/, (l) => `TLS handshake with ${l} failed: no protocol version or cipher in common`],
  [/ERR_TLS_HANDSHAKE_TIMEOUT/, (l) => `TLS handshake with ${l} timed out`],
];

/**
 * Words a TLS error for the user, naming `label` (e.g. "tls:127.0.0.1:8443", or the client's
 * address on the server `side`); undefined when the error is not a TLS one (then the caller's
 * generic wording applies).
 */
export function describeTlsError(err: unknown, label: string, side: ErrorSide = 'client', flags: TlsClientFlags = CONNECT_FLAGS): string | undefined {
  const e = err as NodeJS.ErrnoException & { reason?: string; host?: string; cert?: { subjectaltname?: string } };
  const code = e?.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = e.cert?.subjectaltname ? ` (it is for ${e.cert.subjectaltname})` : '';
    return `certificate of ${label} does not match the name '${e.host ?? '?'}'${names} — connect by a name it lists, or ${flags.servername}`;
  }
  const verify = VERIFY_FAILURES[code];
  if (verify) return `certificate of ${label} ${verify.what} — ${(verify.untrusted && flags.untrusted) || verify.hint(flags)}`;
  for (const [pattern, words] of HANDSHAKE_FAILURES) if (pattern.test(code)) return words(label, side);
  if (code.startsWith('ERR_SSL_')) return `TLS error with ${label}: ${e.reason ?? e.message}`;
  if (/before secure TLS connection was established/.test(e?.message ?? '')) {
    return `${label} closed the connection during the TLS handshake${flags.closed ? `: ${flags.closed}` : ' (does it speak TLS? does it want a client certificate?)'}`;
  }
  return undefined;
}

export const tlsTransport: Transport<TlsAddress> = {
  scheme: 'tls',
  aliases: ['ssl'],
  kind: 'stream',
  help: 'TLS over TCP; clients verify the certificate (--ca, --insecure, --servername), listeners use --cert/--key or an ephemeral self-signed certificate (--tls is the shorthand)',
  example: 'tls:example.org:443, listen --tls 8443',
  flags: FLAGS,
  parse: (rest, role, original) => ({ scheme: 'tls', ...parseHostPort(rest, role, original) }),
  format: label,
  adopt: adoptTls,
  configure: configureTls,
  unusedFlags: unusedTlsFlags,
  describeError: describeTlsError,
  carrier: (a) => ({ scheme: 'tcp', host: a.host, port: a.port, hostGiven: a.hostGiven, family: a.family }),
  wrap: wrapTls,
  acceptor: tlsAcceptor,
};

registerTransport(tlsTransport);

declare module './types' {
  interface AddressMap {
    tls: TlsAddress;
  }
}
