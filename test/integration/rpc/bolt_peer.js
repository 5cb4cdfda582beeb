// A real SOFARPC (Bolt) server and client for Tern's integration tests: the server is
// sofa-rpc-node's RpcServer, the client drives sofa-bolt-node's own protocol encoder and
// decoder over plain sockets (what sofa-rpc-node's client does, minus its registry,
// load balancer and circuit breaker, which would hide what the proxy does).
// Everything talks to 127.0.0.1 only.
//
//   node bolt_peer.js server --port P --name NAME [--services a,b] [--version V] [--verbose]
//       Serves each interface (default com.tern.test.EchoService) as `interface:version`
//       (version default 1.0) with:
//         echo(String s) -> "NAME:s"     sleep(int ms) -> "NAME:slept" after ms
//         fail(String s) -> throws "NAME:failed:s" (a SERVER_EXCEPTION response)
//       Prints "ready <port>" once listening (--port 0 picks a free port). One-way requests
//       are served but not answered. Prints "stats {json}" (requests, oneway, heartbeats,
//       by_method, by_service) on SIGUSR2 and on SIGTERM/SIGINT, then exits 0.
//
//   node bolt_peer.js client --port P [--service S] [--method echo|sleep|NAME]
//       [--version V] [--connections C] [--concurrency N] [--requests R] [--oneway]
//       [--timeout MS] [--arg TEXT] [--bolt-version 1|2] [--crc] [--ids global|per-connection]
//       [--heartbeat-ms MS] [--linger-ms MS] [--group G (ignored: Bolt carries no group)]
//       [--verbose]
//       Opens C connections to 127.0.0.1:P, makes R calls in all with N in flight on each
//       connection, prints one JSON line and exits 0:
//         {"ok","errors","error_samples","answers":{NAME:count},"mismatch_samples"?,
//          "elapsed_ms","calls_per_sec","latency_ms":{p50,p99,max},
//          "heartbeats_sent","heartbeat_acks","unexpected_responses","late_responses"}
//       Call i sends "TEXT#i" to echo (must come back as "NAME:TEXT#i", else "mismatch");
//       sleep sends int(--arg, default 100) and expects "NAME:slept"; other methods send
//       "TEXT#i" and accept any string. Errors carry the Bolt response status:
//       "status=6: ...". --oneway: one-way requests, ok = number written.
//       --bolt-version 2 uses protocol 0x02 (ver1=1); --crc makes it ver1=2 with the CRC32
//       switch on. --ids: request ids from one process-wide counter (default, as
//       sofa-rpc-node does) or from 1 on every connection. --heartbeat-ms sends a Bolt
//       heartbeat on every connection at that interval; --linger-ms keeps the connections
//       open that long after the calls (e.g. for heartbeats), before reporting.
//       A connection that fails or is closed fails its calls in flight and all later ones
//       at once ("connection closed", "connection error: ..."); it is not reopened. A call
//       that outlives --timeout fails "timeout after MS ms"; an answer arriving later is
//       counted in late_responses, an answer to no known id in unexpected_responses.
//
// Server behaviour worth knowing (sofa-rpc-node's): it answers heartbeats with the
// request's id; it drops the answer to a call whose handling took longer than the
// request's timeout field; it closes connections idle for 90 s.
//
// Packages come from NODE_PATH (the tests point it at .deps/npm, which `tools/setup --test`
// fills).
'use strict';

const net = require('net');
const {parseFlags, runLoad, printAndExit, makeLogger, serverStats, usage} = require('./peer_common');

const USAGE = `
usage: bolt_peer.js server --port P --name NAME [--services a,b] [--version V]
       bolt_peer.js client --port P [--service S] [--method M] [--version V] [--connections C]
                    [--concurrency N] [--requests R] [--oneway] [--timeout MS] [--arg TEXT]
                    [--bolt-version 1|2] [--crc] [--ids global|per-connection]
                    [--heartbeat-ms MS] [--linger-ms MS]`;

const DEFAULT_SERVICE = 'com.tern.test.EchoService';

const bolt = require('sofa-bolt-node');

// sofa-bolt-node's decoder does not expose a frame's type (request / one-way) or a
// response's status: peek at the fixed header of the frame about to be decoded and attach
// both to the decoded object (`rpcType`, `respStatus`).
function tapDecoder(dec, onPacket) {
  const decodeOne = dec._decode;
  dec._decode = function() {
    const b = this._buf;
    this._tap = null;
    if (b && b.length >= 3) {
      const v2 = b[0] === 0x02;
      const type = v2 ? b[2] : b[1];
      const statusAt = v2 ? 12 : 10;
      this._tap = {rpcType: type, respStatus: type === 0 && b.length >= statusAt + 2 ? b.readUInt16BE(statusAt) : null};
    }
    return decodeOne.call(this);
  };
  const emit = dec.emit;
  dec.emit = function(ev, obj, ...rest) {
    if (obj && typeof obj === 'object' && this._tap && (ev === 'request' || ev === 'response' ||
        ev === 'heartbeat' || ev === 'heartbeat_ack')) {
      obj.rpcType = this._tap.rpcType;
      obj.respStatus = this._tap.respStatus;
      if (onPacket) onPacket(ev, obj);
    }
    return emit.call(this, ev, obj, ...rest);
  };
  return dec;
}

// ---------------------------------------------------------------------------------------
// Server

async function runServer(opts) {
  // Errors are serialized with their JS stack into answers: keep answers free of local
  // paths (and the goldens reproducible).
  Error.stackTraceLimit = 0;
  if (opts.port === undefined || !opts.name) usage(`server needs --port and --name${USAGE}`);
  const {RpcServer} = require('sofa-rpc-node').server;
  const RpcResponse = require('sofa-rpc-node/lib/server/response');
  const logger = makeLogger(opts.verbose);
  const st = serverStats();
  const name = opts.name;

  // A one-way request gets no answer (a Java Bolt server sends none; sofa-rpc-node would).
  class Response extends RpcResponse {
    async send(res) {
      if (this.req.rpcType === 2) return;
      return super.send(res);
    }
  }
  const protocol = Object.assign({}, bolt, {
    name: 'bolt',
    decoder: (o) => tapDecoder(bolt.decoder(o), (ev) => { if (ev === 'heartbeat') st.stats.heartbeats++; }),
  });
  const server = new RpcServer({
    logger,
    port: opts.port,
    version: opts.version,
    protocol,
    responseClass: Response,
    killTimeout: 3000,
  });
  server.on('error', (err) => {
    st.stats.errors++;
    logger.warn('server error: %s', err && err.message);
  });
  server.on('request', ({req}) => st.request(req.data.serverSignature, req.data.methodName, req.rpcType === 2));
  const delegate = {
    async echo(s) { return `${name}:${s}`; },
    async sleep(ms) {
      await new Promise((resolve) => setTimeout(resolve, Number(ms) || 0));
      return `${name}:slept`;
    },
    async fail(s) {
      const err = new Error(`${name}:failed:${s}`);
      err.ignoreLog = true;
      throw err;
    },
  };
  for (const svc of opts.services.split(',').filter(Boolean)) {
    server.addService({interfaceName: svc, version: opts.version}, delegate);
  }
  await server.start();
  const port = server._servers[0].address().port;
  process.stdout.write(`ready ${port}\n`);
}

// ---------------------------------------------------------------------------------------
// Client

let globalId = 0;
const nextGlobalId = () => {
  globalId = globalId >= 0x7fffffff ? 1 : globalId + 1;
  return globalId;
};

class BoltConnection {
  constructor(port, opts, counters) {
    this.port = port;
    this.opts = opts;
    this.counters = counters;
    this.pending = new Map();
    this.closed = false;
    this.closeReason = null;
    let id = 0;
    this.nextId = opts.ids === 'per-connection' ? () => (id = id >= 0x7fffffff ? 1 : id + 1) : nextGlobalId;
    this.expired = new Set();
  }

  connect() {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      this.socket = socket;
      socket.setNoDelay(true);
      const encoder = bolt.encoder({sentReqs: new Map(), classCache: new Map()});
      if (this.opts.boltVersion === 2) {
        encoder.protocolType = 'bolt2';
        encoder.boltVersion = this.opts.crc ? 2 : 1;
        encoder.crcEnable = !!this.opts.crc;
      }
      const decoder = tapDecoder(bolt.decoder({sentReqs: new Map(), classCache: new Map()}));
      this.encoder = encoder;
      encoder.pipe(socket);
      socket.pipe(decoder);
      decoder.on('response', (res) => this.onResponse(res));
      decoder.on('heartbeat_ack', () => { this.counters.heartbeat_acks++; });
      decoder.on('error', (err) => {
        this.fail(`decode error: ${err.message}`);
        socket.destroy();
      });
      encoder.on('error', (err) => this.fail(`encode error: ${err.message}`));
      socket.once('connect', () => {
        this.clientUrl = `${socket.localAddress}:${socket.localPort}`;
        if (this.opts.heartbeatMs > 0) {
          this.hbTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
        }
        resolve();
      });
      socket.on('error', (err) => {
        this.fail(`connection error: ${err.message}`);
        resolve(); // a connection that never came up fails its calls at once
      });
      socket.on('close', () => this.fail('connection closed'));
    });
  }

  heartbeat() {
    if (this.closed) return;
    this.counters.heartbeats_sent++;
    this.encoder.writeHeartbeat(this.nextId(), {timeout: 3000, clientUrl: this.clientUrl});
  }

  fail(reason) {
    if (!this.closed) {
      this.closed = true;
      this.closeReason = reason;
    }
    clearInterval(this.hbTimer);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(reason));
      this.pending.delete(id);
    }
  }

  onResponse(res) {
    const p = this.pending.get(res.packetId);
    if (!p) {
      if (this.expired.has(res.packetId)) this.counters.late_responses++;
      else this.counters.unexpected_responses++;
      return;
    }
    this.pending.delete(res.packetId);
    clearTimeout(p.timer);
    const data = res.data || {};
    if (res.respStatus !== 0 || data.error) {
      const msg = data.error ? data.error.message : 'error';
      p.reject(new Error(`status=${res.respStatus}: ${msg}`));
      return;
    }
    p.resolve(data.appResponse);
  }

  // args: Java-typed arguments ({$class, $}).
  call(method, args) {
    if (this.closed) return Promise.reject(new Error(this.closeReason));
    const o = this.opts;
    const sig = o.version ? `${o.service}:${o.version}` : o.service;
    const req = {
      serverSignature: sig,
      methodName: method,
      args,
      timeout: o.timeout,
      requestProps: {service: sig},
      oneway: o.oneway,
    };
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      if (o.oneway) {
        this.encoder.writeRequest(id, req, (err) => (err ? reject(err) : resolve(null)));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.expired.add(id);
        reject(new Error(`timeout after ${o.timeout}ms`));
      }, o.timeout);
      this.pending.set(id, {resolve, reject, timer});
      this.encoder.writeRequest(id, req, (err) => {
        if (err && this.pending.has(id)) {
          this.pending.delete(id);
          clearTimeout(timer);
          reject(new Error(`encode error: ${err.message}`));
        }
      });
    });
  }

  async close() {
    clearInterval(this.hbTimer);
    if (this.closed) return;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 1000);
      this.socket.once('close', () => { clearTimeout(t); resolve(); });
      this.socket.end();
    });
  }
}

async function runClient(opts) {
  if (opts.port === undefined) usage(`client needs --port${USAGE}`);
  if (opts.boltVersion !== 1 && opts.boltVersion !== 2) usage(`--bolt-version must be 1 or 2${USAGE}`);
  if (!['global', 'per-connection'].includes(opts.ids)) usage(`--ids must be global or per-connection${USAGE}`);
  if (opts.crc && opts.boltVersion !== 2) usage(`--crc needs --bolt-version 2${USAGE}`);
  const counters = {heartbeats_sent: 0, heartbeat_acks: 0, unexpected_responses: 0, late_responses: 0};
  const conns = [];
  for (let c = 0; c < opts.connections; c++) conns.push(new BoltConnection(opts.port, opts, counters));
  await Promise.all(conns.map((c) => c.connect()));

  const method = opts.method;
  const sleepMs = opts.arg === undefined ? 100 : Number(opts.arg);
  const text = opts.arg === undefined ? 'hello' : opts.arg;
  const argsFor = (i) => {
    if (method === 'sleep') return [{$class: 'int', $: sleepMs}];
    return [{$class: 'java.lang.String', $: `${text}#${i}`}];
  };
  const expected = (i) => {
    if (method === 'echo') return `${text}#${i}`;
    if (method === 'sleep') return 'slept';
    return null;
  };
  const report = await runLoad(conns.map((conn) => ({call: (i) => conn.call(method, argsFor(i))})), {
    requests: opts.requests,
    concurrency: opts.concurrency,
    oneway: opts.oneway,
    expected,
  });
  if (opts.lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, opts.lingerMs));
  await Promise.all(conns.map((c) => c.close()));
  Object.assign(report, counters);
  const closed = conns.filter((c) => c.closed && c.closeReason !== 'connection closed').map((c) => c.closeReason);
  if (closed.length) report.connection_errors = closed.slice(0, 5);
  printAndExit(report);
}

// ---------------------------------------------------------------------------------------

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'server') {
    const opts = parseFlags(rest, {port: 'int', name: 'string', services: 'string', version: 'string',
      verbose: 'bool'}, {services: DEFAULT_SERVICE, version: '1.0'}, USAGE);
    runServer(opts).catch((e) => {
      process.stderr.write(`server failed: ${e.stack || e}\n`);
      process.exit(1);
    });
    return;
  }
  if (mode === 'client') {
    const opts = parseFlags(rest, {port: 'int', service: 'string', method: 'string', version: 'string',
      group: 'string', connections: 'int', concurrency: 'int', requests: 'int', oneway: 'bool',
      timeout: 'int', arg: 'string', 'bolt-version': 'int', crc: 'bool', ids: 'string',
      'heartbeat-ms': 'int', 'linger-ms': 'int', verbose: 'bool'},
    {service: DEFAULT_SERVICE, method: 'echo', version: '1.0', connections: 1, concurrency: 1,
      requests: 1, oneway: false, timeout: 5000, boltVersion: 1, ids: 'global', heartbeatMs: 0,
      lingerMs: 0}, USAGE);
    runClient(opts).catch((e) => {
      process.stderr.write(`client failed: ${e.stack || e}\n`);
      process.exit(1);
    });
    return;
  }
  usage(USAGE);
}

main();
