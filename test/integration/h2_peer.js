// HTTP peers for the HTTP/2 integration tests, on node's built-in http/http2 modules
// (no npm packages). Plaintext, 127.0.0.1 only.
//
//   node h2_peer.js origin
//       An origin serving the same handler over HTTP/2 prior knowledge (h2c), over
//       HTTP/1.1, and over either on one port (told apart by the HTTP/2 preface); prints
//       "H2_PORT <n>", "H1_PORT <n>" and "AUTO_PORT <n>" once all listen. Exits when
//       stdin closes or on SIGTERM. Every request: the body is read whole, then answered
//       200 with the body echoed back and headers
//         x-seen-method, x-seen-path, x-seen-version, x-seen-probe,
//         x-seen-names (the request's header names, sorted, ','-joined),
//         x-body-len, x-body-sha256 (of what the origin received).
//       A path starting with /chunked is answered without content-length (HTTP/1.1 then
//       frames it chunked).
//   node h2_peer.js fetch-many PORT PATH COUNT PAUSED
//       One HTTP/2 connection, COUNT concurrent GETs of PATH. The first PAUSED streams are
//       not read at all until every other stream has finished; then they are read to
//       their end. Prints one JSON line: {streams: [{status, len, sha256, error}],
//       paused_max_len_when_others_done (the most any paused stream had received by
//       then), others_done}.
'use strict';

const crypto = require('crypto');
const http = require('http');
const http2 = require('http2');
const net = require('net');

function handler(req, res) {
  const chunks = [];
  const hash = crypto.createHash('sha256');
  let len = 0;
  req.on('data', (c) => {
    hash.update(c);
    len += c.length;
    chunks.push(c);
  });
  req.on('end', () => {
    const names = Object.keys(req.headers).filter((n) => !n.startsWith(':')).sort();
    res.setHeader('x-seen-method', req.method);
    res.setHeader('x-seen-path', req.url);
    res.setHeader('x-seen-version', req.httpVersion);
    res.setHeader('x-seen-probe', req.headers['x-probe'] || '');
    res.setHeader('x-seen-names', names.join(','));
    res.setHeader('x-body-len', String(len));
    res.setHeader('x-body-sha256', hash.digest('hex'));
    const body = Buffer.concat(chunks);
    res.setHeader('content-type', 'application/octet-stream');
    if (!req.url.startsWith('/chunked')) res.setHeader('content-length', String(body.length));
    res.writeHead(200);
    res.end(body);
  });
}

function runOrigin() {
  const h2 = http2.createServer({}, handler);
  const h1 = http.createServer({keepAliveTimeout: 60000}, handler);
  // Both protocols on one port: the first bytes tell which server gets the connection.
  const auto = net.createServer((socket) => {
    let seen = Buffer.alloc(0);
    const onReadable = () => {
      let chunk;
      while ((chunk = socket.read()) !== null) seen = Buffer.concat([seen, chunk]);
      const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      const n = Math.min(seen.length, preface.length);
      const h2ish = seen.subarray(0, n).equals(preface.subarray(0, n));
      if (h2ish && seen.length < preface.length) return; // need more bytes
      socket.removeListener('readable', onReadable);
      socket.unshift(seen);
      (h2ish ? h2 : h1).emit('connection', socket);
    };
    socket.on('readable', onReadable);
  });
  let up = 0;
  const ready = () => {
    if (++up < 3) return;
    process.stdout.write(`H2_PORT ${h2.address().port}\nH1_PORT ${h1.address().port}\n` +
                         `AUTO_PORT ${auto.address().port}\n`);
  };
  h2.listen(0, '127.0.0.1', ready);
  h1.listen(0, '127.0.0.1', ready);
  auto.listen(0, '127.0.0.1', ready);
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

function runFetchMany(port, path, count, paused) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {}); // per-stream errors are reported below
  const streams = [];
  let othersLeft = count - paused;
  const out = {streams: [], paused_max_len_when_others_done: -1, others_done: false};
  let finished = 0;
  const finish = () => {
    if (++finished < count) return;
    out.streams = streams.map((s) => ({status: s.status, len: s.len, sha256: s.hash.digest('hex'),
                                       error: s.error}));
    process.stdout.write(JSON.stringify(out) + '\n');
    session.close();
  };
  for (let i = 0; i < count; i++) {
    const st = {status: 0, len: 0, hash: crypto.createHash('sha256'), error: null};
    streams.push(st);
    const req = session.request({':path': path});
    req.on('response', (h) => { st.status = Number(h[':status']); });
    req.on('error', (e) => { st.error = e.message; });
    const onData = (d) => {
      st.len += d.length;
      st.hash.update(d);
    };
    if (i < paused) {
      // Not read until the others are done: only flow control keeps it from flooding.
      req.pause();
      st.resume = () => {
        req.on('data', onData);
        req.resume();
      };
      // The paused stream's data is not consumed, so its length is read off the stream.
      st.buffered = () => req.readableLength;
    } else {
      req.on('data', onData);
    }
    req.on('close', () => {
      if (i >= paused && --othersLeft === 0) {
        out.others_done = true;
        for (let j = 0; j < paused; j++) {
          out.paused_max_len_when_others_done = Math.max(out.paused_max_len_when_others_done,
                                                         streams[j].buffered());
        }
        for (let j = 0; j < paused; j++) streams[j].resume();
      }
      finish();
    });
    req.end();
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'origin') {
  runOrigin();
} else if (mode === 'fetch-many') {
  runFetchMany(Number(args[0]), args[1], Number(args[2]), Number(args[3]));
} else {
  console.error('usage: h2_peer.js origin | fetch-many PORT PATH COUNT PAUSED');
  process.exit(2);
}
