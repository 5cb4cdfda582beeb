// A real Dubbo (hessian2) provider and consumer for Tern's integration tests: the server
// is apache-dubbo-service's DubboService (with a stub registry and a fixed port), the
// client is dubbo2.js's DirectlyDubbo (a direct address, no registry), one per connection.
// Everything talks to 127.0.0.1 only.
//
//   node dubbo_peer.js server --port P --name NAME [--services a,b] [--version V] [--group G]
//       [--verbose]
//       Serves each interface (default com.tern.test.EchoService) at service version V
//       (default 1.0.0) and group G (default none; requests must match both, as the
//       library routes on path + version + group) with:
//         echo(String s) -> "NAME:s"     sleep(int ms) -> "NAME:slept" after ms
//         fail(String s) -> an exception result "NAME:failed:s"
//       Answers carry the response attachment server=NAME. Prints "ready <port>" once
//       listening (--port 0 picks a free port). Prints "stats {json}" on SIGUSR2 and on
//       SIGTERM/SIGINT, then exits 0.
//
//   node dubbo_peer.js client --port P [--service S] [--method echo|sleep|NAME]
//       [--version V] [--group G] [--dubbo-version D] [--attachment k=v]...
//       [--connections C] [--concurrency N] [--requests R] [--timeout MS] [--arg TEXT]
//       [--ids global|per-connection] [--heartbeat-ms MS] [--linger-ms MS] [--verbose]
//       Opens C connections to 127.0.0.1:P, makes R calls in all with N in flight on each
//       connection, prints one JSON line (same fields as bolt_peer.js) and exits 0.
//       Call i sends "TEXT#i" to echo (must come back as "NAME:TEXT#i", else "mismatch");
//       sleep sends int(--arg, default 100) and expects "NAME:slept"; other methods send
//       "TEXT#i" and accept any string. Errors of non-OK responses read
//       "status=60: ...". --dubbo-version (default 2.0.2) is the protocol version in the
//       body; --version/--group/--timeout/--attachment go in the attachments. --ids: request
//       ids from dubbo2.js's process-wide counter (default) or from 1 on every connection.
//       --heartbeat-ms sends dubbo2.js's heartbeat frame on every connection at that
//       interval (the library's own interval is a fixed 180 s). --oneway is not
//       supported: dubbo2.js has no one-way calls. Answers flagged as exceptions fail as
//       "exception: ...". Calls made while a connection is down fail at once
//       ("connection not available (RETRY)"); calls in flight when it drops end as
//       "remote invoke timeout" after --timeout (dubbo2.js itself reopens a dropped
//       connection every 3 s, up to 20 times).
//
// Server behaviour worth knowing (apache-dubbo-service's): it answers a heartbeat with
// request id 0 and status 0; its not-found (status 60) answers carry the error string
// plus an attachments map; it sends heartbeats of its own (flagged as responses) after
// 60 s without traffic and drops a connection silent for 180 s.
//
// Packages come from NODE_PATH (the tests point it at .deps/npm, which `tools/setup --test`
// fills).
'use strict';

// dubbo2.js JSON-stringifies every request for its debug log unless NODE_ENV=production.
if (!process.env.NODE_ENV) process.env.NODE_ENV = 'production';

const {parseFlags, runLoad, printAndExit, makeLogger, serverStats, usage} = require('./peer_common');

const USAGE = `
usage: dubbo_peer.js server --port P --name NAME [--services a,b] [--version V] [--group G]
       dubbo_peer.js client --port P [--service S] [--method M] [--version V] [--group G]
                    [--dubbo-version D] [--attachment k=v]... [--connections C] [--concurrency N]
                    [--requests R] [--timeout MS] [--arg TEXT] [--ids global|per-connection]
                    [--heartbeat-ms MS] [--linger-ms MS]`;

const DEFAULT_SERVICE = 'com.tern.test.EchoService';

// ---------------------------------------------------------------------------------------
// Server

async function runServer(opts) {
  // Errors are serialized with their JS stack into answers: keep answers free of local
  // paths (and the goldens reproducible).
  Error.stackTraceLimit = 0;
  if (opts.port === undefined || !opts.name) usage(`server needs --port and --name${USAGE}`);
  const logger = makeLogger(opts.verbose);
  const st = serverStats();
  const name = opts.name;

  // The library listens on a random port in 20888-30000 and publishes to a registry
  // (zookeeper or nacos); pin the port and give it a registry that does nothing.
  require('apache-dubbo-service/lib/port').randomPort = async () => opts.port;
  const {DubboService, dubboSetting} = require('apache-dubbo-service');
  // The serialization package as apache-dubbo-service itself loads it (patched below).
  const path = require('path');
  const serPath = require.resolve('apache-dubbo-serialization', {paths: [path.dirname(require.resolve('apache-dubbo-service'))]});
  const {HeartBeat} = require(serPath);
  // Count every request decoded (also those no service matches). The package index
  // re-exports this through a getter that reads the module's export at each call.
  const decodeModule = require(path.join(path.dirname(serPath), 'decode-hessian2'));
  const decodeRequest = decodeModule.decodeDubboRequest;
  decodeModule.decodeDubboRequest = (buf) => {
    const req = decodeRequest(buf);
    const a = req.attachment || {};
    st.request(`${a.path}:${a.version}:${a.group || ''}`, req.methodName, false);
    return req;
  };
  const isHeartBeat = HeartBeat.isHeartBeat;
  HeartBeat.isHeartBeat = (buf) => {
    const yes = isHeartBeat(buf);
    if (yes) st.stats.heartbeats++;
    return yes;
  };
  const registry = {
    ready: async () => {},
    registerServices: async () => {},
    close: () => {},
  };
  const methods = {
    async echo(s, ctx) {
      ctx.attachments = {server: name};
      return `${name}:${s}`;
    },
    async sleep(ms, ctx) {
      await new Promise((resolve) => setTimeout(resolve, Number(ms) || 0));
      ctx.attachments = {server: name};
      return `${name}:slept`;
    },
    async fail(s) {
      throw new Error(`${name}:failed:${s}`);
    },
  };
  const services = {};
  const interfaces = opts.services.split(',').filter(Boolean);
  interfaces.forEach((iface, k) => { services[`svc${k}`] = {dubboInterface: iface, methods}; });
  dubboSetting.match(interfaces, {version: opts.version, group: opts.group});
  const service = DubboService.from({registry, services, dubboSetting});
  const failTimer = setTimeout(() => {
    logger.error('server did not start listening on port %s', opts.port);
    process.exit(1);
  }, 15000);
  await service.ready();
  clearTimeout(failTimer);
  service.server.on('connection', (s) => s.on('error', (e) => {
    if (e.code !== 'ECONNRESET') logger.warn('socket error: %s', e.message);
  }));
  process.stdout.write(`ready ${service.server.address().port}\n`);
}

// ---------------------------------------------------------------------------------------
// Client

function patchClientLibrary(counters) {
  const Context = require('dubbo2.js/es7/context').default;
  const HeartBeat = require('dubbo2.js/es7/heartbeat').default;
  const DecodeBuffer = require('dubbo2.js/es7/decode-buffer').default;
  const decodeModule = require('dubbo2.js/es7/decode');

  // Per-call hooks: DirectlyDubbo creates the call's context synchronously inside the
  // proxy method, so `hooks.current` (set just before the call) applies to that call.
  const hooks = {current: null};
  const create = Context.create;
  Context.create = function(...a) {
    const ctx = create.apply(this, a);
    const h = hooks.current;
    if (h) {
      if (h.requestId) ctx.requestId = h.requestId();
      if (h.attachments) ctx.attachments = h.attachments;
    }
    return ctx;
  };

  // Count heartbeat frames received (the library drops them).
  const isHeartBeat = HeartBeat.isHeartBeat;
  HeartBeat.isHeartBeat = (buf) => {
    const yes = isHeartBeat(buf);
    if (yes) counters.heartbeat_acks++;
    return yes;
  };

  // Library bug: after dropping a heartbeat frame, DecodeBuffer.receive returns and leaves
  // any frames that came in the same read in its buffer until more data arrives. Run it
  // again on what is left.
  const receive = DecodeBuffer.prototype.receive;
  DecodeBuffer.prototype.receive = function(data) {
    receive.call(this, data);
    let before = -1;
    while (this._buffer.length >= 16 && this._buffer.length !== before) {
      before = this._buffer.length;
      receive.call(this, Buffer.alloc(0));
    }
  };

  // Put the response status in the error of non-OK answers (the library gives only the
  // raw body text).
  const path = require('path');
  const Hessian = require(require.resolve('hessian.js', {paths: [path.dirname(require.resolve('dubbo2.js'))]}));
  const decode = decodeModule.decode;
  decodeModule.decode = (bytes) => {
    const out = decode(bytes);
    if (out.err && bytes[3] !== 20) {
      let text;
      try {
        text = String(new Hessian.DecoderV2(bytes.slice(16)).read());
      } catch (e) {
        text = bytes.slice(16).toString('latin1');
      }
      out.err = new Error(`status=${bytes[3]}: ${text}`);
    } else if (out.err) {
      out.err = new Error(`exception: ${out.err.message || out.err}`);
    }
    return out;
  };
  return {hooks, HeartBeat};
}

async function runClient(opts) {
  if (opts.port === undefined) usage(`client needs --port${USAGE}`);
  if (opts.oneway) usage(`--oneway: dubbo2.js has no one-way calls${USAGE}`);
  if (!['global', 'per-connection'].includes(opts.ids)) usage(`--ids must be global or per-connection${USAGE}`);
  const attachments = {};
  for (const kv of opts.attachment || []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) usage(`--attachment needs key=value, got ${kv}${USAGE}`);
    attachments[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const counters = {heartbeats_sent: 0, heartbeat_acks: 0};
  const {hooks, HeartBeat} = patchClientLibrary(counters);
  const {DirectlyDubbo, java} = require('dubbo2.js');

  const method = opts.method;
  const sleepMs = opts.arg === undefined ? 100 : Number(opts.arg);
  const text = opts.arg === undefined ? 'hello' : opts.arg;
  const methods = {};
  methods[method] = method === 'sleep' ? (ms) => [java.int(ms)] : (s) => [java.String(s)];

  const conns = [];
  for (let c = 0; c < opts.connections; c++) {
    const dubbo = DirectlyDubbo.from({
      dubboAddress: `127.0.0.1:${opts.port}`,
      dubboVersion: opts.dubboVersion,
      dubboInvokeTimeout: opts.timeout / 1000,
    });
    const proxy = dubbo.proxyService({
      dubboInterface: opts.service,
      version: opts.version,
      group: opts.group,
      timeout: opts.timeout,
      methods,
    });
    let id = 0;
    const hook = {
      requestId: opts.ids === 'per-connection' ? () => ++id : null,
      attachments: Object.keys(attachments).length ? attachments : null,
    };
    conns.push({dubbo, proxy, hook});
  }
  // Wait for the connections (DirectlyDubbo queues calls until its socket connects and
  // retries a refused connection every 3 s).
  const deadline = Date.now() + Math.max(opts.timeout, 1000);
  while (conns.some((c) => c.dubbo._socketStatus !== 'CONNECTED') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const hbTimers = [];
  if (opts.heartbeatMs > 0) {
    for (const c of conns) {
      hbTimers.push(setInterval(() => {
        const worker = c.dubbo._socketWorker;
        if (!worker.isAvaliable) return;
        counters.heartbeats_sent++;
        worker._socket.write(HeartBeat.encode());
      }, opts.heartbeatMs));
    }
  }

  const argFor = (i) => (method === 'sleep' ? sleepMs : `${text}#${i}`);
  const expected = (i) => {
    if (method === 'echo') return `${text}#${i}`;
    if (method === 'sleep') return 'slept';
    return null;
  };
  const drivers = conns.map((c) => ({
    call: async (i) => {
      // DirectlyDubbo would queue the call until its socket (re)connects, or time it out.
      const worker = c.dubbo._socketWorker;
      if (!worker.isAvaliable) throw new Error(`connection not available (${worker.status})`);
      hooks.current = c.hook;
      let p;
      try {
        p = c.proxy[method](argFor(i));
      } finally {
        hooks.current = null;
      }
      const {res, err} = await p;
      if (err) throw err;
      return res;
    },
  }));
  const report = await runLoad(drivers, {requests: opts.requests, concurrency: opts.concurrency, expected});
  if (opts.lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, opts.lingerMs));
  hbTimers.forEach(clearInterval);
  for (const c of conns) {
    const w = c.dubbo._socketWorker;
    w._retry = 0; // no reconnect
    if (w._socket) w._socket.end();
  }
  Object.assign(report, counters);
  printAndExit(report);
}

// ---------------------------------------------------------------------------------------

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'server') {
    const opts = parseFlags(rest, {port: 'int', name: 'string', services: 'string', version: 'string',
      group: 'string', verbose: 'bool'}, {services: DEFAULT_SERVICE, version: '1.0.0', group: ''}, USAGE);
    runServer(opts).catch((e) => {
      process.stderr.write(`server failed: ${e.stack || e}\n`);
      process.exit(1);
    });
    return;
  }
  if (mode === 'client') {
    const opts = parseFlags(rest, {port: 'int', service: 'string', method: 'string', version: 'string',
      group: 'string', 'dubbo-version': 'string', attachment: 'list', connections: 'int',
      concurrency: 'int', requests: 'int', oneway: 'bool', timeout: 'int', arg: 'string', ids: 'string',
      'heartbeat-ms': 'int', 'linger-ms': 'int', verbose: 'bool'},
    {service: DEFAULT_SERVICE, method: 'echo', version: '1.0.0', group: '', dubboVersion: '2.0.2',
      connections: 1, concurrency: 1, requests: 1, oneway: false, timeout: 5000, ids: 'global',
      heartbeatMs: 0, lingerMs: 0}, USAGE);
    runClient(opts).catch((e) => {
      process.stderr.write(`client failed: ${e.stack || e}\n`);
      process.exit(1);
    });
    return;
  }
  usage(USAGE);
}

main();
