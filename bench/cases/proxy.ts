/**
 * proxy vs microsocks (and `ssh -D` when sshd is installed): throughput with 1 and 4 streams and
 * connections per second through a SOCKS5 proxy to the C echo backend, with `sockcat forward`
 * to the same backend as the reference for what the SOCKS handshake costs. Every subject is
 * driven by the same C client (bench/c/socksload.c): SOCKS5 greeting, CONNECT 127.0.0.1:BACKEND,
 * then the payload; for forward, the payload alone.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, stopProcess, waitForPort, type Running } from '../lib/proc';
import { newMetric, type CaseResult, type Metric } from '../lib/report';
import { interleave, measure, record, shown, startSubject, stopAll, type Started, type Subject } from '../lib/subjects';
import { cTool, have, sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

const PROXY = 'sockcat proxy';
const PROXY_WORKERS = 'sockcat proxy --workers 2';
const MICROSOCKS = 'microsocks';
const SSH_D = 'ssh -D';
const FORWARD = 'sockcat forward';

/** A subject and whether the client speaks SOCKS5 to it (forward is a plain relay). */
interface ProxySubject extends Subject {
  socks: boolean;
}

function subjects(backend: number | string): ProxySubject[] {
  const [node, pre] = sockcat();
  return [
    { name: PROXY, socks: true, command: (p) => [node, [...pre, 'proxy', `127.0.0.1:${p}`]] },
    { name: PROXY_WORKERS, socks: true, command: (p) => [node, [...pre, 'proxy', '--workers', '2', `127.0.0.1:${p}`]] },
    { name: MICROSOCKS, socks: true, command: (p) => ['microsocks', ['-i', '127.0.0.1', '-p', String(p)]] },
    { name: FORWARD, socks: false, command: (p) => [node, [...pre, 'forward', `127.0.0.1:${p}`, `127.0.0.1:${backend}`]] },
  ];
}

/** Starts a C backend (the echo server, or socksload's sink); resolves with its port. */
async function startBackend(cmd: string, args: string[] = []): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`echo backend exited ${code}`)));
  });
  return { port, stop: () => stopProcess(child) };
}

/**
 * `ssh -D` against a throwaway sshd on 127.0.0.1 (its own host key, one user key, no password),
 * when sshd is installed; otherwise the reason it is missing.
 */
async function startSshD(): Promise<Started> {
  const subject: Subject = { name: SSH_D, command: (p) => ['ssh', ['-N', '-D', `127.0.0.1:${p}`, 'root@127.0.0.1']] };
  const sshd = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => fs.existsSync(p));
  if (!sshd || !have('ssh') || !have('ssh-keygen')) return { subject, error: 'sshd not installed (apt-get install openssh-server)' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-bench-ssh-'));
  const key = path.join(dir, 'id');
  const hostKey = path.join(dir, 'host');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key], { timeoutMs: 10_000 });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey], { timeoutMs: 10_000 });
  fs.copyFileSync(`${key}.pub`, path.join(dir, 'authorized_keys'));
  const sshdPort = await freePort();
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [`Port ${sshdPort}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, `AuthorizedKeysFile ${dir}/authorized_keys`, 'PasswordAuthentication no', 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', `PidFile ${dir}/sshd.pid`, 'AllowTcpForwarding yes'].join('\n') + '\n',
  );
  const daemon = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let daemonErr = '';
  daemon.stderr!.on('data', (c: Buffer) => (daemonErr = (daemonErr + c.toString()).slice(-2000)));
  const sshArgs = (p: number) => ['-N', '-D', `127.0.0.1:${p}`, '-i', key, '-p', String(sshdPort), '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${dir}/known_hosts`, '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', 'root@127.0.0.1'];
  const cleanup = async () => {
    await stopProcess(daemon);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(sshdPort, 10_000, daemon);
  } catch (e) {
    await cleanup();
    return { subject, error: `sshd did not start: ${(e as Error).message}: ${daemonErr.trim().split('\n').pop()}` };
  }
  const started = await startSubject({ name: SSH_D, socks: true, command: (p) => ['ssh', sshArgs(p)] } as ProxySubject);
  if (started.server) {
    const stop = started.server.stop;
    started.server.stop = async () => {
      await stop();
      await cleanup();
    };
  } else await cleanup();
  return started;
}

/** One socksload run against a started subject. */
function socksload(st: Started, backend: number, args: (string | number)[]): Promise<Record<string, number>> {
  const socks = (st.subject as ProxySubject).socks !== false;
  return run(cTool('socksload'), [String(args[0]), String(st.server!.port), String(socks ? backend : 0), ...args.slice(1).map(String)], { timeoutMs: 60_000 }).then((out) => JSON.parse(out.trim().split('\n').pop()!));
}

export async function proxyCase(o: BenchOptions): Promise<CaseResult> {
  const tput1 = newMetric('tput1', 'throughput, 1 stream', 'Gbit/s', 2);
  const tput4 = newMetric('tput4', 'throughput, 4 streams', 'Gbit/s', 2);
  const cps = newMetric('cps', 'connections/s (SOCKS5 handshake + 64 B echo, 8 at a time)', 'conn/s');
  const result: CaseResult = {
    name: 'proxy',
    subjects: [PROXY, PROXY_WORKERS, MICROSOCKS, SSH_D, FORWARD],
    metrics: [tput1, tput4, cps],
    targets: [
      { metric: 'tput1', subject: PROXY, anchor: MICROSOCKS, op: '>=', factor: 1 },
      { metric: 'tput4', subject: PROXY, anchor: MICROSOCKS, op: '>=', factor: 1 },
      { metric: 'tput1', subject: PROXY, anchor: FORWARD, op: '>=', factor: 0.95 },
      { metric: 'tput4', subject: PROXY, anchor: FORWARD, op: '>=', factor: 0.95 },
      { metric: 'cps', subject: PROXY, anchor: MICROSOCKS, op: '>=', factor: 1.5 },
      // microsocks runs a thread per client on every core; the proxy's answer to that is --workers.
      { metric: 'cps', subject: PROXY_WORKERS, anchor: MICROSOCKS, op: '>=', factor: 1.5 },
      { metric: 'tput4', subject: PROXY_WORKERS, anchor: MICROSOCKS, op: '>=', factor: 1 },
    ],
    notes: [],
  };
  // Throughput to a sink (one direction, as iperf3 measures), then connections/s to the echo backend.
  for (const phase of ['tput', 'cps'] as const) {
    const backend = phase === 'tput' ? await startBackend(cTool('socksload'), ['sink']) : await startBackend(cTool('echo'));
    const started: Started[] = [];
    try {
      for (const s of subjects(backend.port)) started.push(await startSubject(s));
      started.push(await startSshD());
      for (const st of started) {
        if (st.error) for (const m of phase === 'tput' ? [tput1, tput4] : [cps]) m.missing.set(st.subject.name, st.error);
      }
      const live = started.filter((s) => s.server);
      const measureWith = (m: Metric, args: (string | number)[], value: (r: Record<string, number>) => number) =>
        interleave(o.rounds, live, (st) =>
          record(m, st, (server: Running) =>
            measure(server, async () => {
              const r = await socksload(st, backend.port, args);
              return { value: value(r), genCpuS: r.cpu_s, note: r.errors > 0 ? `${r.errors} failed` : undefined };
            }),
          ),
        );
      if (phase === 'tput') {
        for (const [m, streams] of [[tput1, 1], [tput4, 4]] as const) {
          process.stderr.write(`proxy: ${m.title}\n`);
          await measureWith(m, ['tput', o.tputSeconds, streams], (r) => r.gbps);
        }
      } else {
        process.stderr.write(`proxy: ${cps.title}\n`);
        await measureWith(cps, ['cps', o.cpsSeconds, 8, 64], (r) => r.rate);
      }
    } finally {
      await stopAll(started);
      await backend.stop();
    }
  }
  result.notes.push(`throughput: \`bench/.build/socksload tput PROXY SINK ${o.tputSeconds} 1|4\` (each stream writes 64 KiB blocks for ${o.tputSeconds} s, half-closes and waits for the EOF that proves the sink read it all; bytes / time to that EOF); backend \`bench/.build/socksload sink\` (reads and drops)`);
  result.notes.push(`connections/s: \`bench/.build/socksload cps PROXY BACKEND ${o.cpsSeconds} 8 64\` (8 threads: connect, SOCKS5 greeting, CONNECT 127.0.0.1:BACKEND, 64 B echo, close); backend \`bench/.build/echo\`; for sockcat forward the same without the handshake`);
  result.notes.push(`commands: ${subjects('BACKEND').map((s) => `\`${shown(s)}\``).join(', ')}, \`ssh -N -D 127.0.0.1:PORT root@127.0.0.1\` (a throwaway sshd on 127.0.0.1 with its own keys)`);
  return result;
}
