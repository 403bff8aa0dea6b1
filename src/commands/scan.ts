import { runScan, DEFAULT_SCAN_CONCURRENCY, DEFAULT_SCAN_TIMEOUT_MS } from '../modes/scan';
import { parsePortList } from '../ports';
import { UsageError } from '../errors';
import { refuseOtherFamily } from '../endpoints/address';
import { countOption, familyOption, secondsOption, examplesEpilog, withFamilyOptions } from './options';
import type { CommandFactory } from './types';

/** Concurrency beyond this would only exhaust file descriptors and look like a SYN flood. */
const MAX_SCAN_CONCURRENCY = 1000;

/** `sockcat scan HOST PORTS`: flags, help and examples; the work is runScan's. */
export const scanCommand: CommandFactory = (env) => ({
  command: 'scan [host] [ports]',
  describe: 'Which ports answer on a host, like nc -z: open, closed (refused) or filtered (no answer)',
  builder: (y) =>
    withFamilyOptions(y)
      .positional('host', { type: 'string', describe: 'Host name or IP address (IPv6 with or without brackets)' })
      .positional('ports', { type: 'string', describe: 'Ports: 22, 20-25, 22,80,443 or a mix (at most 65,536)' })
      // Ports are text ("22,80"): keep yargs from turning "22" into a number.
      .parserConfiguration({ 'parse-positional-numbers': false })
      .option('udp', { alias: 'u', type: 'boolean', default: false, describe: 'UDP instead of TCP: a silent port is open|filtered, a guess (no reply may mean either)' })
      .option('timeout', { alias: 'w', type: 'number', describe: `SECS each probe waits for an answer before the port counts as filtered (default ${DEFAULT_SCAN_TIMEOUT_MS / 1000})` })
      .option('concurrency', { type: 'number', describe: `Probes in flight at once (default ${DEFAULT_SCAN_CONCURRENCY}, at most ${MAX_SCAN_CONCURRENCY})` })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'List every port (closed and filtered too) and a summary on stderr' })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Results as aligned text or one JSON object per port' })
      .epilog(
        examplesEpilog(
          [
            ['$0 scan 127.0.0.1 1-1024', 'which well-known ports have a server on this machine (like nc -z 127.0.0.1 1-1024)'],
            ['$0 scan -v localhost 22,80,443', 'every listed port with its state, on 127.0.0.1 and ::1'],
            ['$0 scan -u -w 1 127.0.0.1 53,123', 'UDP: closed when the host answers "port unreachable", else open|filtered'],
            ['$0 scan example.org 80 && echo up', 'exit code 0 when a port is open, 1 when none is'],
          ],
          [
            'TCP: open = the handshake completed (sockcat then closes it); closed = the host answered',
            'with a reset (nothing listens there); filtered = no answer in time (a firewall dropped',
            'the SYN, or the host is down). Scan only machines you are allowed to scan.',
          ].join('\n'),
        ),
      ),
  handler: async (argv) => {
    if (argv.host === undefined || argv.host === '') throw new UsageError('missing host and ports (e.g. sockcat scan 127.0.0.1 20-25)');
    // HOST:PORTS in one word, as the other modes write addresses: 127.0.0.1:22 or [::1]:22,80.
    const joined = argv.ports === undefined ? /^(\[[^\]]+\]|[^:]+):([\d,-]+)$/.exec(String(argv.host)) : null;
    if (joined) [argv.host, argv.ports] = [joined[1], joined[2]];
    if (argv.ports === undefined || argv.ports === '') throw new UsageError(`missing ports after '${argv.host}' (e.g. 22, 20-25 or 22,80,443)`);
    const concurrency = countOption(argv.concurrency, '--concurrency');
    if (concurrency !== undefined && concurrency > MAX_SCAN_CONCURRENCY) throw new UsageError(`--concurrency takes at most ${MAX_SCAN_CONCURRENCY}, not ${concurrency}`);
    const timeoutMs = secondsOption(argv.timeout, '--timeout');
    if (timeoutMs === 0) throw new UsageError('--timeout must be more than 0 seconds (e.g. 0.5)');
    const family = familyOption(argv);
    if (family) refuseOtherFamily(String(argv.host).replace(/^\[(.*)\]$/, '$1'), family, String(argv.host), family === 6 ? '::1' : '127.0.0.1');
    const code = await runScan(
      {
        host: String(argv.host),
        family,
        ports: parsePortList(String(argv.ports)),
        udp: argv.udp,
        timeoutMs,
        concurrency,
        verbose: argv.verbose,
        logFormat: argv.logFormat,
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
