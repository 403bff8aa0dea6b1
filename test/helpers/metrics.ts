/** Scraping sockcat's --metrics the way an operator checks an exporter: curl, then one series' value. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RunningCli } from './cli';

const run = promisify(execFile);

/** GET http://127.0.0.1:PORT/metrics with curl. */
export async function scrape(port: number): Promise<string> {
  const { stdout } = await run('curl', ['-sf', '--max-time', '5', `http://127.0.0.1:${port}/metrics`]);
  return stdout;
}

/** One series' value, 0 when absent (Prometheus counters with no event yet). Labels must match exactly. */
export function value(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const got = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (want.every(([k, v]) => got[k] === v) && Object.keys(got).length === want.length) return Number(m[2]);
  }
  return 0;
}

/** The metrics port a running sockcat logged ("metrics on http://127.0.0.1:PORT/metrics"). */
export async function metricsPort(cli: RunningCli): Promise<number> {
  return Number((await cli.waitForStderr(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]);
}

/** Scrapes until every `want` series reads its value (a socket's write completes a moment after its bytes arrive); returns the last scrape. */
export async function scrapeUntil(port: number, want: Array<[string, Record<string, string>, number]>, tries = 50): Promise<string> {
  let t = '';
  for (let i = 0; i < tries; i++) {
    t = await scrape(port);
    if (want.every(([n, l, v]) => value(t, n, l) === v)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return t;
}
