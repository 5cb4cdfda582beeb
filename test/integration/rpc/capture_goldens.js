// Regenerates golden/*.hex: runs the real peers (bolt_peer.js, dubbo_peer.js) against each
// other through hex_relay.js on 127.0.0.1 and saves the frames they exchanged, one hex
// string per file. golden/README.md says what each file holds.
//
//   NODE_PATH=.deps/npm/node_modules node test/integration/rpc/capture_goldens.js
'use strict';

const fs = require('fs');
const path = require('path');
const {spawn} = require('child_process');
const {startRelay} = require('./hex_relay');

const DIR = __dirname;
const OUT = path.join(DIR, 'golden');

// Starts a peer server; resolves to {port, proc} once it printed "ready <port>".
function startServer(script, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(DIR, script), 'server', '--port', '0', ...args],
      {stdio: ['ignore', 'pipe', 'inherit']});
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({port: Number(m[1]), proc});
    });
    proc.on('exit', (code) => reject(new Error(`${script} server exited ${code}`)));
  });
}

function runClient(script, port, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(DIR, script), 'client', '--port', String(port), ...args],
      {stdio: ['ignore', 'pipe', 'inherit']});
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited ${code}`))));
  });
}

// name: file prefix; want: how many frames each way (checked); client args.
const BOLT = [
  {name: 'bolt_v1', args: ['--arg', 'hello'], want: [1, 1]},
  {name: 'bolt_v1_heartbeat', args: ['--requests', '0', '--heartbeat-ms', '60', '--linger-ms', '100'], want: [1, 1]},
  {name: 'bolt_v1_oneway', args: ['--oneway', '--arg', 'hello'], want: [1, 0]},
  {name: 'bolt_v1_sleep', args: ['--method', 'sleep', '--arg', '10'], want: [1, 1]},
  {name: 'bolt_v1_fail', args: ['--method', 'fail', '--arg', 'hello'], want: [1, 1]},
  {name: 'bolt_v1_unknown_service', args: ['--service', 'com.tern.test.Missing', '--arg', 'hello'], want: [1, 1]},
  {name: 'bolt_v2', args: ['--bolt-version', '2', '--arg', 'hello'], want: [1, 1]},
  {name: 'bolt_v2_crc', args: ['--bolt-version', '2', '--crc', '--arg', 'hello'], want: [1, 1]},
  {name: 'bolt_v2_heartbeat', args: ['--bolt-version', '2', '--requests', '0', '--heartbeat-ms', '60',
    '--linger-ms', '100'], want: [1, 1]},
];
const DUBBO = [
  {name: 'dubbo', args: ['--arg', 'hello'], want: [1, 1]},
  {name: 'dubbo_heartbeat', args: ['--requests', '0', '--heartbeat-ms', '60', '--linger-ms', '100'], want: [1, 1]},
  {name: 'dubbo_sleep', args: ['--method', 'sleep', '--arg', '10'], want: [1, 1]},
  {name: 'dubbo_fail', args: ['--method', 'fail', '--arg', 'hello'], want: [1, 1]},
  {name: 'dubbo_not_found', args: ['--method', 'missing', '--arg', 'hello'], want: [1, 1]},
  {name: 'dubbo_dubbo200', args: ['--dubbo-version', '2.0.0', '--arg', 'hello'], want: [1, 1]},
  {name: 'dubbo_group', server: 'grouped', args: ['--version', '2.0.0', '--group', 'g1', '--attachment',
    'trace=abc', '--arg', 'hello'], want: [1, 1]},
];

async function capture(proto, script, serverPort, sc) {
  const frames = [];
  const relay = await startRelay({proto, target: serverPort, onFrame: (f) => frames.push(f)});
  const report = await runClient(script, relay.port, sc.args);
  await new Promise((r) => setTimeout(r, 100));
  await relay.close();
  const c2s = frames.filter((f) => f.dir === 'c2s');
  const s2c = frames.filter((f) => f.dir === 's2c');
  if (frames.some((f) => f.error) || c2s.length !== sc.want[0] || s2c.length !== sc.want[1]) {
    throw new Error(`${sc.name}: got ${c2s.length} requests / ${s2c.length} responses, want ${sc.want}: ` +
      JSON.stringify({frames, report}));
  }
  const save = (suffix, f) => fs.writeFileSync(path.join(OUT, `${sc.name}_${suffix}.hex`), f.hex + '\n');
  if (c2s[0]) save('request', c2s[0]);
  if (s2c[0]) save('response', s2c[0]);
  process.stderr.write(`${sc.name}: ${c2s.map((f) => f.hex.length / 2)} / ${s2c.map((f) => f.hex.length / 2)} bytes; ` +
    `ok=${report.ok} errors=${JSON.stringify(report.error_samples)}\n`);
}

async function main() {
  fs.mkdirSync(OUT, {recursive: true});
  const procs = [];
  try {
    const bolt = await startServer('bolt_peer.js', ['--name', 'golden']);
    procs.push(bolt.proc);
    for (const sc of BOLT) await capture('bolt', 'bolt_peer.js', bolt.port, sc);
    const dubbo = await startServer('dubbo_peer.js', ['--name', 'golden']);
    procs.push(dubbo.proc);
    const grouped = await startServer('dubbo_peer.js', ['--name', 'golden', '--version', '2.0.0', '--group', 'g1']);
    procs.push(grouped.proc);
    for (const sc of DUBBO) {
      await capture('dubbo', 'dubbo_peer.js', sc.server === 'grouped' ? grouped.port : dubbo.port, sc);
    }
  } finally {
    for (const p of procs) {
      p.removeAllListeners('exit');
      p.kill('SIGTERM');
    }
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
