/**
 * Option groups shared by several commands, and the conversions from yargs' argv to the
 * modes' typed options. Every check that can fail here throws a UsageError (exit 2).
 */
import type { Argv } from 'yargs';
import { UsageError } from '../errors';
import { parseAddress, type Address, type Role } from '../endpoints/index';
import type { AccessOptions } from '../access';
import type { LogFormat } from '../log';
import { DEFAULT_CLOSE_WAIT_MS } from '../relay';

/** -v, -x, --log-format and the transport options: every command has them. */
export function withCommonOptions<T>(y: Argv<T>) {
  return withTransportOptions(y)
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log connection events on stderr (listening, connection from, closed with byte counts)' })
    .option('hex', { alias: 'x', type: 'boolean', default: false, describe: 'Hex dump of both directions on stderr, each chunk marked with its direction' })
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Log lines for people (text) or one JSON object per event (json)' });
}

/** Access control, limits and graceful stop: every listening mode has them. */
export function withListenerOptions<T>(y: Argv<T>) {
  return y
    .option('allow', { type: 'string', array: true, describe: 'Only let in clients from this address or CIDR range (repeatable; IPv4 and IPv6)' })
    .option('deny', { type: 'string', array: true, describe: 'Refuse clients from this address or CIDR range (repeatable; deny wins over allow)' })
    .option('allow-file', { type: 'string', describe: 'File with one address or CIDR per line (# comments); re-read when it changes' })
    .option('max-conns', { type: 'number', describe: 'Refuse new clients while this many are connected (default 10000)' })
    .option('drain-timeout', { type: 'number', describe: 'On SIGINT/SIGTERM, seconds live connections may take to finish before they are closed' });
}

/** --idle-timeout: for commands that relay. */
export function withIdleTimeout<T>(y: Argv<T>) {
  return y.option('idle-timeout', { type: 'number', describe: 'Close a connection after SECS without traffic either way' });
}

/** --close-wait and --idle-timeout: for server modes that relay two peers (forward, exec). */
export function withRelayOptions<T>(y: Argv<T>) {
  return withIdleTimeout(y).option('close-wait', {
    type: 'number',
    default: DEFAULT_CLOSE_WAIT_MS / 1000,
    describe: 'After one side sends EOF, SECS the other direction may take to finish before both are closed',
  });
}

/**
 * Transport options shared by every command (TLS certificates, unix socket mode…). Each
 * transport adds its flags here, so every mode gains them without per-mode code.
 */
export function withTransportOptions<T>(y: Argv<T>) {
  return y;
}

/**
 * Applies the transport options in argv to a parsed address: settings travel inside the
 * Address object, so modes pass addresses around without knowing about TLS or unix modes.
 */
export function applyTransportOptions(addr: Address, _argv: Record<string, unknown>, _role: Role): Address {
  return addr;
}

/** Seconds from the command line → milliseconds, refusing negative and non-numbers. */
export function secondsOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} takes a number of seconds ≥ 0, not '${value}'`);
  return Math.round(n * 1000);
}

/** A positive whole number, or undefined. */
export function countOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a whole number ≥ 1, not '${value}'`);
  return n;
}

/**
 * The address from positionals: "ADDR", or nc-style "HOST PORT".
 */
export function addressFromArgs(first: unknown, second: unknown, role: Role, argv: Record<string, unknown> = {}, what = 'address'): Address {
  let text: string;
  if ((first === undefined || first === '') && second !== undefined && second !== '') text = String(second);
  else if (first === undefined || first === '') throw new UsageError(`missing ${what} (e.g. 9090, 127.0.0.1:9090 or [::1]:9090)`);
  else {
    text = String(first);
    if (second !== undefined && second !== '') {
      const host = text.includes(':') && !text.startsWith('[') ? `[${text}]` : text;
      text = `${host}:${second}`;
    }
  }
  return applyTransportOptions(parseAddress(text, role), argv, role);
}

export interface CommonArgs {
  [key: string]: unknown;
  verbose?: boolean;
  hex?: boolean;
  logFormat?: LogFormat;
}

export interface ListenerArgs {
  [key: string]: unknown;
  allow?: string[];
  deny?: string[];
  allowFile?: string;
  maxConns?: number;
  drainTimeout?: number;
}

export function commonFromArgs(argv: CommonArgs) {
  return { verbose: argv.verbose, hex: argv.hex, logFormat: argv.logFormat };
}

/** Listener options in the modes' shape. */
export function listenerFromArgs(argv: ListenerArgs) {
  const access: AccessOptions | undefined =
    argv.allow?.length || argv.deny?.length || argv.allowFile ? { allow: argv.allow, deny: argv.deny, allowFile: argv.allowFile } : undefined;
  return {
    access,
    maxConns: countOption(argv.maxConns, '--max-conns'),
    drainTimeoutMs: secondsOption(argv.drainTimeout, '--drain-timeout'),
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };

/** A size in bytes: 4096, 64K, 1M, 1MiB (binary units), at least `min`; or undefined. */
export function bytesOption(value: unknown, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(value));
  const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} takes a size in bytes ≥ ${min} (e.g. 4096, 64K, 1M), not '${value}'`);
  return n;
}
