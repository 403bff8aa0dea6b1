/**
 * TLS over TCP: "tls:HOST:PORT" (and --tls on a listening address).
 * - Clients verify the certificate and the host name unless --insecure (ncat does not verify by
 *   default; we do). --ca trusts a CA or a self-signed certificate; --servername sets SNI.
 * - Servers use --cert/--key, or an ephemeral self-signed certificate whose SHA-256 fingerprint
 *   is logged so clients can compare it. --require-client-cert --ca asks for mutual TLS.
 * - Sockets are allowHalfOpen: end() sends close_notify then FIN, and the other direction keeps
 *   flowing, so a reply after the client's EOF still arrives (checked with TLS 1.2 and 1.3).
 * - Each client handshakes on its own with a timeout: a plain-TCP client or a stalled handshake
 *   never holds up the others.
 */
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { NetError, describeError } from '../errors';
import { formatHostPort, parseHostPort, type TlsAddress, type TlsSettings } from './address';
import { registerTransport } from './registry';
import { bindServer, boundHostPort, closeServer, connectTcpSocket, socketConnection, socketPeer } from './tcp';
import { describeTlsError } from './tls-errors';
import type { Connection, ConnectOptions, Listener, ListenOptions, Transport, TransportLog } from './types';

/** How long a client may take to complete the handshake, on either side. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const label = (a: { host: string; port: number }) => `tls:${formatHostPort(a.host, a.port)}`;

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
    // allowHalfOpen is inherited from the TCP socket we wrap (opened with it by connectTcpSocket).
  };
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Runs the client handshake over an established TCP socket; rejects with one worded line. */
function handshake(raw: import('node:net').Socket, addr: TlsAddress, opts: ConnectOptions): Promise<tls.TLSSocket> {
  const where = label(addr);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...clientOptions(addr), socket: raw });
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      raw.destroy();
      if (err instanceof NetError) return reject(err);
      // TLS words first: a reset during the handshake means "not TLS / wants a certificate", not just "reset".
      const words = describeTlsError(err, where) ?? describeError(err, { action: 'connect', address: where });
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
}

async function connectTls(addr: TlsAddress, opts: ConnectOptions): Promise<Connection> {
  const where = label(addr);
  if (addr.tls?.insecure && !insecureWarned.has(where)) {
    insecureWarned.add(where);
    (opts.log ?? stderrLog).warn('insecure', `--insecure: not verifying the certificate of ${where}; anyone in the path can read and change the traffic`, { address: where });
  }
  const raw = await connectTcpSocket(addr, opts);
  const socket = await handshake(raw, addr, opts);
  if (addr.tls?.insecure) {
    const cert = socket.getPeerX509Certificate();
    if (cert) (opts.log ?? stderrLog).event('certificate', `${where} presented a certificate with SHA-256 fingerprint ${cert.fingerprint256}`, { address: where, fingerprint: cert.fingerprint256 });
  }
  return tlsConnection(socket, raw);
}

/** A TLS socket as a Connection; the peer's addresses come from the TCP socket underneath. */
function tlsConnection(socket: tls.TLSSocket, raw?: import('node:net').Socket): Connection {
  const base = socketConnection(raw ?? socket);
  return { ...base, stream: socket };
}

/** Server key and certificate: the user's files, or an ephemeral pair announced with its fingerprint. */
async function serverCredentials(addr: TlsAddress, log: TransportLog | undefined): Promise<{ key: Buffer | string; cert: Buffer | string }> {
  const s = addr.tls ?? {};
  if (s.cert && s.key) {
    const fingerprint = certificateFingerprint(s.cert.pem);
    log?.event('certificate', `using certificate ${s.cert.path}, SHA-256 fingerprint ${fingerprint}`, { file: s.cert.path, fingerprint });
    return { key: s.key.pem, cert: s.cert.pem };
  }
  const eph = await generateEphemeralCertificate();
  (log ?? stderrLog).warn(
    'certificate',
    `no --cert given: using an ephemeral self-signed certificate (localhost, 127.0.0.1, ::1), SHA-256 fingerprint ${eph.fingerprint}`,
    { fingerprint: eph.fingerprint },
  );
  return eph;
}

async function listenTls(addr: TlsAddress, opts: ListenOptions): Promise<Listener> {
  const s = addr.tls ?? {};
  const creds = await serverCredentials(addr, opts.log);
  const server = tls.createServer(
    {
      ...creds,
      ca: s.ca?.pem,
      requestCert: s.requireClientCert ?? false,
      rejectUnauthorized: s.requireClientCert ?? false,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      allowHalfOpen: true,
      // Small records (a handshake, a tunnel frame then the first bytes) go out at once, as on plain TCP.
      noDelay: true,
    },
    (socket) => {
      // 'secureConnection' fires while Node is still decrypting the records that came with the
      // handshake; a handler that shuts down our side at once (stdin already at EOF, a program
      // that closed its stdout) would make Node drop the client's first bytes (Node 20). Hand
      // the connection over once that read is done.
      setImmediate(() => opts.onConnection(tlsConnection(socket)));
    },
  );
  // tls.Server hands its TLS sockets no addresses once they failed: remember each TCP peer's name.
  const peerNames = new WeakMap<object, string>();
  server.on('connection', (raw) => peerNames.set(raw, socketPeer(raw, 'remote').label));
  // One client's failed or stalled handshake is its own business: log it, keep serving the rest.
  server.on('tlsClientError', (err, socket) => {
    const who = peerNames.get((socket as unknown as { _parent?: object })._parent ?? socket) ?? socketPeer(socket, 'remote').label;
    // Node refuses an untrusted client certificate by closing, without an alert: say why here at least.
    const why = socket.authorizationError
      ? `refused ${who}: its client certificate is not trusted (${socket.authorizationError})`
      : (describeTlsError(err, who, 'server') ?? `TLS handshake with ${who} failed: ${err.message}`);
    opts.log?.event('tls-error', why, { client: who, code: String(socket.authorizationError ?? (err as NodeJS.ErrnoException).code) });
    // The handshake never completed: nothing of the client's can be lost by closing now.
    socket.destroy();
  });
  await bindServer(server, addr, label(addr), opts);
  const bound: TlsAddress = { ...addr, ...boundHostPort(server, addr) };
  return { address: bound, label: label(bound), close: () => closeServer(server) };
}

export const tlsTransport: Transport<TlsAddress> = {
  scheme: 'tls',
  aliases: ['ssl'],
  kind: 'stream',
  help: 'TLS over TCP; clients verify the certificate (--ca, --insecure, --servername), listeners use --cert/--key or an ephemeral self-signed certificate (--tls is the shorthand)',
  example: 'tls:example.org:443, listen --tls 8443',
  parse: (rest, role, original) => ({ scheme: 'tls', ...parseHostPort(rest, role, original) }),
  format: (a) => label(a),
  connect: connectTls,
  listen: listenTls,
};

registerTransport(tlsTransport);
