/**
 * relay + expose vs `sockcat forward` vs `ssh -R` (MySocket's own transport), the same backend
 * behind each: throughput (iperf3), connections/s and latency (the C load generator and echo
 * backend), memory per idle tunnelled connection summed over every process of the subject
 * (relay + agent; sshd + ssh).
 *
 * Each subject is one shell that starts its processes and stops them on SIGTERM, so the
 * harness's process-tree CPU and memory figures cover both ends of the tunnel:
 * - tunnel: `sockcat relay` (TLS control channel, a certificate made here) and `sockcat expose
 *   BACKEND --remote-port PORT` pinning its fingerprint;
 * - ssh -R: a throwaway `sshd -D` on a loopback port (its own host key, one authorized throwaway
 *   client key) and `ssh -N -R 127.0.0.1:PORT:127.0.0.1:BACKEND` into it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, killLeftovers, run, snapshotTree, startServer, stopProcess, sleep, treeMemory, type Running } from '../lib/proc';
import { newMetric, type CaseResult } from '../lib/report';
import { interleave, measure, measureCpsAndLatency, record, startAll, startSubject, stopAll, type Started, type Subject } from '../lib/subjects';
import { cTool, have, sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

const FORWARD = 'sockcat forward';
const TUNNEL = 'sockcat relay + expose (TLS)';
const SSH = 'ssh -R';
const TOKEN = 'bench-token-0123456789abcdef';

interface Keys {
  dir: string;
  cert: string;
  key: string;
  fingerprint: string;
  sshdConfig?: string;
  sshdPid?: string;
  clientKey?: string;
}

/** A certificate for the relay, and for ssh -R a host key, a client key and an sshd config, in a temporary directory. */
function makeKeys(sshdPort: number): Keys {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-bench-tunnel-'));
  const cert = path.join(dir, 'relay.pem');
  const key = path.join(dir, 'relay.key');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const fingerprint = new X509Certificate(fs.readFileSync(cert)).fingerprint256;
  const keys: Keys = { dir, cert, key, fingerprint };
  if (have('sshd') || fs.existsSync('/usr/sbin/sshd')) {
    const hostKey = path.join(dir, 'host_ed25519');
    const clientKey = path.join(dir, 'client_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey], { stdio: 'ignore' });
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey], { stdio: 'ignore' });
    fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
    fs.mkdirSync('/run/sshd', { recursive: true });
    keys.sshdPid = path.join(dir, 'sshd.pid');
    const sshdConfig = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      sshdConfig,
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        `PidFile ${keys.sshdPid}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'AllowTcpForwarding yes',
        'GatewayPorts no',
        'MaxStartups 100:30:200',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    keys.sshdConfig = sshdConfig;
    keys.clientKey = clientKey;
  }
  return keys;
}

/**
 * sh that runs the commands in the background and, on SIGTERM, stops them one at a time in the
 * order of $PIDS (a script lists a process before the one it depends on: ssh before sshd), each
 * only once its own children are gone (up to 2 s), and waits for each to exit. Every process a
 * script starts must be the shell's direct child with its PID in $PIDS: a subshell killed here
 * would leave its children running (an ssh client in a retry loop was left over that way,
 * holding the harness's stderr pipe so it never exited), and sshd's session process, once its
 * parent is gone, is nobody's to reap (PID 1 here does not reap).
 */
function shell(script: string): [string, string[]] {
  const stop = 'for p in $PIDS; do i=0; while [ $i -lt 40 ] && pgrep -P $p >/dev/null; do sleep 0.05; i=$((i+1)); done; kill $p 2>/dev/null; wait $p 2>/dev/null; done; exit 0';
  return ['sh', ['-c', `trap '${stop}' TERM INT; PIDS=; ${script}; wait`]];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function subjects(backend: number, keys: Keys, sshdPort: number): Subject[] {
  const [node, pre] = sockcat();
  const sc = [node, ...pre].map(q).join(' ');
  const list: Subject[] = [
    { name: FORWARD, command: (p) => [node, [...pre, 'forward', `127.0.0.1:${p}`, `127.0.0.1:${backend}`]] },
    {
      name: TUNNEL,
      command: (p) =>
        shell(
          // The control port: one the kernel says is free.
          `CP=$(${q(process.execPath)} -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'); ` +
            `${sc} relay --control 127.0.0.1:$CP --token ${TOKEN} --cert ${q(keys.cert)} --key ${q(keys.key)} 2>/dev/null & PIDS="$PIDS $!"; ` +
            `${sc} expose 127.0.0.1:${backend} --via 127.0.0.1:$CP --token ${TOKEN} --fingerprint ${keys.fingerprint} --remote-port ${p} 2>/dev/null & PIDS="$! $PIDS"`,
        ),
    },
  ];
  if (keys.sshdConfig && keys.clientKey) {
    const ssh = [
      'ssh', '-N', '-p', String(sshdPort), '-i', q(keys.clientKey),
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ExitOnForwardFailure=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
      '-R', `127.0.0.1:$P:127.0.0.1:${backend}`, 'root@127.0.0.1',
    ].join(' ');
    list.push({
      name: SSH,
      command: (p) =>
        shell(
          `P=${p}; rm -f ${q(keys.sshdPid!)}; /usr/sbin/sshd -D -e -f ${q(keys.sshdConfig!)} & PIDS="$!"; ` +
            // sshd writes its PID file once it listens (and removes it when it exits): wait for
            // that, up to 5 s, then start ssh as the shell's own child so the trap stops it.
            `i=0; while [ ! -s ${q(keys.sshdPid!)} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; ` +
            `${ssh} & PIDS="$! $PIDS"`,
        ),
    });
  }
  return list;
}

/**
 * Stops subjects and then every process their trees held when asked to stop (by PID and start
 * time) that is still alive: sshd's per-connection process outlives its listener by design, and
 * a subject must never leave one behind (it would hold the harness's pipes, and a port).
 */
async function stopSubjects(started: Started[]): Promise<void> {
  const trees = started.flatMap((s) => (s.server ? [{ name: s.subject.name, tree: snapshotTree(s.server.pid) }] : []));
  await stopAll(started);
  for (const { name, tree } of trees) {
    const n = await killLeftovers(tree);
    if (n > 0) process.stderr.write(`tunnel: ${name}: stopped ${n} process(es) left behind\n`);
  }
}

/** Starts the C echo backend; resolves with its port. */
async function startEcho(): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(cTool('echo'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`echo backend exited ${code}`)));
  });
  return { port, stop: () => stopProcess(child) };
}

export async function tunnelCase(o: BenchOptions): Promise<CaseResult> {
  const tput1 = newMetric('tput1', 'throughput, 1 stream', 'Gbit/s', 2);
  const tput4 = newMetric('tput4', 'throughput, 4 streams', 'Gbit/s', 2);
  const cps = newMetric('cps', 'connections/s (64 B echo, 8 at a time)', 'conn/s');
  const p50 = newMetric('p50', 'latency p50 (64 B ping-pong)', 'µs', 1);
  const p99 = newMetric('p99', 'latency p99', 'µs', 1);
  const mem = newMetric('mem', 'memory per idle connection, PSS of every process of the subject', 'KiB', 1);
  const result: CaseResult = {
    name: 'tunnel',
    subjects: [TUNNEL, FORWARD, SSH],
    metrics: [tput1, tput4, cps, p50, p99, mem],
    targets: [
      { metric: 'tput1', subject: TUNNEL, anchor: FORWARD, op: '>=', factor: 0.8 },
      { metric: 'tput4', subject: TUNNEL, anchor: FORWARD, op: '>=', factor: 0.8 },
      { metric: 'tput1', subject: TUNNEL, anchor: SSH, op: '>=', factor: 1.5 },
      { metric: 'tput4', subject: TUNNEL, anchor: SSH, op: '>=', factor: 1.5 },
      { metric: 'cps', subject: TUNNEL, anchor: SSH, op: '>=', factor: 2 },
      { metric: 'mem', subject: TUNNEL, anchor: FORWARD, op: '<=', factor: 2 },
    ],
    notes: [],
  };
  const sshdPort = await freePort();
  const keys = makeKeys(sshdPort);
  if (!keys.sshdConfig) result.notes.push('ssh -R: sshd not found (Debian openssh-server), its column is missing');
  try {
    const iperfPort = await freePort();
    const iperf = await startServer('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)], iperfPort);
    // A fresh subject per measurement: an iperf3 run must not inherit the previous one's connections.
    try {
      for (const [m, streams] of [[tput1, 1], [tput4, 4]] as const) {
        process.stderr.write(`tunnel: ${m.title}\n`);
        await interleave(o.rounds, subjects(iperfPort, keys, sshdPort), async (subject) => {
          const st = await startSubject(subject);
          try {
            await record(m, st, (server) =>
              measure(server, async () => {
                await sleep(300);
                const out = await run('iperf3', ['-c', '127.0.0.1', '-p', String(server.port), '-t', String(o.tputSeconds), '-O', '1', '-P', String(streams), '-J'], {
                  timeoutMs: (o.tputSeconds + 20) * 1000,
                });
                const j = JSON.parse(out);
                const cpu = j.end.cpu_utilization_percent;
                const secs = j.end.sum_received.seconds;
                return { value: j.end.sum_received.bits_per_second / 1e9, genCpuS: ((cpu.host_total + cpu.remote_total) / 100) * secs };
              }),
            );
          } finally {
            await stopSubjects([st]);
          }
        });
      }
    } finally {
      await iperf.stop();
    }
    result.notes.push(`throughput: \`iperf3 -c 127.0.0.1 -p PUBLIC -t ${o.tputSeconds} -O 1 -P 1|4 -J\` through each subject to \`iperf3 -s\``);

    const echo = await startEcho();
    try {
      const started = await startAll(subjects(echo.port, keys, sshdPort));
      try {
        await sleep(300);
        await measureCpsAndLatency(o, started, { cps, p50, p99 }, (what) => process.stderr.write(`tunnel: ${what}\n`));
      } finally {
        await stopSubjects(started);
      }
      process.stderr.write(`tunnel: memory (${o.holdCount} idle connections)\n`);
      await interleave(o.memRounds, subjects(echo.port, keys, sshdPort), async (subject) => {
        const st = await startSubject(subject);
        try {
          await record(mem, st, async (server) => ({ value: await idleMemory(server, o.holdCount) }));
        } finally {
          await stopSubjects([st]);
        }
      });
    } finally {
      await echo.stop();
    }
    result.notes.push(`connections/s and latency: \`bench/.build/loadgen cps PUBLIC ${o.cpsSeconds} 8 64\`, \`loadgen lat PUBLIC ${o.latencyCount} 64\` to \`bench/.build/echo\``);
    result.notes.push(`memory: (PSS of the subject's whole process tree after holding ${o.holdCount} idle connections − before) / connections; tunnel = relay + agent, ssh -R = sshd (and its session process) + ssh`);
    result.notes.push(
      `commands: tunnel = \`sockcat relay --control 127.0.0.1:CP --token T --cert relay.pem --key relay.key\` + \`sockcat expose 127.0.0.1:BACKEND --via 127.0.0.1:CP --token T --fingerprint FP --remote-port PUBLIC\`; ` +
        'ssh -R = `sshd -D -f sshd_config` (loopback, throwaway host and client ed25519 keys) + `ssh -N -R 127.0.0.1:PUBLIC:127.0.0.1:BACKEND -p SSHD root@127.0.0.1`; forward = `sockcat forward 127.0.0.1:PUBLIC 127.0.0.1:BACKEND`',
    );
  } finally {
    fs.rmSync(keys.dir, { recursive: true, force: true });
  }
  return result;
}

/** PSS the subject's process tree grew by, per idle connection held through it. */
async function idleMemory(server: Running, count: number): Promise<number> {
  await sleep(500);
  const before = treeMemory(server.pid);
  const child = spawn(cTool('loadgen'), ['hold', String(server.port), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('holding connections took over 60 s')), 60_000);
      child.stdout!.once('data', (c: Buffer) => {
        clearTimeout(timer);
        resolve(c.toString());
      });
      child.once('exit', (code) => reject(new Error(`loadgen hold exited ${code}`)));
    });
    const held = JSON.parse(line).held as number;
    if (held === 0) throw new Error('no connection could be held open');
    await sleep(500);
    return (treeMemory(server.pid).pssKb - before.pssKb) / held;
  } finally {
    child.stdin!.end();
    await stopProcess(child);
  }
}
