/**
 * Allow links, after MySafeIP: `--allow-link ADDR` serves a small HTTP endpoint where opening
 * `http://ADDR/LINKID` in a browser lets the visitor's address in (adds it to the mode's allow
 * list) for a while. The owner hands a friend one link instead of asking for their IP, and the
 * services behind stay closed to the bots that scan everything.
 *
 * - Link IDs live in `--allow-link-file` (`ID LABEL [TTL]` a line, re-read when it changes).
 *   Deleting a line revokes the link and what it granted. `sockcat allow-link new` makes IDs.
 * - A grant lasts the link's TTL or `--allow-link-ttl` (12 h), is written to the `--allow-file`
 *   (a line `ADDR # allow-link LABEL until ISO-TIME link=FINGERPRINT`) so a restart keeps it, and
 *   leaves the file and the allow list on its own when it expires. Every grant, expiry and
 *   revocation is logged with the link's label; the link ID itself is never written or logged.
 * - Unknown IDs get 404 and are logged; a source that keeps guessing is answered ever more slowly.
 * - The visitor is the real client: the PROXY header's address when `--accept-proxy-protocol`
 *   is on, or the last `X-Forwarded-For` hop not in `--trusted-proxy` when a trusted proxy asks.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { AccessControl, parseRule } from './access';
import { ProxyAcceptor } from './accept-proxy';
import { formatHostPort, isWildcardHost } from './endpoints/address';
import { listenAddress, parseAddress, type Connection, type Listener, type TcpAddress, type TlsAddress } from './endpoints/index';
import { socketPeer } from './endpoints/tcp';
import { NetError, UsageError } from './errors';
import { formatDuration, type Logger } from './log';

/** Default --allow-link-ttl: long enough for an evening, short enough that a phone's address does not stay open for days. */
export const DEFAULT_ALLOW_LINK_TTL_MS = 12 * 3600_000;
/** Bytes of randomness in a new link ID: 144 bits, 24 URL-safe characters. */
const LINK_ID_BYTES = 18;
/** Shortest ID the link file accepts: 22 base64url characters carry 128 bits. */
const MIN_LINK_ID_LENGTH = 22;
/** Unknown IDs a source may try (in FAILURE_WINDOW_MS) before its answers slow down. */
const FREE_FAILURES = 5;
const FAILURE_WINDOW_MS = 10 * 60_000;
/** The longest a guessing source waits for an answer. */
const MAX_SLOWDOWN_MS = 10_000;
/** Answers held back at once for one slowed-down source; more get 429 at once. */
const MAX_HELD_PER_SOURCE = 4;
/** Sources remembered for the slowdown at most (oldest forgotten first): memory stays bounded. */
const MAX_TRACKED_SOURCES = 10_000;
/** How often grants are checked for expiry and the link file for changes. */
const SWEEP_MS = 500;

export interface AllowLinkOptions {
  /** Where the HTTP endpoint listens (loopback unless told); tls: serves HTTPS with --cert/--key. */
  address: TcpAddress | TlsAddress;
  /** The link file: `ID LABEL [TTL]` a line. */
  linkFile: string;
  /** How long a grant lasts when its link names no TTL (ms). */
  ttlMs?: number;
  /** Answer with a redirect to this URL instead of a short page. */
  redirect?: string;
}

/** One link of the link file. */
export interface AllowLink {
  id: string;
  label: string;
  /** The link's own TTL, or undefined for --allow-link-ttl. */
  ttlMs?: number;
  /** A short hash of the ID: names the link in the allow file without giving the ID away. */
  fingerprint: string;
}

/** One address let in by a link. */
export interface Grant {
  address: string;
  label: string;
  fingerprint: string;
  expiresAt: number;
}

/** "12h", "30m", "90s", "2d", "1h30m" or a number of seconds → ms; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  if (!/^(\d+(\.\d+)?(d|h|m|s|ms))+$/.test(t)) return undefined;
  const unit: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(d|h|ms|m|s)/g)) ms += Number(m[1]) * unit[m[2]];
  return Math.round(ms);
}

/** A duration option (--allow-link-ttl, a link's TTL): a usage error unless > 0. */
export function durationOption(text: string, what: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`${what} takes a duration such as 12h, 30m, 90s or 2d (or seconds), not '${text}'`);
  return ms;
}

/** A new unguessable link ID: 144 random bits, URL-safe (base64url). */
export function newLinkId(): string {
  return crypto.randomBytes(LINK_ID_BYTES).toString('base64url');
}

const fingerprintOf = (id: string) => crypto.createHash('sha256').update(id).digest('hex').slice(0, 12);
/** Links are looked up by a hash of the ID, so how long a lookup takes says nothing about the ID. */
const lookupKey = (id: string) => crypto.createHash('sha256').update(id).digest('base64');

/** A label is one word: it appears in logs and in the allow file's comments. */
export function checkLabel(label: string, what = 'label'): string {
  if (!/^[^\s#]{1,64}$/u.test(label)) throw new UsageError(`the ${what} is one word of at most 64 characters, without spaces or '#' (e.g. grandma or bob-phone), not '${label}'`);
  return label;
}

/** Reads the link file's text: the links, and one message per bad line (which is skipped). */
export function parseLinkFile(text: string, file: string): { links: AllowLink[]; problems: string[] } {
  const links: AllowLink[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const where = `${file}:${i + 1}`;
    const [id, label, ttl, ...extra] = line.split(/\s+/);
    if (label === undefined || extra.length) return problems.push(`${where}: expected 'ID LABEL [TTL]'`);
    if (!/^[A-Za-z0-9_-]+$/.test(id) || id.length < MIN_LINK_ID_LENGTH) {
      return problems.push(`${where}: the link ID must be at least ${MIN_LINK_ID_LENGTH} URL-safe characters (make one with: sockcat allow-link new LABEL --file ${file})`);
    }
    if (/[^\s#]{65,}/.test(label)) return problems.push(`${where}: the label is longer than 64 characters`);
    let ttlMs: number | undefined;
    if (ttl !== undefined) {
      ttlMs = parseDuration(ttl);
      if (ttlMs === undefined || ttlMs <= 0) return problems.push(`${where}: '${ttl}' is not a duration (12h, 30m, 2d…)`);
    }
    links.push({ id, label, ttlMs, fingerprint: fingerprintOf(id) });
  });
  return { links, problems };
}

/** The allow-file line of a grant, and the pattern that finds grant lines again after a restart. */
function grantLine(g: Grant): string {
  return `${g.address} # allow-link ${g.label} until ${new Date(g.expiresAt).toISOString()} link=${g.fingerprint}`;
}
const GRANT_LINE = /^\s*(\S+)\s+# allow-link (\S+) until (\S+) link=([0-9a-f]+)\s*$/;

/** Reads the grants kept in an allow file (other lines are the owner's and are left alone). */
export function readGrants(text: string): Grant[] {
  const grants: Grant[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = GRANT_LINE.exec(line);
    if (!m) continue;
    const expiresAt = Date.parse(m[3]);
    if (!Number.isFinite(expiresAt)) continue;
    try {
      parseRule(m[1]);
    } catch {
      continue;
    }
    grants.push({ address: m[1], label: m[2], expiresAt, fingerprint: m[4] });
  }
  return grants;
}

/**
 * The grants and where they are kept: the allow file (rewritten atomically, the owner's own
 * lines untouched) and the access control (updated at once).
 */
export class GrantStore {
  private grants = new Map<string, Grant>();

  constructor(
    private readonly allowFile: string,
    private readonly logger: Logger,
  ) {
    // Synchronous on purpose: runs before the access control first reads the file, so a grant
    // that expired while sockcat was stopped never lets anyone in.
    let text: string;
    try {
      text = fs.readFileSync(allowFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--allow-file: ${allowFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const now = Date.now();
    let expired = 0;
    for (const g of readGrants(text)) {
      if (g.expiresAt <= now) expired++;
      else this.grants.set(g.address, g);
    }
    if (expired) {
      this.writeFileSync();
      logger.event('allow-link-expired', `${expired} allow-link grant(s) expired while sockcat was stopped: removed from ${allowFile}`, { count: expired });
    }
    if (this.grants.size) logger.event('allow-link', `${this.grants.size} allow-link grant(s) kept from ${allowFile}`, { count: this.grants.size });
  }

  /** The access control to keep up to date (set once it exists). */
  access?: AccessControl;

  list(): Grant[] {
    return [...this.grants.values()];
  }

  /** Lets `address` in until `expiresAt` (a later grant of the same address replaces it). */
  add(g: Grant): void {
    this.grants.set(g.address, g);
    this.changed();
  }

  /** Drops the grants `pick` selects; returns them. */
  remove(pick: (g: Grant) => boolean): Grant[] {
    const gone = this.list().filter(pick);
    if (gone.length === 0) return gone;
    for (const g of gone) this.grants.delete(g.address);
    this.changed();
    return gone;
  }

  /** Pushes the grants to the access control now and to the allow file. */
  changed(): void {
    this.access?.setGranted(this.list().map((g) => g.address));
    try {
      this.writeFileSync();
    } catch (err) {
      this.logger.error('allow-link', `could not write the grants to ${this.allowFile} (they hold until sockcat stops): ${(err as Error).message}`);
    }
  }

  /** Rewrites the allow file: the owner's lines as they are, then one line per live grant. */
  private writeFileSync(): void {
    const current = fs.readFileSync(this.allowFile, 'utf8');
    const kept = current.split(/\r?\n/).filter((l) => !GRANT_LINE.test(l));
    while (kept.length && kept[kept.length - 1] === '') kept.pop();
    const lines = [...kept, ...this.list().map(grantLine)];
    const tmp = path.join(path.dirname(this.allowFile), `.${path.basename(this.allowFile)}.sockcat-${process.pid}`);
    const mode = fs.statSync(this.allowFile).mode & 0o777;
    // A new file then a rename: a reader (sockcat's own access control, or the owner's editor)
    // never sees half a file.
    fs.writeFileSync(tmp, lines.length ? lines.join('\n') + '\n' : '', { mode });
    fs.renameSync(tmp, this.allowFile);
  }
}

/** Per-source count of unknown IDs, to slow down whoever guesses. Bounded in memory. */
class Guessers {
  private readonly failures = new Map<string, { count: number; since: number }>();

  /** How long to hold this source's next answer. */
  delayFor(source: string): number {
    const f = this.failures.get(source);
    if (!f) return 0;
    if (Date.now() - f.since > FAILURE_WINDOW_MS) {
      this.failures.delete(source);
      return 0;
    }
    if (f.count < FREE_FAILURES) return 0;
    return Math.min(MAX_SLOWDOWN_MS, 250 * 2 ** (f.count - FREE_FAILURES));
  }

  failed(source: string): number {
    let f = this.failures.get(source);
    if (!f || Date.now() - f.since > FAILURE_WINDOW_MS) {
      this.failures.delete(source);
      if (this.failures.size >= MAX_TRACKED_SOURCES) this.failures.delete(this.failures.keys().next().value!);
      f = { count: 0, since: Date.now() };
      this.failures.set(source, f);
    }
    return ++f.count;
  }
}

/** The allow-link endpoint of one listening mode. */
export class AllowLinks {
  readonly store: GrantStore;
  private links = new Map<string, AllowLink>();
  private linkFileSeen = '';
  private readonly guessers = new Guessers();
  /** Answers being held back, per slowed-down source. */
  private readonly held = new Map<string, number>();
  private listener?: Listener;
  private http?: http.Server;
  private sweepTimer?: NodeJS.Timeout;
  private readonly realPeer = new WeakMap<net.Socket, string>();
  private readonly trusted?: AccessControl;
  /** "127.0.0.1:8088", once listening. */
  label = '';
  port = 0;

  constructor(
    private readonly opts: AllowLinkOptions & { allowFile: string; trustedProxies?: string[]; proxy?: ProxyAcceptor },
    private readonly logger: Logger,
  ) {
    this.store = new GrantStore(opts.allowFile, logger);
    this.readLinkFile(true);
    // Links deleted while sockcat was stopped are revoked now, with what they let in.
    const known = new Set([...this.links.values()].map((l) => l.fingerprint));
    for (const g of this.store.remove((x) => !known.has(x.fingerprint))) {
      this.logger.event('allow-link-revoked', `${g.address} (link ${g.label}) no longer let in: its link is gone from ${opts.linkFile}`, { address: g.address, label: g.label });
    }
    if (opts.trustedProxies?.length) this.trusted = new AccessControl({ allow: opts.trustedProxies });
  }

  /** Hooks the access control the grants go to (they apply at once). */
  attach(access: AccessControl): void {
    this.store.access = access;
    access.setGranted(this.store.list().map((g) => g.address));
  }

  private readLinkFile(first: boolean): void {
    const file = this.opts.linkFile;
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      if (first) throw new UsageError(`--allow-link-file: ${file}: no such file (make one with: sockcat allow-link new LABEL --file ${file})`);
      if (this.linkFileSeen !== 'missing') this.logger.warn('allow-link', `${file} is gone: keeping the links read last`);
      this.linkFileSeen = 'missing';
      return;
    }
    const seen = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (seen === this.linkFileSeen) return;
    this.linkFileSeen = seen;
    if (!st.isFile()) {
      if (first) throw new UsageError(`--allow-link-file: ${file} is not a regular file`);
      return;
    }
    const { links, problems } = parseLinkFile(fs.readFileSync(file, 'utf8'), file);
    for (const p of problems) this.logger.warn('allow-link', `ignoring ${p}`);
    const next = new Map(links.map((l) => [lookupKey(l.id), l]));
    if (!first) {
      // A link whose line was deleted is revoked, and so is what it let in.
      const kept = new Set(links.map((l) => l.fingerprint));
      for (const old of this.links.values()) {
        if (kept.has(old.fingerprint)) continue;
        const gone = this.store.remove((g) => g.fingerprint === old.fingerprint);
        this.logger.event('allow-link-revoked', `link ${old.label} revoked${gone.length ? `: ${gone.map((g) => g.address).join(', ')} no longer let in` : ''}`, {
          label: old.label,
          addresses: gone.map((g) => g.address).join(' '),
        });
      }
    }
    this.links = next;
    this.logger.event('allow-link-file', `${file}: ${links.length} link(s)`, { count: links.length });
  }

  /** Drops expired grants (logged with their label). */
  private sweep = () => {
    const now = Date.now();
    for (const g of this.store.remove((x) => x.expiresAt <= now)) {
      this.logger.event('allow-link-expired', `${g.address} (link ${g.label}) expired: no longer let in`, { address: g.address, label: g.label });
    }
    try {
      this.readLinkFile(false);
    } catch (err) {
      this.logger.warn('allow-link', `could not re-read ${this.opts.linkFile}, keeping the links read last: ${(err as Error).message}`);
    }
  };

  /** Starts the HTTP endpoint. Rejects (exit 1) when its address cannot be bound. */
  async start(): Promise<void> {
    const h = http.createServer((req, res) => void this.onRequest(req, res));
    h.headersTimeout = 10_000;
    h.requestTimeout = 15_000;
    h.keepAliveTimeout = 5_000;
    this.http = h;
    const addr = this.opts.address;
    if (addr.scheme === 'tls' && this.opts.proxy) {
      // The PROXY header comes before the TLS handshake, and the TLS listener handshakes first.
      throw new UsageError('--allow-link over TLS cannot read a PROXY header yet: give the link endpoint a plain address (tcp:) behind the balancer');
    }
    // The transport layer's own listener: TCP, or TLS with --cert/--key (or an ephemeral certificate).
    this.listener = await listenAddress(addr, {
      onConnection: (conn) => this.onConnection(conn),
      onAcceptError: (err) => this.logger.error('allow-link', `allow-link endpoint: accept failed: ${err.message}`),
      log: this.logger,
    });
    const bound = this.listener.address as TcpAddress | TlsAddress;
    this.port = bound.port;
    this.label = formatHostPort(bound.host, bound.port);
    const scheme = addr.scheme === 'tls' ? 'https' : 'http';
    this.logger.event('allow-link', `allow links on ${scheme}://${this.label}/LINKID (${this.links.size} link(s) in ${this.opts.linkFile})`, { address: this.label });
    if (isWildcardHost(addr.host)) this.logger.warn('exposed', `allow links on ${this.label} are reachable from the network, not only from this machine`, { address: this.label });
    this.sweepTimer = setInterval(this.sweep, SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** A connection (TLS already done): its PROXY header first when asked, then HTTP. */
  private onConnection(conn: Connection): void {
    const socket = conn.stream as net.Socket;
    socket.on('error', () => {});
    this.realPeer.set(socket, conn.remote.address);
    const proxy = this.opts.proxy;
    if (!proxy) {
      this.http!.emit('connection', socket);
      return;
    }
    void proxy.run(conn).then((r) => {
      if (!r.ok) {
        this.logger.event(r.reason, `allow link: refused ${conn.remote.label}: ${r.text}`, { client: conn.remote.label, reason: r.reason });
        socket.destroy();
        return;
      }
      this.realPeer.set(socket, r.conn.remote.address);
      this.http!.emit('connection', socket);
    });
  }

  /** The visitor's real address: PROXY header, else a trusted proxy's X-Forwarded-For, else the socket's. */
  private visitor(req: http.IncomingMessage): string {
    const socket = req.socket;
    const direct = this.realPeer.get(socket as net.Socket) ?? socketPeer(socket, 'remote').address;
    const xff = req.headers['x-forwarded-for'];
    if (!this.trusted || xff === undefined || !this.trusted.check(direct).ok) return direct;
    // Right to left: each hop was added by the proxy in front of it; the first one that is not a
    // trusted proxy is the client (anything further left, the client could have written itself).
    const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((h) => h.trim()).filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i].replace(/^\[(.*)\]$/, '$1');
      if (net.isIP(hop) === 0) return direct;
      if (!this.trusted.check(hop).ok) return hop.startsWith('::ffff:') && net.isIPv4(hop.slice(7)) ? hop.slice(7) : hop;
    }
    return direct;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const who = this.visitor(req);
    const delay = this.guessers.delayFor(who);
    if (delay > 0) {
      // A guesser opening many connections at once must not hold as many timers and sockets.
      if ((this.held.get(who) ?? 0) >= MAX_HELD_PER_SOURCE) {
        res.writeHead(429, { 'retry-after': String(Math.ceil(delay / 1000)), connection: 'close' }).end();
        return;
      }
      this.held.set(who, (this.held.get(who) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, delay));
      const n = (this.held.get(who) ?? 1) - 1;
      if (n > 0) this.held.set(who, n);
      else this.held.delete(who);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const id = (req.url ?? '/').split('?')[0].replace(/^\//, '');
    if (id === 'favicon.ico' || id === 'robots.txt') {
      res.writeHead(404).end();
      return;
    }
    const link = /^[A-Za-z0-9_-]{1,200}$/.test(id) ? this.links.get(lookupKey(id)) : undefined;
    if (!link) {
      const n = this.guessers.failed(who);
      this.logger.event('allow-link-unknown', `allow link: ${who} asked for an unknown link (${n} in the last ${FAILURE_WINDOW_MS / 60_000} min)`, { client: who, failures: n });
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('No such link.\n');
      return;
    }
    if (req.method === 'HEAD') {
      // Link previews (chat apps) often send HEAD first: say nothing, grant nothing.
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end();
      return;
    }
    let address: string;
    try {
      address = parseRule(who).text;
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('Your address is not an IP address.\n');
      return;
    }
    const ttlMs = link.ttlMs ?? this.opts.ttlMs ?? DEFAULT_ALLOW_LINK_TTL_MS;
    const expiresAt = Date.now() + ttlMs;
    this.store.add({ address, label: link.label, fingerprint: link.fingerprint, expiresAt });
    this.logger.event('allow-link-granted', `${address} let in for ${formatTtl(ttlMs)} by link ${link.label}`, { address, label: link.label, ttl_ms: ttlMs });
    if (this.opts.redirect) {
      res.writeHead(303, { location: this.opts.redirect, 'cache-control': 'no-store' }).end();
      return;
    }
    const until = new Date(expiresAt).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><meta charset="utf-8"><title>You are in</title><p>Your address ${escapeHtml(address)} is let in until ${until}.</p>\n`);
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.http?.closeAllConnections();
    await this.listener?.close();
  }
}

/** "12 h", "30 min", "90 s". */
function formatTtl(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return formatDuration(ms);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** --allow-link as given: "8088", "0.0.0.0:8088", "[::]:8088", "tls:0.0.0.0:8443". */
export function parseAllowLinkAddress(text: string): TcpAddress | TlsAddress {
  let addr;
  try {
    addr = parseAddress(text, 'listen');
  } catch (err) {
    throw new UsageError(`--allow-link: ${(err as Error).message}`);
  }
  if (addr.scheme !== 'tcp' && addr.scheme !== 'tls') throw new UsageError(`--allow-link takes a TCP or TLS address (e.g. 8088, 0.0.0.0:8088 or tls:0.0.0.0:8443), not ${text}`);
  return addr;
}

/** `sockcat allow-link new LABEL --file F [--ttl D]`: appends a new link and returns its ID. */
export function appendNewLink(file: string, label: string, ttl?: string): string {
  checkLabel(label);
  if (ttl !== undefined) durationOption(ttl, '--ttl');
  const id = newLinkId();
  const line = `${id} ${label}${ttl !== undefined ? ` ${ttl}` : ''}\n`;
  let prefix = '';
  try {
    const current = fs.readFileSync(file, 'utf8');
    if (current.length && !current.endsWith('\n')) prefix = '\n';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new NetError(`${file}: ${(err as Error).message}`);
  }
  try {
    // 0600: whoever reads the file can let themselves in.
    fs.appendFileSync(file, prefix + line, { mode: 0o600 });
  } catch (err) {
    throw new NetError(`cannot write ${file}: ${(err as Error).message}`);
  }
  return id;
}
