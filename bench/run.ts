/**
 * `npm run bench`: sockcat against socat and ncat on this machine, side by side in one run.
 *
 *   npm run bench                     all cases, ~5 minutes
 *   npm run bench -- --quick          one round each, shorter runs, 1,000 idle connections, ~1 minute
 *   npm run bench -- --only forward   one case: startup | forward | exec | broadcast | proxy | echo | tunnel
 *   npm run bench -- --rounds 5       more rounds (the median is reported)
 *   npm run bench -- --workers 4      forward's --workers column runs that many workers (default 2)
 *
 * Prints Markdown tables (medians, server CPU, ratios against the targets) on stdout, closing
 * with one table of every goal of issue #12; progress goes to stderr. `npm run bench` builds and
 * measures the standalone binary (what users run); SOCKCAT_BIN=path measures another build, and
 * `npx tsx bench/run.ts` without it runs dist/sockcat.cjs on the pinned Node.
 */
import { broadcastCase } from './cases/broadcast';
import { startupCase } from './cases/startup';
import { echoCase } from './cases/echo';
import { execCase } from './cases/exec';
import { forwardCase } from './cases/forward';
import { proxyCase } from './cases/proxy';
import { tunnelCase } from './cases/tunnel';
import { formatCase, formatGoals, type CaseResult } from './lib/report';
import { cTool, have, machine } from './lib/tools';

export interface BenchOptions {
  quick: boolean;
  rounds: number;
  memRounds: number;
  tputSeconds: number;
  cpsSeconds: number;
  latencyCount: number;
  holdCount: number;
  fanoutClients: number;
  fanoutLines: number;
  /** Rounds of the fan-out runs: each takes well under a second, and short runs vary more. */
  fanoutRounds: number;
  /** Upper bound on one fan-out run (a stalled broker is reported, not waited for). */
  fanoutTimeoutS: number;
  /** Workers of the `sockcat forward --workers N` subject. */
  workers: number;
}

const CASES: Record<string, (o: BenchOptions) => Promise<CaseResult>> = {
  forward: forwardCase,
  exec: execCase,
  broadcast: broadcastCase,
  proxy: proxyCase,
  echo: echoCase,
  startup: startupCase,
  tunnel: tunnelCase,
};
const DEFAULT_CASES = ['startup', 'forward', 'exec', 'broadcast', 'proxy', 'tunnel'];

function parseArgs(argv: string[]): { opts: BenchOptions; only: string[] } {
  const quick = argv.includes('--quick');
  const opts: BenchOptions = {
    quick,
    rounds: quick ? 1 : 3,
    memRounds: quick ? 1 : 2,
    tputSeconds: quick ? 1 : 3,
    cpsSeconds: quick ? 1 : 3,
    latencyCount: quick ? 3000 : 5000,
    holdCount: quick ? 1000 : 2000,
    fanoutClients: 50,
    fanoutLines: 20_000,
    fanoutRounds: quick ? 1 : 5,
    fanoutTimeoutS: quick ? 10 : 15,
    workers: 2,
  };
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') continue;
    else if (a === '--only') only.push(...(argv[++i] ?? '').split(','));
    else if (a === '--rounds') opts.rounds = opts.fanoutRounds = Math.max(1, Math.min(20, Number(argv[++i]) || 1));
    else if (a === '--workers') opts.workers = Math.max(1, Math.min(64, Math.floor(Number(argv[++i])) || 2));
    else {
      process.stderr.write(`bench: unknown argument ${a} (use --quick, --only startup|forward|exec|broadcast|proxy|echo|tunnel, --rounds N, --workers N)\n`);
      process.exit(2);
    }
  }
  for (const c of only) {
    if (!CASES[c]) {
      process.stderr.write(`bench: unknown case "${c}" (startup, forward, exec, broadcast, proxy, echo, tunnel)\n`);
      process.exit(2);
    }
  }
  return { opts, only: only.length > 0 ? only : DEFAULT_CASES };
}

async function main() {
  const { opts, only } = parseArgs(process.argv.slice(2));
  for (const cmd of ['gcc', 'socat', 'ncat', 'iperf3', 'microsocks']) {
    if (!have(cmd)) process.stderr.write(`bench: ${cmd} not found; the figures that need it will be missing\n`);
  }
  cTool('loadgen');
  cTool('echo');
  cTool('fanout');
  cTool('socksload');
  const started = Date.now();
  const out: string[] = ['## sockcat benchmark', '', ...machine(), `- options: ${opts.quick ? '--quick, ' : ''}${opts.rounds} round(s), interleaved`, ''];
  const results: CaseResult[] = [];
  for (const name of only) {
    process.stderr.write(`== ${name}\n`);
    const r = await CASES[name](opts);
    results.push(r);
    out.push(formatCase(r));
  }
  out.push(formatGoals(results));
  out.push(`Total run time: ${Math.round((Date.now() - started) / 1000)} s.`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
