// A real gRPC server and client (@grpc/grpc-js, @grpc/proto-loader) for the HTTP/2
// integration tests: the test runs Tern between them. Plaintext HTTP/2 (h2c), 127.0.0.1.
//
//   node grpc_peer.js server EVENT_LOG
//       Serves terntest.Probe (probe.proto) on a free port and prints "PORT <n>" once it
//       listens; also a deaf endpoint (see below) and prints "DEAF_PORT <n>". Appends one
//       line per notable event to EVENT_LOG ("cancelled Sleep", "chat-end <n>",
//       "deaf request ...", "deaf closed ..."). Exits when stdin closes or on SIGTERM.
//   node grpc_peer.js client HOST:PORT CASE [ARG...]
//       Makes one call and prints its outcome as one JSON line; exits 0 whatever the
//       call's status (the test asserts on the JSON), non-zero only on a script error.
//       CASE: unary | fail CODE MESSAGE [AFTER_HEADERS_MS] | chat N REPLIES_EACH |
//             deadline SLEEP_MS DEADLINE_MS | path METHOD_PATH |
//             raw-timeout METHOD_PATH GRPC_TIMEOUT SLEEP_MS
//
// The npm packages are found through NODE_PATH (the test points it at .deps/npm,
// which `tools/setup --test` fills).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http2 = require('http2');
const path = require('path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, 'probe.proto');
const pkgDef = protoLoader.loadSync(PROTO, {keepCase: true, longs: String, defaults: true});
const proto = grpc.loadPackageDefinition(pkgDef).terntest;

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// Deterministic bytes that are not all alike.
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function metadataObject(md) {
  const out = {};
  if (!md) return out;
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

// ---------------------------------------------------------------------------------------
// Server

function runServer(eventLog) {
  const event = (line) => fs.appendFileSync(eventLog, line + '\n');
  const server = new grpc.Server();
  server.addService(proto.Probe.service, {
    Echo(call, callback) {
      const md = new grpc.Metadata();
      md.set('x-server-header', 'from-server');
      call.sendMetadata(md);
      const req = call.request;
      const probe = call.metadata.get('x-probe');
      const trailer = new grpc.Metadata();
      trailer.set('x-server-trailer', 'trailer-value');
      callback(null, {
        message: req.message,
        seq: 1,
        probe: probe.length ? String(probe[0]) : '',
        payload_len: String(req.payload.length),
        payload_sha256: sha256(req.payload),
      }, trailer);
    },
    Fail(call, callback) {
      const req = call.request;
      const trailer = new grpc.Metadata();
      trailer.set('x-fail-trailer', 'fail-trailer-value');
      const fail = () => callback({code: req.code, details: req.message, metadata: trailer});
      if (req.sleep_ms > 0) {
        // Initial metadata first: the status then comes in a separate trailers block.
        const md = new grpc.Metadata();
        md.set('x-server-header', 'before-failure');
        call.sendMetadata(md);
        setTimeout(fail, req.sleep_ms);
      } else {
        fail(); // trailers-only response
      }
    },
    Sleep(call, callback) {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        callback(null, {message: 'slept', seq: 1});
      }, call.request.sleep_ms);
      call.on('cancelled', () => {
        if (done) return;
        clearTimeout(timer);
        event('cancelled Sleep');
      });
    },
    Chat(call) {
      let seq = 0;
      let requests = 0;
      call.on('data', (req) => {
        requests++;
        const n = Math.max(1, req.code);
        for (let i = 1; i <= n; i++) call.write({message: `${req.message}#${i}`, seq: ++seq});
      });
      call.on('end', () => {
        call.write({message: `done ${requests}`, seq: ++seq});
        const trailer = new grpc.Metadata();
        trailer.set('x-chat-count', String(requests));
        event(`chat-end ${requests}`);
        call.end(trailer);
      });
    },
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`bind failed: ${err.message}`);
      process.exit(1);
    }
    process.stdout.write(`PORT ${port}\n`);
  });
  const stop = () => {
    server.forceShutdown();
    process.exit(0);
  };
  // A hand-made gRPC endpoint that never answers and ignores grpc-timeout (grpc-js
  // servers enforce it themselves): whatever ends a call to it comes from the proxy.
  const deaf = http2.createServer();
  deaf.on('stream', (stream, headers) => {
    event(`deaf request ${headers[':path']} grpc-timeout=${headers['grpc-timeout'] || '-'}`);
    stream.on('data', () => {});
    stream.on('close', () => event(`deaf closed rst=${stream.rstCode}`));
  });
  deaf.listen(0, '127.0.0.1', () => process.stdout.write(`DEAF_PORT ${deaf.address().port}\n`));
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------
// Client

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// One unary call; resolves to {code, details, reply, headers, trailers, elapsed_ms}.
function unary(client, method, request, metadata, options) {
  return new Promise((resolve) => {
    const start = Date.now();
    const out = {code: null, details: '', reply: null, headers: {}, trailers: {}};
    let pending = 2; // the callback and the status event, in either order
    const done = () => {
      if (--pending > 0) return;
      out.elapsed_ms = Date.now() - start;
      resolve(out);
    };
    const call = client[method](request, metadata || new grpc.Metadata(), options || {}, (err, reply) => {
      out.code = err ? err.code : 0;
      out.details = err ? err.details : '';
      out.reply = reply || null;
      done();
    });
    call.on('metadata', (md) => { out.headers = metadataObject(md); });
    call.on('status', (st) => {
      out.trailers = metadataObject(st.metadata);
      done();
    });
  });
}

async function runClient(target, kase, args) {
  const client = new proto.Probe(target, grpc.credentials.createInsecure());
  switch (kase) {
  case 'unary': {
    const payload = pattern(256 * 1024, 11);
    const md = new grpc.Metadata();
    md.set('x-probe', 'probe-value');
    const r = await unary(client, 'Echo', {message: 'hello through tern', payload}, md);
    r.sent_sha256 = sha256(payload);
    r.sent_len = payload.length;
    print(r);
    break;
  }
  case 'fail': {
    const code = Number(args[0]);
    const message = args[1];
    const afterHeaders = Number(args[2] || 0);
    print(await unary(client, 'Fail', {message, code, sleep_ms: afterHeaders}));
    break;
  }
  case 'chat': {
    // Ping-pong: each request is written only after the replies to the previous one came
    // back, so both directions stream at once through the proxy (nothing is held until
    // the end of a side).
    const n = Number(args[0]);
    const each = Number(args[1]);
    const call = client.Chat();
    const replies = [];
    let headers = {};
    let waiting = null; // resolves when `expect` replies have come
    let expect = 0;
    call.on('metadata', (md) => { headers = metadataObject(md); });
    call.on('data', (r) => {
      replies.push({message: r.message, seq: r.seq});
      if (waiting && replies.length >= expect) {
        const w = waiting;
        waiting = null;
        w();
      }
    });
    const status = new Promise((resolve) => call.on('status', resolve));
    call.on('error', () => {}); // the status carries it
    let interleaved = true;
    for (let i = 1; i <= n; i++) {
      expect = i * each;
      const got = new Promise((resolve) => { waiting = resolve; });
      call.write({message: `m${i}`, code: each});
      let timer;
      const timedOut = await Promise.race([got.then(() => false),
        new Promise((resolve) => { timer = setTimeout(() => resolve(true), 15000); })]);
      clearTimeout(timer);
      if (timedOut) {
        interleaved = false;
        break;
      }
    }
    call.end();
    const st = await status;
    print({code: st.code, details: st.details, interleaved, replies, headers,
           trailers: metadataObject(st.metadata)});
    break;
  }
  case 'deadline': {
    const sleepMs = Number(args[0]);
    const deadlineMs = Number(args[1]);
    print(await unary(client, 'Sleep', {sleep_ms: sleepMs}, null, {deadline: Date.now() + deadlineMs}));
    break;
  }
  case 'path': {
    // An Echo request to another method path (one the proxy may have no route for).
    const r = await new Promise((resolve) => {
      const echo = proto.Probe.service.Echo;
      client.makeUnaryRequest(args[0], echo.requestSerialize,
        echo.responseDeserialize, {message: 'x'},
        (err) => resolve({code: err ? err.code : 0, details: err ? err.details : ''}));
    });
    print(r);
    break;
  }
  default:
    throw new Error(`unknown client case ${kase}`);
  }
  client.close();
}

// A gRPC request made by hand with node's http2 client: it carries grpc-timeout but the
// client itself never gives up (no deadline of its own), so whatever ends the call comes
// from the proxy. Prints {status, grpc_status, grpc_message, headers, trailers, error,
// elapsed_ms}.
function runRawTimeout(target, methodPath, grpcTimeout, sleepMs) {
  const start = Date.now();
  const session = http2.connect(`http://${target}`);
  const out = {status: 0, grpc_status: null, grpc_message: null, headers: {}, trailers: {}, error: null,
               body_len: 0};
  const finish = () => {
    out.elapsed_ms = Date.now() - start;
    print(out);
    session.close();
  };
  session.on('error', (e) => { out.error = `session: ${e.message}`; });
  // EchoRequest{sleep_ms}: field 2, varint.
  const varint = [];
  let v = sleepMs;
  while (v > 0x7f) { varint.push((v & 0x7f) | 0x80); v >>>= 7; }
  varint.push(v);
  const msg = Buffer.from([0x10, ...varint]);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const req = session.request({
    ':method': 'POST', ':path': methodPath, 'content-type': 'application/grpc',
    'te': 'trailers', 'grpc-timeout': grpcTimeout,
  });
  req.on('response', (h) => {
    out.status = Number(h[':status']);
    for (const [k, val] of Object.entries(h)) if (!k.startsWith(':')) out.headers[k] = String(val);
    if (h['grpc-status'] !== undefined) { // trailers-only
      out.grpc_status = Number(h['grpc-status']);
      out.grpc_message = h['grpc-message'] === undefined ? null : String(h['grpc-message']);
    }
  });
  req.on('trailers', (t) => {
    for (const [k, val] of Object.entries(t)) out.trailers[k] = String(val);
    if (t['grpc-status'] !== undefined) {
      out.grpc_status = Number(t['grpc-status']);
      out.grpc_message = t['grpc-message'] === undefined ? null : String(t['grpc-message']);
    }
  });
  req.on('data', (d) => { out.body_len += d.length; });
  req.on('error', (e) => { out.error = `stream: ${e.message}`; });
  req.on('close', finish);
  req.end(frame);
}

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'server') return runServer(rest[0]);
  if (mode === 'client' && rest[1] === 'raw-timeout') return runRawTimeout(rest[0], rest[2], rest[3], Number(rest[4]));
  if (mode === 'client') {
    return runClient(rest[0], rest[1], rest.slice(2)).catch((e) => {
      console.error(e.stack || String(e));
      process.exit(2);
    });
  }
  console.error('usage: grpc_peer.js server EVENT_LOG | client HOST:PORT CASE [ARG...]');
  process.exit(2);
}

main();
