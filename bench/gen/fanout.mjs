// The fan-out load generator (run by plain node, in its own process): CLIENTS clients join a
// broadcast server on 127.0.0.1:PORT; the first sends LINES lines of 64 bytes; every other
// client counts the lines it receives. Prints one JSON object.
//
//   node bench/gen/fanout.mjs PORT CLIENTS LINES TIMEOUT_S [--stuck]
//
// Counting is by a marker inside each line ("~M~"), so a chat prefix ("<user3> "), a prefix only
// on the first line of a chunk (ncat --chat) or lines split across reads do not matter.
// Before the timed part, the sender repeats a probe line until every receiver has seen one:
// then the server has registered everyone, and nothing sent later can be missed.
// --stuck adds one more client that never reads, with a 4 KiB receive buffer (python3, since
// Node cannot set SO_RCVBUF), so a server that writes to it blocks within a few KiB.
import net from 'node:net';
import { spawn } from 'node:child_process';

const [port, clients, lines, timeoutS] = process.argv.slice(2, 6).map(Number);
const stuck = process.argv.includes('--stuck');
const LINE_MARK = Buffer.from('~M~');
const PROBE_MARK = Buffer.from('~P~');
const STALL_MS = 3000;

/** Counts occurrences of `mark` in a stream of chunks, including ones split across chunks. */
function counter(mark) {
  let tail = Buffer.alloc(0);
  return (chunk) => {
    const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
    let n = 0;
    for (let i = buf.indexOf(mark); i !== -1; i = buf.indexOf(mark, i + mark.length)) n++;
    tail = buf.subarray(Math.max(0, buf.length - (mark.length - 1)));
    return n;
  };
}

function connectClient() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startStuckClient() {
  const code = [
    'import socket, sys',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)',
    `s.connect(("127.0.0.1", ${port}))`,
    'print("ready", flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child = spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`stuck client exited ${c}`)));
  });
  return { child, ready };
}

async function main() {
  const deadline = Date.now() + timeoutS * 1000;
  const sockets = [];
  const received = [];
  const probed = [];
  for (let i = 0; i < clients; i++) {
    const s = await connectClient();
    const idx = i;
    received.push(0);
    probed.push(false);
    const countLines = counter(LINE_MARK);
    const countProbes = counter(PROBE_MARK);
    s.on('data', (c) => {
      if (idx === 0) return;
      received[idx] += countLines(c);
      if (!probed[idx] && countProbes(c) > 0) probed[idx] = true;
    });
    s.on('error', () => {});
    sockets.push(s);
  }
  let stuckClient;
  if (stuck) {
    stuckClient = startStuckClient();
    await stuckClient.ready;
  }
  const sender = sockets[0];
  const probeLine = Buffer.from('~P~ probe\n');
  while (probed.slice(1).some((p) => !p)) {
    if (Date.now() > deadline) throw new Error(`receivers not all reached by the probe (${probed.filter(Boolean).length - 0}/${clients - 1})`);
    sender.write(probeLine);
    await sleep(100);
  }
  await sleep(100);

  const payload = Buffer.alloc(lines * 64);
  for (let i = 0; i < lines; i++) {
    const line = `~M~ ${String(i).padStart(8, '0')} `.padEnd(63, 'x') + '\n';
    payload.write(line, i * 64, 'latin1');
  }
  const expected = (clients - 1) * lines;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  sender.write(payload);
  let elapsed;
  let stalled = false;
  // Bounded: TIMEOUT_S in all, and a server that delivers nothing for STALL_MS is called stalled.
  let lastTotal = -1;
  let lastProgress = performance.now();
  while (performance.now() - t0 < timeoutS * 1000) {
    if (received.slice(1).every((n) => n >= lines)) {
      elapsed = (performance.now() - t0) / 1000;
      break;
    }
    const total = received.reduce((a, b) => a + b, 0);
    if (total !== lastTotal) {
      lastTotal = total;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > STALL_MS) {
      stalled = true;
      break;
    }
    await sleep(2);
  }
  const cpu = process.cpuUsage(cpu0);
  const delivered = received.slice(1).reduce((a, b) => a + b, 0);
  const complete = elapsed !== undefined;
  // A stalled or timed-out run: what arrived, over the time until the generator gave up.
  elapsed ??= (performance.now() - t0) / 1000;
  const result = {
    delivered,
    expected,
    complete,
    stalled,
    elapsed_s: Number(elapsed.toFixed(3)),
    rate: Math.round(delivered / elapsed),
    min_client: Math.min(...received.slice(1)),
    cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  for (const s of sockets) s.destroy();
  if (stuckClient) {
    stuckClient.child.stdin.end();
    stuckClient.child.kill();
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stdout.write(JSON.stringify({ error: e.message }) + '\n');
    process.exit(1);
  },
);
