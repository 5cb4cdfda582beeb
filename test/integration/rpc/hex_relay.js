// A TCP relay on 127.0.0.1 that forwards bytes unchanged and records every Bolt or Dubbo
// frame that crosses it, cut at frame boundaries, as hex. Used by capture_goldens.js; also
// runnable by hand to look at what real peers send:
//
//   node hex_relay.js --proto bolt|dubbo --target PORT [--listen PORT] [--out FILE]
//       Prints "ready <port>"; writes one JSON line per frame to FILE (default stdout):
//       {"conn":n,"dir":"c2s"|"s2c","hex":"..."}. Exits on SIGTERM/SIGINT.
'use strict';

const fs = require('fs');
const net = require('net');

// Length of the frame at the start of `b`, or 0 when its header is not complete yet.
const frameLength = {
  bolt(b) {
    if (b.length < 1) return 0;
    if (b[0] === 0x01) {
      if (b.length < 2) return 0;
      const response = b[1] === 0;
      const hl = response ? 20 : 22;
      if (b.length < hl) return 0;
      return response ? hl + b.readUInt16BE(12) + b.readUInt16BE(14) + b.readUInt32BE(16)
        : hl + b.readUInt16BE(14) + b.readUInt16BE(16) + b.readUInt32BE(18);
    }
    if (b[0] === 0x02) {
      if (b.length < 3) return 0;
      const response = b[2] === 0;
      const hl = response ? 22 : 24;
      if (b.length < hl) return 0;
      const len = response ? hl + b.readUInt16BE(14) + b.readUInt16BE(16) + b.readUInt32BE(18)
        : hl + b.readUInt16BE(16) + b.readUInt16BE(18) + b.readUInt32BE(20);
      return len + ((b[11] & 1) ? 4 : 0);
    }
    throw new Error(`not a Bolt frame: first byte 0x${b[0].toString(16)}`);
  },
  dubbo(b) {
    if (b.length < 16) return 0;
    if (b[0] !== 0xda || b[1] !== 0xbb) throw new Error('not a Dubbo frame: bad magic');
    return 16 + b.readUInt32BE(12);
  },
};

// Starts a relay; `onFrame({conn, dir, hex})` sees every frame. Resolves to
// {port, close()}.
function startRelay({proto, target, listen = 0, onFrame}) {
  const lengthOf = frameLength[proto];
  if (!lengthOf) throw new Error(`unknown protocol ${proto}`);
  let connId = 0;
  const sockets = new Set();
  const server = net.createServer((down) => {
    const conn = ++connId;
    const up = net.connect(target, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    const framer = (dir) => {
      let buf = Buffer.alloc(0);
      return (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          let n;
          try {
            n = lengthOf(buf);
          } catch (e) {
            onFrame({conn, dir, hex: buf.toString('hex'), error: e.message});
            buf = Buffer.alloc(0);
            return;
          }
          if (n === 0 || buf.length < n) return;
          onFrame({conn, dir, hex: buf.subarray(0, n).toString('hex')});
          buf = buf.subarray(n);
        }
      };
    };
    const c2s = framer('c2s');
    const s2c = framer('s2c');
    down.on('data', (d) => { c2s(d); up.write(d); });
    up.on('data', (d) => { s2c(d); down.write(d); });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => { sockets.delete(down); up.destroy(); });
    up.on('close', () => { sockets.delete(up); down.destroy(); });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, '127.0.0.1', () => resolve({
      port: server.address().port,
      close() {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(() => r()));
      },
    }));
  });
}

module.exports = {startRelay, frameLength};

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = {};
  for (let i = 0; i < args.length; i += 2) opt[args[i].replace(/^--/, '')] = args[i + 1];
  if (!opt.proto || !opt.target) {
    process.stderr.write('usage: hex_relay.js --proto bolt|dubbo --target PORT [--listen PORT] [--out FILE]\n');
    process.exit(2);
  }
  const out = opt.out ? fs.createWriteStream(opt.out, {flags: 'a'}) : process.stdout;
  startRelay({
    proto: opt.proto,
    target: Number(opt.target),
    listen: Number(opt.listen || 0),
    onFrame: (f) => out.write(JSON.stringify(f) + '\n'),
  }).then((r) => {
    process.stdout.write(`ready ${r.port}\n`);
    const stop = () => r.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (e) => {
    process.stderr.write(`relay failed: ${e.message}\n`);
    process.exit(1);
  });
}
