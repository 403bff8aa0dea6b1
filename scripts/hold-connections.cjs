// Manual scale check (not part of npm test): holds N client connections open at once through a
// server, then each sends a line, half-closes, and expects the same line back.
//   node dist/sockcat.cjs listen --echo -v 0 &             # backend (note its port)
//   node dist/sockcat.cjs forward -v 0 127.0.0.1:ECHOPORT &  # the relay under test (note its port)
//   node scripts/hold-connections.cjs FWDPORT 10000
// Prints one JSON line: { N, heldAtOnce, ok, bad, errors, seconds }; exit 0 when every client got its line back.
const net = require('net');
const [port, N] = [Number(process.argv[2]), Number(process.argv[3])];
let open = 0, ok = 0, bad = 0, started = 0, connecting = 0;
const errors = {};
const socks = [];
const t0 = Date.now();
function done() {
  if (ok + bad < N) return;
  console.log(JSON.stringify({ N, heldAtOnce: open, ok, bad, errors, seconds: (Date.now() - t0) / 1000 }));
  process.exit(bad ? 1 : 0);
}
function openMore() {
  while (connecting < 200 && started < N) {
    started++; connecting++;
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.msg = `client ${started}\n`; s.got = '';
    s.setEncoding('utf8');
    s.on('connect', () => {
      connecting--; open++; socks.push(s);
      if (open === N) { console.error(`all ${N} connected after ${(Date.now() - t0) / 1000}s`); setTimeout(() => { for (const t of socks) t.end(t.msg); }, 2000); }
      openMore();
    });
    s.on('data', (c) => (s.got += c));
    s.on('end', () => { s.got === s.msg ? ok++ : bad++; s.destroy(); done(); });
    s.on('error', (e) => { connecting--; errors[e.code] = (errors[e.code] || 0) + 1; bad++; done(); openMore(); });
  }
}
openMore();
setTimeout(() => { console.log(JSON.stringify({ timeout: true, open, ok, bad, errors })); process.exit(2); }, 120000);
